"""Pose-DiT: a diffusion transformer over the (steps x {pick, place}) pose-token grid, conditioned on the trunk.

Each block (ST-DiT order): spatial attention between the pick and place token of a step, temporal attention across
steps (padded steps masked out as keys), cross-attention to the condition's states, MLP. The timestep (sinusoidal ->
MLP) plus the pooled condition (all positions, and the instruction's apart, so a colour word is not drowned by the
scene) drive adaLN-Zero modulation; the cross-attention output and the final layer start at zero.

Poses are anchored at candidates. A pointer lets every pose token attend over the condition's candidates (object
tokens and a coarse grid of table anchors) keyed by their states and centres; the token's end point is the chosen
candidate's centre and measured yaw plus a residual whose position part is in that candidate's frame (turned by
its yaw: a pyramid's row offsets are constants in the zone's frame), its velocity (end point - x_t) / (1 - t).
Copying a position
from the cloud is easy for attention; regressing it through a trunk is not. Two pointer passes: after the first,
the pick and place tokens of a step exchange what they pointed at (one attention between the two) and point again,
the second time with a learned bias from the relation (`relations.pair_features`) between each candidate and what
the partner pointed at: which bowl goes with a block is a comparison of two objects. In training the pointer's
attention is supervised towards the target's candidate (`pose_head.pointer_loss`), the end point is anchored at
that candidate (teacher anchor: the residual learns the offset from the right object, not to undo a wrong choice)
and the choice is hard with soft gradients (straight-through); at inference the most attended candidate is taken,
since a mean of two objects' centres is on neither.

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

from pmoe_core.planner.pose_tokens import TOKEN_DIM, rotate_token_offsets, yaw_to_rot6d
from pmoe_core.planner.relations import RELATION_DIM, pair_features
from pmoe_core.planner.spatial_transformer import fourier_xyz


@dataclass
class PoseDiTConfig:
    dim: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    max_steps: int = 12  # LoHoRavens: blocks + 2
    anchor_bands: int = 8  # Fourier bands of the candidates' centres in the pointer's keys
    pointer_loss: float = 1.0  # weight of the pointer's supervision (pose_head.pointer_loss)
    position_unit: float = 0.02  # m: the end-point loss scores positions in this unit (pose_tokens.token_error_weights)


@dataclass
class Condition:
    """What the Pose-DiT is conditioned on: the one object between the trunk (or the joint LLM) and the pose head.

    Positions are the instruction's, the scene's tokens, and the table anchors; `attributes` are what perception
    measured at each (`relations.attributes`; zeros at the instruction's)."""

    seq: torch.Tensor  # (B, L, C) states
    mask: torch.Tensor  # (B, L) bool: real positions
    text_mask: torch.Tensor  # (B, L) bool: the instruction's positions
    anchors: torch.Tensor  # (B, L, 3) token-space centres (0 at the instruction)
    candidates: torch.Tensor  # (B, L) bool: what the pointer may point at
    yaws: torch.Tensor  # (B, L) measured yaw modulo a quarter turn (0 where none)
    attributes: torch.Tensor  # (B, L, ATTRIBUTE_DIM)


@dataclass
class Prepared:
    """The condition as the DiT reads it, computed once per plan (not per Euler step)."""

    seq: torch.Tensor  # (B, L, D) projected states + where each position is
    pooled: torch.Tensor  # (B, D)
    where: torch.Tensor  # (B, L, 3 + 6 * bands) Fourier features of the anchors


@dataclass
class PointerRecord:
    """Filled by `PoseDiT.velocity` in training: every pass's attention (B, S, 2, L)."""

    weights: list



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
    """Velocity v(x_t, t | condition) on (B, S, 2, 9) pose tokens, plus the step-count (stop) head."""

    def __init__(self, cfg: PoseDiTConfig, cond_dim: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        where_dim = 3 + 6 * cfg.anchor_bands
        self.inp = nn.Linear(TOKEN_DIM, d)
        self.role = nn.Parameter(torch.randn(2, d) * 0.02)  # pick / place
        self.step_pos = nn.Parameter(torch.randn(cfg.max_steps, d) * 0.02)  # temporal position embedding
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.cond_proj = nn.Linear(cond_dim, d)
        self.cond_where = nn.Linear(where_dim, d)
        self.cond_pool = nn.Linear(d, d)
        self.text_pool = nn.Linear(d, d)
        self.blocks = nn.ModuleList(STDiTBlock(cfg) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.out = nn.Linear(d, TOKEN_DIM)
        for layer in (self.ada_out[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.length_head = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, cfg.max_steps))
        self.pointer_q = nn.ModuleList(nn.Linear(d, d) for _ in range(2))  # one per pass
        self.pointer_k = nn.ModuleList(nn.Linear(d, d) for _ in range(2))
        self.pointer_pos = nn.Linear(where_dim, d)
        self.pointer_feat = nn.Linear(d, d)
        self.relay_norm = nn.LayerNorm(d, eps=1e-6)
        self.relay = Attention(d, cfg.heads)
        self.relation = nn.Sequential(nn.Linear(RELATION_DIM + d, 64), nn.GELU(), nn.Linear(64, 1))
        nn.init.zeros_(self.relation[2].weight)  # no relation bias until learned
        nn.init.zeros_(self.relation[2].bias)

    def prepare(self, cond: Condition) -> Prepared:
        """Project the condition, add where each position is, pool it (all of it, and the instruction apart)."""
        where = fourier_xyz(cond.anchors, self.cfg.anchor_bands, 4.0)
        placed = (~cond.text_mask & cond.mask)[..., None].to(where.dtype)
        seq = self.cond_proj(cond.seq) + self.cond_where(where) * placed
        pooled = self.cond_pool(_masked_mean(seq, cond.mask)) + self.text_pool(_masked_mean(seq, cond.text_mask))
        return Prepared(seq, pooled, where)

    def length_logits(self, prepared: Prepared) -> torch.Tensor:
        """(B, max_steps) logits; class i means i + 1 steps."""
        return self.length_head(prepared.pooled)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: Condition, prepared: Prepared, steps: torch.Tensor,
                 target: torch.Tensor | None = None, record: PointerRecord | None = None) -> torch.Tensor:
        """x (B, S, 2, 9), t (B,) -> (B, S, 2, 9); `steps` (B, S) marks the real steps. In training, `target`
        (B, S, 2) is the candidate each target pose is at (teacher anchor); the pointer's attention of each pass
        is appended to `record` when given."""
        s = x.shape[1]
        if s > self.cfg.max_steps:
            raise ValueError(f"{s} steps exceed max_steps={self.cfg.max_steps}")
        if self.training and target is None:
            raise ValueError("the Pose-DiT trains on teacher anchors: pass target")
        h = self.inp(x) + self.role[None, None] + self.step_pos[None, :s, None]
        c = self.time(timestep_embedding(t, self.cfg.dim).to(h.dtype)) + prepared.pooled
        for block in self.blocks:
            h = block(h, c, prepared.seq, cond.mask, steps)
        used = None
        centre = None
        for second in (False, True):
            bonus = None
            if second:  # the place token learns what the pick token pointed at (a block's colour), and so on
                b = h.shape[0]
                h = h + self.relay(self.relay_norm(h).reshape(b * s, 2, -1)).reshape(h.shape)
                bonus = self.relation_bias(h, used, cond)
            centre, pointed, weights, used = self.pointer(h, prepared, cond, int(second), bonus)
            if record is not None:
                record.weights.append(weights)
            h = h + self.pointer_feat(pointed)  # what the pointed candidate looks like, e.g. a block's heading
        shift, scale = self.ada_out(c)[:, None, None, :].chunk(2, dim=-1)
        v = self.out(modulate(self.norm_out(h), shift, scale))
        if self.training:
            used = F.one_hot(target.flatten(1), cond.anchors.shape[1]).to(used.dtype)
            centre = (used @ cond.anchors.to(used.dtype)).reshape(centre.shape)
        yaw = _pointed_yaw(used, cond.yaws).reshape(centre.shape[:-1])
        v = torch.cat([rotate_token_offsets(v[..., :3], yaw), v[..., 3:]], dim=-1)  # offsets in the object's frame
        end = torch.cat([centre, yaw_to_rot6d(yaw)], dim=-1) + v
        remaining = (1 - t).clamp_min(1e-3).reshape(-1, 1, 1, 1).to(v.dtype)
        return (end - x) / remaining

    def relation_bias(self, h: torch.Tensor, used: torch.Tensor, cond: Condition) -> torch.Tensor:
        """(B, S * 2, L) pointer logits of the second pass: a learned function of each candidate's relation to what
        the step's other pose token pointed at in the first pass, and of the pose token's state (whether the
        relation matters is the task's: in the bowl task the place goes with the picked block's colour)."""
        b, s = h.shape[:2]
        partner = used.reshape(b, s, 2, -1).flip(2).reshape(b, s * 2, -1) @ cond.attributes.to(used.dtype)
        rel = pair_features(partner[:, :, None, :], cond.attributes[:, None, :, :])  # (B, S*2, L, R)
        state = h.reshape(b, s * 2, 1, -1).expand(-1, -1, rel.shape[2], -1)
        return self.relation(torch.cat([rel, state], dim=-1))[..., 0]

    def pointer(self, h, prepared: Prepared, cond: Condition, which: int, bonus=None):
        """Attention of each pose token over the candidates -> (the chosen centre (B, S, 2, 3), the chosen
        states (B, S, 2, D), the attention (B, S, 2, L), the weights used (B, S * 2, L): one-hot on the most
        attended candidate, in training with the attention's gradient (straight-through))."""
        b, s, _, d = h.shape
        q = self.pointer_q[which](h.reshape(b, s * 2, d))
        k = self.pointer_k[which](prepared.seq) + self.pointer_pos(prepared.where)
        logits = (q @ k.transpose(1, 2)) / d**0.5
        if bonus is not None:
            logits = logits + bonus
        weights = logits.masked_fill(~cond.candidates[:, None, :], float("-inf")).softmax(-1)
        if self.training:
            one_hot = F.one_hot(weights.argmax(-1), weights.shape[-1]).to(weights.dtype)
            used = one_hot + weights - weights.detach()
        else:
            used = F.one_hot(distinct_picks(weights.reshape(b, s, 2, -1)).flatten(1), weights.shape[-1])
            used = used.to(weights.dtype)
        centre = used @ cond.anchors.to(used.dtype)
        return (centre.reshape(b, s, 2, 3), (used @ prepared.seq).reshape(b, s, 2, d), weights.reshape(b, s, 2, -1),
                used)


def distinct_picks(weights: torch.Tensor) -> torch.Tensor:
    """(B, S, 2, L) pointer attention -> (B, S, 2) the candidate each pose token takes: the most attended one, except
    that a pick never takes what an earlier step picked or placed on (its next choice instead). The cloud shows the
    table as it was before the plan ran: once a step has moved an object, picking at its old place grasps air, and
    once a step has set a block on an object, picking there grasps that block again. Places are unconstrained (a
    tower's base takes every level)."""
    choice = weights.argmax(-1)
    taken = torch.zeros(weights.shape[0], weights.shape[-1], dtype=torch.bool, device=weights.device)
    rows = torch.arange(weights.shape[0], device=weights.device)
    for j in range(weights.shape[1]):
        w = weights[:, j, 0]  # 0 exactly where not a candidate: those stay last even when every candidate is taken
        pick = torch.where(w > 0, w - 2.0 * taken.to(w.dtype), float("-inf")).argmax(-1)
        choice[:, j, 0] = pick
        taken[rows, pick] = True
        taken[rows, choice[:, j, 1]] = True
    return choice


def _pointed_yaw(weights: torch.Tensor, yaws: torch.Tensor) -> torch.Tensor:
    """(B, S * 2, L) pointer weights, (B, L) yaws modulo a quarter turn -> (B, S * 2) the weighted circular mean of
    those yaws (taken on 4 x yaw, where the quarter-turn symmetry is a full turn)."""
    four = 4 * yaws.to(weights.dtype)
    return torch.atan2(weights @ four.sin()[..., None], weights @ four.cos()[..., None])[..., 0] / 4


def _masked_mean(seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    w = mask.to(seq.dtype)[..., None]
    return (seq * w).sum(1) / w.sum(1).clamp_min(1.0)


def step_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B,) lengths -> (B, steps) bool, True on real steps."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]
