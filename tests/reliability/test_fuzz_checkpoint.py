"""Property-based fuzzing of checkpoint loading: mutated copies of a small valid pmoe checkpoint go through every
loader a command uses (load_checkpoint: plan, train --resume; load_segmentation_model: eval, route-inspect, predict).

Mutations act on the whole file (byte flips, truncation, inserted or overwritten garbage, zeroed ranges, 0 bytes,
a zip member removed) and inside the pickled data.pkl member with the zip kept intact, so both torch's archive
reader and its weights-only unpickler see damage. The contract is the readers' (fuzzing.py): the file loads, or a
one-line PmoeError names it; no other exception, no hang, no allocation beyond the budget. Beside tracemalloc
(Python and numpy buffers), the process's peak RSS must not grow by more than the budget: torch allocates tensor
storage outside tracemalloc's view.
"""

from __future__ import annotations

import importlib.util
import io
import resource
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from fuzzing import FUZZ, MEMORY_BUDGET, Tally, check_contract, mutate, mutations
from hypothesis import given
from hypothesis import strategies as st

from pmoe_core.engine.checkpoint import load_checkpoint
from pmoe_core.engine.model_io import load_segmentation_model


def _small_checkpoint_module():
    name = "pmoe_tests_small_checkpoint"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "engine" / "small_checkpoint.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass(frozen=True)
class Structural:
    """Damage that byte edits rarely produce: a range zeroed, the file emptied, one zip member dropped."""

    kind: str  # "zero" | "empty" | "drop"
    offset: float
    length: float = 0.1

    def apply(self, data: bytes) -> bytes:
        if self.kind == "empty":
            return b""
        if self.kind == "zero":
            start = int(self.offset * len(data))
            end = min(len(data), start + max(1, int(self.length * len(data))))
            return data[:start] + bytes(end - start) + data[end:]
        with zipfile.ZipFile(io.BytesIO(data)) as src:
            infos = src.infolist()
            drop = infos[min(int(self.offset * len(infos)), len(infos) - 1)].filename
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as dst:
                for info in infos:
                    if info.filename != drop:
                        dst.writestr(info, src.read(info.filename))
        return out.getvalue()


structural = st.builds(Structural, st.sampled_from(["zero", "empty", "drop"]), st.floats(0.0, 1.0),
                       st.floats(0.0, 0.5))


def _with_member(data: bytes, member: str, content: bytes) -> bytes:
    """The archive with `member` replaced, every other member byte-identical and stored as torch stores them."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, content if info.filename == member else src.read(info.filename))
    return out.getvalue()


LOADERS = {
    "load_checkpoint": lambda path: load_checkpoint(path),
    "load_segmentation_model": lambda path: load_segmentation_model(str(path)),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, bytes, str]:
    path = _small_checkpoint_module().write_small_checkpoint(tmp_path_factory.mktemp("fuzz-ckpt") / "ckpt.pt")
    with zipfile.ZipFile(path) as zf:
        member = next(n for n in zf.namelist() if n.endswith("data.pkl"))
    load_segmentation_model(str(path))  # the unmutated file loads
    return path, path.read_bytes(), member


def _check(loader: str, path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    outcome = check_contract(lambda warn: _as_checked(LOADERS[loader](path)), path.name)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown <= MEMORY_BUDGET, f"peak RSS grew by {grown / 2**20:.0f} MiB (budget {MEMORY_BUDGET >> 20} MiB)"
    return outcome


def _as_checked(result):
    """check_contract validates Scenes; a loaded checkpoint is checked here and handed back as an empty list."""
    payload = result if isinstance(result, dict) else result[1]
    assert isinstance(payload, dict)
    return []


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_checkpoint_bytes_survive_mutations(pristine, loader):
    path, data, _ = pristine
    tally = Tally(f"checkpoint_bytes_{loader}")

    @FUZZ
    @given(edits=mutations(text_header=False), extra=st.one_of(st.none(), structural))
    def example(edits, extra):
        if extra is not None and extra.kind == "drop":
            path.write_bytes(extra.apply(data))  # a member lost from an otherwise intact archive
        else:
            mutated = mutate(data, edits, header_bytes=512)
            path.write_bytes(extra.apply(mutated) if extra is not None else mutated)
        try:
            tally.add(_check(loader, path))
        finally:
            path.write_bytes(data)

    example()
    tally.write()
    assert tally.ok + tally.error > 0


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_pickled_data_survives_mutations(pristine, loader):
    """The zip stays valid and only data.pkl is damaged: every example reaches the weights-only unpickler."""
    path, data, member = pristine
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pickled = zf.read(member)
    tally = Tally(f"checkpoint_pickle_{loader}")

    @FUZZ
    @given(edits=mutations(text_header=False))
    def example(edits):
        path.write_bytes(_with_member(data, member, mutate(pickled, edits, header_bytes=len(pickled))))
        try:
            tally.add(_check(loader, path))
        finally:
            path.write_bytes(data)

    example()
    tally.write()
    assert tally.ok + tally.error > 0
