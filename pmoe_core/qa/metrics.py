"""3D-QA metrics as the benchmarks compute them.

ScanQA (github.com/ATR-DBI/ScanQA, scripts/score.py): EM@1 = the top prediction is one of the reference answers,
EM@10 = any of the top ten is; the strings are compared as they are (no lower-casing or punctuation stripping:
score.py tests `answer in ref_answers`). BLEU-1..4, METEOR, ROUGE-L and CIDEr are pycocoevalcap's scorers on the
top prediction against all references, both sides tokenised by its PTB tokenizer first (lower-cased, punctuation
removed), exactly as score.py calls them. Values are x100, as score.py prints them.
SQA3D: EM@1 overall and per question type (what / is / how / can / which / others; QAItem.question_type), the mean
of per-question exact matches within each type.

Java: pycocoevalcap's PTB tokenizer and METEOR run on Java. Without a `java` on PATH, METEOR is reported as not
computed (None, with the reason in `notes`) and BLEU / ROUGE-L / CIDEr are computed on `simple_tokens` (lower-case,
word/punctuation split, the PTB tokenizer's punctuation list removed), which `tokenizer` records; EM needs no Java.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from pmoe_core.errors import BadInput
from pmoe_core.qa.items import QAItem

PTB = "ptb"
SIMPLE = "simple (no PTB tokenizer)"


@dataclass(frozen=True)
class ScanQAScores:
    """ScanQA's table: EM@1, EM@10 (None without beams), BLEU-1..4, ROUGE-L, METEOR, CIDEr, all x100."""

    count: int
    em1: float
    em10: float | None
    bleu: tuple[float, float, float, float] | None
    rouge_l: float | None
    meteor: float | None
    cider: float | None
    tokenizer: str
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TypeScores:
    """EM@1 (x100) overall and per question type, with the number of questions behind each figure; EM@`top` when
    `top` > 1 (a hit when any of the `top` best answers matches: `top` = 10 is ScanQA's EM@10)."""

    count: int
    em1: float
    per_type: dict[str, tuple[float, int]] = field(default_factory=dict)
    top: int = 1

    def to_json(self) -> dict:
        return {"count": self.count, "em1": self.em1,
                "per_type": {k: {"em1": v, "count": n} for k, (v, n) in self.per_type.items()}}


def java_path() -> str | None:
    return shutil.which("java")


def exact_match(prediction: str, answers: Sequence[str]) -> bool:
    """ScanQA / SQA3D exact match: the prediction equals one of the reference strings."""
    return prediction in answers


def _beams(predictions: Mapping[str, str | Sequence[str]], items: Sequence[QAItem]) -> dict[str, list[str]]:
    """Predictions per question id as a best-first list; every item must have one and have reference answers."""
    out = {}
    for item in items:
        if item.qid not in predictions:
            raise BadInput(f"no prediction for question {item.qid}")
        if not item.answers:
            raise BadInput(f"question {item.qid} has no reference answer (a test split cannot be scored)")
        pred = predictions[item.qid]
        beams = [pred] if isinstance(pred, str) else list(pred)
        if not beams or not all(isinstance(b, str) for b in beams):
            raise BadInput(f"prediction for question {item.qid} must be a text or a non-empty list of texts")
        out[item.qid] = beams
    return out


def match_at(ranked: Sequence[str], answers: Sequence[str], top: int) -> bool:
    """EM@top for one question: one of the `top` best answers is a reference answer."""
    return any(exact_match(b, answers) for b in ranked[:top])


def em_by_type(items: Sequence[QAItem], predictions: Mapping[str, str | Sequence[str]], top: int = 1) -> TypeScores:
    """EM@1 (EM@`top`) overall and per `question_type` (SQA3D's table; also useful for synthetic families)."""
    beams = _beams(predictions, items)
    hits: dict[str, list[bool]] = {}
    for item in items:
        hits.setdefault(item.question_type, []).append(match_at(beams[item.qid], item.answers, top))
    total = [h for group in hits.values() for h in group]
    per_type = {k: (100.0 * sum(v) / len(v), len(v)) for k, v in sorted(hits.items())}
    return TypeScores(len(total), 100.0 * sum(total) / len(total) if total else 0.0, per_type, top)


def sqa3d_scores(items: Sequence[QAItem], predictions: Mapping[str, str | Sequence[str]]) -> TypeScores:
    """SQA3D: EM@1 overall and per question type."""
    return em_by_type(items, predictions)


