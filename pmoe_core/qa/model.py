"""The answering model: scene cloud + question [+ situation] -> an answer generated in text (3D-MoE's QA task).

It is the planner's model family with a language head instead of the Pose-DiT, built from the same parts:

  cloud -> scene_input (scale-normalised, object proposals) -> planner SceneEncoder (PointNet++ + spatial
  transformer tokens, one token per object proposal) + a scale token [+ an agent token (SQA3D position/heading)]
  question -> TextFeatures (frozen pretrained SmolLM2-135M states, cached per text)
  question -> planner ColourHead (the CIELAB colour it names; trained on the named-colour lexicon in the dense
  phase, frozen after) -> with each object's measured CIELAB, joins that object's token
  question -> noun head (the object kinds it names) . kind head (each object token's kind) -> joins the token
  [situated] the agent's view of each object (ahead, left, distance, bearing) -> joins the token
  [text; scene] -> planner Trunk (bidirectional blocks, relation bias between scene tokens, FFNs upcycled to MoE)
  -> AnswerDecoder (small causal decoder over SmolLM2's vocabulary, tied to its frozen embeddings): greedy or beam.

Plan and QA share parts and code but not weights: separate checkpoints (`kind` "qa"), because the planner's default
must train alone in an hour on one CPU thread, and a joint model would make each wait for the other.
Colour grounding is the planner's (planner/colour.py, planner/model.py `condition`): an object token gets its measured
CIELAB and its difference to the asked colour explicitly, through a small MLP. The default trained before them (issue
#21) answered "yes" to every existence question and got 10% of tabletop colour questions: a linear probe read an
object's palette colour back from 57% of its encoder tokens and 26% of its trunk states, so the colour was there
only faintly and the question's colour word had nothing to be compared with.

Room objects (design 3, issue #21): the default of design 2 was level with the text-only model on every room
question; both gave one answer per question type whatever the room or the noun (existence: "yes" to 190 of 200,
"what is on my left": the same few nouns), and even on its training rooms it answered "what is on my left?" right
for 15% and left-or-right for 50%. Two things were missing. (1) Naming: an object token's kind (toilet, sink...) was
learnable only through answers; a kind head now learns it from the rooms' annotation (each proposal's object,
`synthetic_rooms.proposal_nouns`), a noun head which kinds the question names (`question_nouns` of the training
questions as targets, read from the LM's states, so any wording), and each object token gets how well the two
match. (2) Heading: "left" is a product of the agent's heading and the object's offset, which the trunk did not
learn; each object token now gets its place in the agent's frame. In 800-step room-only runs on held-out rooms,
"what is on my X?" went from 11% to 12% with the agent's view alone, 14% with the kind head alone, 35% with both and
41% with the noun match too. Questions that must find a named object first (existence, "is the X on my left", "what
is next to the X") did not move in those runs, although the match singles the named object out (its largest match
0.65 on average where the object is there, 0.12 where it is not): the trunk did not learn to use it in that time.
The retrained default (4000 steps, both scales) gained on tabletop questions too (supports 59.5 -> 81.1); the same
recipe with the kind and noun losses weighted 0 did not (59.5), so learning the rooms' kinds also serves the shared
object tokens (one control run; BENCHMARKS.md).

Anchors (design 4, issue #21): design 3 was level with the text-only model on "what is next to the X?" (EM@1 10.5
against 9.0) and at chance on "is the X on my left or right?", the questions that must first find the named object
and then read something relative to it: the trunk had the match and the pairwise relations but did not learn to
chain them. The match now also picks an anchor (a softmax over object tokens, `ANCHOR_SHARPNESS`), every object token
gets its place relative to the anchor (offset, centre distance, footprint gap, its own anchor weight), and one more
token carries the anchor itself (where it is, and where the situated agent sees it). Which object is "next to" it,
or on which side it lies, is still learned: the features are geometry, not the answer.

`scene_tokens=False` is the text-only baseline (the same model with no scene tokens), for `pmoe qa bench`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
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
from pmoe_core.planner.model import _build
from pmoe_core.planner.objects import ObjectTokenConfig
from pmoe_core.planner.pointnet2 import PointNet2Config, SALayer
from pmoe_core.planner.relations import RELATION_DIM, attributes, pairwise
from pmoe_core.planner.scene_encoder import SceneEncoder, SceneEncoderConfig
from pmoe_core.planner.spatial_transformer import SpatialTransformerConfig
from pmoe_core.planner.text_features import TextBatch, TextFeatures, TextFeatureSpec
from pmoe_core.planner.trunk import Trunk, TrunkConfig
from pmoe_core.qa.decoder import AnswerDecoder, DecoderConfig, Hypothesis, Memory
from pmoe_core.qa.scene_input import QAScene

DESIGN = 4  # 2: colour grounding (issue #21; before it, none); 3: the kind and noun heads (rooms' object kinds);
# 4: the anchor (the object the question names) and each object's place relative to it
TEXT_ONLY_DESIGN = 2  # the text-only baseline's parts last changed in this design (3 added scene-side parts only)
COLOUR_FEATURES = 7  # an object's CIELAB / 100 (3), its difference to the asked colour (3) and that distance (1)
GROUNDING_WEIGHT = 0.5  # of the kind and noun heads' losses beside the answers'
AGENT_FEATURES = 5  # an object's place seen by the situated agent: ahead, left, distance, cos and sin of its bearing
ANCHOR_FEATURES = 6  # an object's place relative to the anchor: offset (3), centre distance, footprint gap, its weight
ANCHOR_TOKEN_FEATURES = 3 + AGENT_FEATURES + 1  # the anchor's centre, the agent's view of it, the best match
ANCHOR_SHARPNESS = 10.0  # match (0..1) -> anchor logits: a named object's 0.65 against another's 0.12 is ~200:1


@dataclass
class QAModelConfig:
    text: TextFeatureSpec = field(default_factory=lambda: TextFeatureSpec(max_tokens=96))
    encoder: SceneEncoderConfig = field(default_factory=lambda: SceneEncoderConfig(
        pointnet=PointNet2Config(layers=[SALayer(64, 0.12, 16, [32, 64]), SALayer(16, 0.35, 16, [64, 128])]),
        spatial=SpatialTransformerConfig(dim=128, heads=4, layers=1, fourier_bands=6, max_wavelength=4.0),
        objects=ObjectTokenConfig(max_objects=16, hidden=64, dim=128, fourier_bands=6),
    ))
    scene_dim: int = 128  # width of the encoder's tokens (its projector's output)
    trunk: TrunkConfig = field(default_factory=lambda: TrunkConfig(dim=128, depth=2, heads=4, experts=4,
                                                                    relation_dim=RELATION_DIM))
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    colour: ColourHeadConfig = field(default_factory=ColourHeadConfig)
    num_points: int = 512  # encoder input points per scene (scene_input): proposal points first
    scene_tokens: bool = True  # False: the text-only baseline (no scene tokens at all)
    max_answer_tokens: int = 8  # the default length limit of a generated answer
    object_kinds: int = 25  # the kind head's classes: synthetic_rooms.OBJECT_NOUNS

    @property
    def max_objects(self) -> int:
        return self.encoder.objects.max_objects

    @classmethod
    def tiny(cls) -> QAModelConfig:
        """Seconds-fast sizes for tests: the same design, smaller."""
        return cls(
            encoder=SceneEncoderConfig(
                pointnet=PointNet2Config(layers=[SALayer(32, 0.15, 8, [16, 32]), SALayer(8, 0.4, 8, [32, 32])]),
                spatial=SpatialTransformerConfig(dim=32, heads=2, layers=1, fourier_bands=4, max_wavelength=4.0),
                objects=ObjectTokenConfig(max_objects=8, hidden=16, dim=32, fourier_bands=4),
            ),
            scene_dim=32,
            trunk=TrunkConfig(dim=32, depth=1, heads=2, experts=2, relation_dim=RELATION_DIM),
            decoder=DecoderConfig(dim=32, layers=1, heads=2),
            colour=ColourHeadConfig(hidden=32),
            num_points=256,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> QAModelConfig:
        return _build(cls, data)


@dataclass(frozen=True)
class QAInput:
    """One question as the model reads it: the scene (already through scene_input), the question text (situation
    first when there is one), and the situated agent's position (model frame) and heading when known."""

    scene: QAScene
    text: str
    agent: tuple[float, float, float, float, float] | None = None  # x, y, z, cos(yaw), sin(yaw)


