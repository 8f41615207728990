"""The converter machinery, written once for every raw dataset: list, select, read in workers, commit in order.

Rules (the CLI help and README repeat them):
- Selection: the source's scenes, filtered by `splits`, sorted by (split, name); `limit` keeps the first N scenes
  *of each split* (so `--limit 5` gives a quick store with train, val and test); then shard K/N (0-based K) keeps
  every N-th scene of that list starting at K and writes its own store `OUT/<dataset>.shard-K-of-N.zarr`. The
  selection does not depend on what is already written, so a resumed run converts exactly the same scenes.
- Resume: scenes already committed in the store are not read again (`overwrite=True` starts from scratch).
- Bad input: a scene whose reader raises any PmoeError (or that the lister marked unreadable, or that the store
  refuses as malformed) is skipped with a warning naming the file and the problem, and counted in the summary;
  `strict=True` makes the first one fatal. A missing or empty raw root, or no scenes found, is always fatal.
  Python warnings raised while reading (numpy overflow, NaN) become convert warnings naming the file, and a scene
  with points farther than the source's FAR_M from its median point gets one warning with their count (kept).
  OUT must not be RAW or inside it, a file, or under /proc, /sys, /dev.
- Workers: scenes are read by `workers` processes (default: all cores; 1 = in this process) and committed by this
  process alone, in list order, so the store does not depend on the worker count. Warnings raised by readers in
  workers travel back with the scene. An interrupt leaves only committed scenes visible: run again to resume.
  Workers exit as soon as this process dies, even by SIGKILL.
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import os
import select
import signal
import threading
import time
import typing
import warnings
from collections import deque
from contextlib import closing
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile, PmoeError, one_line
from pmoe_core.outputs import check_output_dir
from pmoe_core.progress import Progress, silent
from pmoe_core.scene import Scene
from pmoe_core.sources import get_source
from pmoe_core.sources.base import SPLITS, SceneRef, Warn, noop_warn
from pmoe_core.store import StoreWriter, store_path
from pmoe_core.store.layout import is_url, local_or_url


@dataclass(frozen=True)
class SkippedScene:
    name: str
    split: str
    reason: str  # "<file>: <problem>"


@dataclass
class ConvertSummary:
    """What one `convert` run did to its store."""

    dataset: str
    store: str
    selected: int = 0  # scenes this run is responsible for (after split filter, limit, shard)
    written: int = 0
    already_present: int = 0  # committed by an earlier run, not read again
    skipped: list[SkippedScene] = field(default_factory=list)
    points: int = 0  # points written by this run
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- options ---


def _parse_value(key: str, text: str, kind: Any) -> Any:
    """Turn a command-line string into a value of the dataclass field type `kind`."""
    args = typing.get_args(kind)
    if args and type(None) in args:  # X | None
        if text.strip().lower() in ("none", "null", ""):
            return None
        inner = [a for a in args if a is not type(None)]
        return _parse_value(key, text, inner[0] if len(inner) == 1 else str)
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise BadInput(f"option {key} expects true or false, got {text!r}")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise BadInput(f"option {key} expects a{'n integer' if kind is int else ' number'}, got {text!r}") from None
    if kind in (str, Path):
        return kind(text)
    raise BadInput(f"option {key} has type {kind} which cannot be set from the command line")


def build_options(dataset: str, pairs: Iterable[str]) -> Any:
    """The source's `Options` with `KEY=VALUE` strings applied (typed by the dataclass fields; BadInput otherwise)."""
    module = get_source(dataset)
    known = {f.name: f for f in dataclasses.fields(module.Options)}
    hints = typing.get_type_hints(module.Options)
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise BadInput(f"option {pair!r} is not KEY=VALUE")
        if key not in known:
            valid = ", ".join(sorted(known)) or "none"
            raise BadInput(f"unknown option {key!r} for {module.NAME} (valid: {valid})")
        values[key] = _parse_value(key, text, hints[key])
    return module.Options(**values)


def describe_options(dataset: str) -> list[tuple[str, str, str]]:
    """(name, default, help) of each option of a source, for help texts and error messages."""
    module = get_source(dataset)
    return [(f.name, repr(f.default), str(f.metadata.get("help", ""))) for f in dataclasses.fields(module.Options)]