def simple_tokens(text: str) -> str:
    """Lower-cased words with the PTB tokenizer's punctuation removed (used only when Java is missing)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    words = re.findall(r"[\w']+|[^\w\s]", text.lower().replace("\n", " "))
    return " ".join(w for w in words if w not in PUNCTUATIONS)


def ptb_tokenize(captions: Mapping[str, Sequence[dict]]) -> dict[str, list[str]]:
    """pycocoevalcap's PTB tokenisation (the Stanford CoreNLP 3.4.1 PTBTokenizer it ships, lower case, its punctuation
    dropped), with the sentences in a temporary folder of our own: pycocoevalcap's wrapper writes them into its
    install folder, which fails where site-packages is read-only and leaves a file there when interrupted."""
    from pycocoevalcap.tokenizer import ptbtokenizer as ptb

    jar = Path(ptb.__file__).with_name(ptb.STANFORD_CORENLP_3_4_1_JAR)
    keys = [k for k, group in captions.items() for _ in group]
    sentences = "\n".join(c["caption"].replace("\n", " ") for group in captions.values() for c in group)
    with tempfile.TemporaryDirectory(prefix="pmoe-ptb-") as folder:
        path = Path(folder) / "sentences.txt"
        path.write_bytes(sentences.encode())
        done = subprocess.run([java_path() or "java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer",
                               "-preserveLines", "-lowerCase", str(path)], capture_output=True, check=True)
    out: dict[str, list[str]] = {}
    for key, line in zip(keys, done.stdout.decode().split("\n")):
        out.setdefault(key, []).append(" ".join(w for w in line.rstrip().split(" ") if w not in ptb.PUNCTUATIONS))
    return out


def scanqa_scores(items: Sequence[QAItem], predictions: Mapping[str, str | Sequence[str]],
                  meteor: bool = True) -> ScanQAScores:
    """ScanQA's metrics for `predictions` (question id -> answer, or best-first beams) over `items`."""
    if not items:
        raise BadInput("no questions to score")
    beams = _beams(predictions, items)
    em1 = 100.0 * sum(match_at(beams[i.qid], i.answers, 1) for i in items) / len(items)
    has_beams = any(len(b) > 1 for b in beams.values())
    em10 = 100.0 * sum(match_at(beams[i.qid], i.answers, 10) for i in items) / len(items)
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError:
        raise BadInput("caption metrics need pycocoevalcap: pip install 'pmoe[qa]'") from None
    keys = [str(k) for k in range(len(items))]  # positional keys: question ids need not be unique across sets
    gts = {k: [{"caption": a} for a in i.answers] for k, i in zip(keys, items)}
    res = {k: [{"caption": beams[i.qid][0]}] for k, i in zip(keys, items)}
    notes = []
    both = None
    if java_path() is None:
        notes.append("java not found on PATH: BLEU/ROUGE-L/CIDEr tokenised without the PTB tokenizer")
    else:
        try:  # one JVM for references and answers
            both = ptb_tokenize({**{f"g{k}": v for k, v in gts.items()}, **{f"r{k}": v for k, v in res.items()}})
        except (subprocess.CalledProcessError, OSError) as err:
            notes.append(f"the PTB tokenizer failed ({type(err).__name__}): BLEU/ROUGE-L/CIDEr tokenised without it")
    if both is not None:
        tokenizer, gts, res = PTB, {k: both[f"g{k}"] for k in keys}, {k: both[f"r{k}"] for k in keys}
    else:
        tokenizer = SIMPLE
        gts = {k: [simple_tokens(c["caption"]) for c in v] for k, v in gts.items()}
        res = {k: [simple_tokens(c["caption"]) for c in v] for k, v in res.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    meteor_score = None
    if not meteor:
        notes.append("METEOR not computed: not asked for")
    elif java_path() is None:
        notes.append("METEOR not computed: java not found on PATH (pycocoevalcap's METEOR 1.5 is a Java program)")
    else:
        meteor_score, why = _meteor(gts, res)
        if meteor_score is None:
            notes.append(why)
        else:
            meteor_score *= 100.0
    return ScanQAScores(
        count=len(items), em1=em1, em10=em10 if has_beams else None,
        bleu=tuple(100.0 * float(b) for b in bleu), rouge_l=100.0 * float(rouge), meteor=meteor_score,
        cider=100.0 * float(cider), tokenizer=tokenizer, notes=tuple(notes),
    )


@lru_cache(maxsize=1)
def _meteor_scorer():
    """One METEOR Java process per Python process: starting one costs ~5 s, and per-type scores call it per type."""
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


def _meteor(gts: dict, res: dict) -> tuple[float | None, str]:
    """METEOR 1.5 through pycocoevalcap's Java wrapper; (None, why) when the Java program fails (e.g. no memory for
    its -Xmx2G heap): reported as not computed, never as 0, and the next call starts a fresh process."""
    scorer = _meteor_scorer()
    try:
        score, _ = scorer.compute_score(gts, res)
        return float(score), ""
    except (ValueError, OSError) as err:  # the Java process died: empty or broken output
        _meteor_scorer.cache_clear()
        with contextlib.suppress(OSError):  # its pipe is broken: close it here, or its __del__ raises at collection
            scorer.meteor_p.stdin.close()
        return None, f"METEOR not computed: the METEOR Java process failed ({type(err).__name__}: {err})"
    finally:
        if scorer.lock.locked():  # compute_score holds it when it fails; its __del__ would wait for it forever
            scorer.lock.release()
