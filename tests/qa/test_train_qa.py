"""`train_qa`: a tiny config trains for a few steps on tabletop and room questions (dense, then upcycled), its colour
head learns from the lexicon in the dense phase only, it resumes exactly, refuses a changed recipe, exports a slim
copy, and loads back; wrong files (an older design among them) are one-line errors."""

from __future__ import annotations

import pytest
import torch

from pmoe_core.engine.checkpoint import load_checkpoint, save_checkpoint
from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.qa.data import load_text_states
from pmoe_core.qa.model import QAModelConfig
from pmoe_core.qa.train import QATrainConfig, export_checkpoint, load_qa_model, train_qa


@pytest.fixture(scope="module")
def features():
    return TextFeatures(QAModelConfig.tiny().text)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("qa-cache"))


def _cfg(out, cache, **kw) -> QATrainConfig:
    base = {"out": str(out), "tabletop_scenes": 4, "rooms": 6, "steps": 4, "dense_steps": 2, "batch_size": 4,
            "warmup": 1, "preset": "tiny", "cache": cache, "tensorboard": False, "ckpt_every": 100,
            "command": "pmoe qa train --test", "lexicon_names": 24}
    return QATrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def straight(tmp_path_factory, cache, features):
    return train_qa(_cfg(tmp_path_factory.mktemp("straight"), cache), features=features)


def test_tiny_training_runs_and_records_itself(straight):
    assert straight.steps == 4 and not straight.interrupted
    assert all(torch.isfinite(torch.tensor(straight.losses)))
    meta = load_checkpoint(straight.checkpoint)["meta"]
    assert meta["kind"] == "qa" and meta["complete"] and meta["upcycled"] and meta["stage"] == 2
    assert meta["command"] == "pmoe qa train --test"
    assert meta["train_args"]["rooms"] == 6 and meta["config"]["scene_tokens"] is True
    log = (straight.run_dir / "log.jsonl").read_text()
    assert '"questions"' in log and '"event": "end"' in log


def test_training_set_has_both_scales(cache):
    from pmoe_core.qa.data import load_set

    data = load_set(_cfg("unused", cache).data_spec(QAModelConfig.tiny()), cache)
    kinds = {s.kind for s in data.scenes.values()}
    assert kinds == {"tabletop", "room"}
    assert any(i.situation and i.position for i in data.items)  # situated room questions carry the agent
    assert all(s.points.shape == (QAModelConfig.tiny().num_points, 7) for s in data.scenes.values())


def test_resume_is_exact(tmp_path, cache, features, straight):
    """Stopped at the dense->MoE switch and resumed, the run ends with the straight run's weights, bit for bit."""
    cfg = _cfg(tmp_path / "run", cache, stop_at=2)
    first = train_qa(cfg, features=features)
    assert first.interrupted and first.steps == 2
    assert not load_checkpoint(first.checkpoint)["meta"]["upcycled"]
    resumed = train_qa(_cfg(tmp_path / "run", cache, resume=True), features=features)
    assert resumed.steps == 4 and resumed.losses == straight.losses[2:]
    a = load_checkpoint(straight.checkpoint)["model"]
    b = load_checkpoint(resumed.checkpoint)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_colour_head_learns_in_the_dense_phase_and_is_frozen_after(tmp_path, cache, features, straight):
    """Steps 1-2 are dense (the head moves with the lexicon loss), steps 3-4 upcycled (it stays put, the rest moves)."""
    one = train_qa(_cfg(tmp_path / "one", cache, stop_at=1), features=features)
    two = train_qa(_cfg(tmp_path / "two", cache, stop_at=2), features=features)
    w1, w2, w4 = (load_checkpoint(r.checkpoint)["model"] for r in (one, two, straight))
    colour = [k for k in w4 if k.startswith("colour.")]
    assert colour and all(k in w1 and k in w2 for k in colour)
    assert any(not torch.equal(w1[k], w2[k]) for k in colour)
    assert all(torch.equal(w2[k], w4[k]) for k in colour)
    assert not torch.equal(w2["object_colour.0.weight"], w4["object_colour.0.weight"])
    log = (straight.run_dir / "log.jsonl").read_text()
    assert '"event": "grounding"' in log and '"held_out_nearest"' in log and '"colour"' in log


def test_frozen_colour_head_is_not_trained(straight, features):
    model = load_qa_model(straight.checkpoint, features).model
    assert model.colour_frozen
    assert not any(p is q for p in model.training_parameters() for q in model.colour.parameters())
    with pytest.raises(ValueError, match="frozen"):
        model.loss([], [], ["the red block"], torch.zeros(1, 3))


