"""2-D projections of backbone output features, to see whether datasets separate in feature space."""

from __future__ import annotations

import numpy as np

from pmoe_core.errors import BadInput

METHODS = ("pca", "tsne", "none")


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Scores on the two leading principal components (centred SVD)."""
    centred = x.astype(np.float64) - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))


def tsne_2d(x: np.ndarray, seed: int) -> np.ndarray:
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise BadInput("--embed tsne needs scikit-learn (pip install 'pmoe[analysis]'); use --embed pca") from None
    perplexity = float(min(30.0, max(2.0, (x.shape[0] - 1) / 3)))
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed)
    return tsne.fit_transform(x.astype(np.float32))


def project(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    if method == "pca":
        return pca_2d(x)
    if method == "tsne":
        return tsne_2d(x, seed)
    raise BadInput(f"--embed must be one of {', '.join(METHODS)}, got {method!r}")
