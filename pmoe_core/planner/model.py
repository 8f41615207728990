"""The 3D-MoE planner: scene cloud + instruction -> pick/place pose sequence (3D-MoE, arXiv 2501.16698, at CPU size).

points -> SceneEncoder (PointNet++ and spatial transformer tokens, object tokens with measured colour, extent and
yaw) -> scene tokens; instruction -> the frozen pretrained LM's states (TextFeatures: SmolLM2-135M, computed once per
text and cached); the colour the instruction names, grounded by language (colour.ColourHead), is compared with each
object's measured colour and the difference joins the object's token; [text; scene] -> the upcycled MoE trunk
(trunk.py, with a learned relation bias between scene tokens) -> one `Condition` -> the Pose-DiT (rectified flow,
poses anchored at a pointed candidate: an object or a table anchor).

A causal LM reading the instruction before the scene gives the instruction states that do not depend on the scene,
so the frozen LM runs once per distinct instruction and training costs the trunk, not 135M parameters per step.
The paper's joint path, scene tokens and instruction through the upcycled MoE LLM with LoRA (`joint=True`,
joint.py), replaces the trunk and yields the same Condition.

Stage I (grounding, dense trunk): the colour head learns what colour a phrase names from a named-colour lexicon,
and the trunk learns to find the object a referring phrase names in seen-colour scenes. Stage II upcycles the trunk
(exactly) and trains the pose losses on demonstrations; the colour head stays frozen.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from pmoe_core.planner.colour import (
    AskedColour,
    ColourHead,
    ColourHeadConfig,
    colour_loss,
    rgb_to_lab,
)
from pmoe_core.planner.flow import FlowConfig
from pmoe_core.planner.joint import JointConfig, JointTrunk
from pmoe_core.planner.model_lm import text_features
from pmoe_core.planner.pointnet2 import PointNet2Config, SALayer
from pmoe_core.planner.pose_dit import Condition, PoseDiT, PoseDiTConfig
from pmoe_core.planner.pose_head import pose_losses, sample_poses
from pmoe_core.planner.pose_tokens import (
    poses_to_tokens,
    positions_to_tokens,
    tensor_to_steps,
    tokens_to_poses,
    tokens_to_positions,
)
from pmoe_core.planner.relations import ATTRIBUTE_DIM, attributes, pairwise
from pmoe_core.planner.scene_encoder import SceneEncoder, SceneEncoderConfig
from pmoe_core.planner.spatial_transformer import SpatialTransformerConfig, fourier_xyz
from pmoe_core.planner.text_features import TextBatch, TextFeatures, TextFeatureSpec
from pmoe_core.planner.trunk import Trunk, TrunkConfig, TrunkOutput
from pmoe_core.tabletop.oracle import Step
from pmoe_core.tabletop.world import WORKSPACE

DESIGN = 2  # checkpoints of the design before issue #20 (random tiny LLM, switches) have none
TABLE_BANDS = 8


@dataclass
class PlannerConfig:
    text: TextFeatureSpec = field(default_factory=lambda: TextFeatureSpec(colour_layer=2))
    joint: JointConfig | None = None  # the paper's joint path instead of the trunk (see joint.py)
    encoder: SceneEncoderConfig = field(default_factory=SceneEncoderConfig)
    trunk: TrunkConfig = field(default_factory=lambda: TrunkConfig(relation_dim=12))
    colour: ColourHeadConfig = field(default_factory=ColourHeadConfig)
    dit: PoseDiTConfig = field(default_factory=PoseDiTConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    num_points: int = 2048  # encoder input size (scene_encoder.scene_points)
    table_step: float = 0.1  # m between the table anchors a place at a named position points at

    @classmethod
    def tiny(cls) -> PlannerConfig:
        """The same design at seconds-fast sizes, for tests and smoke runs."""
        return cls(
            encoder=SceneEncoderConfig(
                pointnet=PointNet2Config(layers=[SALayer(64, 0.06, 16, [16, 32]), SALayer(16, 0.2, 16, [32, 48])]),
                spatial=SpatialTransformerConfig(dim=32, heads=2, layers=1, fourier_bands=4),
            ),
            trunk=TrunkConfig(dim=32, depth=1, heads=2, experts=4, top_k=2, relation_dim=12),
            colour=ColourHeadConfig(hidden=32),
            dit=PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=8),
            num_points=1024,  # fewer points split a bowl's rim into several proposals
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PlannerConfig:
        return _build(cls, data)


def _build(cls, data):
    """Rebuild a (nested) dataclass from `asdict` output; unknown keys are an error, missing ones take defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            inner = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = inner[0] if len(inner) == 1 else hint
            if value is None:
                kwargs[name] = None
                continue
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value)
        elif typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            value = [_build(typing.get_args(hint)[0], v) for v in value]
        kwargs[name] = value
    return cls(**kwargs)


