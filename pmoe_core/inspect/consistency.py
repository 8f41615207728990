"""Spatial routing consistency: does a token go to the same top-1 expert as its nearest neighbours?

Computed on the model's tokens (one point per voxel), not on all original points: points of one voxel share a
token and would agree trivially. A query token is inconsistent when its top-1 expert differs from the most frequent
top-1 expert among its k nearest other tokens (ties go to the lowest expert id). Neighbours come from scipy's
cKDTree (scipy ships with scikit-learn, a dependency of the analysis extra) or, without scipy, from exact
brute-force distances in chunks.
"""

from __future__ import annotations

import numpy as np

CHUNK = 2048  # query rows per brute-force block: 2048 x V float64 distances


def pick_queries(num_tokens: int, max_queries: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted token indices to query: all tokens, or a uniform sample of `max_queries` of them."""
    if num_tokens <= max_queries:
        return np.arange(num_tokens, dtype=np.int64)
    return np.sort(rng.choice(num_tokens, size=max_queries, replace=False)).astype(np.int64)


def nearest_neighbours(coord: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(Q, k') indices of the k' = min(k, V-1) nearest other tokens of each query token."""
    k_eff = min(k, coord.shape[0] - 1)
    if k_eff < 1:
        return np.zeros((queries.shape[0], 0), dtype=np.int64)
    points = coord.astype(np.float64)
    try:
        from scipy.spatial import cKDTree
    except ImportError:
        found = _brute_force(points, queries, k_eff + 1)
    else:
        _, found = cKDTree(points).query(points[queries], k=k_eff + 1)
        found = np.asarray(found, dtype=np.int64).reshape(queries.shape[0], k_eff + 1)
    # Drop the query itself (or, where duplicates hid it, the farthest of the k+1).
    rank = np.where(found == queries[:, None], k_eff + 1, np.arange(k_eff + 1)[None, :])
    keep = np.argsort(rank, axis=1, kind="stable")[:, :k_eff]
    return np.take_along_axis(found, keep, axis=1)


def _brute_force(points: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    sq = (points**2).sum(axis=1)
    for lo in range(0, queries.shape[0], CHUNK):
        q = points[queries[lo : lo + CHUNK]]
        d = (q**2).sum(axis=1)[:, None] + sq[None, :] - 2 * q @ points.T
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1, kind="stable")
        out[lo : lo + CHUNK] = np.take_along_axis(part, order, axis=1)
    return out


def disagreements(top1: np.ndarray, queries: np.ndarray, neighbours: np.ndarray, num_experts: int) -> int:
    """How many query tokens' top-1 expert differs from the majority top-1 expert of their neighbours."""
    if neighbours.shape[1] == 0:
        return 0
    q = queries.shape[0]
    rows = np.repeat(np.arange(q, dtype=np.int64), neighbours.shape[1])
    cells = rows * num_experts + top1[neighbours].reshape(-1).astype(np.int64)
    votes = np.bincount(cells, minlength=q * num_experts).reshape(q, num_experts)
    return int((votes.argmax(axis=1) != top1[queries]).sum())