@dataclass(frozen=True)
class GroundingTargets:
    """Training targets of the kind and noun heads: (B, K) long, each object slot's kind (-1: unknown), and (B,
    object_kinds) float 0/1, the kinds each question names."""

    kinds: torch.Tensor
    asked: torch.Tensor


@dataclass(frozen=True)
class Grounding:
    """What the kind and noun heads say: (B, K, object_kinds) logits of each object slot's kind and (B, object_kinds)
    logits of each kind being named by the question."""

    kinds: torch.Tensor
    asked: torch.Tensor


def question_text(question: str, situation: str | None = None) -> str:
    """What the LM reads: the situation, then the question (SQA3D's order)."""
    question = " ".join(question.split())
    return f"{' '.join(situation.split())} {question}" if situation and situation.strip() else question


def facing_xy(rotation) -> tuple[float, float]:
    """The horizontal part of where SQA3D's agent faces: +x turned by its rotation quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in rotation)
    return 1 - 2 * (y * y + z * z), 2 * (w * z + x * y)


def agent_features(scene: QAScene, position, rotation) -> tuple[float, float, float, float, float] | None:
    """SQA3D's agent (position xyz in the cloud's frame, rotation quaternion xyzw) -> model-frame position and the
    heading's yaw as (cos, sin). None when the item has no agent."""
    if position is None or rotation is None:
        return None
    fx, fy = facing_xy(rotation)
    yaw = math.atan2(fy, fx)
    p = scene.to_model_frame(np.asarray(position, np.float32))
    return (float(p[0]), float(p[1]), float(p[2]), math.cos(yaw), math.sin(yaw))


