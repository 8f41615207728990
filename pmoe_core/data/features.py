"""The backbone's input features, built the same way for every domain, in the layout the model config names.

"pmoe7" (`pmoe_core.models.batch.FEATURE_CHANNELS`): color scaled to [-1, 1], unit normal, strength in [0, 1]
(sources store strength already in [0, 1]); zeros where the dataset lacks a field, so one channel means one
thing across indoor and outdoor data and nothing else tells the backbone which dataset a point came from.
"pmoe7-xyz" (pmoe-s/l's default, a recorded config knob so older "pmoe7" checkpoints keep their inputs): "pmoe7",
but outdoor points carry their coordinates (metres, after augmentation, sensor-centred) in channels 0-2, where they
have no colour: the Point-MoE release feeds outdoor scans coord + strength (configs/point_moe/indoor+outdoor.py
feat_keys), which gives the stem geometry where pmoe7 gave it zeros; strength keeps its own channel 6.
"pointcept6" (imported Pointcept checkpoints, docs/pointcept.md): what those models were trained on, which differs
by domain: indoor [color / 255, normal], outdoor [x, y, z, strength, 0, 0]; "pointcept6-signed": color / 127.5 - 1.
"""

from __future__ import annotations

import numpy as np

from pmoe_core.data.recipes import domain_of
from pmoe_core.data.sample import Sample
from pmoe_core.errors import BadInput
from pmoe_core.models.batch import FEATURE_LAYOUTS, IN_CHANNELS


def point_features(sample: Sample, layout: str = "pmoe7", domain: str | None = None) -> np.ndarray:
    """(N, C) float32 features of a sample in `layout`; colors are normalised here, exactly once. `domain`
    ("indoor" / "outdoor"; default: from `sample.dataset`) matters for "pointcept6*" and "pmoe7-xyz"."""
    if layout in ("pointcept6", "pointcept6-signed"):
        return _pointcept6(sample, domain, signed=layout == "pointcept6-signed")
    if layout not in ("pmoe7", "pmoe7-xyz"):
        raise ValueError(f"unknown feature layout {layout!r}; expected one of {tuple(FEATURE_LAYOUTS)}")
    feat = np.zeros((len(sample), IN_CHANNELS), np.float32)
    if sample.color is not None:
        feat[:, 0:3] = sample.color / np.float32(127.5) - 1
    if sample.normal is not None:
        feat[:, 3:6] = sample.normal
    if sample.strength is not None:
        feat[:, 6] = sample.strength
    if layout == "pmoe7-xyz" and _domain(sample, domain) == "outdoor":
        feat[:, 0:3] = sample.coord
    return feat


def _domain(sample: Sample, domain: str | None) -> str:
    """`domain`, else the domain of `sample.dataset` (a dataset name, custom ones included, or a domain as
    route-inspect passes); a name of no known dataset falls back to indoor, as before."""
    if domain is not None:
        return domain
    if sample.dataset in ("indoor", "outdoor"):
        return sample.dataset
    try:
        return domain_of(sample.dataset)
    except BadInput:
        return "indoor"


def _pointcept6(sample: Sample, domain: str | None, signed: bool) -> np.ndarray:
    """Pointcept's feat_keys: ("color", "normal") indoors with NormalizeColor (color / 255 since Pointcept v1.6.0;
    `signed`: color / 127.5 - 1, as before v1.6.0 and in the Point-MoE fork), ("coord", "strength") outdoors,
    zero-padded to the 6-channel stem. Without `domain`, `sample.dataset` says it
    (a dataset name, or a domain as route-inspect passes)."""
    feat = np.zeros((len(sample), 6), np.float32)
    if _domain(sample, domain) == "outdoor":
        feat[:, 0:3] = sample.coord
        if sample.strength is not None:
            feat[:, 3] = sample.strength
        return feat
    if sample.color is not None:
        feat[:, 0:3] = sample.color / np.float32(127.5) - 1 if signed else sample.color / np.float32(255)
    if sample.normal is not None:
        feat[:, 3:6] = sample.normal
    return feat
