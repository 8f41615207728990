"""Submanifold sparse 3D convolution behind one interface, with two backends that share the weight layout.

- "spconv": any spconv-cuXXX build (on CPU only `ConvAlgo.Native` works, chosen automatically per call).
- "torch": sorted voxel keys + searchsorted neighbour lookup + per-offset gather/matmul/index_add; no extension
  needed, same numerics.

Weights are stored as spconv does, (Cout, k, k, k, Cin), so a state dict moves between backends unchanged.
A `SparseGrid` is one resolution level (voxel coords + sample ids); it caches the neighbour structure per kernel
size, so every convolution of a level reuses the neighbours computed by the first one.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

try:  # spconv prints FutureWarnings about torch.cuda.amp at import
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import spconv.pytorch as _spconv
    HAS_SPCONV = True
    # spconv's fx-wrapped SparseConvTensor makes torch log a once-per-process notice about is_fx_tracing that no
    # user can act on; emit it now with that logger silenced (torch caches it, so it never prints later).
    import logging

    import torch.fx._symbolic_trace as _fx_trace

    _fx_logger = logging.getLogger(_fx_trace.__name__)
    _level, _fx_logger.level = _fx_logger.level, logging.ERROR
    try:
        getattr(_fx_trace, "is_fx_tracing_warning", lambda: None)()
    finally:
        _fx_logger.setLevel(_level)
except ImportError:  # pragma: no cover - depends on the environment
    _spconv = None
    HAS_SPCONV = False

BACKENDS = ("spconv", "torch")
IM2COL_MAX_ELEMENTS = 1 << 24  # torch backend: above this many gathered values use per-offset pairs (less memory)


def resolve_backend(backend: str) -> str:
    """'auto' -> spconv when importable, else torch."""
    if backend == "auto":
        return "spconv" if HAS_SPCONV else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"unknown sparse conv backend {backend!r}; expected auto, spconv or torch")
    if backend == "spconv" and not HAS_SPCONV:
        raise ImportError("sparse conv backend 'spconv' needs an spconv-cuXXX package (pip install 'pmoe[sparse]')")
    return backend


class SparseGrid:
    """Active voxels of one level and the neighbour structures computed on them (built lazily, once)."""

    def __init__(self, grid_coord: torch.Tensor, batch: torch.Tensor, batch_size: int | None = None):
        self.grid_coord = grid_coord
        self.batch = batch
        self.batch_size = int(batch.max()) + 1 if batch_size is None else batch_size
        self._cache: dict[tuple[str, int], Any] = {}
        self.spconv_indice_dict: dict[str, Any] = {}  # spconv fills this through SparseConvTensor(indice_dict=...)
        self._spconv_indices: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.grid_coord.shape[0]

    def neighbour_map(self, kernel_size: int) -> torch.Tensor:
        """(N, k^3) index of the input voxel at out + (dx, dy, dz) - k//2 for each kernel offset (x-major), or N
        where that voxel is empty (cross-correlation, as dense conv3d and spconv)."""
        key = ("map", kernel_size)
        if key not in self._cache:
            self._cache[key] = self._build_map(kernel_size)
        return self._cache[key]

    def neighbour_pairs(self, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """The same neighbours as (in_idx, out_idx, counts), grouped by kernel offset: out[out_idx] += W[o] @
        in[in_idx] over the o-th block of `counts`."""
        key = ("pairs", kernel_size)
        if key not in self._cache:
            nbr = self.neighbour_map(kernel_size).T  # (k^3, N), offset-major
            hit = nbr < len(self)
            out_idx = torch.arange(len(self), device=nbr.device).expand_as(nbr)[hit]
            self._cache[key] = (nbr[hit], out_idx, hit.sum(1).tolist())
        return self._cache[key]

    def _build_map(self, k: int) -> torch.Tensor:
        r = k // 2
        coord = self.grid_coord.to(torch.int64) + r  # padded by r, so neighbour coords never leave [0, size)
        size = int(coord.max()) + 1 + r if len(self) else 1
        key = ((self.batch.to(torch.int64) * size + coord[:, 0]) * size + coord[:, 1]) * size + coord[:, 2]
        sorted_key, perm = torch.sort(key)
        ar = torch.arange(-r, r + 1, device=key.device)
        delta = ((ar[:, None, None] * size + ar[None, :, None]) * size + ar[None, None, :]).reshape(-1)  # (k^3,)
        query = key[:, None] + delta[None, :]
        n = len(self)
        pos = torch.searchsorted(sorted_key, query).clamp_(max=max(n - 1, 0))
        hit = sorted_key[pos] == query
        return torch.where(hit, perm[pos], n)

    def spconv_tensor(self, feat: torch.Tensor) -> Any:
        if self._spconv_indices is None:
            idx = torch.cat([self.batch[:, None], self.grid_coord], dim=1)
            self._spconv_indices = idx.to(torch.int32).contiguous()
        shape = (self.grid_coord.max(0).values + 1).tolist() if len(self) else [1, 1, 1]
        return _spconv.SparseConvTensor(
            feat, self._spconv_indices, shape, self.batch_size, indice_dict=self.spconv_indice_dict
        )


class SubMConv3d(nn.Module):
    """Submanifold conv: outputs on the input voxels only. forward(feat (N, Cin), grid) -> (N, Cout)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True, backend: str = "auto"):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("submanifold conv needs an odd kernel size")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.backend = resolve_backend(backend)
        k = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, k, k, k, in_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()
        self._spconv_op: Any = None
        if self.backend == "spconv":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                op = _spconv.SubMConv3d(in_channels, out_channels, k, bias=False, indice_key=f"subm{k}")
            self._cuda_algo = op.algo
            op.weight = None  # our own parameter is passed to the op; drop its duplicate
            object.__setattr__(self, "_spconv_op", op)  # not a submodule: no parameters, no state dict entries

    def reset_parameters(self) -> None:
        """Same as nn.Conv3d / spconv: kaiming-uniform(a=sqrt(5)) over fan_in = Cin * k^3."""
        fan_in = self.in_channels * self.kernel_size**3
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, bias={self.bias is not None}, backend={self.backend}"

    def forward(self, feat: torch.Tensor, grid: SparseGrid) -> torch.Tensor:
        if self.backend == "spconv":
            return self._forward_spconv(feat, grid)
        return self._forward_torch(feat, grid)

    def _forward_torch(self, feat: torch.Tensor, grid: SparseGrid) -> torch.Tensor:
        k3 = self.kernel_size**3
        if len(grid) * k3 * self.in_channels <= IM2COL_MAX_ELEMENTS:
            # Small problems: one gathered (N, k^3 * Cin) matrix and a single GEMM beat k^3 small matmuls.
            nbr = grid.neighbour_map(self.kernel_size)
            padded = torch.cat([feat, feat.new_zeros(1, self.in_channels)])
            cols = padded[nbr].reshape(len(grid), k3 * self.in_channels)
            out = cols @ self.weight.reshape(self.out_channels, -1).T
            return out if self.bias is None else out + self.bias
        in_idx, out_idx, counts = grid.neighbour_pairs(self.kernel_size)
        w = self.weight.reshape(self.out_channels, k3, self.in_channels).permute(1, 2, 0)  # (k^3, Cin, Cout)
        gathered = feat.index_select(0, in_idx)
        parts = [x @ w[o] for o, x in enumerate(torch.split(gathered, counts)) if counts[o]]
        out = feat.new_zeros(feat.shape[0], self.out_channels).index_add(0, out_idx, torch.cat(parts))
        if self.bias is not None:
            out = out + self.bias
        return out

    def _forward_spconv(self, feat: torch.Tensor, grid: SparseGrid) -> torch.Tensor:
        op = self._spconv_op
        op.algo = self._cuda_algo if feat.is_cuda else _spconv.ConvAlgo.Native  # CPU: only Native works
        op.training = self.training
        # bias added here: spconv's fused inference bias asserts on CPU
        out = op._conv_forward(self.training, grid.spconv_tensor(feat.contiguous()), self.weight, None)
        grid.spconv_indice_dict.update(out.indice_dict)  # spconv puts new index pairs on the output tensor only
        return out.features if self.bias is None else out.features + self.bias