def _length(v: torch.Tensor) -> torch.Tensor:
    """Euclidean length over the last axis with a finite gradient at 0 (an offset of nothing: the anchor from itself, or from an agent standing on it)."""
    return (v.square().sum(-1) + 1e-12).sqrt()


def egocentric(centres: torch.Tensor, agent: torch.Tensor) -> torch.Tensor:
    """(B, L, 3) token centres and (B, 5) agents (x, y, z, cos yaw, sin yaw; model frame) -> (B, L, AGENT_FEATURES):
    each place seen by the agent: how far ahead and to the left (counter-clockwise) it is, its distance, and its
    bearing's cos and sin. "What is on my left?" is then a comparison on one token, not a product of the agent's
    heading and a position the trunk would have to learn."""
    d = centres[..., :2] - agent[:, None, :2]
    c, s = agent[:, None, 3], agent[:, None, 4]
    ahead, left = c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]
    dist = _length(torch.stack([ahead, left], dim=-1))
    safe = dist.clamp_min(1e-6)
    return torch.stack([ahead, left, dist, ahead / safe, left / safe], dim=-1)


@dataclass(frozen=True)
class Anchor:
    """The object a question names, as a soft choice over object tokens: (B, L) `weights` (0 off objects; all 0 in
    a scene without objects), its (B, 3) `centre` and `extent` (model frame), and (B,) `match`, the best match."""

    weights: torch.Tensor
    centre: torch.Tensor
    extent: torch.Tensor
    match: torch.Tensor


def find_anchor(match: torch.Tensor, objects: torch.Tensor, centres: torch.Tensor, extents: torch.Tensor) -> Anchor:
    """(B, L) match of each token's kind with the question's nouns, (B, L) bool object tokens, their (B, L, 3)
    centres and extents -> the `Anchor`."""
    logits = (match * ANCHOR_SHARPNESS).masked_fill(~objects, -1e4)  # finite: a row with no object has no NaN
    weights = logits.softmax(dim=-1) * objects  # ... and all-zero weights
    centre = (weights[..., None] * centres).sum(1)
    extent = (weights[..., None] * extents).sum(1)
    best = match.masked_fill(~objects, 0.0).amax(dim=-1)
    return Anchor(weights, centre, extent, best)


