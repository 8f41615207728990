"""Entropy and mutual information of count tables, in bits.

Used to say how much the top-1 expert choice tells about a point's class or dataset: MI = 0 means routing is
independent of it (mixed), MI = H(expert) means the expert choice is fully determined by it (decoupled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Information:
    """MI(expert; Y) in bits and its normalised form 2 MI / (H(expert) + H(Y)) (sklearn's arithmetic NMI)."""

    bits: float
    normalized: float
    points: int  # points the table counts


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits) of the distribution proportional to `counts` (any shape)."""
    p = counts[counts > 0].astype(np.float64)
    p /= p.sum()
    return float(-(p * np.log2(p)).sum()) if p.size else 0.0


def mutual_information(joint: np.ndarray) -> float:
    """MI (bits) of a 2-D contingency table of counts."""
    n = joint.sum()
    if n == 0:
        return 0.0
    p = joint.astype(np.float64) / n
    outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
    nz = p > 0
    return max(0.0, float((p[nz] * np.log2(p[nz] / outer[nz])).sum()))


def information(joint: np.ndarray) -> Information | None:
    """MI between the rows (Y) and columns (expert) of a count table; None when fewer than two Y values occur
    (nothing to tell apart, so the number would say nothing)."""
    if int((joint.sum(axis=1) > 0).sum()) < 2:
        return None
    mi = mutual_information(joint)
    denom = entropy_bits(joint.sum(axis=0)) + entropy_bits(joint.sum(axis=1))
    return Information(bits=mi, normalized=min(1.0, 2 * mi / denom) if denom > 0 else 0.0, points=int(joint.sum()))


def conditional_mutual_information(joints: list[np.ndarray]) -> float | None:
    """MI(expert; Y | Z) = sum_z P(z) MI(expert; Y | z) from one table per z; None when all tables are empty."""
    totals = np.array([j.sum() for j in joints], dtype=np.float64)
    if totals.sum() == 0:
        return None
    return float(sum(w * mutual_information(j) for w, j in zip(totals / totals.sum(), joints)))
