"""Real processes: a writer SIGKILLed mid-write leaves a store that checks clean and resumes; a second writer
process is refused while the first holds the lock."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import zarr
from store_fakes import assert_same_scene, embedding_cache, make_scene  # noqa: F401

from pmoe_core.errors import StoreError
from pmoe_core.store import StoreWriter, check_store, open_store, store_path

pytestmark = pytest.mark.usefixtures("embedding_cache")

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import sys
    from pmoe_core.store import StoreWriter
    from scenes import scene_for

    url, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with StoreWriter.open(url, "scannet") as w:
        print("open", flush=True)
        if stop < 0:
            sys.stdin.read()  # hold the lock until the parent closes our stdin
        for i in range(start, stop):
            w.append("train", scene_for(i))
            print(i, flush=True)
""")

SCENES = textwrap.dedent("""
    from store_fakes import make_scene

    def scene_for(i):
        # big enough that most of the loop's time is spent inside a commit
        return make_scene(f"k{i:04d}", 40_000 + (i * 7919) % 30_000)
""")


def _spawn(tmp_path: Path, *args: object) -> subprocess.Popen:
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "scenes.py").write_text(SCENES)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(Path(__file__).parent), str(REPO)]))
    return subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), *map(str, args)], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _scene_for(i: int):
    return make_scene(f"k{i:04d}", 40_000 + (i * 7919) % 30_000)


@pytest.mark.slow
def test_sigkilled_writer_leaves_a_resumable_store(tmp_path):
    url = store_path(str(tmp_path), "scannet")
    rng = random.Random(1234)
    target, tails = 0, 0
    for cycle in range(3):
        proc = _spawn(tmp_path, url, target, 10_000)
        assert proc.stdout.readline().strip() == "open", proc.stderr.read()
        for _ in range(3):  # let it commit three scenes, then kill it at a random moment of the next ones
            line = proc.stdout.readline().strip()
            assert line.isdigit(), proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close(), proc.stderr.close(), proc.stdin.close()

        assert check_store(url) == []  # the dead writer's tail is invisible to readers and checks
        reader = open_store(url)
        names = reader.names("train")
        raw = zarr.open_group(url, mode="r")["train"]
        tails += raw["coord"].shape[0] > reader.num_points("train") or raw["names"].shape[0] > len(names)
        assert names == [f"k{i:04d}" for i in range(len(names))]  # a contiguous prefix: commits are in order
        assert len(names) >= target + 3
        for i in rng.sample(range(len(names)), 3) + [len(names) - 1]:
            assert_same_scene(_scene_for(i), reader.read("train", i))
        target = len(names)

    assert tails >= 1  # at least one kill landed inside a commit (in practice nearly all do)
    taken_over = []
    with StoreWriter.open(url, "scannet", warn=taken_over.append) as w:  # the dead pid's lock is stale
        assert w.committed("train") == {f"k{i:04d}" for i in range(target)}
        for i in range(target, target + 2):
            w.append("train", _scene_for(i))
    assert len(taken_over) == 1 and "stale writer lock" in taken_over[0]
    assert check_store(url) == []
    reader = open_store(url)
    assert reader.num_scenes("train") == target + 2
    for i in (0, target - 1, target, target + 1):
        assert_same_scene(_scene_for(i), reader.read("train", i))


def test_second_writer_process_is_refused(tmp_path):
    url = store_path(str(tmp_path), "scannet")
    proc = _spawn(tmp_path, url, 0, -1)
    try:
        assert proc.stdout.readline().strip() == "open", proc.stderr.read()
        with pytest.raises(StoreError, match=f"being written by pid {proc.pid} on "):
            StoreWriter.open(url, "scannet")
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()
    StoreWriter.open(url, "scannet").close()  # released on exit
