"""`pmoe qa train --scanqa / --sqa3d-dir` on benchmark-format files written from synthetic rooms: a tiny run on the
files alone learns (its answer loss falls) and records the files' hashes, `pmoe qa eval` reads its checkpoint, the
SQA3D agents reach the model in the cloud's frame, a resume refuses a changed file (and accepts a moved one), and
bad input is refused in one line before any training."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest
from cli_errors import one_line_error
from typer.testing import CliRunner

from pmoe_cli.app import app
from pmoe_core.convert import convert
from pmoe_core.engine.checkpoint import load_checkpoint
from pmoe_core.errors import BadInput
from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.qa.benchmark_eval import scene_inputs
from pmoe_core.qa.benchmark_sets import (
    TrainingFiles,
    load_file_set,
    read_training_files,
)
from pmoe_core.qa.model import QAModelConfig, agent_features, facing_xy
from pmoe_core.qa.readers import (
    read_scanqa,
    read_sqa3d,
    scanqa_path,
    sqa3d_paths,
    write_scanqa,
    write_sqa3d,
)
from pmoe_core.qa.sqa3d_frame import in_scene_frame
from pmoe_core.qa.synthetic_rooms import room_qa, write_room_sets
from pmoe_core.qa.train import QATrainConfig, train_qa
from pmoe_core.sources.synthetic_indoor import write_scannet

runner = CliRunner()
TINY = QAModelConfig.tiny()


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    """A raw ScanNet folder (random axisAlignment per scene), its questions, and those written as the train split of
    both benchmarks (situated ones as SQA3D, agents in SQA3D's frame; the rest as ScanQA)."""
    root = tmp_path_factory.mktemp("rooms")
    write_scannet(root, scenes=4, seed=5)
    files = tmp_path_factory.mktemp("files")
    items = room_qa(root)
    write_room_sets(items, files, "train", root)
    return root, files, items


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("qa-cache"))


@pytest.fixture(scope="module")
def features():
    return TextFeatures(TINY.text)