def test_resume_refuses_a_changed_recipe(tmp_path, cache, features):
    train_qa(_cfg(tmp_path / "run", cache, stop_at=1), features=features)
    with pytest.raises(BadInput, match="different lr"):
        train_qa(_cfg(tmp_path / "run", cache, resume=True, lr=5e-4), features=features)


def test_export_is_slim_and_loads(tmp_path, straight, features):
    slim = export_checkpoint(straight.checkpoint, tmp_path / "slim.pt")
    payload = load_checkpoint(slim)
    assert set(payload) == {"format", "version", "meta", "model"}
    assert all(v.dtype == torch.float16 for v in payload["model"].values())
    assert slim.stat().st_size < straight.checkpoint.stat().st_size
    loaded = load_qa_model(slim, features)
    assert loaded.model.trunk.is_moe and not loaded.model.training
    assert loaded.meta["command"] == "pmoe qa train --test"
    full = load_qa_model(straight.checkpoint, features).model
    texts = ["is there a red block?", "what color is the big block?"]
    for name, value in full.trainable_state_dict().items():  # every weight, the colour head's too, round-trips
        torch.testing.assert_close(loaded.model.trainable_state_dict()[name], value.half().float())
    torch.testing.assert_close(loaded.model.asked_colour(loaded.model.text_batch(texts)).lab,
                               full.asked_colour(full.text_batch(texts)).lab, atol=2e-3, rtol=0)


def test_an_older_design_is_one_clear_error(tmp_path, straight, features):
    """A checkpoint from before colour grounding (no design mark, no colour head) is refused in one line that says
    to retrain, not a weights mismatch."""
    payload = load_checkpoint(straight.checkpoint)
    meta = {k: v for k, v in payload["meta"].items() if k not in ("design", "pmoe_version")}
    model = {k: v for k, v in payload["model"].items() if not k.startswith(("colour.", "object_colour."))}
    old = save_checkpoint(tmp_path / "old.pt", meta, {"model": model})
    with pytest.raises(FormatError, match="older design.*pmoe qa train") as err:
        load_qa_model(old, features)
    assert "old.pt" in str(err.value) and "\n" not in str(err.value)


def test_wrong_files_are_one_line_errors(tmp_path, features):
    with pytest.raises(MissingFile):
        load_qa_model(tmp_path / "absent.pt", features)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(FormatError, match="junk.pt"):
        load_qa_model(junk, features)
    from pmoe_core.planner.policy import DEFAULT_CHECKPOINT as PLANNER_DEFAULT

    with pytest.raises(FormatError, match="not a QA checkpoint"):
        load_qa_model(PLANNER_DEFAULT, features)


def test_bad_recipes(tmp_path, cache):
    with pytest.raises(BadInput):
        train_qa(_cfg(tmp_path, cache, steps=0))
    with pytest.raises(BadInput, match="preset"):
        train_qa(_cfg(tmp_path, cache, preset="huge"))


def test_bench_scores_em10_of_ranked_answers_and_majority_top_ten():
    from pmoe_core.qa.evaluate import (
        majority_answers,
        majority_predictions,
        scores_by_type,
    )
    from pmoe_core.qa.items import QAItem

    train = [QAItem(str(k), "s", "q?", (a,), question_type="count") for k, a in enumerate("aaabbc")]
    assert majority_answers(train) == {"count": ["a"]}
    assert majority_answers(train, 2) == {"count": ["a", "b"]}
    items = [QAItem("0", "s", "q?", ("b",), question_type="count"), QAItem("1", "s", "q?", ("c",),
                                                                             question_type="count")]
    guesses = majority_predictions(majority_answers(train, 10), items)
    scores = scores_by_type(items, guesses, guesses)
    assert scores["count"].em1 == 0.0 and scores["count"].em10 == 100.0  # both are among the ten most common
    assert scores_by_type(items, guesses)["all"].em10 is None and "em10" not in scores_by_type(items, guesses)[
        "all"].to_json()


def test_text_states_are_cached_in_a_folder_that_does_not_exist_yet(features, tmp_path):
    """`pmoe qa eval` on a fresh machine: the cache folder is made, not a FileNotFoundError."""
    cache = tmp_path / "fresh" / "qa"
    load_text_states(features, ["what colour is the block?"], cache)
    assert len(list(cache.glob("text-*.npz"))) == 1
