"""Surface normals of a point cloud without a mesh: PCA over each point's k nearest neighbours.

Why: the Point-MoE release feeds S3DIS colour + normal, but the raw S3DIS release (Stanford3dDataset_v1.2) has no
normals; Pointcept takes them from the separate Stanford2d3d mesh (nearest face normal,
pointcept/datasets/preprocessing/s3dis/preprocess_s3dis.py:108-109). Without that mesh, the estimate is the one
Pointcept itself uses where it has no mesh (preprocessing/concerto/waymo/preprocess_waymo.py:78-87): Open3D's
default `estimate_normals` (30 nearest neighbours, the covariance's smallest eigenvector), flipped to face the
viewer. The viewer here is the scene's centre (of the box spanning the 1st to 99th percentile of each coordinate: the
bounding box, but a stray far point cannot move it), so in a room normals face the room's inside: +z on the floor,
-z on the ceiling, inwards on walls (the side a scanned mesh's faces are wound towards).

Memory: the k-d tree (~40 bytes a point) plus fixed-size chunks of neighbours, never (N, k) at once.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

DEFAULT_K = 30  # Open3D's estimate_normals default (KDTreeSearchParamKNN(knn=30))
CHUNK = 1 << 15  # points whose neighbourhoods are gathered at a time (CHUNK * k * 3 float64)


def estimate_normals(coord: np.ndarray, k: int = DEFAULT_K, viewpoint: np.ndarray | None = None,
                     chunk: int = CHUNK) -> np.ndarray:
    """(N, 3) float32 unit normals of `coord` (N, 3), each facing `viewpoint` (default: the scene's centre).

    A point whose neighbours all coincide has no plane: its normal is zero (as for data without normals). Where the
    viewpoint lies in a point's tangent plane the sign is ambiguous; such normals point up (+z) instead."""
    if k < 3:
        raise ValueError(f"k must be at least 3 (a plane needs three points), got {k}")
    pts = np.asarray(coord, dtype=np.float64)
    n = len(pts)
    out = np.zeros((n, 3), np.float32)
    if n < 3:
        return out
    k = min(k, n)
    if viewpoint is None:
        low, high = np.percentile(pts, [1, 99], axis=0)
        viewpoint = (low + high) / 2
    view = np.asarray(viewpoint, dtype=np.float64)
    tree = cKDTree(pts)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        _, idx = tree.query(pts[start:stop], k=k)
        out[start:stop] = _orient(_pca_normals(pts[idx]), view - pts[start:stop])
    return out


def _pca_normals(neighbours: np.ndarray) -> np.ndarray:
    """Smallest-eigenvalue eigenvectors of each neighbourhood's covariance (M, k, 3) -> (M, 3); zero if degenerate."""
    centred = neighbours - neighbours.mean(axis=1, keepdims=True)
    cov = np.matmul(centred.transpose(0, 2, 1), centred)  # 15x faster than the equivalent einsum
    values, vectors = np.linalg.eigh(cov)  # ascending eigenvalues
    normal = vectors[:, :, 0]
    normal[values[:, 2] <= 1e-18] = 0.0  # all neighbours at one spot (duplicates): no plane to speak of
    return normal


def _orient(normal: np.ndarray, to_view: np.ndarray) -> np.ndarray:
    """Flip each normal to the viewer's side; up (+z) where the viewer is (nearly) in the tangent plane."""
    facing = np.einsum("mi,mi->m", normal, to_view)
    ambiguous = np.abs(facing) <= 1e-6 * np.linalg.norm(to_view, axis=1)
    sign = np.where(ambiguous, np.sign(normal[:, 2]), np.sign(facing))
    sign[sign == 0] = 1.0
    return normal * sign[:, None]
