"""Space-filling-curve serialization of voxel coordinates (PTv3).

Every point gets, per curve, a code `batch << 3*depth | curve(grid_coord)`; sorting by it lays the points of each
sample out along the curve, so fixed-size windows of the sorted list are compact patches for attention.

Speed: the usual Hilbert encoder walks Skilling's algorithm one bit and one axis at a time over boolean tensors
(seconds per million points). Here the Morton (z) code is built with magic-number bit spreading, and the Hilbert
code is a finite-state machine over that Morton code: the 3D Hilbert curve has a small set of orientation states,
so a table indexed by (state, next few octants) yields the output digits and the next state. The tables are
derived once from Skilling's algorithm itself (and Gray decoding is folded in as a parity bit of the state), so
the codes equal Skilling's exactly; tests check that against a per-point reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

CURVES = ("z", "z-trans", "hilbert", "hilbert-trans")
MAX_DEPTH = 16
_CHUNK_LEVELS = 3  # octants consumed per table lookup (table size: states * 8**3)


def curve_depth(grid_coord: torch.Tensor) -> int:
    """Bits per axis: bit_length(max grid coord + 1), as in the reference; at most 16."""
    if grid_coord.numel() == 0:
        return 1
    max_coord = int(grid_coord.max())
    depth = max(int(max_coord + 1).bit_length(), 1)
    if depth > MAX_DEPTH:
        raise ValueError(f"grid coordinates up to {max_coord} need {depth} bits per axis; at most {MAX_DEPTH} supported")
    return depth


# ----------------------------------------------------------------------------------------------------------------
# Morton (z-order): bit i of x, y, z lands on bit 3i+2, 3i+1, 3i of the code (x most significant at each level).

_SPREAD_STEPS = (  # (shift, mask) pairs that spread the low 16 bits of an integer to every third bit
    (32, 0x1F00000000FFFF),
    (16, 0x1F0000FF0000FF),
    (8, 0x100F00F00F00F00F),
    (4, 0x10C30C30C30C30C3),
    (2, 0x1249249249249249),
)


def _spread_bits(v: torch.Tensor, depth: int) -> torch.Tensor:
    """Insert two zero bits between the low `depth` bits of v (int64)."""
    # A step with shift s moves bits >= s/2; for shallower inputs it is a no-op and is skipped.
    for shift, mask in _SPREAD_STEPS:
        if depth <= shift // 2:
            continue
        v = (v | (v << shift)) & mask
    return v


def morton_encode(grid_coord: torch.Tensor, depth: int) -> torch.Tensor:
    """(N, 3) integer voxel coordinates -> (N,) int64 z-order code of 3*depth bits."""
    g = grid_coord.to(torch.int64)
    code = _spread_bits(g[:, 0], depth) << 2
    code |= _spread_bits(g[:, 1], depth) << 1
    code |= _spread_bits(g[:, 2], depth)
    return code


# ----------------------------------------------------------------------------------------------------------------
# Hilbert via a state machine derived from Skilling's "AxesToTranspose" (J. Skilling, AIP Conf. Proc. 707, 2004).


def _skilling_level(transform: tuple[int, ...], octant: int) -> tuple[int, tuple[int, ...]]:
    """One level of Skilling's loop for a state.

    `transform` maps a raw 3-bit octant (x bit = 4, y = 2, z = 1) to the bits Skilling's loop sees at this level
    after the inversions/exchanges caused by higher levels. Returns the Gray digit of this level and the transform
    the lower levels will see.
    """

    def bits(v: int) -> list[int]:
        return [(v >> 2) & 1, (v >> 1) & 1, v & 1]

    digit = transform[octant]
    seen = bits(digit)
    new = []
    for raw in range(8):
        b = bits(transform[raw])
        for axis in range(3):  # Skilling: for i in 0..n-1, if X[i] has this level's bit: invert X[0], else exchange
            if seen[axis]:
                b[0] ^= 1
            else:
                b[0], b[axis] = b[axis], b[0]
        new.append(b[0] << 2 | b[1] << 1 | b[2])
    return digit, tuple(new)


@lru_cache(maxsize=None)
def _hilbert_tables(levels: int, device: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Tables for consuming `levels` octants at once: (next_state, binary digits), flattened by state*8**levels+chunk.

    A state is (orientation transform, parity of the Gray bits emitted so far); the parity turns the Gray digits
    into binary digits on the fly (Gray -> binary is a running XOR from the most significant bit).
    """
    identity = tuple(range(8))
    transforms = [identity]
    index = {identity: 0}
    one_level: dict[tuple[int, int], tuple[int, int]] = {}
    i = 0
    while i < len(transforms):  # breadth-first over the reachable orientations (48 signed axis permutations)
        for octant in range(8):
            digit, nxt = _skilling_level(transforms[i], octant)
            if nxt not in index:
                index[nxt] = len(transforms)
                transforms.append(nxt)
            one_level[i, octant] = (digit, index[nxt])
        i += 1
    num_states = 2 * len(transforms)  # state id = 2 * orientation + parity
    chunks = 8**levels
    next_state = torch.empty(num_states * chunks, dtype=torch.int64)
    digits = torch.empty(num_states * chunks, dtype=torch.int64)
    for state in range(num_states):
        for chunk in range(chunks):
            orient, parity, out = state // 2, state % 2, 0
            for level in range(levels - 1, -1, -1):
                gray, orient = one_level[orient, (chunk >> (3 * level)) & 7]
                binary = 0
                for bit in (2, 1, 0):  # running XOR over the Gray bits, most significant first
                    parity ^= (gray >> bit) & 1
                    binary |= parity << bit
                out = out << 3 | binary
            next_state[state * chunks + chunk] = 2 * orient + parity
            digits[state * chunks + chunk] = out
    return next_state.to(device), digits.to(device), chunks