# --- selection ---


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 0 <= K < N."""
    k, sep, n = text.partition("/")
    if not sep or not k.strip().isdigit() or not n.strip().isdigit():
        raise BadInput(f"--shard expects K/N with 0 <= K < N (e.g. 0/8), got {text!r}")
    shard = (int(k), int(n))
    if not 0 <= shard[0] < shard[1]:
        raise BadInput(f"--shard {text}: need 0 <= K < N (K is 0-based, like SLURM_ARRAY_TASK_ID with --array=0-{max(shard[1] - 1, 0)})")
    return shard


def select_scenes(refs: Sequence[SceneRef], splits: Sequence[str] | None = None, limit: int | None = None,
                  shard: tuple[int, int] | None = None) -> list[SceneRef]:
    """Split filter, (split, name) sort, per-split limit, then every N-th scene from K (see module docstring)."""
    order = {s: i for i, s in enumerate(SPLITS)}
    chosen = [r for r in refs if splits is None or r.split in splits]
    chosen.sort(key=lambda r: (order.get(r.split, len(order)), r.split, r.name))
    if limit is not None:
        per_split: dict[str, int] = {}
        kept = []
        for ref in chosen:
            per_split[ref.split] = per_split.get(ref.split, 0) + 1
            if per_split[ref.split] <= limit:
                kept.append(ref)
        chosen = kept
    if shard is not None:
        k, n = shard
        chosen = chosen[k::n]
    return chosen


def _list_refs(module: ModuleType, raw_root: Path, options: Any) -> list[SceneRef]:
    if not raw_root.exists():
        raise MissingFile("raw dataset root not found", raw_root)
    if raw_root.is_dir() and not any(raw_root.iterdir()):
        raise MissingFile("raw dataset root is empty", raw_root)
    refs = list(module.list_scenes(raw_root, options))
    if not refs:
        raise MissingFile(f"no {module.NAME} scenes found", raw_root)
    seen: dict[str, SceneRef] = {}
    for ref in refs:
        if ref.name in seen:
            raise FormatError(f"two scenes share the name {ref.name!r} ({seen[ref.name].paths[:1]} and "
                              f"{ref.paths[:1]})", raw_root)
        seen[ref.name] = ref
    return refs


# --- reading (in workers) ---


_DEVELOPER_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@dataclass
class _ReadResult:
    scene: Scene | None
    error: str | None  # "<file>: <problem>" of the PmoeError that made the scene unreadable
    warnings: list[str]


def _read_one(module_name: str, ref: SceneRef, options: Any) -> _ReadResult:
    """Read one scene; runs in a worker process, so everything it returns must pickle.

    Any PmoeError is this scene's problem (skipped, or fatal under --strict); anything else is a bug and propagates.
    Python warnings raised while reading (a numpy RuntimeWarning: overflow, NaN) become convert warnings naming the
    scene's file instead of leaking to stderr."""
    if ref.problem:
        return _ReadResult(None, ref.problem, [])
    module = importlib.import_module(module_name)
    source = ref.paths[0] if ref.paths else ref.name
    scene, error = None, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        found: list[str] = []
        try:
            scene = module.read_scene(ref, options, found.append)
        except PmoeError as err:
            error = err.message
    found.extend(f"{source}: {w.category.__name__} while reading scene {ref.name}: {w.message}" for w in caught
                 if not issubclass(w.category, _DEVELOPER_WARNINGS))
    if scene is None:
        return _ReadResult(None, error, found)
    scene.name = ref.name  # the ref names the scene: resume matches committed names against refs
    far = far_points(scene.coord, getattr(module, "FAR_M", None))
    if far:
        found.append(f"{source}: {far} of {len(scene)} points lie more than {module.FAR_M:g} m from the scene's "
                     f"median point (implausible for {module.NAME}; kept)")
    return _ReadResult(scene, None, found)


def far_points(coord: Any, limit: float | None) -> int:
    """How many points lie farther than `limit` metres from the per-axis median point (0 when `limit` is None)."""
    if limit is None or not len(coord):
        return 0
    centre = np.median(coord, axis=0).astype(np.float64)
    distance = np.linalg.norm(coord.astype(np.float64) - centre, axis=1)
    return int((distance > limit).sum())


def _init_worker(parent_pid: int) -> None:
    """Workers leave Ctrl-C to the parent, which cancels what is queued and commits nothing more; and they exit
    when the parent dies, however it dies (SIGKILL, OOM killer): a killed parent never shuts the pool down, and
    the forkserver and resource tracker wait for the workers, so without this all of them lived on, holding memory."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent_pid,), name="pmoe-parent-watch", daemon=True).start()


def _exit_with(parent_pid: int) -> None:
    """Block until process `parent_pid` ends, then end this process at once (no cleanup: the parent owns the store)."""
    try:
        pidfd = os.pidfd_open(parent_pid)  # Linux >= 5.3: readable once the process has exited (zombie included)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd (macOS, old kernels): poll
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except OSError:
                pass
    select.select([pidfd], [], [])
    os._exit(1)


def _worker_context() -> multiprocessing.context.BaseContext:
    """How reader processes start: never by plain fork, which would copy the parent's zarr I/O thread and
    locks mid-flight. forkserver (Linux, macOS) forks workers from a clean server that has imported this module
    once, so they start fast and without re-running the main script (the whole CLI); spawn elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _read_all(module_name: str, refs: Sequence[SceneRef], options: Any, workers: int) -> Iterator[_ReadResult]:
    """Results in `refs` order; at most 2 x workers scenes in flight, so memory stays bounded."""
    if workers <= 1:
        for ref in refs:
            yield _read_one(module_name, ref, options)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_worker_context(), initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        pending: deque[Future[_ReadResult]] = deque()
        queue = iter(refs)
        for ref in queue:
            pending.append(pool.submit(_read_one, module_name, ref, options))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(_read_one, module_name, nxt, options))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- the run ---


