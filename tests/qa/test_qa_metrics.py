"""QA metrics against their definitions, on cases small enough to work out by hand."""

from __future__ import annotations

import math
import os
import shutil

import pytest

from pmoe_core.errors import BadInput
from pmoe_core.qa import metrics
from pmoe_core.qa.items import QAItem
from pmoe_core.qa.metrics import em_by_type, exact_match, scanqa_scores, simple_tokens, sqa3d_scores

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap's PTB tokenizer and METEOR "
                                                                        "need Java (none on PATH)")


def _items(*answers, types=None):
    types = types or ["other"] * len(answers)
    return [QAItem(str(k), "scene0000_00", "q?", tuple(a), t) for k, (a, t) in enumerate(zip(answers, types))]


def test_exact_match_uses_every_reference_and_compares_strings_as_they_are():
    assert exact_match("cabinet", ["brown cabinet", "cabinet"])
    assert not exact_match("Cabinet", ["cabinet"]) and not exact_match("cabinet.", ["cabinet"])


def test_em_at_1_and_at_10(monkeypatch):
    monkeypatch.setattr(metrics, "java_path", lambda: None)  # EM needs no Java; keep the test fast
    items = _items(["two", "2"], ["red"], ["chair"], ["sofa"])
    preds = {"0": ["2", "three"], "1": ["blue", "red"], "2": ["table"] + ["x"] * 9 + ["chair"], "3": "sofa"}
    scores = scanqa_scores(items, preds, meteor=False)
    assert scores.em1 == 50.0  # "2" (second reference) and "sofa"
    assert scores.em10 == 75.0  # + "red" at rank 2; "chair" at rank 11 is beyond 10


def test_em_at_10_is_none_without_beams(monkeypatch):
    monkeypatch.setattr(metrics, "java_path", lambda: None)
    scores = scanqa_scores(_items(["a b"]), {"0": "a b"}, meteor=False)
    assert scores.em10 is None and scores.em1 == 100.0


@needs_java
def test_bleu_of_an_exact_match_is_100_and_meteor_orders_answers():
    items = _items(["the brown wooden cabinet"], ["a red chair by the door"])
    exact = scanqa_scores(items, {"0": "the brown wooden cabinet", "1": "a red chair by the door"})
    assert exact.tokenizer == metrics.PTB and exact.notes == ()
    assert all(b == pytest.approx(100.0, abs=1e-6) for b in exact.bleu)
    assert exact.rouge_l == pytest.approx(100.0)
    partial = scanqa_scores(items, {"0": "the brown cabinet", "1": "a blue sofa"})
    unrelated = scanqa_scores(items, {"0": "yes", "1": "no"})
    assert exact.meteor > partial.meteor > unrelated.meteor == 0.0


@needs_java
def test_ptb_tokenizer_lowercases_and_drops_punctuation_before_caption_metrics():
    scores = scanqa_scores(_items(["red chair"], ["two"]), {"0": "Red chair.", "1": "two"})
    assert scores.em1 == 50.0  # EM compares raw strings
    assert scores.bleu[0] == pytest.approx(100.0, abs=1e-6) and scores.rouge_l == pytest.approx(100.0)


def test_rouge_l_from_the_longest_common_subsequence(monkeypatch):
    monkeypatch.setattr(metrics, "java_path", lambda: None)
    # LCS("red chair", "the red chair by the door") = 2 words: precision 2/2, recall 2/6; pycocoevalcap's beta 1.2.
    p, r, beta = 1.0, 2 / 6, 1.2
    expected = (1 + beta**2) * p * r / (r + beta**2 * p)
    scores = scanqa_scores(_items(["the red chair by the door"]), {"0": "red chair"}, meteor=False)
    assert scores.rouge_l == pytest.approx(100 * expected)


def test_bleu_1_clipped_precision_with_brevity_penalty(monkeypatch):
    monkeypatch.setattr(metrics, "java_path", lambda: None)
    # hypothesis "chair chair table" vs "the chair near the table": clipped unigram matches 2 of 3; the hypothesis
    # (3 words) is shorter than the reference (5): brevity penalty exp(1 - 5/3).
    scores = scanqa_scores(_items(["the chair near the table"]), {"0": "chair chair table"}, meteor=False)
    assert scores.bleu[0] == pytest.approx(100 * (2 / 3) * math.exp(1 - 5 / 3), rel=1e-6)


def test_cider_of_identical_corpora(monkeypatch):
    monkeypatch.setattr(metrics, "java_path", lambda: None)
    # CIDEr-D: 10 x mean over n = 1..4 of the tf-idf cosine. Identical one-word answers, each in one document:
    # cosine 1 for unigrams, no 2-4-grams (0) -> 10 x 1/4 = 2.5, reported x100.
    answers = ["red", "two", "sofa", "left"]
    scores = scanqa_scores(_items(*[[a] for a in answers]), {str(k): a for k, a in enumerate(answers)}, meteor=False)
    assert scores.cider == pytest.approx(250.0)
    # Four-word answers have n-grams of every order: 10 x 4/4.
    long = ["a red chair here", "two big brown tables", "the sofa by windows", "left of the door"]
    scores = scanqa_scores(_items(*[[a] for a in long]), {str(k): a for k, a in enumerate(long)}, meteor=False)
    assert scores.cider == pytest.approx(1000.0)


