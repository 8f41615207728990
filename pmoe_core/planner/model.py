"""ThreeDMoEPlanner: scene cloud + instruction -> pick/place pose sequence (3D-MoE, arXiv 2501.16698, at CPU size).

points -> SceneEncoder (PointNet++, spatial transformer, projector) -> scene tokens prepended to the embedded text
-> LLaMA-family LLM with MoE-upcycled FFNs and LoRA -> final hidden states (scene + text positions, masked) ->
Pose-DiT with rectified flow. Stage I aligns the encoder with a captioning LM loss; Stage II trains the flow and
stop losses on oracle pose sequences. Trainable: encoder + projector, LoRA adapters, routers, Pose-DiT; the base
LLM stays frozen and is rebuilt from `config.llm` (the tiny LLM from its seed), so a checkpoint needs only
`trainable_state_dict()` and `config.to_dict()`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

import torch
from torch import nn

from pmoe_core.planner.flow import FlowConfig
from pmoe_core.planner.llm import TinyLlamaSpec, load_llm, tiny_llm
from pmoe_core.planner.lora import LoraSettings, apply_lora, is_lora_param, is_router_param
from pmoe_core.tabletop.oracle import Step
from pmoe_core.planner.pointnet2 import PointNet2Config, SALayer
from pmoe_core.planner.pose_dit import PoseDiT, PoseDiTConfig
from pmoe_core.planner.pose_head import pose_losses, sample_poses
from pmoe_core.planner.pose_tokens import poses_to_tokens, positions_to_tokens, tensor_to_steps, tokens_to_poses
from pmoe_core.planner.scene_encoder import SceneEncoder, SceneEncoderConfig
from pmoe_core.planner.spatial_transformer import SpatialTransformerConfig
from pmoe_core.planner.upcycle import MoEConfig, aux_loss, upcycle


@dataclass
class Condition:
    """What the Pose-DiT is conditioned on: LLM final hidden states over scene + instruction positions, the mask of
    real positions, and the token-space centres of the scene positions (zeros and False elsewhere)."""

    seq: torch.Tensor  # (B, L, H)
    mask: torch.Tensor  # (B, L) bool
    anchors: torch.Tensor  # (B, L, 3)
    anchor_mask: torch.Tensor  # (B, L) bool
    pointer_mask: torch.Tensor | None = None  # (B, L) bool: what the DiT's pointer may pick (None: every anchor)
    anchor_yaws: torch.Tensor | None = None  # (B, L) measured yaw of object tokens modulo a quarter turn, else 0
    anchor_colors: torch.Tensor | None = None  # (B, L, 3) mean colour of object tokens, else 0


@dataclass
class ThreeDMoEConfig:
    llm: str = "smollm2"  # "smollm2" (packaged GGUF), "tiny" (random, seeded), or a local HF LLaMA folder
    tiny_llm: TinyLlamaSpec = field(default_factory=TinyLlamaSpec)
    moe: MoEConfig = field(default_factory=MoEConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    encoder: SceneEncoderConfig = field(default_factory=SceneEncoderConfig)
    dit: PoseDiTConfig = field(default_factory=PoseDiTConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    num_points: int = 4096  # encoder input size (see scene_encoder.scene_points)
    foreground: float = 0.0  # share of those drawn from points above the table first (scene_points)
    max_text_tokens: int = 64
    caption_prompt: str = "Describe the scene:"

    @classmethod
    def tiny(cls) -> "ThreeDMoEConfig":
        """Seconds-fast sizes for tests and smoke runs: random tiny LLM, small encoder and DiT."""
        return cls(
            llm="tiny",
            moe=MoEConfig(num_experts=4, top_k=2),
            lora=LoraSettings(r=4, alpha=8),
            encoder=SceneEncoderConfig(
                pointnet=PointNet2Config(layers=[SALayer(64, 0.06, 16, [16, 32]), SALayer(16, 0.2, 16, [32, 48])]),
                spatial=SpatialTransformerConfig(dim=32, heads=2, layers=1, fourier_bands=4),
            ),
            dit=PoseDiTConfig(dim=32, depth=1, heads=2, max_steps=6, anchor=True),
            num_points=512,
            foreground=1.0,
            max_text_tokens=48,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ThreeDMoEConfig":
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
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value)
        elif typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            value = [_build(typing.get_args(hint)[0], v) for v in value]
        kwargs[name] = value
    return cls(**kwargs)


def build_llm(config: ThreeDMoEConfig):
    if config.llm == "tiny":
        return tiny_llm(config.tiny_llm)
    return load_llm(None if config.llm == "smollm2" else config.llm)


class ThreeDMoEPlanner(nn.Module):
    """The 3D-MoE planner. `llm`/`tokenizer` may be passed in (already loaded, not yet upcycled) to skip loading."""

    def __init__(self, config: ThreeDMoEConfig, llm: nn.Module | None = None, tokenizer=None):
        super().__init__()
        self.config = config
        if llm is None:
            llm, tokenizer = build_llm(config)
        llm.config.use_cache = False
        self.llm = apply_lora(upcycle(llm, config.moe), config.lora)
        self.tokenizer = tokenizer
        hidden = llm.config.hidden_size
        self.encoder = SceneEncoder(config.encoder, hidden)
        self.dit = PoseDiT(config.dit, hidden)
        self._match_projector_scale()

    @torch.no_grad()
    def _match_projector_scale(self) -> None:
        """Start scene tokens at the RMS of the LLM's word embeddings (the projector's input is LayerNormed, so
        ~unit per channel); the default init would make them several times louder than any word."""
        target = self.llm.get_input_embeddings().weight.float().pow(2).mean().sqrt().item()
        for proj in (self.encoder.projector, getattr(self.encoder, "object_projector", None)):
            if proj is not None:
                nn.init.normal_(proj.weight, std=target / proj.in_features**0.5)
                nn.init.zeros_(proj.bias)

    @property
    def device(self) -> torch.device:
        return self.encoder.projector.weight.device

    # --- inputs ---

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.config.max_text_tokens]

    def _sequence(self, points: torch.Tensor, texts: list[list[int]], loss_from: list[int] | None = None):
        """Scene tokens + right-padded text embeddings -> (embeds, attention mask, labels or None, scene centres,
        which scene tokens are real (object slots without a proposal are not), scene token yaws and colours)."""
        scene, centres, valid, yaws, colors = self.encoder(points.to(self.device))
        b, m, _ = scene.shape
        longest = max(len(t) for t in texts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((b, longest), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros(b, m + longest, dtype=torch.long, device=self.device)
        mask[:, :m] = valid.long()
        for i, t in enumerate(texts):
            ids[i, : len(t)] = torch.tensor(t, dtype=torch.long)
            mask[i, m : m + len(t)] = 1
        embeds = torch.cat([scene, self.llm.get_input_embeddings()(ids).to(scene.dtype)], dim=1)
        labels = None
        if loss_from is not None:
            labels = torch.full((b, m + longest), -100, dtype=torch.long, device=self.device)
            for i, (t, start) in enumerate(zip(texts, loss_from)):
                labels[i, m + start : m + len(t)] = ids[i, start : len(t)]
        return embeds, mask, labels, centres, valid, yaws, colors

    def condition(self, points: torch.Tensor, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """LLM final hidden states over scene + instruction positions (B, L, H) and their mask (B, L) bool."""
        cond = self.condition_with_anchors(points, instructions)
        return cond.seq, cond.mask

    def condition_with_anchors(self, points: torch.Tensor, instructions: list[str]) -> "Condition":
        """The condition plus where its scene tokens sit (for the DiT's pointer)."""
        embeds, mask, _, centres, valid, yaws, colors = self._sequence(
            points, [self._ids(s) or [self.tokenizer.eos_token_id] for s in instructions]
        )
        hidden = self.llm.model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state
        b, m, _ = centres.shape
        anchors = hidden.new_zeros(b, hidden.shape[1], 3)
        anchors[:, :m] = positions_to_tokens(centres.to(hidden.dtype))
        anchor_mask = torch.zeros(b, hidden.shape[1], dtype=torch.bool, device=hidden.device)
        anchor_mask[:, :m] = valid
        anchor_yaws = hidden.new_zeros(b, hidden.shape[1])
        anchor_yaws[:, :m] = yaws
        anchor_colors = hidden.new_zeros(b, hidden.shape[1], 3)
        anchor_colors[:, :m] = colors
        pointer_mask = None
        objects = self.config.encoder.objects
        if objects.max_objects and objects.pointer_only:  # objects only; a scene without any keeps every token
            pointer_mask = anchor_mask.clone()
            pointer_mask[:, : m - objects.max_objects] = False
            bare = ~pointer_mask.any(1)
            pointer_mask[bare] = anchor_mask[bare]
        return Condition(hidden, mask.bool(), anchors, anchor_mask, pointer_mask, anchor_yaws, anchor_colors)

    def _aux(self) -> torch.Tensor:
        return self.config.moe.aux_loss_weight * aux_loss(self.llm).to(self.device)

    # --- training ---

    def stage1_loss(self, points: torch.Tensor, caption_texts: list[str]) -> dict[str, torch.Tensor]:
        """Captioning LM loss on `caption_texts` given the scene (prompted by `config.caption_prompt`)."""
        prompt = self._ids(self.config.caption_prompt)
        texts, starts = [], []
        eos = self.tokenizer.eos_token_id
        for caption in caption_texts:
            body = self.tokenizer(" " + caption.strip(), add_special_tokens=False)["input_ids"]
            texts.append((prompt + body)[: self.config.max_text_tokens] + [eos])
            starts.append(min(len(prompt), len(texts[-1]) - 1))
        embeds, mask, labels, *_ = self._sequence(points, texts, starts)
        lm = self.llm(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False).loss
        aux = self._aux()
        return {"loss": lm + aux, "lm": lm, "aux": aux}

    def stage2_loss(
        self, points: torch.Tensor, instructions: list[str], pose_seqs: torch.Tensor, lengths: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Flow loss on (B, S, 2, 7) position+quaternion sequences (first `lengths` steps real) + stop loss."""
        cond = self.condition_with_anchors(points, instructions)
        tokens = poses_to_tokens(pose_seqs.to(self.device, cond.seq.dtype))
        parts = pose_losses(self.dit, cond.seq, cond.mask, tokens, lengths.to(self.device), self.config.flow,
                            anchors=cond.anchors, anchor_mask=cond.anchor_mask, pointer_mask=cond.pointer_mask,
                            anchor_yaws=cond.anchor_yaws, anchor_colors=cond.anchor_colors)
        aux = self._aux()
        return {"loss": sum(parts.values()) + aux, **parts, "aux": aux}

    def trainable_parameters(self, stage: int = 2) -> list[nn.Parameter]:
        """Stage 1: encoder + projector, LoRA, routers (the DiT has no loss yet); stage 2: everything trainable."""
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        return [p for n, p in self.named_parameters() if p.requires_grad and (stage == 2 or not n.startswith("dit."))]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what `trainable_state_dict` saved; a missing or extra trainable entry is an error."""
        expected = {n for n, p in self.named_parameters() if p.requires_grad}
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"trainable state mismatch: missing {missing[:5]}, unexpected {extra[:5]}")
        result = self.load_state_dict(state, strict=False)
        assert not result.unexpected_keys

    # --- inference ---

    @torch.no_grad()
    def plan_batch(
        self,
        points: torch.Tensor,
        instructions: list[str],
        euler_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> list[list[Step]]:
        """(B, N, 6) clouds + B instructions -> B plans, each cut at its predicted length."""
        cond = self.condition_with_anchors(points, instructions)
        steps = euler_steps or self.config.flow.euler_steps
        tokens, lengths = sample_poses(self.dit, cond.seq, cond.mask, steps, generator=generator,
                                       anchors=cond.anchors, anchor_mask=cond.anchor_mask,
                                       pointer_mask=cond.pointer_mask, anchor_yaws=cond.anchor_yaws,
                                       anchor_colors=cond.anchor_colors)
        poses = tokens_to_poses(tokens)
        return [tensor_to_steps(poses[i, : int(n)]) for i, n in enumerate(lengths)]

    def plan(
        self,
        points: torch.Tensor,
        instruction: str,
        euler_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> list[Step]:
        """One (N, 6) cloud + instruction -> its pick/place steps (`Step.pick`, `Step.place` are `Pose`s)."""
        return self.plan_batch(points[None], [instruction], euler_steps, generator)[0]


def trainable_groups(model: ThreeDMoEPlanner) -> dict[str, int]:
    """Trainable parameter counts by part (for logs and the CLI's summary)."""
    groups = {"encoder": 0, "lora": 0, "router": 0, "dit": 0}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("encoder."):
            groups["encoder"] += p.numel()
        elif name.startswith("dit."):
            groups["dit"] += p.numel()
        elif is_lora_param(name):
            groups["lora"] += p.numel()
        elif is_router_param(name):
            groups["router"] += p.numel()
        else:
            raise AssertionError(f"unexpected trainable parameter {name}")
    return groups