def _cfg(out, cache, root, files, **kw) -> QATrainConfig:
    base = {"out": str(out), "tabletop_scenes": 0, "rooms": 0, "steps": 30, "dense_steps": 5, "batch_size": 8,
            "warmup": 2, "preset": "tiny", "cache": cache, "tensorboard": False, "lexicon_names": 24,
            "log_every": 1, "scanqa": str(scanqa_path(files, "train")), "sqa3d_dir": str(files),
            "scenes": str(root)}
    return QATrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(rooms, cache, features, tmp_path_factory):
    root, files, _ = rooms
    return train_qa(_cfg(tmp_path_factory.mktemp("run"), cache, root, files), features=features)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_is_listed_with_the_file_options():
    result = runner.invoke(app, ["qa", "train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for word in ("--scanqa", "--sqa3d-dir", "--sqa3d-split", "--scenes", "--scannet-raw"):
        assert word in result.output


def test_training_on_the_files_alone_learns_and_records_them(rooms, trained):
    root, files, _ = rooms
    scanqa, sqa3d = scanqa_path(files, "train"), sqa3d_paths(files, "train")
    expected = len(read_scanqa(scanqa)) + len(read_sqa3d(*sqa3d))
    assert trained.steps == 30 and not trained.interrupted
    assert trained.file_questions == expected and trained.agents_outside == []
    events = [json.loads(line) for line in (trained.run_dir / "log.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["event"] == "start")
    assert start["questions"] == start["file_questions"] == expected  # nothing synthetic was mixed in
    lm = [e["lm"] for e in events if e["event"] == "train"]
    assert len(lm) == 30 and np.mean(lm[-5:]) < 0.6 * np.mean(lm[:5])  # the answers' token loss falls
    meta = load_checkpoint(trained.checkpoint)["meta"]
    recorded = meta["train_args"]["data_files"]
    assert [r["path"] for r in recorded] == [str(p.resolve()) for p in (scanqa, *sqa3d)]
    assert [r["sha256"] for r in recorded] == [_sha(p) for p in (scanqa, *sqa3d)]
    assert [r["bytes"] for r in recorded] == [p.stat().st_size for p in (scanqa, *sqa3d)]
    assert meta["train_args"]["scenes"] == str(root) and meta["train_args"]["rooms"] == 0


def test_eval_reads_the_checkpoint(rooms, trained, tmp_path):
    root, files, _ = rooms
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["qa", "eval", "--scanqa", str(scanqa_path(files, "train")), "--scenes", str(root),
                                 "--checkpoint", str(trained.checkpoint), "--json", str(out)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["checkpoint"] == str(trained.checkpoint) and data["checkpoint_step"] == 30
    assert data["trained_on"] == load_checkpoint(trained.checkpoint)["meta"]["train_args"]["data_files"]
    assert data["questions"] == len(read_scanqa(scanqa_path(files, "train")))


def test_sqa3d_agents_reach_the_model_in_the_cloud_frame(rooms, cache):
    """The training set's agents equal the generator's (cloud-frame) poses and `in_scene_frame` of the file's, not
    the file's own SQA3D-frame numbers; each scene's input is `scene_inputs`' (what `qa eval` computes)."""
    root, files, items = rooms
    spec = TrainingFiles(sqa3d_dir=str(files), scenes=str(root))
    file_set = load_file_set(read_training_files(spec), spec, TINY.num_points, TINY.max_objects, cache)
    data = file_set.data
    in_file = read_sqa3d(*sqa3d_paths(files, "train"))
    placed = {i.qid: i for i in in_scene_frame(in_file, root)}
    generated = {i.qid: i for i in items if i.situation is not None}
    assert [i.qid for i in data.items] == [i.qid for i in in_file] and len(data) == len(generated)
    eval_scenes = scene_inputs(in_file, root, TINY.num_points, TINY.max_objects).scenes
    assert set(data.scenes) == {"files/" + s for s in eval_scenes}
    for item, model_input in zip(data.items, data.inputs(range(len(data)))):
        want = generated[item.qid]
        assert np.allclose(item.position, want.position, atol=1e-4)
        assert np.allclose(facing_xy(item.rotation), facing_xy(want.rotation), atol=1e-4)
        scene = eval_scenes[want.scene]
        assert np.array_equal(model_input.scene.points, scene.points)
        expect = agent_features(scene, placed[item.qid].position, placed[item.qid].rotation)
        assert np.allclose(model_input.agent, expect, atol=1e-5)
    assert not np.allclose([i.position for i in data.items], [i.position for i in in_file], atol=0.1)
    kinds = data.targets(range(len(data)), TINY.max_objects).kinds
    assert (kinds == -1).all()  # no proposal annotation for the files' scenes


def test_resume_refuses_a_changed_file_and_accepts_a_moved_one(rooms, cache, features, tmp_path):
    root, files, _ = rooms
    mine = tmp_path / "files"
    shutil.copytree(files, mine)
    cfg = {"steps": 4, "dense_steps": 2, "batch_size": 4}
    first = train_qa(_cfg(tmp_path / "run", cache, root, mine, stop_at=2, **cfg), features=features)
    assert first.interrupted and first.steps == 2
    moved = tmp_path / "moved"
    shutil.copytree(mine, moved)
    path = scanqa_path(mine, "train")
    items = read_scanqa(path)
    write_scanqa(path, [dataclasses.replace(items[0], answers=("something else",)), *items[1:]], overwrite=True)
    with pytest.raises(BadInput, match="other benchmark files: ScanQA_v1.0_train.json") as err:
        train_qa(_cfg(tmp_path / "run", cache, root, mine, resume=True, **cfg), features=features)
    assert _sha(path)[:12] in str(err.value)
    resumed = train_qa(_cfg(tmp_path / "run", cache, root, moved, resume=True, **cfg), features=features)
    assert resumed.steps == 4 and not resumed.interrupted


def test_resume_refuses_other_clouds_under_the_same_scene_ids(rooms, cache, features, tmp_path):
    """The files' hashes cannot tell that `--scenes` now holds other clouds; the scene inputs' digest can."""
    root, files, _ = rooms
    cfg = {"steps": 4, "dense_steps": 2, "batch_size": 4}
    first = train_qa(_cfg(tmp_path / "run", cache, root, files, stop_at=2, **cfg), features=features)
    saved = load_checkpoint(first.checkpoint)["meta"]["train_args"]["scenes_sha256"]
    assert len(saved) == 64
    other = tmp_path / "other"
    write_scannet(other, scenes=4, seed=6)  # the same scene ids, other rooms
    with pytest.raises(BadInput, match="other scenes: the clouds under .*other"):
        train_qa(_cfg(tmp_path / "run", cache, other, files, resume=True, **cfg), features=features)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    resumed = train_qa(_cfg(tmp_path / "run", cache, copy, files, resume=True, **cfg), features=features)
    assert resumed.steps == 4 and not resumed.interrupted


@pytest.fixture(scope="module")
def store(rooms, tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    convert("scannet", rooms[0], str(out), workers=1)
    return out / "scannet.zarr"


def test_one_line_errors_before_training(rooms, store, tmp_path, capsys, monkeypatch):
    root, files, _ = rooms
    monkeypatch.setenv("PMOE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    base = ["qa", "train", "--tabletop-scenes", "0", "--rooms", "0", "--preset", "tiny", "--steps", "2",
            "--out", str(out)]
    scanqa = str(scanqa_path(files, "train"))

    def refused(*args: str) -> str:
        return one_line_error(capsys, [*base, *args])

    assert "nothing to train on" in refused()
    assert "--scenes ROOT is needed" in refused("--scanqa", scanqa)
    assert "--scenes belongs to benchmark files" in refused("--scenes", str(root))
    assert "--sqa3d-split picks an SQA3D split" in refused("--scanqa", scanqa, "--sqa3d-split", "val",
                                                            "--scenes", str(root))
    missing = tmp_path / "ScanQA_v1.0_nope.json"
    assert str(missing) in refused("--scanqa", str(missing), "--scenes", str(root))
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    assert "broken.json: not valid JSON" in refused("--scanqa", str(broken), "--scenes", str(root))
    unanswered = tmp_path / "test.json"
    unanswered.write_text(json.dumps([{"scene_id": "scene0000_00", "question_id": "q1", "question": "What is it?"}]))
    assert "have no reference answer" in refused("--scanqa", str(unanswered), "--scenes", str(root))
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps([{"scene_id": "scene0999_00", "question_id": "q1", "question": "What is it?",
                                      "answers": ["chair"]}]))
    err = refused("--scanqa", str(elsewhere), "--scenes", str(store))
    assert str(store) in err and "scene0999_00" in err
    err = refused("--sqa3d-dir", str(files), "--scenes", str(store))
    assert "--scannet-raw" in err and "v1_balanced_sqa_annotations_train_scannetv2.json" in err
    assert "unknown SQA3D split" in refused("--sqa3d-dir", str(files), "--sqa3d-split", "dev", "--scenes", str(root))
    assert not out.exists()  # nothing was started


def test_the_command_trains_on_a_store_with_agents_placed_through_the_raw_folder(rooms, store, tmp_path):
    """In the default QA cache, as the other `qa train` command tests: the full lexicon's text states are there."""
    root, files, _ = rooms
    out = tmp_path / "run"
    result = runner.invoke(app, ["qa", "train", "--tabletop-scenes", "0", "--rooms", "0", "--preset", "tiny",
                                 "--steps", "2", "--dense-steps", "1", "--batch-size", "4", "--out", str(out),
                                 "--sqa3d-dir", str(files), "--sqa3d-split", "train", "--scenes", str(store),
                                 "--scannet-raw", str(root)])
    assert result.exit_code == 0, result.output
    count = len(read_sqa3d(*sqa3d_paths(files, "train")))
    assert f"{count} questions from the benchmark files" in result.output and "warning" not in result.output
    meta = load_checkpoint(out / "qa.pt")["meta"]
    assert meta["train_args"]["scannet_raw"] == str(root) and meta["train_args"]["sqa3d_split"] == "train"
    assert [r["sha256"] for r in meta["train_args"]["data_files"]] == [_sha(p) for p in sqa3d_paths(files, "train")]


def test_files_join_the_synthetic_mix(rooms, cache, features, tmp_path):
    """Synthetic rooms carry ScanNet's ids too: the files' scenes stay apart (`files/<id>`), both sets train."""
    from pmoe_core.qa.data import build_items

    root, files, _ = rooms
    cfg = _cfg(tmp_path / "run", cache, root, files, tabletop_scenes=2, rooms=3, steps=2, dense_steps=1,
               batch_size=4)
    result = train_qa(cfg, features=features)
    synthetic = build_items(cfg.data_spec(TINY), cache)
    start = json.loads((result.run_dir / "log.jsonl").read_text().splitlines()[0])
    assert start["questions"] == len(synthetic) + result.file_questions and result.file_questions > 0
    files_scenes = {i.scene for i in read_scanqa(scanqa_path(files, "train"))}
    files_scenes |= {i.scene for i in read_sqa3d(*sqa3d_paths(files, "train"))}
    synthetic_scenes = {i.scene for i in synthetic}
    assert synthetic_scenes & files_scenes  # the same ids ...
    assert start["scenes"] == len(synthetic_scenes) + len(files_scenes)  # ... two inputs


def test_agents_outside_their_scene_are_counted(rooms, cache, features, tmp_path):
    root, files, _ = rooms
    far = [dataclasses.replace(i, position=(i.position[0] + 50.0, *i.position[1:]))
           for i in read_sqa3d(*sqa3d_paths(files, "train"))[:3]]
    (tmp_path / "sqa").mkdir()
    write_sqa3d(*sqa3d_paths(tmp_path / "sqa", "train"), far)
    result = train_qa(_cfg(tmp_path / "run", cache, root, tmp_path / "sqa", scanqa=None, steps=2, dense_steps=1,
                           batch_size=2), features=features)
    assert result.agents_outside == [i.qid for i in far] and result.file_questions == 3
