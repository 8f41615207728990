"""The backbone's 7-channel input features, built the same way for every domain.

Layout = `pmoe_core.models.batch.FEATURE_CHANNELS`: color scaled to [-1, 1], unit normal, strength in [0, 1]
(sources store strength already in [0, 1]); zeros where the dataset lacks a field, so one channel means one
thing across indoor and outdoor data and nothing else tells the backbone which dataset a point came from.
"""

from __future__ import annotations

import numpy as np

from pmoe_core.data.sample import Sample
from pmoe_core.models.batch import IN_CHANNELS


def point_features(sample: Sample) -> np.ndarray:
    """(N, 7) float32 features of a sample; colors are normalised here, exactly once."""
    feat = np.zeros((len(sample), IN_CHANNELS), np.float32)
    if sample.color is not None:
        feat[:, 0:3] = sample.color / np.float32(127.5) - 1
    if sample.normal is not None:
        feat[:, 3:6] = sample.normal
    if sample.strength is not None:
        feat[:, 6] = sample.strength
    return feat
