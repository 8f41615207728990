"""Point Transformer V3 (Wu et al., CVPR 2024) with an optional Mixture-of-Experts attention projection (Point-MoE).

U-Net of serialized-attention blocks: points are ordered along space-filling curves, cut into patches of K points,
and attend within patches. Stride-2 pooling merges the points of one parent voxel (code >> 3); unpooling brings
features back to the finer level through the stored cluster map. The backbone never receives a dataset id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .batch import FEATURE_LAYOUTS, IN_CHANNELS, PointBatch
from .moe import MoE, MoEConfig
from .serialization import CURVES, Serialization, serialize
from .sparse_conv import SparseGrid, SubMConv3d

NORMS = ("bn", "ln", "rms")


@dataclass
class PTv3Config:
    """Defaults are Pointcept's PT-v3m1 base (46.2M parameters)."""

    in_channels: int = IN_CHANNELS
    order: tuple[str, ...] = CURVES
    enc_depths: tuple[int, ...] = (2, 2, 2, 6, 2)
    enc_channels: tuple[int, ...] = (32, 64, 128, 256, 512)
    enc_num_head: tuple[int, ...] = (2, 4, 8, 16, 32)
    enc_patch_size: tuple[int, ...] = (1024, 1024, 1024, 1024, 1024)
    dec_depths: tuple[int, ...] = (2, 2, 2, 2)
    dec_channels: tuple[int, ...] = (64, 64, 128, 256)
    dec_num_head: tuple[int, ...] = (4, 4, 8, 16)
    dec_patch_size: tuple[int, ...] = (1024, 1024, 1024, 1024)
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path: float = 0.3
    shuffle_orders: bool = True  # training only, so evaluation is deterministic
    enable_rpe: bool = False
    block_norm: str = "ln"  # norm inside blocks (cpe, pre-attention, pre-MLP): "ln" | "bn" | "rms" (paper ablation)
    # norm of the stem, pooling and unpooling projections: "bn" (the release's default) | "ln" | "rms". The release's
    # use_ln / use_RMS switch sets this and block_norm together (presets.norm_switch, docs/recipes.md).
    outer_norm: str = "bn"
    moe: MoEConfig | None = None  # None: plain PTv3
    moe_at: str = "proj"  # "proj": attention output projection (Point-MoE); "ffn": replace the MLP (ablation)
    backend: str = "auto"  # sparse conv backend: "auto" | "spconv" | "torch"
    # Reference-compatibility knobs (docs/pointcept.md); the defaults are pmoe's own behaviour.
    in_features: str = "pmoe7"  # input layout the data pipeline builds: a key of batch.FEATURE_LAYOUTS
    unpool_cpe: str = "sum"  # what the first decoder block's cpe conv sees: "sum" (skip + up) | "skip" (Pointcept)
    pool_shuffle: str = "train"  # curve-order shuffle at pooling: "train" (training, if shuffle_orders) | "always"
    # Segmentation head (SegmentationModel reads these): "language" scores text embeddings; "linear" is a
    # fixed-class Linear(out_channels, head_classes), e.g. an imported Pointcept seg_head.
    head: str = "language"
    head_classes: int = 0
    head_logit_scale: float = 100.0  # language head temperature (CLIP's saturated exp(4.6052))

    def __post_init__(self) -> None:
        n = len(self.enc_depths)
        for name in ("enc_channels", "enc_num_head", "enc_patch_size"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} needs {n} entries like enc_depths")
        for name in ("dec_depths", "dec_channels", "dec_num_head", "dec_patch_size"):
            if len(getattr(self, name)) != n - 1:
                raise ValueError(f"{name} needs {n - 1} entries (one fewer than the encoder)")
        if self.block_norm not in NORMS:
            raise ValueError(f"block_norm must be one of {NORMS}")
        if self.outer_norm not in NORMS:
            raise ValueError(f"outer_norm must be one of {NORMS}")
        if self.moe_at not in ("proj", "ffn"):
            raise ValueError("moe_at must be 'proj' or 'ffn'")
        if self.in_features not in FEATURE_LAYOUTS:
            raise ValueError(f"in_features must be one of {tuple(FEATURE_LAYOUTS)}")
        if self.in_features != "pmoe7" and self.in_channels != FEATURE_LAYOUTS[self.in_features]:
            raise ValueError(f"in_features {self.in_features!r} has {FEATURE_LAYOUTS[self.in_features]} channels, "
                             f"in_channels is {self.in_channels}")
        if self.unpool_cpe not in ("sum", "skip"):
            raise ValueError("unpool_cpe must be 'sum' or 'skip'")
        if self.pool_shuffle not in ("train", "always"):
            raise ValueError("pool_shuffle must be 'train' or 'always'")
        if self.head not in ("language", "linear"):
            raise ValueError("head must be 'language' or 'linear'")
        if (self.head == "linear") != (self.head_classes > 0):
            raise ValueError("head_classes must be positive exactly when head is 'linear'")
        if not self.head_logit_scale > 0:
            raise ValueError("head_logit_scale must be positive")

    @property
    def out_channels(self) -> int:
        return self.dec_channels[0]