def table_anchors(step: float) -> torch.Tensor:
    """(G, 3) metres: a grid over the workspace's table plane, `step` apart, from its near right corner."""
    (x0, x1), (y0, y1), _ = WORKSPACE
    xs = torch.arange(x0, x1 + 1e-6, step)
    ys = torch.arange(y0, y1 + 1e-6, step)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    return torch.cat([grid, torch.zeros(len(grid), 1)], -1)


class ThreeDMoEPlanner(nn.Module):
    """The planner. `text` may be passed in (a TextFeatures already holding states) to share its cache and LM."""

    def __init__(self, config: PlannerConfig, text: TextFeatures | None = None):
        super().__init__()
        self.config = config
        self.text = text if text is not None else text_features(config.text)
        text_dim = self.text.dim
        d = config.trunk.dim
        self.encoder = SceneEncoder(config.encoder, d)
        self.colour = ColourHead(config.colour, text_dim)
        self.match = nn.Sequential(nn.Linear(4, d), nn.GELU(), nn.Linear(d, d))
        if config.joint is None:
            self.trunk: nn.Module = Trunk(config.trunk, text_dim, d)
        else:
            self.trunk = JointTrunk(config.joint, d, self.text)
        self.register_buffer("table", table_anchors(config.table_step), persistent=False)
        self.table_in = nn.Linear(3 + 6 * TABLE_BANDS, d)
        self.refer_q = nn.Linear(d, d)
        self.refer_k = nn.Linear(d, d)
        self.dit = PoseDiT(config.dit, d)

    @property
    def device(self) -> torch.device:
        return self.table_in.weight.device

    # --- inputs ---

    def text_batch(self, texts: list[str]) -> TextBatch:
        return self.text.batch(texts).to(self.device)

    def asked_colour(self, text: TextBatch) -> AskedColour:
        return self.colour(text.colour_states, text.mask)

    def condition(self, points: torch.Tensor, texts: list[str]) -> tuple[Condition, torch.Tensor]:
        """(the Condition of B clouds (B, N, 7) and their instructions, the trunk's MoE balance loss)."""
        scene = self.encoder(points.to(self.device))
        text = self.text_batch(texts)
        lab = rgb_to_lab(scene.colors) / 100.0
        diff = lab - self.asked_colour(text).lab[:, None, :]
        obj = scene.objects[..., None].to(lab.dtype)
        tokens = scene.tokens + self.match(torch.cat([diff, diff.norm(dim=-1, keepdim=True)], -1)) * obj
        centres = positions_to_tokens(scene.centres)
        attrs = attributes(centres, lab, scene.extents, scene.objects)
        if isinstance(self.trunk, Trunk):
            out: TrunkOutput = self.trunk(text.states, text.mask, tokens, scene.valid, pairwise(attrs))
        else:
            out = self.trunk(texts, tokens, scene.valid)
        return self._assemble(out, centres, scene.objects, scene.yaws, attrs), out.aux_loss

    def _assemble(self, out: TrunkOutput, centres, objects, yaws, attrs) -> Condition:
        """Text positions, scene positions, then the table anchors (states from their position alone)."""
        b, t = out.text.shape[:2]
        g = len(self.table)
        table = positions_to_tokens(self.table).to(out.scene.dtype)
        table_states = self.table_in(fourier_xyz(table, TABLE_BANDS, 4.0)).expand(b, -1, -1)
        table_attrs = torch.cat([table, table.new_zeros(g, ATTRIBUTE_DIM - 3)], -1).expand(b, -1, -1)
        ones = torch.ones(b, g, dtype=torch.bool, device=self.device)
        no_text = torch.zeros_like(out.text_mask)
        return Condition(
            seq=torch.cat([out.text, out.scene, table_states], 1),
            mask=torch.cat([out.text_mask, out.scene_mask, ones], 1),
            text_mask=torch.cat([out.text_mask, torch.zeros_like(out.scene_mask), ~ones], 1),
            anchors=torch.cat([centres.new_zeros(b, t, 3), centres, table.expand(b, -1, -1)], 1),
            candidates=torch.cat([no_text, objects, ones], 1),
            yaws=torch.cat([yaws.new_zeros(b, t), yaws, yaws.new_zeros(b, g)], 1),
            attributes=torch.cat([attrs.new_zeros(b, t, ATTRIBUTE_DIM), attrs, table_attrs], 1),
        )

    # --- training ---

    def refer_logits(self, cond: Condition) -> torch.Tensor:
        """(B, L) which object a referring phrase names (Stage I): the pooled phrase against each object's state."""
        w = cond.text_mask.to(cond.seq.dtype)[..., None]
        query = self.refer_q((cond.seq * w).sum(1) / w.sum(1).clamp_min(1.0))
        logits = (self.refer_k(cond.seq) @ query[..., None])[..., 0] / cond.seq.shape[-1] ** 0.5
        objects = cond.attributes[..., 9] > 0
        return logits.masked_fill(~objects, float("-inf"))

    def stage1_loss(self, points: torch.Tensor, phrases: list[str], target_xy: torch.Tensor,
                    lexicon: list[str], lexicon_lab: torch.Tensor) -> dict[str, torch.Tensor]:
        """Grounding: "refer" (cross entropy of the object the phrase names, the object nearest `target_xy` (B, 2)
        metres) + "colour" (the CIELAB error of the colour each lexicon phrase names)."""
        cond, aux = self.condition(points, phrases)
        logits = self.refer_logits(cond)
        xy = target_xy.to(self.device)
        where = tokens_to_positions(cond.anchors)[..., :2]
        d2 = (where - xy[:, None, :]).pow(2).sum(-1).masked_fill(~torch.isfinite(logits), float("inf"))
        refer = F.cross_entropy(logits, d2.argmin(-1))
        colour = colour_loss(self.asked_colour(self.text_batch(lexicon)), lexicon_lab.to(self.device))
        return {"loss": refer + colour + aux, "refer": refer, "colour": colour, "aux": aux}

    def stage2_loss(self, points: torch.Tensor, instructions: list[str], pose_seqs: torch.Tensor,
                    lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flow, stop and pointer losses on (B, S, 2, 7) position+quaternion sequences (first `lengths` real)."""
        cond, aux = self.condition(points, instructions)
        tokens = poses_to_tokens(pose_seqs.to(self.device, cond.seq.dtype))
        parts = pose_losses(self.dit, cond, tokens, lengths.to(self.device), self.config.flow)
        return {"loss": sum(parts.values()) + aux, **parts, "aux": aux}

    def stage_parameters(self, stage: int) -> list[nn.Parameter]:
        """Stage 1: everything but the Pose-DiT; stage 2: everything but what grounds colour words and the Stage I
        readout (frozen, so seven demonstrated colours cannot overwrite what the lexicon taught)."""
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        frozen = ("dit.",) if stage == 1 else ("colour.", "refer_q.", "refer_k.")
        return [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith(frozen)]

    def upcycle(self) -> None:
        """Start Stage II: the dense trunk's FFNs become MoE layers (exactly; see trunk.py). The joint path's LLM
        is upcycled from the pretrained LM at construction."""
        if isinstance(self.trunk, Trunk):
            self.trunk.upcycle()

    @property
    def is_upcycled(self) -> bool:
        return not isinstance(self.trunk, Trunk) or self.trunk.is_moe

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what `trainable_state_dict` saved (upcycling first when it holds an MoE trunk); a missing or extra
        entry is an error."""
        if any(".ffn.router." in k for k in state) and not self.is_upcycled:
            self.upcycle()
        expected = {n for n, p in self.named_parameters() if p.requires_grad}
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"trainable state mismatch: missing {missing[:5]}, unexpected {extra[:5]}")
        result = self.load_state_dict(state, strict=False)
        assert not result.unexpected_keys

    # --- inference ---

    @torch.no_grad()
    def plan_batch(self, points: torch.Tensor, instructions: list[str], euler_steps: int | None = None,
                   generator: torch.Generator | None = None) -> list[list[Step]]:
        """(B, N, 7) clouds + B instructions -> B plans, each cut at its predicted length."""
        cond, _ = self.condition(points, instructions)
        tokens, lengths = sample_poses(self.dit, cond, euler_steps or self.config.flow.euler_steps,
                                       generator=generator)
        poses = tokens_to_poses(tokens)
        return [tensor_to_steps(poses[i, : int(n)]) for i, n in enumerate(lengths)]

    def plan(self, points: torch.Tensor, instruction: str, euler_steps: int | None = None,
             generator: torch.Generator | None = None) -> list[Step]:
        """One (N, 7) cloud + instruction -> its pick/place steps."""
        return self.plan_batch(points[None], [instruction], euler_steps, generator)[0]


def trainable_groups(model: nn.Module) -> dict[str, int]:
    """Trainable parameter counts by top-level part (for logs and the CLI's summary; the QA model uses it too)."""
    groups: dict[str, int] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            part = name.split(".")[0]
            groups[part] = groups.get(part, 0) + p.numel()
    return groups
