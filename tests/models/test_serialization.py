import pytest
import torch

from pmoe_core.models.serialization import (
    CURVES,
    curve_depth,
    encode,
    hilbert_encode,
    inverse_permutation,
    morton_encode,
    serialize,
)


def skilling_hilbert(x: int, y: int, z: int, bits: int) -> int:
    """Per-point reference: Skilling's AxesToTranspose, then interleave the transposed bits (x most significant)."""
    X = [x, y, z]
    q = 1 << (bits - 1)
    while q > 1:
        p = q - 1
        for i in range(3):
            if X[i] & q:
                X[0] ^= p
            else:
                t = (X[0] ^ X[i]) & p
                X[0] ^= t
                X[i] ^= t
        q >>= 1
    for i in range(1, 3):
        X[i] ^= X[i - 1]
    t = 0
    q = 1 << (bits - 1)
    while q > 1:
        if X[2] & q:
            t ^= q - 1
        q >>= 1
    for i in range(3):
        X[i] ^= t
    h = 0
    for level in range(bits - 1, -1, -1):
        for i in range(3):
            h = (h << 1) | ((X[i] >> level) & 1)
    return h


def interleave(x: int, y: int, z: int, bits: int) -> int:
    code = 0
    for i in range(bits):
        code |= ((x >> i) & 1) << (3 * i + 2) | ((y >> i) & 1) << (3 * i + 1) | ((z >> i) & 1) << (3 * i)
    return code


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6, 9, 10, 11, 16])
def test_curves_equal_reference(depth):
    g = torch.Generator().manual_seed(depth)
    grid = torch.randint(0, 1 << depth, (700, 3), generator=g)
    rows = grid.tolist()
    assert hilbert_encode(grid, depth).tolist() == [skilling_hilbert(*r, depth) for r in rows]
    assert morton_encode(grid, depth).tolist() == [interleave(*r, depth) for r in rows]
    assert encode(grid, None, depth, "hilbert-trans").tolist() == [skilling_hilbert(r[1], r[0], r[2], depth) for r in rows]
    assert encode(grid, None, depth, "z-trans").tolist() == [interleave(r[1], r[0], r[2], depth) for r in rows]


def test_hilbert_is_a_continuous_bijection():
    """Consecutive Hilbert indices are face neighbours: a property the reference cannot share by accident."""
    depth = 3
    ar = torch.arange(1 << depth)
    grid = torch.cartesian_prod(ar, ar, ar)
    code = hilbert_encode(grid, depth)
    assert torch.equal(torch.sort(code).values, torch.arange(8**depth))
    path = grid[torch.argsort(code)]
    assert torch.all((path[1:] - path[:-1]).abs().sum(1) == 1)


def test_depth_and_batch_bits():
    grid = torch.tensor([[0, 0, 0], [1023, 5, 7]])
    assert curve_depth(grid) == 11  # bit_length(1023 + 1)
    assert curve_depth(torch.tensor([[0, 0, 6]])) == 3
    with pytest.raises(ValueError):
        curve_depth(torch.tensor([[1 << 16, 0, 0]]))
    batch = torch.tensor([0, 2])
    code = encode(grid, batch, 11, "z")
    assert torch.equal(code >> 33, batch)


def test_serialize_orders_inverse_and_shuffle():
    g = torch.Generator().manual_seed(0)
    grid = torch.randint(0, 64, (500, 3), generator=g)
    batch = torch.sort(torch.randint(0, 3, (500,), generator=g)).values
    ser = serialize(grid, batch)
    assert ser.code.shape == ser.order.shape == ser.inverse.shape == (4, 500)
    ar = torch.arange(500)
    for k in range(4):
        assert torch.equal(ser.order[k][ser.inverse[k]], ar)
        assert torch.all(ser.code[k][ser.order[k]].diff() >= 0)
        assert torch.all(batch[ser.order[k]].diff() >= 0)  # samples stay contiguous along every curve
    assert torch.equal(inverse_permutation(ser.order), ser.inverse)
    torch.manual_seed(3)
    shuffled = serialize(grid, batch, shuffle=True)
    rows = {tuple(r.tolist()) for r in ser.code}
    assert {tuple(r.tolist()) for r in shuffled.code} == rows
    assert set(CURVES) == {"z", "z-trans", "hilbert", "hilbert-trans"}