NormFactory = Callable[[str, int], nn.Module]


def make_norm(kind: str, channels: int) -> nn.Module:
    """The reference's norms: BatchNorm1d(eps 1e-3, momentum 0.01), LayerNorm, or RMSNorm over (N, C)."""
    if kind == "bn":
        return nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)
    if kind == "ln":
        return nn.LayerNorm(channels)
    if kind == "rms":
        return nn.RMSNorm(channels)
    raise ValueError(f"unknown norm {kind!r}")


# ----------------------------------------------------------------------------------------------------------------
# Level state


@dataclass
class PatchLayout:
    """How a level's serialized points are cut into attention patches (independent of the curve).

    src (P, Kp): serialized position feeding each patch slot; mask (P, Kp) valid slots or None when all are;
    out_index (N,): flat slot (patch * Kp + j) holding each serialized position's own output.
    """

    src: torch.Tensor
    mask: torch.Tensor | None
    out_index: torch.Tensor


@dataclass
class Level:
    """Points at one resolution while they flow through the U-Net."""

    feat: torch.Tensor
    coord: torch.Tensor
    grid_coord: torch.Tensor
    batch: torch.Tensor
    offset: torch.Tensor
    ser: Serialization
    grid: SparseGrid
    input_map: torch.Tensor  # (N_input,) this level's point holding each input point
    parent: "Level | None" = None
    cluster: torch.Tensor | None = None  # (N_parent,) parent point -> point of this level
    patches: dict[int, PatchLayout] = field(default_factory=dict)
    conv_feat: torch.Tensor | None = None  # set: what the next block's cpe conv sees instead of feat (unpool_cpe)

    def patch_layout(self, patch_size: int) -> PatchLayout:
        if patch_size not in self.patches:
            self.patches[patch_size] = build_patch_layout(self.offset, patch_size)
        return self.patches[patch_size]


