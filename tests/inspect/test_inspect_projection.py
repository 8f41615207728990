import numpy as np
import pytest

from pmoe_core.errors import BadInput
from pmoe_core.inspect.projection import pca_2d, project


def test_pca_scores_are_the_two_leading_components():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) * np.array([5.0, 0.1, 2.0, 0.1, 0.1, 0.1])  # variance along axes 0, then 2
    xy = pca_2d(x)
    assert xy.shape == (300, 2)
    np.testing.assert_allclose(np.abs(np.corrcoef(xy[:, 0], x[:, 0])[0, 1]), 1.0, atol=1e-3)
    np.testing.assert_allclose(np.abs(np.corrcoef(xy[:, 1], x[:, 2])[0, 1]), 1.0, atol=1e-2)
    assert pca_2d(x[:, :1]).shape == (300, 2)  # one feature: the second column is zero padding


def test_tsne_separates_two_clusters():
    pytest.importorskip("sklearn.manifold", reason="t-SNE needs scikit-learn (pmoe[analysis])")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (60, 8)), rng.normal(20, 1, (60, 8))])
    xy = project(x, "tsne", seed=0)
    assert xy.shape == (120, 2) and np.isfinite(xy).all()
    a, b = xy[:60].mean(0), xy[60:].mean(0)
    spread = max(xy[:60].std(0).max(), xy[60:].std(0).max())
    assert np.linalg.norm(a - b) > 3 * spread


def test_unknown_method_is_refused():
    with pytest.raises(BadInput, match="--embed must be one of pca, tsne, none"):
        project(np.zeros((5, 3)), "umap", 0)