def relative_to_anchor(centres: torch.Tensor, extents: torch.Tensor, anchor: Anchor) -> torch.Tensor:
    """(B, L, 3) centres and extents -> (B, L, ANCHOR_FEATURES): each place's offset from the anchor, the horizontal
    centre distance, the horizontal gap between the two footprints (boxes from the extents; 0 when they touch), and
    the token's own anchor weight (so the anchor knows itself)."""
    d = centres - anchor.centre[:, None]
    dist = _length(d[..., :2])
    gap = _length((d[..., :2].abs() - (extents[..., :2] + anchor.extent[:, None, :2]) / 2).clamp_min(0.0))
    return torch.cat([d, dist[..., None], gap[..., None], anchor.weights[..., None]], dim=-1)


class QAModel(nn.Module):
    """The answering model. `features` holds the frozen LM (its states for the question; its token embeddings are
    the decoder's vocabulary) and is shared, not owned: it is not a submodule and nothing of it is saved."""

    def __init__(self, config: QAModelConfig, features: TextFeatures | None = None):
        super().__init__()
        self.config = config
        self.features = features or TextFeatures(config.text)
        tokenizer = self.features.tokenizer
        embeddings = self.features.llm.get_input_embeddings().weight
        self.encoder = SceneEncoder(config.encoder, config.scene_dim)
        self.colour = ColourHead(config.colour, self.features.dim)
        d = config.scene_dim
        self.object_colour = nn.Sequential(nn.Linear(COLOUR_FEATURES, d), nn.GELU(), nn.Linear(d, d))
        self.scale_token = nn.Linear(1, config.scene_dim)
        self.agent_token = nn.Linear(5, config.scene_dim)
        if config.scene_tokens:  # the text-only baseline's parts stay as in TEXT_ONLY_DESIGN
            self.object_agent = nn.Sequential(nn.Linear(AGENT_FEATURES, d), nn.GELU(), nn.Linear(d, d))
            self.kind_head = nn.Linear(d, config.object_kinds)
            self.noun_head = nn.Sequential(nn.LayerNorm(self.features.dim), nn.Linear(self.features.dim,
                                                                                      config.object_kinds))
            self.object_match = nn.Sequential(nn.Linear(1, d), nn.GELU(), nn.Linear(d, d))
            self.object_anchor = nn.Sequential(nn.Linear(ANCHOR_FEATURES, d), nn.GELU(), nn.Linear(d, d))
            self.anchor_token = nn.Sequential(nn.Linear(ANCHOR_TOKEN_FEATURES, d), nn.GELU(), nn.Linear(d, d))
        self.trunk = Trunk(config.trunk, self.features.dim, config.scene_dim)
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self.decoder = AnswerDecoder(config.decoder, embeddings, config.trunk.dim, bos, tokenizer.eos_token_id)

    @property
    def tokenizer(self):
        return self.features.tokenizer

    @property
    def device(self) -> torch.device:
        return self.scale_token.weight.device

    # --- answers as token ids and back ---

    def answer_ids(self, answer: str) -> list[int]:
        """Token ids of an answer (no leading space: "3" is one token, " 3" two), cut to the length limit."""
        ids = self.tokenizer(" ".join(answer.split()), add_special_tokens=False)["input_ids"]
        return ids[: self.config.max_answer_tokens] or [self.decoder.eos]

    def answer_text(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    # --- colour grounding ---

    def text_batch(self, texts: list[str]) -> TextBatch:
        return self.features.batch(texts).to(self.device)

    @property
    def colour_frozen(self) -> bool:
        """The colour head learns in the dense phase only, from the lexicon, and is frozen once the trunk is
        upcycled (as the planner's after Stage I): answers about seven colours must not overwrite what ~900 names
        taught it."""
        return self.trunk.is_moe

    def asked_colour(self, text: TextBatch) -> AskedColour:
        """The colour a text names (planner/colour.py); cut from the graph once the head is frozen."""
        asked = self.colour(text.colour_states, text.mask)
        return AskedColour(asked.lab.detach(), asked.weights.detach()) if self.colour_frozen else asked

    def training_parameters(self) -> list[nn.Parameter]:
        """What the optimiser updates now: everything trainable, less the colour head once it is frozen."""
        frozen = ("colour.",) if self.colour_frozen else ()
        return [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith(frozen)]

    # --- the forward pass up to the decoder's memory ---

    def memory(self, inputs: list[QAInput]) -> tuple[Memory, torch.Tensor]:
        """What the decoder reads for a batch of questions (the trunk's states, and the mean of its question
        positions), and the trunk's MoE balance loss."""
        memory, aux, _ = self._forward(inputs)
        return memory, aux

    def _forward(self, inputs: list[QAInput]) -> tuple[Memory, torch.Tensor, Grounding | None]:
        text = self.text_batch([q.text for q in inputs])
        scene, scene_mask, relations, grounding = self._scene_tokens(inputs, self.asked_colour(text).lab, text)
        out = self.trunk(text.states, text.mask, scene, scene_mask, relations)
        weight = out.text_mask.to(out.text.dtype)[..., None]
        query = (out.text * weight).sum(1) / weight.sum(1).clamp_min(1.0)
        return Memory(out.seq, out.mask, query), out.aux_loss, grounding

    def asked_kinds(self, text: TextBatch) -> torch.Tensor:
        """(B, object_kinds) logits of the kinds a text names: the most confident of its token positions."""
        logits = self.noun_head(text.states)
        return logits.masked_fill(~text.mask[..., None], float("-inf")).amax(dim=1)

    def _scene_tokens(self, inputs: list[QAInput], asked_lab: torch.Tensor, text: TextBatch):
        """Encoder tokens + the scale token + the agent token (masked out where unknown) + the anchor token (masked
        out where the scene has no object), their mask and pairwise relation features (planner/relations.py), and
        what the kind and noun heads say; with scene_tokens off, one masked-out token (the text-only baseline).
        Each object token gets, through small MLPs: its colour features (`asked_lab` (B, 3): the asked colour,
        CIELAB / 100), how well its kind (kind head) matches the kinds the
        question names (noun head), its place relative to the anchor (`relative_to_anchor`), and, for a situated
        question, where it lies seen by the agent (`egocentric`)."""
        b, d = len(inputs), self.config.scene_dim
        if not self.config.scene_tokens:
            return (torch.zeros(b, 1, d, device=self.device), torch.zeros(b, 1, dtype=torch.bool, device=self.device),
                    None, None)
        points = torch.from_numpy(np.stack([q.scene.points for q in inputs])).to(self.device)
        st = self.encoder(points)
        lab = rgb_to_lab(st.colors) / 100.0
        diff = lab - asked_lab[:, None, :]
        obj = st.objects[..., None].to(lab.dtype)
        colour = self.object_colour(torch.cat([lab, diff, diff.norm(dim=-1, keepdim=True)], -1)) * obj
        scale = torch.tensor([[math.log(q.scene.scale)] for q in inputs], device=self.device)
        agent = torch.tensor([q.agent or (0.0,) * 5 for q in inputs], device=self.device)
        has_agent = torch.tensor([q.agent is not None for q in inputs], device=self.device)
        seen = st.tokens + colour
        kinds = self.kind_head(seen)
        grounding = Grounding(kinds[:, -self.config.max_objects:], self.asked_kinds(text))
        match = (kinds.softmax(-1) * torch.sigmoid(grounding.asked)[:, None]).sum(-1)
        seen = seen + self.object_match(match[..., None]) * obj
        sited = obj * has_agent[:, None, None]
        seen = seen + self.object_agent(egocentric(st.centres, agent)) * sited
        anchor = find_anchor(match, st.objects, st.centres, st.extents)
        seen = seen + self.object_anchor(relative_to_anchor(st.centres, st.extents, anchor)) * obj
        anchor_seen = egocentric(anchor.centre[:, None], agent)[:, 0] * has_agent[:, None]
        anchor_token = self.anchor_token(torch.cat([anchor.centre, anchor_seen, anchor.match[:, None]], -1))
        tokens = torch.cat([seen, self.scale_token(scale)[:, None], self.agent_token(agent)[:, None],
                            anchor_token[:, None]], dim=1)
        three = torch.zeros(b, 3, 3, device=self.device)
        centres = torch.cat([st.centres, torch.zeros(b, 1, 3, device=self.device), agent[:, None, :3],
                             anchor.centre[:, None]], dim=1)
        objects = torch.cat([st.objects, torch.zeros(b, 3, dtype=torch.bool, device=self.device)], dim=1)
        attrs = attributes(centres, torch.cat([lab, three], 1), torch.cat([st.extents, three], 1), objects)
        has_objects = st.objects.any(dim=1, keepdim=True)
        mask = torch.cat([st.valid, torch.ones(b, 1, dtype=torch.bool, device=self.device), has_agent[:, None],
                          has_objects], 1)
        return tokens, mask, pairwise(attrs), grounding

    # --- training and inference ---

    def loss(self, inputs: list[QAInput], answers: list[str], lexicon: list[str] | None = None,
             lexicon_lab: torch.Tensor | None = None, targets: GroundingTargets | None = None
             ) -> dict[str, torch.Tensor]:
        """The answers' token loss + the MoE balance loss [+ "colour": the CIELAB error of the colour each
        `lexicon` phrase names, against `lexicon_lab` (B, 3) CIELAB / 100, while the colour head learns]
        [+ "kind" and "noun": the kind and noun heads' cross entropies against `targets`]."""
        if lexicon and self.colour_frozen:
            raise ValueError("the colour head is frozen: lexicon phrases train it in the dense phase only")
        memory, aux, grounding = self._forward(inputs)
        lm = self.decoder.loss(memory, [self.answer_ids(a) for a in answers])
        parts = {"loss": lm + aux, "lm": lm, "aux": aux}
        if targets is not None and grounding is not None:
            kinds = targets.kinds.to(self.device)
            kind = F.cross_entropy(grounding.kinds.reshape(-1, self.config.object_kinds), kinds.reshape(-1),
                                   ignore_index=-1) if (kinds >= 0).any() else lm.new_zeros(())
            noun = F.binary_cross_entropy_with_logits(grounding.asked, targets.asked.to(self.device))
            parts = {**parts, "loss": parts["loss"] + GROUNDING_WEIGHT * (kind + noun), "kind": kind, "noun": noun}
        if lexicon:
            colour = colour_loss(self.asked_colour(self.text_batch(lexicon)), lexicon_lab.to(self.device))
            parts = {**parts, "loss": parts["loss"] + colour, "colour": colour}
        return parts

    @torch.no_grad()
    def answer(self, inputs: list[QAInput], max_tokens: int | None = None) -> list[Hypothesis]:
        """The greedy answer to each question (batched)."""
        memory, _ = self.memory(inputs)
        return self.decoder.greedy(memory, self.config.max_answer_tokens if max_tokens is None else max_tokens)

    @torch.no_grad()
    def answer_beams(self, question: QAInput, beams: int, max_tokens: int | None = None) -> list[Hypothesis]:
        """Up to `beams` answers to one question, best first."""
        return self.ranked_answers([question], beams, max_tokens)[0]

    @torch.no_grad()
    def ranked_answers(self, inputs: list[QAInput], beams: int, max_tokens: int | None = None
                       ) -> list[list[Hypothesis]]:
        """Up to `beams` answers to each question, best first: one batched forward pass up to the decoder's memory,
        then a beam search per question (EM@10 in bench)."""
        memory, _ = self.memory(inputs)
        limit = self.config.max_answer_tokens if max_tokens is None else max_tokens
        return [self.decoder.beam(memory.row(i), beams, limit) for i in range(len(inputs))]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what `trainable_state_dict` saved; a missing or extra entry is an error (ValueError)."""
        expected = {n for n, p in self.named_parameters() if p.requires_grad}
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"trainable state mismatch: missing {missing[:5]}, unexpected {extra[:5]}")
        params = dict(self.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value.to(params[name].dtype))
