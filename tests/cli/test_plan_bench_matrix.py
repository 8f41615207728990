"""bench/planner.py --part matrix: cells per task x colours x phrasing, saved as they finish, resumed, absent colours."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pmoe_core.tabletop.lexicon import colour_words_in
from pmoe_core.tabletop.oracle import oracle_steps
from pmoe_core.tabletop.tasks import make_scene

BENCH = Path(__file__).resolve().parents[2] / "bench" / "planner.py"


@pytest.fixture(name="bench", scope="module")
def _bench():
    spec = importlib.util.spec_from_file_location("planner_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OraclePolicy:
    """Stands in for the matrix's model policy: the oracle's steps, so a cell's success is known (100%)."""

    def __init__(self, planner):
        self.calls = 0
        self.points: dict = {}
        self.plan_s: list[float] = []

    def __call__(self, desc):
        self.calls += 1
        return oracle_steps(desc)

    def mean_plan_s(self):
        return 0.0


def test_absent_colour_instruction_names_a_colour_no_object_has(bench):
    for seed in range(100000, 100010):
        desc = make_scene("stack-blocks", seed, "unseen")
        text, colour = bench.with_absent_colour(desc)
        assert colour not in {o.color for o in desc.objects}
        assert [c.name for c in colour_words_in(text)][0] in (colour, {"gray": "grey"}.get(colour))
    assert bench.with_absent_colour(make_scene("put-block-into-matching-bowl", 100000)) is None


def test_matrix_saves_cells_as_they_finish_and_resumes(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "MatrixPolicy", OraclePolicy)
    planner = SimpleNamespace(path=Path("oracle.pt"))
    out = tmp_path / "matrix.json"
    matrix = bench.MatrixFile(out, "oracle.pt", 2, resume=False, overwrite=False)
    bench.matrix_table(planner, ["stack-blocks"], 2, matrix)
    data = json.loads(out.read_text())
    assert [(c["split"], c["phrasing"]) for c in data["cells"]] == [
        ("seen", "template"), ("seen", "heldout"), ("unseen", "template"), ("unseen", "heldout")]
    assert all(c["success"] == 1.0 and c["oracle_success"] == 1.0 and c["episodes"] == 2 for c in data["cells"])
    absent = data["absent_colour"]
    assert [r["split"] for r in absent] == ["seen", "unseen"]
    assert all(r["refused"] + r["warned"] + r["silent"] == 2 and r["false_alarm"] == 0 for r in absent)
    printed = capsys.readouterr().out
    assert "| stack-blocks | unseen | heldout | 100% |" in printed

    with pytest.raises(Exception, match="already exists"):
        bench.MatrixFile(out, "oracle.pt", 2, resume=False, overwrite=False)
    with pytest.raises(SystemExit, match="--resume needs the same"):
        bench.MatrixFile(out, "other.pt", 2, resume=True, overwrite=False)
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: pytest.fail("re-ran a finished cell"))
    monkeypatch.setattr(bench, "check_input", lambda *a, **k: pytest.fail("re-ran a finished row"))
    resumed = bench.MatrixFile(out, "oracle.pt", 2, resume=True, overwrite=False)
    bench.matrix_table(planner, ["stack-blocks"], 2, resumed)
    assert "| stack-blocks | seen | template | 100% |" in capsys.readouterr().out


def test_asked_colour_table_counts_instructions_read_as_another_object(bench, capsys):
    """The diagnostic behind the held-out stack-blocks failures: with the packaged default, template instructions
    of these scenes read their colour nearest the named object; each row counts every episode."""
    bench.asked_colour_table(None, ["stack-blocks", "stack-blocks-of-same-color"], 4)
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| stack-blocks |")]
    assert [r[1] for r in rows] == ["template", "heldout"]  # the same-colour task names no colour: no row
    assert rows[0][2] == "0/4" and rows[1][2].endswith("/4")
