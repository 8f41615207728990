"""Pose-DiT: a diffusion transformer over the (steps x {pick, place}) pose-token grid, conditioned on the LLM.

Each block (ST-DiT order): spatial attention between the pick and place token of a step, temporal attention across
steps (padded steps masked out as keys), cross-attention to the LLM's final hidden states, MLP. The timestep
(sinusoidal -> MLP) plus the masked mean of the condition drive adaLN-Zero modulation: LayerNorm without affine,
SiLU -> Linear(D, 9D) zero-initialised into shift/scale/gate for the spatial, temporal and MLP sublayers; the
cross-attention output projection and the final layer are zero-initialised too, so a fresh DiT predicts v = 0.

Anchored positions (`anchor=True`, the planner's setting): a pointer head lets every pose token attend over the
scene tokens and take the attention-weighted mean of their 3-D centres as an anchor; the network then predicts the
token's end-point position as anchor + a residual, and its velocity as (end point - x_t) / (1 - t). Copying a
position from the cloud is easy for attention; regressing it from features through an LLM is not (without the
anchor, the default model's picks landed ~19 cm from any block). Rotations keep the plain velocity output.

Stop mechanism: a length head (MLP on the pooled condition) classifies the number of steps 1..max_steps (cross
entropy). The length is a property of the scene and instruction, not of the noisy sample, so it is predicted first;
sampling then runs on exactly that many steps (temporal attention masked to them) and the plan stops there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from pmoe_core.planner.pose_tokens import TOKEN_DIM, yaw_to_rot6d
from pmoe_core.planner.spatial_transformer import fourier_xyz

ANCHOR_DIMS = 3  # the position part of a pose token, the part the anchor predicts as an end point
AFFINITY_SCALE = 10.0  # colours are in [0, 1]; distinct Ravens colours are >= ~0.05 apart in squared distance


@dataclass
class PoseDiTConfig:
    dim: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    max_steps: int = 12  # LoHoRavens: blocks + 2
    anchor: bool = False  # positions = pointer over scene-token centres + residual (see the module docstring)
    anchor_bands: int = 8  # Fourier bands of the centres in the pointer's keys
    pointer_loss: float = 0.0  # weight of the pointer's supervision (see pose_head.pointer_loss); 0 = none
    text_pool: bool = False  # also pool the instruction positions alone into the adaLN condition
    pointer_passes: int = 1  # 2: the pick and place tokens exchange what they pointed at, then point again
    hard_pointer: bool = False  # in eval mode, take the single most attended token, not the attention-weighted mean
    cond_layers: int = 0  # bidirectional transformer layers over the condition before anything reads it (refiner)
    yaw_anchor: bool = False  # rotations too = the pointed object's measured yaw + a residual (needs anchor_yaws)
    straight_through: bool = False  # train with the hard pointer's choice (gradients through the soft attention)
    color_affinity: bool = False  # second pass: a gated bonus for objects coloured like the partner's pointed one
    teacher_anchor: bool = False  # in training, anchor the end point at the target's object, not the pointed one
    color_query: bool = False  # every pass: a gated bonus for objects of the colour each pose token asks for
    color_loss: float = 0.0  # weight of the asked colour's squared error against the target object's colour


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) times in [0, 1] -> (B, dim) sinusoidal features (t scaled by 1000 as in DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs
    return torch.cat([args.cos(), args.sin()], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Attention(nn.Module):
    """Multi-head attention (self when `context` is None) with an optional key mask (True = attend)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, key_mask=None) -> torch.Tensor:
        b, n, d = x.shape
        context = x if context is None else context
        h = self.heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(context).reshape(b, context.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class STDiTBlock(nn.Module):
    def __init__(self, cfg: PoseDiTConfig):
        super().__init__()
        d = cfg.dim
        self.norm_s = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.spatial = Attention(d, cfg.heads)
        self.norm_t = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.temporal = Attention(d, cfg.heads)
        self.norm_c = nn.LayerNorm(d, eps=1e-6)
        self.cross = Attention(d, cfg.heads)
        self.norm_m = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 9 * d))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)
        nn.init.zeros_(self.cross.out.weight)
        nn.init.zeros_(self.cross.out.bias)

    def forward(self, x, c, cond, cond_mask, step_mask):
        """x (B, S, 2, D); c (B, D); cond (B, L, D); cond_mask (B, L); step_mask (B, S)."""
        b, s, _, d = x.shape
        mods = self.ada(c)[:, None, None, :].chunk(9, dim=-1)
        sh_s, sc_s, g_s, sh_t, sc_t, g_t, sh_m, sc_m, g_m = mods

        y = modulate(self.norm_s(x), sh_s, sc_s).reshape(b * s, 2, d)
        x = x + g_s * self.spatial(y).reshape(b, s, 2, d)

        y = modulate(self.norm_t(x), sh_t, sc_t).transpose(1, 2).reshape(b * 2, s, d)
        y = self.temporal(y, key_mask=step_mask.repeat_interleave(2, dim=0))
        x = x + g_t * y.reshape(b, 2, s, d).transpose(1, 2)

        y = self.cross(self.norm_c(x).reshape(b, s * 2, d), cond, key_mask=cond_mask)
        x = x + y.reshape(b, s, 2, d)

        return x + g_m * self.mlp(modulate(self.norm_m(x), sh_m, sc_m))


