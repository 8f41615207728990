"""PCA normals (sources/normals.py): accuracy on known surfaces and the orientation convention (face the viewer,
by default the scene's centre: +z on a floor, towards the centre inside a closed sphere or room)."""

import numpy as np
import pytest

from pmoe_core.sources.normals import estimate_normals


def angle_deg(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Angle between corresponding normals, sign included (a flipped normal is 180 degrees off)."""
    cos = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def sphere(n: int, radius: float, centre: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = rng.standard_normal((n, 3))
    return centre + radius * d / np.linalg.norm(d, axis=1, keepdims=True)


def test_floor_plane_normals_point_up():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-3, 3, (20_000, 2))
    floor = np.c_[xy, rng.normal(0, 0.002, 20_000)].astype(np.float32)  # 2 mm scanner noise
    normal = estimate_normals(floor, viewpoint=np.array([0, 0, 1.5]))  # seen from a room's mid-height
    assert normal.dtype == np.float32 and normal.shape == floor.shape
    assert np.percentile(angle_deg(normal, np.array([[0, 0, 1.0]])), 99) < 5
    flat = np.c_[xy, np.zeros(len(xy))]  # the default viewpoint (the scene's centre) lies in the plane: up
    assert np.percentile(angle_deg(estimate_normals(flat), np.array([[0, 0, 1.0]])), 99) < 1


def test_tilted_plane_faces_a_given_viewpoint():
    rng = np.random.default_rng(1)
    u, v = rng.uniform(-2, 2, (2, 10_000))
    truth = np.array([1.0, -2.0, 2.0]) / 3
    a = np.cross(truth, [0, 0, 1.0])
    a /= np.linalg.norm(a)
    b = np.cross(truth, a)
    plane = u[:, None] * a + v[:, None] * b
    below = estimate_normals(plane, viewpoint=-5 * truth)
    assert np.percentile(angle_deg(below, -truth[None]), 99) < 2
    assert np.percentile(angle_deg(estimate_normals(plane, viewpoint=5 * truth), truth[None]), 99) < 2


def test_sphere_normals_are_radial_and_face_the_centre():
    rng = np.random.default_rng(2)
    centre = np.array([4.0, -1.0, 1.5])
    pts = sphere(30_000, 1.0, centre, rng).astype(np.float32)
    normal = estimate_normals(pts)
    inward = centre - pts
    assert np.percentile(angle_deg(normal, inward), 99) < 5  # within a few degrees of truth, none flipped
    outward = estimate_normals(pts, viewpoint=centre + np.array([0, 0, 100.0]))  # a far viewer above
    top = pts[:, 2] > centre[2] + 0.3
    assert np.percentile(angle_deg(outward[top], pts[top] - centre), 99) < 5


def test_room_surfaces_face_the_inside():
    """A closed box room: floor +z, ceiling -z, walls inwards, as scanned-mesh normals of a room face."""
    rng = np.random.default_rng(3)
    size = np.array([6.0, 4.0, 3.0])
    parts, truths = [], []
    for axis in range(3):
        for side in (0, 1):
            p = rng.uniform(0, 1, (8_000, 3)) * size
            p[:, axis] = side * size[axis]
            n = np.zeros(3)
            n[axis] = 1 if side == 0 else -1
            parts.append(p)
            truths.append(np.repeat(n[None], len(p), axis=0))
    pts, truth = np.concatenate(parts), np.concatenate(truths)
    normal = estimate_normals(pts)
    away_from_edges = np.all((pts > 0.2) | (np.isclose(pts, 0)), axis=1) & \
        np.all((pts < size - 0.2) | np.isclose(pts, size), axis=1)
    assert np.percentile(angle_deg(normal[away_from_edges], truth[away_from_edges]), 99) < 3
    stray = np.concatenate([pts, [[5_000.0, 0, 0]]])  # one point 5 km away must not turn the room's normals
    np.testing.assert_array_equal(estimate_normals(stray)[:-1], normal)


def test_duplicates_get_zero_normals_and_tiny_inputs_are_handled():
    same = np.ones((40, 3), np.float32)
    np.testing.assert_array_equal(estimate_normals(same), 0)
    assert estimate_normals(np.zeros((2, 3))).shape == (2, 3)
    tri = estimate_normals(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.0]]), k=30)  # k larger than the cloud
    np.testing.assert_allclose(tri, [[0, 0, 1]] * 3, atol=1e-6)
    with pytest.raises(ValueError, match="k must be at least 3"):
        estimate_normals(same, k=2)


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(4)
    pts = sphere(5_000, 2.0, np.zeros(3), rng)
    np.testing.assert_array_equal(estimate_normals(pts, chunk=777), estimate_normals(pts))