def test_without_java_meteor_is_not_computed_and_says_why(monkeypatch):
    monkeypatch.setattr(metrics, "java_path", lambda: None)
    scores = scanqa_scores(_items(["red chair"]), {"0": "red chair"})
    assert scores.meteor is None and scores.tokenizer == metrics.SIMPLE
    assert any("METEOR not computed: java not found" in n for n in scores.notes)
    assert scores.to_json()["meteor"] is None


def test_simple_tokens_match_the_ptb_punctuation_list():
    assert simple_tokens("The Red chair, by the door.") == "the red chair by the door"


def test_sqa3d_per_type_averaging():
    items = _items(["yes"], ["no"], ["left"], ["two"], ["table"], types=["is", "is", "which", "how", "what"])
    preds = {"0": "yes", "1": "yes", "2": "left", "3": "three", "4": "table"}
    scores = sqa3d_scores(items, preds)
    assert scores.count == 5 and scores.em1 == pytest.approx(60.0)  # overall: per question, not per type
    assert scores.per_type == {"how": (0.0, 1), "is": (50.0, 2), "what": (100.0, 1), "which": (100.0, 1)}
    assert scores.to_json()["per_type"]["is"] == {"em1": 50.0, "count": 2}
    assert em_by_type(items, {k: [v, "x"] for k, v in preds.items()}) == scores  # beams: the first counts


def test_em_at_ten_per_type():
    items = _items(["yes"], ["no"], ["left"], ["two"], types=["is", "is", "which", "how"])
    ranked = {"0": ["no", "yes"], "1": ["yes"] * 1 + [f"x{k}" for k in range(9)] + ["no"], "2": ["left"],
              "3": ["one", "two"]}
    top10 = em_by_type(items, ranked, top=10)
    assert top10.top == 10 and top10.em1 == pytest.approx(75.0)  # "no" at rank 11 is beyond ten
    assert top10.per_type == {"how": (100.0, 1), "is": (50.0, 2), "which": (100.0, 1)}
    assert em_by_type(items, ranked).em1 == pytest.approx(25.0)  # EM@1 of the same lists: only "left" is first
    assert scanqa_scores(items, ranked, meteor=False).em10 == pytest.approx(top10.em1)  # one definition


def test_bad_predictions_are_one_line_errors():
    items = _items(["a"])
    with pytest.raises(BadInput, match="no prediction for question 0"):
        sqa3d_scores(items, {})
    with pytest.raises(BadInput, match="non-empty list"):
        sqa3d_scores(items, {"0": []})
    with pytest.raises(BadInput, match="no reference answer"):
        sqa3d_scores([QAItem("t", "s", "q?", ())], {"t": "a"})


@needs_java
def test_a_failing_meteor_process_is_reported_not_zero(monkeypatch):
    from pycocoevalcap.meteor import meteor as meteor_module

    monkeypatch.setattr(meteor_module, "METEOR_JAR", "no-such.jar")  # java starts, finds no jar, prints nothing
    metrics._meteor_scorer.cache_clear()  # one METEOR process is shared per Python process: start a broken one
    scores = scanqa_scores(_items(["red chair"]), {"0": "red chair"})
    assert scores.meteor is None and any("METEOR Java process failed" in n for n in scores.notes)
    assert scores.bleu[0] == pytest.approx(100.0, abs=1e-6)
    monkeypatch.undo()  # the broken process was dropped: the next call starts a working one
    assert (scanqa_scores(_items(["red chair"]), {"0": "red chair"}).meteor or 0.0) > 50.0


@needs_java
def test_ptb_tokens_equal_pycocoevalcaps_and_nothing_is_written_into_its_folder():
    """The same jar and flags as pycocoevalcap's wrapper, the input kept out of the install folder."""
    from pycocoevalcap.tokenizer import ptbtokenizer
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions = {"a": [{"caption": "The Red chair, by the door."}, {"caption": "it's \"two\" -- maybe (3)?"}],
                "b": [{"caption": "Brown\ncabinet!"}]}
    folder = os.path.dirname(os.path.abspath(ptbtokenizer.__file__))
    before = set(os.listdir(folder))
    ours = metrics.ptb_tokenize(captions)
    assert set(os.listdir(folder)) == before
    assert ours == PTBTokenizer().tokenize(captions)
    assert ours["a"][0] == "the red chair by the door"


def test_a_failing_ptb_tokenizer_falls_back_with_a_note(monkeypatch):
    monkeypatch.setattr(metrics, "java_path", lambda: "/nonexistent/java")
    scores = scanqa_scores(_items(["red chair"]), {"0": "Red chair."}, meteor=False)
    assert scores.tokenizer == metrics.SIMPLE and any("PTB tokenizer failed" in n for n in scores.notes)
    assert scores.bleu[0] == pytest.approx(100.0, abs=1e-6)