class PoseDiT(nn.Module):
    """Velocity v(x_t, t | cond) on (B, S, 2, 9) pose tokens, plus the step-count (stop) head."""

    def __init__(self, cfg: PoseDiTConfig, cond_dim: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.inp = nn.Linear(TOKEN_DIM, d)
        self.role = nn.Parameter(torch.randn(2, d) * 0.02)  # pick / place
        self.step_pos = nn.Parameter(torch.randn(cfg.max_steps, d) * 0.02)  # temporal position embedding
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.cond_proj = nn.Linear(cond_dim, d)
        self.cond_pool = nn.Linear(d, d)
        if cfg.text_pool:
            self.text_pool = nn.Linear(d, d)
        self.blocks = nn.ModuleList(STDiTBlock(cfg) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.out = nn.Linear(d, TOKEN_DIM)
        for layer in (self.ada_out[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.length_head = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, cfg.max_steps))
        if cfg.anchor:
            self.pointer_q = nn.Linear(d, d)
            self.pointer_k = nn.Linear(d, d)
            self.pointer_pos = nn.Linear(3 + 6 * cfg.anchor_bands, d)
            self.pointer_feat = nn.Linear(d, d)
            self.cond_where = nn.Linear(3 + 6 * cfg.anchor_bands, d)
        if cfg.anchor and cfg.pointer_passes == 2:
            self.relay_norm = nn.LayerNorm(d, eps=1e-6)
            self.relay = Attention(d, cfg.heads)
            self.pointer2_q = nn.Linear(d, d)
            self.pointer2_k = nn.Linear(d, d)
            if cfg.color_affinity:
                self.affinity_gate = _zero_linear(d, 1)
        elif cfg.pointer_passes != 1:
            raise ValueError(f"pointer_passes must be 1, or 2 with anchor=True; got {cfg.pointer_passes}")
        if cfg.anchor and cfg.color_query:
            self.color_head = nn.Linear(d, 3)
            self.color_gate = _zero_linear(d, 1)
            nn.init.ones_(self.color_gate.bias)  # open from the start: with both factors at zero it never opened
        self.refiner = nn.ModuleList(
            nn.TransformerEncoderLayer(d, cfg.heads, int(d * cfg.mlp_ratio), dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(cfg.cond_layers)
        )

    def encode_condition(self, cond: torch.Tensor, cond_mask: torch.Tensor, anchor_mask: torch.Tensor | None = None,
                         anchors: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """LLM states (B, L, H) -> (projected sequence (B, L, D), pooled vector (B, D)). With `cfg.text_pool`, the
        instruction positions (real, not scene tokens) are pooled apart too: in a mean over ~70 positions the few
        that name a colour would be drowned by the scene tokens.

        With `cfg.cond_layers`, the sequence first goes through bidirectional transformer layers (a token refiner,
        as in HunyuanVideo's text path). The LLM is causal and reads the scene before the instruction, so no scene
        token has seen the instruction or any object after it; picking "the red block", or the bowl that matches
        a block, needs scene tokens that have."""
        seq = self.cond_proj(cond)
        if self.refiner:
            if self.cfg.anchor:
                if anchors is None or anchor_mask is None:
                    raise ValueError("this Pose-DiT refines an anchored condition: pass anchors and anchor_mask")
                where = self.cond_where(fourier_xyz(anchors, self.cfg.anchor_bands, 4.0))
                seq = seq + where * anchor_mask[..., None].to(where.dtype)
            for layer in self.refiner:
                seq = layer(seq, src_key_padding_mask=~cond_mask)
        pooled = self.cond_pool(_masked_mean(seq, cond_mask))
        if self.cfg.text_pool:
            if anchor_mask is None:
                raise ValueError("this Pose-DiT pools the instruction apart: pass anchor_mask")
            pooled = pooled + self.text_pool(_masked_mean(seq, cond_mask & ~anchor_mask))
        return seq, pooled

    def length_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, max_steps) logits; class i means i + 1 steps."""
        return self.length_head(pooled)

    def velocity(self, x, t, cond_seq, cond_mask, pooled, step_mask, anchors=None, anchor_mask=None,
                 pointer_weights: list | None = None, pointer_mask=None, anchor_yaws=None,
                 anchor_colors=None, target=None, asked_colors: list | None = None) -> torch.Tensor:
        """x (B, S, 2, 9), t (B,) -> (B, S, 2, 9). With `cfg.anchor`: anchors (B, L, 3) token-space centres of
        the condition positions and anchor_mask (B, L) (True where a position is a scene token); the pointer's
        attention (B, S, 2, L) is appended to `pointer_weights` when a list is given. `pointer_mask` (B, L) narrows
        what the pointer may attend to (default: every scene token). With `cfg.yaw_anchor`, `anchor_yaws` (B, L)
        are the positions' measured yaws, and the rotation is predicted as an end point around the pointed one.
        `target` (B, S, 2): in training with `cfg.teacher_anchor`, the index of the object each target pose is at;
        the end point is then anchored there rather than at the pointer's choice (which its own loss trains), so the
        residual learns the offset from the right object, not a correction of a wrong choice. The colours the pose
        tokens ask for (`cfg.color_query`; (B, S * 2, 3) per pass) are appended to `asked_colors` when given."""
        s = x.shape[1]
        if s > self.cfg.max_steps:
            raise ValueError(f"{s} steps exceed max_steps={self.cfg.max_steps}")
        if self.cfg.anchor and (anchors is None or anchor_mask is None):
            raise ValueError("this Pose-DiT predicts anchored positions: pass anchors and anchor_mask")
        if self.cfg.yaw_anchor and anchor_yaws is None:
            raise ValueError("this Pose-DiT predicts anchored rotations: pass anchor_yaws")
        if (self.cfg.color_affinity or self.cfg.color_query) and anchor_colors is None:
            raise ValueError("this Pose-DiT compares object colours: pass anchor_colors")
        h = self.inp(x) + self.role[None, None] + self.step_pos[None, :s, None]
        c = self.time(timestep_embedding(t, self.cfg.dim).to(h.dtype)) + pooled
        if self.cfg.anchor:  # where each scene token sits
            anchor_features = fourier_xyz(anchors, self.cfg.anchor_bands, 4.0)
            where = self.cond_where(anchor_features)
            cond_seq = cond_seq + where * anchor_mask[..., None].to(where.dtype)
        for block in self.blocks:
            h = block(h, c, cond_seq, cond_mask, step_mask)
        if self.cfg.anchor:
            used = None
            for first in (True, False)[: self.cfg.pointer_passes]:
                bonus = None  # extra pointer logits of this pass
                if not first:  # the place token learns what the pick token pointed at (a block's colour), and so on
                    b = h.shape[0]
                    h = h + self.relay(self.relay_norm(h).reshape(b * s, 2, -1)).reshape(h.shape)
                    if self.cfg.color_affinity:
                        bonus = self.color_bonus(h, used, anchor_colors)
                if self.cfg.color_query:
                    asked = self.asked_color_bonus(h, anchor_colors, asked_colors)
                    bonus = asked if bonus is None else bonus + asked
                projections = (self.pointer_q, self.pointer_k) if first else (self.pointer2_q, self.pointer2_k)
                centre, pointed, weights, used = self.pointer(h, cond_seq, anchors, anchor_features,
                                                              anchor_mask if pointer_mask is None else pointer_mask,
                                                              *projections, bonus)
                if pointer_weights is not None:
                    pointer_weights.append(weights)
                h = h + self.pointer_feat(pointed)  # what the pointed tokens look like, e.g. a block's heading
        shift, scale = self.ada_out(c)[:, None, None, :].chunk(2, dim=-1)
        v = self.out(modulate(self.norm_out(h), shift, scale))
        if not self.cfg.anchor:
            return v
        if self.training and self.cfg.teacher_anchor:
            if target is None:
                raise ValueError("this Pose-DiT trains on teacher anchors: pass target")
            used = F.one_hot(target.flatten(1), anchors.shape[1]).to(used.dtype)
            centre = (used @ anchors.to(used.dtype)).reshape(centre.shape)
        ends = ANCHOR_DIMS
        if self.cfg.yaw_anchor:
            centre = torch.cat([centre, _pointed_rotation(used, anchor_yaws)], dim=-1)
            ends = v.shape[-1]
        end = centre + v[..., :ends]
        remaining = (1 - t).clamp_min(1e-3).reshape(-1, 1, 1, 1).to(v.dtype)
        return torch.cat([(end - x[..., :ends]) / remaining, v[..., ends:]], dim=-1)

    def color_bonus(self, h, used, colors):
        """(B, S * 2, L) logit bonus: a gate read from each pose token (zero at init, so learned per task and role)
        times the negative squared distance between each candidate's colour and the colour of what the other pose
        token of the step pointed at in the first pass. Which bowl matches a block is a comparison of two objects;
        as dot products of separately learned keys and queries it stayed at chance (BENCHMARKS.md)."""
        b, s = h.shape[:2]
        partner = used.reshape(b, s, 2, -1).flip(2).reshape(b, s * 2, -1) @ colors.to(used.dtype)  # (B, S*2, 3)
        return _gated_color_bonus(self.affinity_gate(h.reshape(b, s * 2, -1)), partner, colors)

    def asked_color_bonus(self, h, colors, record: list | None = None):
        """(B, S * 2, L) logit bonus: a gate times the negative squared distance between each candidate's colour and
        a colour the pose token predicts from its state (which has read the instruction): "the red block" becomes
        a colour to look for, compared with what each object measures rather than learned into keys."""
        b, s = h.shape[:2]
        flat = h.reshape(b, s * 2, -1)
        asked = torch.sigmoid(self.color_head(flat))  # (B, S*2, 3), colours live in [0, 1]
        if record is not None:
            record.append(asked)
        return _gated_color_bonus(self.color_gate(flat), asked, colors)

    def pointer(self, h, cond_seq, anchors, anchor_features, anchor_mask, proj_q, proj_k, bonus=None):
        """Attention of each pose token over the scene tokens (keyed by their features and the Fourier features of
        their centres) -> the weighted mean of their centres (B, S, 2, 3) and of their condition features
        (B, S, 2, D), the attention itself (B, S, 2, L), and the weights those means used (B, S * 2, L): the
        attention, or one-hot on its most attended token with the hard pointer (at inference, and in training
        with `straight_through`, where the gradient flows as if it were the attention)."""
        b, s, _, d = h.shape
        q = proj_q(h.reshape(b, s * 2, d))
        k = proj_k(cond_seq) + self.pointer_pos(anchor_features)
        logits = (q @ k.transpose(1, 2)) / d**0.5
        if bonus is not None:
            logits = logits + bonus
        weights = logits.masked_fill(~anchor_mask[:, None, :], float("-inf")).softmax(-1)
        used = weights
        hard = self.cfg.straight_through if self.training else self.cfg.hard_pointer
        if hard:  # a mean of two objects' centres is on neither of them
            one_hot = F.one_hot(weights.argmax(-1), weights.shape[-1]).to(weights.dtype)
            used = one_hot + weights - weights.detach() if self.training else one_hot
        centre = used @ anchors.to(used.dtype)
        return (centre.reshape(b, s, 2, 3), (used @ cond_seq).reshape(b, s, 2, d), weights.reshape(b, s, 2, -1),
                used)


def _gated_color_bonus(gate: torch.Tensor, wanted: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
    """(B, S * 2, 1) gates, (B, S * 2, 3) wanted colours, (B, L, 3) candidate colours -> (B, S * 2, L) logits:
    the gate times the negative squared colour distance, scaled so a gate of ~1 separates Ravens colours."""
    return -AFFINITY_SCALE * gate * (wanted[:, :, None, :] - colors[:, None, :, :]).pow(2).sum(-1)


def _zero_linear(d_in: int, d_out: int) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _pointed_rotation(weights: torch.Tensor, yaws: torch.Tensor) -> torch.Tensor:
    """(B, S * 2, L) pointer weights, (B, L) yaws modulo a quarter turn -> (B, S, 2, 6) the 6-D rotation of the
    weighted circular mean of those yaws (taken on 4 x yaw, where the quarter-turn symmetry is a full turn)."""
    b = yaws.shape[0]
    four = 4 * yaws.to(weights.dtype)
    mean = torch.atan2(weights @ four.sin()[..., None], weights @ four.cos()[..., None]) / 4  # (B, S * 2, 1)
    return yaw_to_rot6d(mean[..., 0]).reshape(b, -1, 2, 6)


def _masked_mean(seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    w = mask.to(seq.dtype)[..., None]
    return (seq * w).sum(1) / w.sum(1).clamp_min(1.0)


def step_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B,) lengths -> (B, steps) bool, True on real steps."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]
