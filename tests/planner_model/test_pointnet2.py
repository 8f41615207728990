"""PointNet++ set abstraction and the scene encoder: shapes, reference FPS/ball query, point-order invariance."""

from __future__ import annotations

import numpy as np
import torch

from pmoe_core.planner.pointnet2 import (
    PointNet2Config,
    PointNet2Encoder,
    SALayer,
    ball_query,
    canonical_order,
    farthest_point_sample,
)
from pmoe_core.planner.scene_encoder import (
    SceneEncoder,
    SceneEncoderConfig,
    scene_points,
)
from pmoe_core.planner.spatial_transformer import (
    SpatialTransformer,
    SpatialTransformerConfig,
)

SMALL = PointNet2Config(layers=[SALayer(32, 0.1, 8, [16, 24]), SALayer(8, 0.3, 8, [24, 40])])


def _reference_fps(xyz: np.ndarray, npoint: int) -> list[int]:
    far = int(np.argmax(((xyz - xyz.mean(0)) ** 2).sum(1)))
    dist = np.full(len(xyz), np.inf)
    out = []
    for _ in range(npoint):
        out.append(far)
        dist = np.minimum(dist, ((xyz - xyz[far]) ** 2).sum(1))
        far = int(np.argmax(dist))
    return out


def test_fps_matches_a_plain_loop_per_cloud(cloud):
    xyz = cloud(200, batch=3)[..., :3]
    idx = farthest_point_sample(xyz, 20)
    assert idx.shape == (3, 20)
    for b in range(3):
        assert idx[b].tolist() == _reference_fps(xyz[b].double().numpy(), 20)
        assert len(set(idx[b].tolist())) == 20


def test_ball_query_returns_nearest_points_inside_the_radius(cloud):
    xyz = cloud(300, batch=2)[..., :3]
    centres = xyz[:, :10]
    idx = ball_query(xyz, centres, radius=0.15, nsample=8)
    assert idx.shape == (2, 10, 8)
    for b in range(2):
        for m in range(10):
            d = torch.linalg.norm(xyz[b] - centres[b, m], dim=1)
            inside = torch.nonzero(d <= 0.15).flatten()
            nearest = inside[torch.argsort(d[inside])][:8].tolist()
            got = idx[b, m].tolist()
            assert got[: len(nearest)] == nearest
            assert all(g == nearest[0] for g in got[len(nearest) :])  # short lists padded with the nearest


def test_encoder_shapes(cloud):
    enc = PointNet2Encoder(SMALL)
    tokens, centres = enc(cloud(256, batch=2))
    assert tokens.shape == (2, 8, 40) and centres.shape == (2, 8, 3)
    assert torch.isfinite(tokens).all()


def test_canonical_order_is_lexicographic():
    pts = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [0.0, 1.0], [1.0, -1.0]]])
    assert canonical_order(pts)[0].tolist() == [2, 1, 3, 0]


def _permutation_check(points: torch.Tensor):
    torch.manual_seed(1)
    enc = SceneEncoder(SceneEncoderConfig(pointnet=SMALL, spatial=SpatialTransformerConfig(dim=32, heads=2)), 24)
    enc.eval()
    perm = torch.randperm(points.shape[1])
    ids = torch.full((*points.shape[:2], 1), -1.0)  # no object proposals: the point encoder alone
    a, b = enc(torch.cat([points, ids], -1)), enc(torch.cat([points, ids], -1)[:, perm])
    assert torch.equal(a.centres, b.centres)
    torch.testing.assert_close(a.tokens, b.tokens, atol=1e-5, rtol=1e-5)
    return a.tokens[:, :8]


def test_scene_encoder_is_invariant_to_point_order(cloud):
    out = _permutation_check(cloud(400, batch=2))
    assert out.shape == (2, 8, 24)


def test_invariance_holds_on_a_grid_full_of_distance_ties():
    """A regular grid makes FPS and ball-query distances tie everywhere; ties must not follow input order."""
    g = torch.stack(torch.meshgrid(torch.arange(8.0), torch.arange(8.0), torch.arange(3.0), indexing="ij"), -1)
    xyz = g.reshape(-1, 3) * 0.05 + torch.tensor([0.3, -0.2, 0.0])
    rgb = torch.rand(len(xyz), 3)
    _permutation_check(torch.cat([xyz, rgb], -1)[None])


def test_spatial_transformer_is_permutation_equivariant_and_uses_geometry(cloud):
    st = SpatialTransformer(16, SpatialTransformerConfig(dim=32, heads=2, layers=2)).eval()
    tokens, xyz = torch.randn(2, 10, 16), cloud(10, batch=2)[..., :3]
    perm = torch.randperm(10)
    out = st(tokens, xyz)
    torch.testing.assert_close(st(tokens[:, perm], xyz[:, perm]), out[:, perm], atol=1e-5, rtol=1e-5)
    moved = xyz.clone()
    moved[:, 0] += 0.2
    assert not torch.allclose(st(tokens, moved)[:, 1:], out[:, 1:], atol=1e-4)  # others see the moved token


def test_scene_points_subsamples_deterministically_and_scales_colour():
    coord = np.random.default_rng(0).uniform(size=(1000, 3))
    color = np.full((1000, 3), 255, dtype=np.uint8)
    a = scene_points(coord, color, 128, seed=3)
    assert a.shape == (128, 7) and a.dtype == torch.float32
    assert torch.equal(a, scene_points(coord, color, 128, seed=3))
    assert torch.all(a[:, 3:6] == 1.0)
    small = scene_points(coord[:10], color[:10], 32)
    assert small.shape == (32, 7)
    assert {tuple(r) for r in small[:, :3].tolist()} <= {tuple(r) for r in torch.tensor(coord[:10]).float().tolist()}


def test_scene_points_are_the_foreground_only():
    rng = np.random.default_rng(0)
    table = np.c_[rng.uniform(size=(9000, 2)), rng.uniform(-0.004, 0.004, 9000)]  # depth noise of the cameras
    objects = np.c_[rng.uniform(size=(1000, 2)), rng.uniform(0.01, 0.04, 1000)]
    coord = np.concatenate([table, objects]).astype(np.float32)
    color = np.zeros((10000, 3), dtype=np.uint8)
    drawn = scene_points(coord, color, 400, seed=1)
    assert (drawn[:, 2] > 0.006).all() and len({tuple(r) for r in drawn[:, :3].tolist()}) == 400
    only = scene_points(coord, color, 4000, seed=1)  # fewer object points than asked: repeated to fill
    assert (only[:, 2] > 0.006).all() and len({tuple(r) for r in only[:, :3].tolist()}) == 1000
    bare = scene_points(table.astype(np.float32), color[:9000], 400, seed=1)  # nothing above or coloured: all
    assert bare.shape == (400, 7) and (bare[:, 6] == -1).all()