def _source_description(module: ModuleType, raw_root: Path, options: Any) -> str:
    changed = [f"{f.name}={getattr(options, f.name)!r}" for f in dataclasses.fields(options)  # `recorded`: always
               if getattr(options, f.name) != f.default or f.metadata.get("recorded")]
    text = f"{module.__name__} reading {raw_root.resolve()}"
    return text + (f" with options {', '.join(changed)}" if changed else "")


def _check_same_options(stored: str, wanted: str, url: str) -> None:
    """Resuming with other reader options would mix two selections (e.g. a scene in train and in val)."""
    def options_of(description: str) -> str:
        return description.partition(" with options ")[2] or "(defaults)"

    if options_of(stored) != options_of(wanted):
        raise BadInput(f"store was converted with reader options {options_of(stored)}, not {options_of(wanted)}; "
                       "resume with the same -O options, or use --overwrite / another output folder", url)


def convert(
    dataset: str,
    raw_root: str | Path,
    out_dir: str,
    *,
    options: Any = None,
    splits: Sequence[str] | None = None,
    limit: int | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    shard: tuple[int, int] | None = None,
    text_encoder: str = "minilm",
    text_checkpoint: str | None = None,
    strict: bool = False,
    progress: Progress = silent,
    warn: Warn = noop_warn,
) -> ConvertSummary:
    """Convert the raw dataset under `raw_root` into `out_dir/<dataset>.zarr` (or its shard store)."""
    started = time.perf_counter()
    module = get_source(dataset)
    options = module.Options() if options is None else options
    if not isinstance(options, module.Options):
        raise BadInput(f"options must be {module.__name__}.Options, got {type(options).__name__}")
    # Layout readers (pointcept, custom) take the store's dataset from their options; dataset sources are NAME.
    name = module.dataset_name(options) if hasattr(module, "dataset_name") else module.NAME
    if limit is not None and limit < 1:
        raise BadInput(f"--limit must be at least 1, got {limit}")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise BadInput(f"--workers must be at least 1, got {workers}")
    raw_root = Path(raw_root)
    if not is_url(out_dir):
        check_output_dir(local_or_url(out_dir), reads=[raw_root])  # OUT not inside RAW, not a file, not /proc

    refs = _list_refs(module, raw_root, options)
    if splits is not None:
        found = sorted({r.split for r in refs})
        unknown = [s for s in splits if s not in found]
        if unknown:
            raise BadInput(f"no scenes of split(s) {', '.join(unknown)} (found: {', '.join(found)})", raw_root)
    selected = select_scenes(refs, splits, limit, shard)
    url = store_path(out_dir, name, shard)
    if not is_url(url):
        Path(local_or_url(out_dir)).mkdir(parents=True, exist_ok=True)
    summary = ConvertSummary(dataset=name, store=url, selected=len(selected))

    def warn_all(message: str) -> None:
        message = one_line(message)  # scene and file names may hold newlines
        summary.warnings.append(message)
        warn(message)

    def skip(ref: SceneRef, reason: str) -> None:
        if strict:
            raise FormatError(f"scene {ref.name} ({ref.split}): {reason} (strict mode: not skipping)")
        summary.skipped.append(SkippedScene(one_line(ref.name), ref.split, one_line(reason)))
        warn_all(f"skipped scene {ref.name} ({ref.split}): {reason}")

    description = _source_description(module, raw_root, options)
    with StoreWriter.open(url, name, text_encoder=text_encoder, text_checkpoint=text_checkpoint,
                          overwrite=overwrite, source=description, warn=warn_all) as writer:
        _check_same_options(str(writer.root.attrs.get("source", "")), description, url)
        committed = {split: writer.committed(split) for split in {r.split for r in selected}}
        todo = [r for r in selected if r.name not in committed[r.split]]
        summary.already_present = len(selected) - len(todo)
        progress(total=len(todo))
        with closing(_read_all(module.__name__, todo, options, workers)) as results:
            for ref, result in zip(todo, results):
                for message in result.warnings:
                    warn_all(message)
                if result.scene is None:
                    skip(ref, result.error or "unreadable")
                else:
                    try:
                        writer.append(ref.split, result.scene)
                    except FormatError as err:
                        skip(ref, err.message)
                    else:
                        summary.written += 1
                        summary.points += len(result.scene)
                progress(advance=1, message=one_line(ref.name))
    summary.seconds = time.perf_counter() - started
    return summary


__all__ = ["ConvertSummary", "SkippedScene", "build_options", "convert", "describe_options",
           "parse_shard", "select_scenes"]