def build_patch_layout(offset: torch.Tensor, k: int) -> PatchLayout:
    """Reference patching, vectorised: a sample with n > K is padded to a multiple of K by re-using the points of
    its previous window (padded slot j >= n reads position j - K); a sample with n <= K is one short patch."""
    device = offset.device
    counts = torch.diff(offset, prepend=offset.new_zeros(1))
    start = offset - counts
    n_pad = torch.where(counts > k, (counts + k - 1) // k * k, counts)
    pad_start = torch.cumsum(n_pad, 0) - n_pad
    total_pad = int(n_pad.sum())
    sample = torch.repeat_interleave(torch.arange(counts.numel(), device=device), n_pad)
    local = torch.arange(total_pad, device=device) - pad_start[sample]
    pad_src = start[sample] + torch.where(local < counts[sample], local, local - k)

    n_patches = (n_pad + k - 1) // k
    first_patch = torch.cumsum(n_patches, 0) - n_patches
    patch_sample = torch.repeat_interleave(torch.arange(counts.numel(), device=device), n_patches)
    patch_j = torch.arange(int(n_patches.sum()), device=device) - first_patch[patch_sample]
    patch_begin = pad_start[patch_sample] + patch_j * k
    patch_len = torch.clamp(n_pad[patch_sample] - patch_j * k, max=k)
    kp = int(patch_len.max()) if patch_len.numel() else 1  # all samples short: no padding up to K
    slot = torch.arange(kp, device=device)
    mask = slot[None, :] < patch_len[:, None]
    src = pad_src[torch.clamp(patch_begin[:, None] + slot[None, :], max=max(total_pad - 1, 0))]

    point_sample = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts)
    point_local = torch.arange(int(counts.sum()), device=device) - start[point_sample]
    out_index = (first_patch[point_sample] + point_local // k) * kp + point_local % k
    return PatchLayout(src, None if bool(mask.all()) else mask, out_index)


# ----------------------------------------------------------------------------------------------------------------
# Layers


class DropPath(nn.Module):
    """Stochastic depth per point (timm's drop_path on (N, C))."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        return x * x.new_empty(x.shape[0], 1).bernoulli_(keep) / keep

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}"


class RPE(nn.Module):
    """Relative position bias from clamped voxel offsets (one table per axis, summed), as in the reference."""

    def __init__(self, patch_size: int, num_heads: int):
        super().__init__()
        self.bound = int((4 * patch_size) ** (1 / 3) * 2)
        self.num = 2 * self.bound + 1
        self.table = nn.Parameter(torch.zeros(3 * self.num, num_heads))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, rel: torch.Tensor) -> torch.Tensor:
        """rel (P, K, K, 3) int -> bias (P, H, K, K)."""
        idx = rel.clamp(-self.bound, self.bound) + self.bound + torch.arange(3, device=rel.device) * self.num
        bias = self.table.index_select(0, idx.reshape(-1)).view(*idx.shape, -1).sum(3)
        return bias.permute(0, 3, 1, 2)


class SerializedAttention(nn.Module):
    """Multi-head attention inside patches of K consecutive points along one curve (torch SDPA)."""

    def __init__(self, channels: int, num_heads: int, patch_size: int, qkv_bias: bool, proj: nn.Module, enable_rpe: bool):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{channels} channels do not split into {num_heads} heads")
        self.num_heads, self.patch_size = num_heads, patch_size
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.proj = proj
        self.rpe = RPE(patch_size, num_heads) if enable_rpe else None

    def forward(self, feat: torch.Tensor, level: Level, order_index: int) -> torch.Tensor:
        layout = level.patch_layout(self.patch_size)
        order = level.ser.order[order_index]
        src = order[layout.src]  # (P, Kp) level point in every patch slot
        p, kp = src.shape
        c, h = feat.shape[1], self.num_heads
        qkv = self.qkv(feat)[src].view(p, kp, 3, h, c // h).permute(2, 0, 3, 1, 4)  # (3, P, H, Kp, d)
        mask = None if layout.mask is None else layout.mask[:, None, None, :]
        if self.rpe is not None:
            g = level.grid_coord[src]
            bias = self.rpe(g[:, :, None, :] - g[:, None, :, :]).to(qkv.dtype)
            mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)  # scale = d^-0.5
        out = out.transpose(1, 2).reshape(p * kp, c)
        feat = out[layout.out_index[level.ser.inverse[order_index]]]  # back to the level's own point order
        return self.proj(feat)


class MLP(nn.Sequential):
    def __init__(self, channels: int, hidden: int):
        super().__init__(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))


class Block(nn.Module):
    """Pre-norm PTv3 block: x += xCPE(x); x += DropPath(Attn(norm(x))); x += DropPath(MLP(norm(x)))."""

    def __init__(
        self,
        name: str,
        channels: int,
        num_heads: int,
        patch_size: int,
        cfg: PTv3Config,
        drop_path: float,
        norm: NormFactory,
    ):
        super().__init__()
        self.name = name
        # xCPE: SubMConv3d(k=3) -> Linear -> norm, a conditional positional encoding from local geometry
        self.cpe_conv = SubMConv3d(channels, channels, 3, bias=True, backend=cfg.backend)
        self.cpe_linear = nn.Linear(channels, channels)
        self.cpe_norm = norm(cfg.block_norm, channels)
        self.norm1 = norm(cfg.block_norm, channels)
        proj: nn.Module = nn.Linear(channels, channels)
        if cfg.moe is not None and cfg.moe_at == "proj":
            proj = MoE(channels, cfg.moe)
            proj.layer_name = f"{name}.attn.proj"
        self.attn = SerializedAttention(channels, num_heads, patch_size, cfg.qkv_bias, proj, cfg.enable_rpe)
        self.norm2 = norm(cfg.block_norm, channels)
        hidden = int(channels * cfg.mlp_ratio)
        self.mlp: nn.Module = MLP(channels, hidden)
        if cfg.moe is not None and cfg.moe_at == "ffn":
            self.mlp = MoE(channels, cfg.moe)
            self.mlp.layer_name = f"{name}.mlp"
        self.drop_path = DropPath(drop_path)

    def forward(self, level: Level, order_index: int) -> torch.Tensor:
        feat = level.feat
        conv_in = feat if level.conv_feat is None else level.conv_feat
        feat = feat + self.cpe_norm(self.cpe_linear(self.cpe_conv(conv_in, level.grid)))
        feat = feat + self.drop_path(self.attn(self.norm1(feat), level, order_index))
        feat = feat + self.drop_path(self.mlp(self.norm2(feat)))
        return feat


class LinearNormAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: NormFactory, kind: str = "bn"):
        super().__init__(nn.Linear(cin, cout), norm(kind, cout), nn.GELU())


class Pooling(nn.Module):
    """Stride-2 serialized pooling: points sharing a parent voxel (code >> 3) merge; feature max, coord mean."""

    def __init__(self, cin: int, cout: int, norm: NormFactory, shuffle_orders: bool, always_shuffle: bool = False,
                 kind: str = "bn"):
        super().__init__()
        self.proj = nn.Linear(cin, cout)
        self.norm = norm(kind, cout)
        self.act = nn.GELU()
        self.shuffle_orders = shuffle_orders
        self.always_shuffle = always_shuffle  # Pointcept's SerializedPooling default: in eval mode too, unseeded

    def forward(self, level: Level) -> Level:
        code = level.ser.code >> 3
        _, cluster, counts = torch.unique(code[0], sorted=True, return_inverse=True, return_counts=True)
        indices = torch.argsort(cluster, stable=True)  # points grouped by cluster
        head = indices[torch.cumsum(counts, 0) - counts]  # one representative per cluster
        ser = Serialization.from_code(code[:, head], level.ser.depth - 1)
        if self.always_shuffle or (self.training and self.shuffle_orders):
            ser = ser.shuffled()
        feat = torch.segment_reduce(self.proj(level.feat)[indices], "max", lengths=counts)
        coord = torch.segment_reduce(level.coord[indices], "mean", lengths=counts)
        batch = level.batch[head]
        offset = torch.cumsum(torch.bincount(batch, minlength=level.offset.numel()), 0)
        grid_coord = level.grid_coord[head] >> 1
        return Level(
            feat=self.act(self.norm(feat)),
            coord=coord,
            grid_coord=grid_coord,
            batch=batch,
            offset=offset,
            ser=ser,
            grid=SparseGrid(grid_coord, batch, level.grid.batch_size),
            input_map=cluster[level.input_map],
            parent=level,
            cluster=cluster,
        )


class Unpooling(nn.Module):
    """Back to the parent level: proj_skip(parent feat) + proj(coarse feat) gathered through the cluster map."""

    def __init__(self, cin: int, cskip: int, cout: int, norm: NormFactory, cpe_skip_only: bool = False,
                 kind: str = "bn"):
        super().__init__()
        self.proj = LinearNormAct(cin, cout, norm, kind)
        self.proj_skip = LinearNormAct(cskip, cout, norm, kind)
        # Pointcept does not refresh its sparse tensor after the sum, so the next cpe conv sees only the skip branch
        self.cpe_skip_only = cpe_skip_only

    def forward(self, level: Level) -> Level:
        parent = level.parent
        assert parent is not None and level.cluster is not None, "unpooling a level that was not pooled"
        skip = self.proj_skip(parent.feat)
        feat = skip + self.proj(level.feat)[level.cluster]
        return dataclasses.replace(parent, feat=feat, conv_feat=skip if self.cpe_skip_only else None)


class Stage(nn.Module):
    """Optional resampling (pool or unpool) followed by blocks; block i uses curve i % K."""

    def __init__(self, resample: nn.Module | None, blocks: list[Block]):
        super().__init__()
        self.resample = resample
        self.blocks = nn.ModuleList(blocks)

    def forward(self, level: Level) -> Level:
        if self.resample is not None:
            level = self.resample(level)
        for i, block in enumerate(self.blocks):
            level = dataclasses.replace(level, feat=block(level, i % level.ser.code.shape[0]), conv_feat=None)
        return level


class PTv3(nn.Module):
    """forward(PointBatch) -> per-point features (N, dec_channels[0]). MoE layers appear where cfg.moe says."""

    def __init__(self, cfg: PTv3Config, norm: NormFactory = make_norm):
        super().__init__()
        self.cfg = cfg
        ch = cfg.enc_channels
        self.stem_conv = SubMConv3d(cfg.in_channels, ch[0], 5, bias=False, backend=cfg.backend)
        self.stem_norm = norm(cfg.outer_norm, ch[0])
        self.stem_act = nn.GELU()

        enc_dp = _linspace(cfg.drop_path, sum(cfg.enc_depths))
        self.enc = nn.ModuleList()
        for s, depth in enumerate(cfg.enc_depths):
            dps = enc_dp[sum(cfg.enc_depths[:s]) : sum(cfg.enc_depths[: s + 1])]
            pool = (Pooling(ch[s - 1], ch[s], norm, cfg.shuffle_orders, cfg.pool_shuffle == "always", cfg.outer_norm)
                    if s > 0 else None)
            blocks = [
                Block(f"enc{s}.block{i}", ch[s], cfg.enc_num_head[s], cfg.enc_patch_size[s], cfg, dps[i], norm)
                for i in range(depth)
            ]
            self.enc.append(Stage(pool, blocks))

        dec_ch = list(cfg.dec_channels) + [ch[-1]]
        dec_dp = _linspace(cfg.drop_path, sum(cfg.dec_depths))
        self.dec = nn.ModuleList()  # deepest first, named dec{s} as in the reference
        for s in reversed(range(len(cfg.dec_depths))):
            dps = dec_dp[sum(cfg.dec_depths[:s]) : sum(cfg.dec_depths[: s + 1])][::-1]
            unpool = Unpooling(dec_ch[s + 1], ch[s], dec_ch[s], norm, cfg.unpool_cpe == "skip", cfg.outer_norm)
            blocks = [
                Block(f"dec{s}.block{i}", dec_ch[s], cfg.dec_num_head[s], cfg.dec_patch_size[s], cfg, dps[i], norm)
                for i in range(cfg.dec_depths[s])
            ]
            self.dec.append(Stage(unpool, blocks))

    @property
    def out_channels(self) -> int:
        return self.cfg.out_channels

    def embed(self, batch: PointBatch) -> Level:
        """Serialize the input and build the first level (before the stem)."""
        b = batch.batch_index()
        ser = serialize(batch.grid_coord, b, self.cfg.order, shuffle=self.training and self.cfg.shuffle_orders)
        return Level(
            feat=batch.feat,
            coord=batch.coord,
            grid_coord=batch.grid_coord,
            batch=b,
            offset=batch.offset,
            ser=ser,
            grid=SparseGrid(batch.grid_coord, b, batch.num_samples),
            input_map=torch.arange(batch.coord.shape[0], device=batch.coord.device),
        )

    def forward(self, batch: PointBatch) -> torch.Tensor:
        level = self.embed(batch)
        feat = self.stem_act(self.stem_norm(self.stem_conv(level.feat, level.grid)))
        level = dataclasses.replace(level, feat=feat)
        for stage in self.enc:
            level = stage(level)
        for stage in self.dec:
            level = stage(level)
        return level.feat


def _linspace(end: float, n: int) -> list[float]:
    """Drop-path rates 0..end over n blocks (plain Python: works while building on the meta device)."""
    return [end * i / (n - 1) if n > 1 else 0.0 for i in range(n)]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, active): active counts, per token, only the top-k of each MoE layer's routed experts."""
    total = sum(p.numel() for p in model.parameters())
    inactive = sum(
        (m.cfg.num_experts - m.cfg.top_k) * m.expert_parameters() for m in model.modules() if isinstance(m, MoE)
    )
    return total, total - inactive


__all__ = ["PTv3", "PTv3Config", "Level", "Block", "count_parameters", "make_norm", "build_patch_layout"]