def hilbert_encode(grid_coord: torch.Tensor, depth: int) -> torch.Tensor:
    """(N, 3) integer voxel coordinates -> (N,) int64 Hilbert index of 3*depth bits (Skilling's curve)."""
    morton = morton_encode(grid_coord, depth)
    state = torch.zeros_like(morton)
    code = torch.zeros_like(morton)
    remaining = depth
    first = depth % _CHUNK_LEVELS or _CHUNK_LEVELS
    levels = min(first, depth)
    while remaining > 0:
        next_state, digits, chunks = _hilbert_tables(levels, str(morton.device))
        remaining -= levels
        idx = state * chunks + ((morton >> (3 * remaining)) & (chunks - 1))
        code = (code << (3 * levels)) | digits[idx]
        state = next_state[idx]
        levels = _CHUNK_LEVELS
    return code


# ----------------------------------------------------------------------------------------------------------------


def encode(grid_coord: torch.Tensor, batch: torch.Tensor | None, depth: int, curve: str) -> torch.Tensor:
    """Serialization code of one curve: batch << 3*depth | curve(grid_coord)."""
    if curve == "z":
        code = morton_encode(grid_coord, depth)
    elif curve == "z-trans":
        code = morton_encode(grid_coord[:, [1, 0, 2]], depth)
    elif curve == "hilbert":
        code = hilbert_encode(grid_coord, depth)
    elif curve == "hilbert-trans":
        code = hilbert_encode(grid_coord[:, [1, 0, 2]], depth)
    else:
        raise ValueError(f"unknown curve {curve!r}; expected one of {CURVES}")
    if batch is not None:
        code = (batch.to(torch.int64) << (3 * depth)) | code
    return code


@dataclass
class Serialization:
    """Codes of K curves (K, N), the sort order per curve and its inverse permutation."""

    code: torch.Tensor
    order: torch.Tensor
    inverse: torch.Tensor
    depth: int

    @staticmethod
    def from_code(code: torch.Tensor, depth: int) -> "Serialization":
        order = torch.argsort(code, dim=1)
        return Serialization(code, order, inverse_permutation(order), depth)

    def shuffled(self, generator: torch.Generator | None = None) -> "Serialization":
        """Same curves in a random order, so block i of a stage sees a random curve (order i % K)."""
        perm = torch.randperm(self.code.shape[0], generator=generator).to(self.code.device)
        return Serialization(self.code[perm], self.order[perm], self.inverse[perm], self.depth)


def inverse_permutation(order: torch.Tensor) -> torch.Tensor:
    """Inverse of each row permutation: inverse[k, order[k, i]] = i."""
    arange = torch.arange(order.shape[-1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, arange)


def serialize(
    grid_coord: torch.Tensor,
    batch: torch.Tensor,
    curves: tuple[str, ...] = CURVES,
    depth: int | None = None,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Serialization:
    """Codes, orders and inverses for each curve (stacked K x N); optionally shuffle the curve order."""
    depth = curve_depth(grid_coord) if depth is None else depth
    code = torch.stack([encode(grid_coord, batch, depth, c) for c in curves])
    ser = Serialization.from_code(code, depth)
    return ser.shuffled(generator) if shuffle else ser
