"""Pointcept-format checkpoints (PT-v3m1 = Pointcept's PTv3, PTMoE-v0m0 = the Point-MoE release) as pmoe models.

A Pointcept checkpoint is `{"state_dict": {"module.backbone....": tensor}}`. Everything the pmoe config needs is
read from the tensor shapes where the shapes say it (stages, blocks, channels, input width, MLP ratio, qkv bias,
experts and their width, RPE); what they cannot say (curve orders, patch sizes, heads per stage, top-k) comes from
`ImportOptions`, whose defaults are the reference configs'. Every key must be understood and every weight of the
pmoe model must come from one, with the shape the inferred config wants; otherwise the import is refused with one
line naming the key (a FormatError), before anything is written.

The imported config records the two reference behaviours pmoe's own presets do not have (docs/pointcept.md):
`unpool_cpe="skip"` (the first decoder block's cpe conv sees only the skip branch) and, on request,
`pool_shuffle="always"` (curve orders reshuffled at every pooling, in eval mode too). Inputs: `in_features=
"pointcept6"` (data/features.py builds [color/255, normal] indoors, [xyz, strength, 0, 0] outdoors), or
"pointcept6-signed" (color/127.5 - 1) with `ImportOptions.color="signed"`.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
import torch

from pmoe_core.errors import BadInput, FormatError, MissingFile

from .moe import MoEConfig
from .ptv3 import PTv3Config
from .serialization import CURVES

ARCHS = ("PT-v3m1", "PTMoE-v0m0")
HEAD_DIM = 16  # every published PTv3 / PTv3-L / Point-MoE config has 16 channels per attention head
REFERENCE_PATCH = 1024
# Buffers of the Point-MoE MoELayer that its forward never reads (usage statistics): accepted, not imported.
UNUSED_MOE_BUFFERS = ("gate.score_accumulator", "expert_token_counter")


@dataclass
class ImportOptions:
    """What the tensor shapes cannot tell. None = the reference default (see the field comments)."""

    order: tuple[str, ...] = CURVES
    enc_patch_size: tuple[int, ...] | None = None  # None: 1024 per stage (every reference config)
    dec_patch_size: tuple[int, ...] | None = None
    enc_num_head: tuple[int, ...] | None = None  # None: channels / 16 per stage
    dec_num_head: tuple[int, ...] | None = None
    top_k: int = 2  # Point-MoE release: topk=2
    aux_loss_alpha: float = 0.001  # Point-MoE release config; only matters when training the import further
    pool_shuffle: str = "train"  # "always" reproduces Pointcept's unseeded shuffle at every pooling (eval too)
    color: str = "unit"  # input colour: "unit" = color / 255 (Pointcept >= v1.6.0, the fixtures), "signed" =
    # color / 127.5 - 1 (Pointcept < v1.6.0 and the Point-MoE fork's NormalizeColor)
    drop_path: float = 0.3  # training-only knobs, as in the reference configs
    shuffle_orders: bool = True
    backend: str = "auto"


@dataclass
class PointceptImport:
    """A converted checkpoint: pmoe config + SegmentationModel state dict, ready for model_io / save_checkpoint."""

    arch: str  # "PT-v3m1" | "PTMoE-v0m0"
    wrapper: str  # "DefaultSegmentorV2" (seg_head) | "PPTMoE-v0m0" (proj_head + class_embedding)
    config: PTv3Config
    weights: dict[str, torch.Tensor]
    class_embeddings: torch.Tensor | None = None  # the PPT wrapper's class_embedding buffer (K, D)
    ignored: list[str] = field(default_factory=list)  # keys read and deliberately not imported
    source_keys: int = 0


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a Pointcept checkpoint, loaded with weights_only=True (nothing in the file is executed),
    with the DDP prefix `module.` removed."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile("Pointcept checkpoint not found", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if "Unsupported" in ln or "global" in ln.lower()]
        what = lines[0] if lines else "objects"
        raise FormatError(f"refused to load: not plain tensors/data ({what})", path) from None
    except (RuntimeError, EOFError, ValueError, IndexError, KeyError, TypeError, AttributeError, OverflowError,
            MemoryError, RecursionError) as err:
        first = (str(err).splitlines() or [""])[0].split(". ")[0]
        raise FormatError(f"not a readable checkpoint ({type(err).__name__}: {first})", path) from None
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if isinstance(payload, dict) and payload.get("format") == "pmoe-checkpoint":
        raise FormatError("this is already a pmoe checkpoint; nothing to import", path)
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise FormatError("not a Pointcept checkpoint (expected {'state_dict': {name: tensor}})", path)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


# ---------------------------------------------------------------------------------------------------------------
# Key mapping. Pointcept names -> pmoe SegmentationModel names; `{dec}` is pmoe's decoder index (deepest first).

_BLOCK_PARTS = {
    "cpe.0.weight": "cpe_conv.weight", "cpe.0.bias": "cpe_conv.bias",
    "cpe.1.weight": "cpe_linear.weight", "cpe.1.bias": "cpe_linear.bias",
    "cpe.2.weight": "cpe_norm.weight", "cpe.2.bias": "cpe_norm.bias",
    "norm1.0.weight": "norm1.weight", "norm1.0.bias": "norm1.bias",
    "norm2.0.weight": "norm2.weight", "norm2.0.bias": "norm2.bias",
    "attn.qkv.weight": "attn.qkv.weight", "attn.qkv.bias": "attn.qkv.bias",
    "attn.proj.weight": "attn.proj.weight", "attn.proj.bias": "attn.proj.bias",
    "attn.proj.gate.weight": "attn.proj.router.weight",
    "attn.rpe.rpe_table": "attn.rpe.table",
    "mlp.0.fc1.weight": "mlp.0.weight", "mlp.0.fc1.bias": "mlp.0.bias",
    "mlp.0.fc2.weight": "mlp.2.weight", "mlp.0.fc2.bias": "mlp.2.bias",
}
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_STEM = {"embedding.stem.conv.weight": "stem_conv.weight",
         **{f"embedding.stem.norm.{p}": f"stem_norm.{p}" for p in _BN}}
_DOWN = {"down.proj.weight": "resample.proj.weight", "down.proj.bias": "resample.proj.bias",
         **{f"down.norm.0.{p}": f"resample.norm.{p}" for p in _BN}}
_UP = {**{f"up.{b}.0.{p}": f"resample.{b}.0.{p}" for b in ("proj", "proj_skip") for p in ("weight", "bias")},
       **{f"up.{b}.1.{p}": f"resample.{b}.1.{p}" for b in ("proj", "proj_skip") for p in _BN}}

_STAGE_KEY = re.compile(r"backbone\.(enc|dec)\.(enc|dec)(\d+)\.(.+)")
_BLOCK_KEY = re.compile(r"block(\d+)\.(.+)")
_EXPERT_KEY = re.compile(r"attn\.proj\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight")


@dataclass
class _Parsed:
    """The reference keys sorted by where they go."""

    stem: dict[str, str] = field(default_factory=dict)  # reference key -> pmoe key, before the decoder renumbering
    enc: dict[int, dict[str, str]] = field(default_factory=dict)  # stage -> {ref key: pmoe suffix}
    dec: dict[int, dict[str, str]] = field(default_factory=dict)
    blocks: dict[tuple[str, int], set[int]] = field(default_factory=dict)  # (enc|dec, stage) -> block indices
    experts: dict[tuple[str, int, int], dict[tuple[int, str], str]] = field(default_factory=dict)
    head: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def _parse(state: dict[str, torch.Tensor], source: str | Path) -> _Parsed:
    parsed = _Parsed()
    for key in state:
        if key.startswith("backbone.embedding.") and key[len("backbone."):] in _STEM:
            parsed.stem[key] = _STEM[key[len("backbone."):]]
            continue
        if key in ("seg_head.weight", "seg_head.bias", "proj_head.weight", "proj_head.bias", "class_embedding",
                   "logit_scale"):
            parsed.head[key] = key
            continue
        m = _STAGE_KEY.fullmatch(key)
        if m is None or m.group(1) != m.group(2):
            raise FormatError(f"unknown key {key} (not a PT-v3m1 / PTMoE-v0m0 parameter)", source)
        part, stage, rest = m.group(1), int(m.group(3)), m.group(4)
        table = parsed.enc if part == "enc" else parsed.dec
        resample = _DOWN if part == "enc" else _UP
        if rest in resample:
            table.setdefault(stage, {})[key] = resample[rest]
            continue
        b = _BLOCK_KEY.fullmatch(rest)
        if b is None:
            raise FormatError(f"unknown key {key}", source)
        block, inner = int(b.group(1)), b.group(2)
        parsed.blocks.setdefault((part, stage), set()).add(block)
        if any(inner == f"attn.proj.{u}" for u in UNUSED_MOE_BUFFERS):
            parsed.ignored.append(key)
            continue
        e = _EXPERT_KEY.fullmatch(inner)
        if e is not None:
            parsed.experts.setdefault((part, stage, block), {})[(int(e.group(1)), e.group(2))] = key
            continue
        if inner not in _BLOCK_PARTS:
            raise FormatError(f"unknown key {key} (a block part pmoe does not have)", source)
        table.setdefault(stage, {})[key] = f"blocks.{block}.{_BLOCK_PARTS[inner]}"
    return parsed


def _stages(found: set[int], what: str, source: str | Path) -> int:
    if not found:
        raise FormatError(f"no {what} stages (backbone.{what}.{what}0...): an encoder-only or unknown checkpoint",
                          source)
    if found != set(range(len(found))):
        raise FormatError(f"{what} stages {sorted(found)} are not numbered 0..{len(found) - 1}", source)
    return len(found)


def _shape(state: dict[str, torch.Tensor], key: str, source: str | Path, ndim: int) -> tuple[int, ...]:
    if key not in state:
        raise FormatError(f"missing key {key}", source)
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise FormatError(f"{key} has shape {shape}, expected {ndim} dimensions", source)
    return shape


def _per_stage(value: tuple[int, ...] | None, n: int, default: list[int], name: str) -> tuple[int, ...]:
    if value is None:
        return tuple(default)
    if len(value) == 1:
        return tuple(value) * n
    if len(value) != n:
        raise BadInput(f"{name} needs 1 or {n} values, got {len(value)}")
    return tuple(value)


def infer_config(state: dict[str, torch.Tensor], options: ImportOptions,
                 source: str | Path) -> tuple[PTv3Config, _Parsed]:
    """The pmoe config of a Pointcept backbone state dict (see the module docstring for what comes from where)."""
    parsed = _parse(state, source)
    if not parsed.stem:
        raise FormatError("missing key backbone.embedding.stem.conv.weight (not a PTv3 backbone)", source)
    n_enc = _stages(set(parsed.enc) | {s for p, s in parsed.blocks if p == "enc"}, "enc", source)
    n_dec = _stages(set(parsed.dec) | {s for p, s in parsed.blocks if p == "dec"}, "dec", source)
    if n_dec != n_enc - 1:
        raise FormatError(f"{n_enc} encoder stages need {n_enc - 1} decoder stages, found {n_dec}", source)
    c_out, k1, k2, k3, c_in = _shape(state, "backbone.embedding.stem.conv.weight", source, 5)
    if (k1, k2, k3) != (5, 5, 5):
        raise FormatError(f"stem conv kernel is {(k1, k2, k3)}, PT-v3m1 has 5x5x5", source)

    def depth(part: str, s: int) -> int:
        blocks = parsed.blocks.get((part, s), set())
        if blocks != set(range(len(blocks))):
            raise FormatError(f"{part}{s} blocks {sorted(blocks)} are not numbered 0..{len(blocks) - 1}", source)
        return len(blocks)

    def channels(part: str, s: int) -> int:
        key = f"backbone.{part}.{part}{s}.block0.cpe.1.weight"
        if key not in state:  # a stage without blocks: its resampling projection says the width
            key = (f"backbone.enc.enc{s}.down.proj.weight" if part == "enc"
                   else f"backbone.dec.dec{s}.up.proj_skip.0.weight")
        return _shape(state, key, source, 2)[0]

    enc_depths = tuple(depth("enc", s) for s in range(n_enc))
    dec_depths = tuple(depth("dec", s) for s in range(n_dec))
    enc_channels = tuple(channels("enc", s) for s in range(n_enc))
    dec_channels = tuple(channels("dec", s) for s in range(n_dec))
    if enc_channels[0] != c_out:
        raise FormatError(f"stem has {c_out} output channels but enc0 has {enc_channels[0]}", source)

    ratios, qkv_bias, rpe_heads, moe_shapes, has_proj = set(), set(), {}, set(), set()
    for (part, s), blocks in parsed.blocks.items():
        c = (enc_channels if part == "enc" else dec_channels)[s]
        for i in blocks:
            prefix = f"backbone.{part}.{part}{s}.block{i}."
            ratios.add(_shape(state, prefix + "mlp.0.fc1.weight", source, 2)[0] / c)
            qkv_bias.add(prefix + "attn.qkv.bias" in state)
            if prefix + "attn.rpe.rpe_table" in state:
                rpe_heads[(part, s)] = _shape(state, prefix + "attn.rpe.rpe_table", source, 2)[1]
            is_moe = prefix + "attn.proj.gate.weight" in state
            has_proj.add(is_moe)
            if is_moe:
                e = _shape(state, prefix + "attn.proj.gate.weight", source, 2)[0]
                h = _shape(state, prefix + "attn.proj.experts.0.gate_proj.weight", source, 2)[0]
                moe_shapes.add((e, h / c))
    if len(ratios) > 1:
        raise FormatError(f"blocks use different MLP ratios {sorted(ratios)}; pmoe has one mlp_ratio", source)
    if len(qkv_bias) > 1:
        raise FormatError("some blocks have a qkv bias and others not; pmoe has one qkv_bias switch", source)
    if len(has_proj) > 1:
        raise FormatError("MoE projections in some blocks only (moe_layers / enable_enc / enable_dec); pmoe puts "
                          "MoE in every block or none", source)
    if len(moe_shapes) > 1:
        raise FormatError(f"MoE layers differ in experts / width {sorted(moe_shapes)}; pmoe has one MoE config",
                          source)
    if rpe_heads and len(rpe_heads) != sum(1 for d in (*enc_depths, *dec_depths) if d):
        raise FormatError("relative position encoding in some stages only", source)

    def heads(part: str, value: tuple[int, ...] | None, chans: tuple[int, ...]) -> tuple[int, ...]:
        default = [rpe_heads.get((part, s), max(1, c // HEAD_DIM)) for s, c in enumerate(chans)]
        return _per_stage(value, len(chans), default, f"--{part}-num-head")

    moe = None
    if moe_shapes and True in has_proj:
        (experts, ratio), = moe_shapes
        if not 1 <= options.top_k <= experts:
            raise BadInput(f"--top-k must be in 1..{experts} (the checkpoint has {experts} experts)")
        moe = MoEConfig(num_experts=experts, top_k=options.top_k, ratio=ratio, shared_expert=False,
                        aux_loss_alpha=options.aux_loss_alpha)
    if options.color not in ("unit", "signed"):
        raise BadInput(f"--color must be 'unit' (color / 255) or 'signed' (color / 127.5 - 1), got {options.color!r}")
    for name in options.order:
        if name not in CURVES:
            raise BadInput(f"unknown curve {name!r} in --order (known: {', '.join(CURVES)})")
    try:
        cfg = PTv3Config(
            in_channels=c_in,
            order=tuple(options.order),
            enc_depths=enc_depths,
            enc_channels=enc_channels,
            enc_num_head=heads("enc", options.enc_num_head, enc_channels),
            enc_patch_size=_per_stage(options.enc_patch_size, n_enc, [REFERENCE_PATCH] * n_enc, "--enc-patch-size"),
            dec_depths=dec_depths,
            dec_channels=dec_channels,
            dec_num_head=heads("dec", options.dec_num_head, dec_channels),
            dec_patch_size=_per_stage(options.dec_patch_size, n_dec, [REFERENCE_PATCH] * n_dec, "--dec-patch-size"),
            mlp_ratio=ratios.pop() if ratios else 4.0,
            qkv_bias=qkv_bias.pop() if qkv_bias else True,
            drop_path=options.drop_path,
            shuffle_orders=options.shuffle_orders,
            enable_rpe=bool(rpe_heads),
            block_norm="ln",
            moe=moe,
            moe_at="proj",
            backend=options.backend,
            in_features=(("pointcept6-signed" if options.color == "signed" else "pointcept6") if c_in == 6
                         else "pmoe7"),
            unpool_cpe="skip",
            pool_shuffle=options.pool_shuffle,
        )
    except ValueError as err:
        raise BadInput(f"the inferred config is not valid: {err}") from None
    if c_in not in (6, 7):
        raise FormatError(f"stem takes {c_in} input channels; pmoe can feed 6 (Pointcept) or 7 (pmoe)", source)
    return cfg, parsed


def convert(state: dict[str, torch.Tensor], options: ImportOptions | None = None,
            source: str | Path = "checkpoint") -> PointceptImport:
    """A Pointcept state dict (prefix `module.` already removed) as a pmoe config + SegmentationModel weights."""
    cfg, parsed = infer_config(state, options or ImportOptions(), source)
    n_dec = len(cfg.dec_depths)
    weights: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}  # pmoe key -> the reference key it came from (for messages)

    def put(pmoe_key: str, ref: str) -> None:
        tensor = state[ref]
        weights[pmoe_key] = tensor.float() if tensor.is_floating_point() else tensor
        origin[pmoe_key] = ref

    for ref, target in parsed.stem.items():
        put(f"backbone.{target}", ref)
    for s, table in parsed.enc.items():
        for ref, target in table.items():
            put(f"backbone.enc.{s}.{target}", ref)
    for s, table in parsed.dec.items():
        for ref, target in table.items():
            put(f"backbone.dec.{n_dec - 1 - s}.{target}", ref)
    for (part, s, block), found in parsed.experts.items():
        num = cfg.moe.num_experts if cfg.moe is not None else 0
        prefix = f"backbone.{part}.{part}{s}.block{block}.attn.proj.experts."
        for e in range(max(num, 1 + max(i for i, _ in found))):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                if (e, proj) not in found:
                    raise FormatError(f"missing key {prefix}{e}.{proj}.weight", source)
        if num == 0 or len(found) != 3 * num:
            raise FormatError(f"unexpected key {prefix}{num}.gate_proj.weight (the router has {num} experts)", source)
        index = s if part == "enc" else n_dec - 1 - s
        for proj, name in (("gate_proj", "w_gate"), ("up_proj", "w_up"), ("down_proj", "w_down")):
            stacked = torch.stack([state[found[(e, proj)]].float().T for e in range(num)])  # (E, in, out)
            key = f"backbone.{part}.{index}.blocks.{block}.attn.proj.{name}"
            weights[key], origin[key] = stacked.contiguous(), f"{prefix}*.{proj}.weight (transposed)"

    head, class_embeddings, wrapper = parsed.head, None, ""
    if "seg_head.weight" in head:
        if any(k in head for k in ("proj_head.weight", "class_embedding", "logit_scale")):
            raise FormatError("both seg_head and proj_head / class_embedding: an unknown wrapper", source)
        wrapper = "DefaultSegmentorV2"
        classes = _shape(state, "seg_head.weight", source, 2)
        if classes[1] != cfg.out_channels:
            raise FormatError(f"seg_head.weight has shape {classes}, the backbone gives {cfg.out_channels} "
                              f"channels", source)
        cfg = dataclasses.replace(cfg, head="linear", head_classes=classes[0])
        if "seg_head.bias" not in state:
            raise FormatError("missing key seg_head.bias", source)
        put("head.proj.weight", "seg_head.weight")
        put("head.proj.bias", "seg_head.bias")
    elif "proj_head.weight" in head:
        wrapper = "PPTMoE-v0m0"
        for key in ("proj_head.bias", "class_embedding", "logit_scale"):
            if key not in state:
                raise FormatError(f"missing key {key} (the PPTMoE-v0m0 wrapper has proj_head, class_embedding and "
                                  f"logit_scale)", source)
        text_dim, width = _shape(state, "proj_head.weight", source, 2)
        if width != cfg.out_channels:
            raise FormatError(f"proj_head.weight has shape {(text_dim, width)}, the backbone gives "
                              f"{cfg.out_channels} channels", source)
        class_embeddings = state["class_embedding"].float()
        if class_embeddings.ndim != 2 or class_embeddings.shape[1] != text_dim:
            raise FormatError(f"class_embedding has shape {tuple(class_embeddings.shape)}, expected (K, {text_dim})",
                              source)
        scale = state["logit_scale"].float()
        if scale.numel() != 1 or not math.isfinite(float(scale)):
            raise FormatError(f"logit_scale must be one finite number, has shape {tuple(scale.shape)}", source)
        cfg = dataclasses.replace(cfg, head_logit_scale=math.exp(float(scale)))  # stored as a log, as CLIP does
        put("head.proj.weight", "proj_head.weight")
        put("head.proj.bias", "proj_head.bias")
    elif head:
        raise FormatError(f"head key {sorted(head)[0]} without its wrapper's other keys", source)
    else:
        raise FormatError("no seg_head (DefaultSegmentorV2) and no proj_head (PPTMoE-v0m0): a bare backbone has no "
                          "head to evaluate with", source)
    _check_against_model(cfg, weights, origin, text_dim=None if class_embeddings is None else class_embeddings.shape[1],
                         source=source)
    arch = "PTMoE-v0m0" if cfg.moe is not None else "PT-v3m1"
    return PointceptImport(arch, wrapper, cfg, weights, class_embeddings, sorted(parsed.ignored), len(state))


_INVERSE = {"stem": {v: k for k, v in _STEM.items()}, "block": {v: k for k, v in _BLOCK_PARTS.items()},
            "enc": {v: k for k, v in _DOWN.items()}, "dec": {v: k for k, v in _UP.items()}}
_EXPERT_WEIGHTS = {"w_gate": "gate_proj", "w_up": "up_proj", "w_down": "down_proj"}


def reference_key(pmoe_key: str, n_dec: int) -> str:
    """The Pointcept name of a pmoe SegmentationModel weight (without `module.`), for messages and round trips."""
    if pmoe_key.startswith("head."):
        return "seg_head / proj_head." + pmoe_key.rsplit(".", 1)[-1]
    key = pmoe_key[len("backbone."):]
    if key in _INVERSE["stem"]:
        return "backbone." + _INVERSE["stem"][key]
    m = re.fullmatch(r"(enc|dec)\.(\d+)\.(.+)", key)
    if m is None:
        return pmoe_key
    part, index, rest = m.group(1), int(m.group(2)), m.group(3)
    prefix = f"backbone.{part}.{part}{index if part == 'enc' else n_dec - 1 - index}."
    if rest in _INVERSE[part]:
        return prefix + _INVERSE[part][rest]
    b = re.fullmatch(r"blocks\.(\d+)\.(.+)", rest)
    if b is None:
        return pmoe_key
    inner = b.group(2)
    if inner.startswith("attn.proj.") and inner.split(".")[-1] in _EXPERT_WEIGHTS:
        return prefix + f"block{b.group(1)}.attn.proj.experts.*.{_EXPERT_WEIGHTS[inner.split('.')[-1]]}.weight"
    return prefix + f"block{b.group(1)}." + _INVERSE["block"].get(inner, inner)


def _check_against_model(cfg: PTv3Config, weights: dict[str, torch.Tensor], origin: dict[str, str],
                         text_dim: int | None, source: str | Path) -> None:
    """Every pmoe parameter present with its shape, nothing extra (built on the meta device: no memory)."""
    from .presets import build_model

    try:
        with torch.device("meta"):
            model = build_model(cfg, text_dim=text_dim, backend="torch")
    except ValueError as err:  # e.g. --enc-num-head that does not divide a stage's channels
        raise BadInput(f"the inferred config does not build a model: {err}") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise FormatError(f"missing key {reference_key(missing[0], len(cfg.dec_depths))}", source)
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise FormatError(f"unexpected key {origin[extra[0]]} under the inferred config", source)
    for key, shape in expected.items():
        if tuple(weights[key].shape) != shape:
            raise FormatError(f"shape mismatch: {origin[key]} is {tuple(weights[key].shape)}, the inferred config "
                              f"needs {shape}", source)


__all__ = ["ARCHS", "ImportOptions", "PointceptImport", "read_state_dict", "infer_config", "convert", "reference_key"]
