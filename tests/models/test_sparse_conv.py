import pytest
import torch
import torch.nn.functional as F

from pmoe_core.models import sparse_conv
from pmoe_core.models.sparse_conv import HAS_SPCONV, SparseGrid, SubMConv3d

needs_spconv = pytest.mark.skipif(not HAS_SPCONV, reason="spconv not installed")


def _grid(make_batch, surface: bool):
    b = make_batch((700, 500), extent=24, surface=surface, seed=1)
    return b, SparseGrid(b.grid_coord, b.batch_index())


@pytest.fixture(params=["im2col", "pairs"])
def torch_path(request, monkeypatch):
    """Run the torch backend through both of its code paths (single GEMM, per-offset pairs)."""
    if request.param == "pairs":
        monkeypatch.setattr(sparse_conv, "IM2COL_MAX_ELEMENTS", 0)
    return request.param


@pytest.mark.parametrize("k", [3, 5])
def test_torch_backend_equals_dense_conv3d(make_batch, k, torch_path):
    b, grid = _grid(make_batch, False)
    conv = SubMConv3d(7, 5, k, backend="torch").double()
    x = b.feat.double()
    y = conv(x, grid)
    dense = torch.zeros(2, 7, 24, 24, 24, dtype=torch.double)
    bi, g = b.batch_index(), b.grid_coord
    dense[bi, :, g[:, 0], g[:, 1], g[:, 2]] = x
    ref = F.conv3d(dense, conv.weight.permute(0, 4, 1, 2, 3), conv.bias, padding=k // 2)[bi, :, g[:, 0], g[:, 1], g[:, 2]]
    torch.testing.assert_close(y, ref, atol=1e-10, rtol=0)


@needs_spconv
@pytest.mark.parametrize("surface", [False, True])
@pytest.mark.parametrize("k,bias", [(3, True), (5, False)])
def test_backends_agree_forward_and_backward(make_batch, surface, k, bias, torch_path):
    b, grid = _grid(make_batch, surface)
    torch.manual_seed(0)
    ref = SubMConv3d(7, 6, k, bias=bias, backend="torch")
    sp = SubMConv3d(7, 6, k, bias=bias, backend="spconv")
    sp.load_state_dict(ref.state_dict())  # identical parameter layout
    outs = []
    for conv in (ref, sp):
        x = b.feat.clone().requires_grad_(True)
        y = conv(x, grid)
        y.backward(torch.sin(torch.arange(y.numel(), dtype=y.dtype)).view_as(y))
        outs.append((y, x.grad, conv.weight.grad, None if conv.bias is None else conv.bias.grad))
    for a, c in zip(outs[0], outs[1]):
        if a is not None:
            torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)


@needs_spconv
def test_neighbours_are_computed_once_per_level(make_batch):
    b, grid = _grid(make_batch, True)
    convs = [SubMConv3d(7, 7, 3, backend=backend) for backend in ("torch", "spconv", "torch", "spconv")]
    x = b.feat
    for conv in convs:
        x = conv(x, grid)
    pairs = grid.neighbour_pairs(3)
    assert grid.neighbour_pairs(3) is pairs
    assert list(grid.spconv_indice_dict) == ["subm3"]


def test_unknown_backend():
    with pytest.raises(ValueError):
        SubMConv3d(3, 3, 3, backend="minkowski")
