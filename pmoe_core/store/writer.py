"""The atomic, resumable scene-store writer.

Commit protocol for one scene of a split: append every field's rows, then the name, then the new end offset.
Zarr writes each chunk/shard object and each `zarr.json` atomically (a local temp file renamed into place, or a
single object PUT), so a writer killed at any point leaves at most an uncommitted tail: field rows past
`offsets[-1]`, a name past the committed count, or an offsets entry whose value was never written (a -1 fill).
Readers ignore such a tail; `StoreWriter.open` on an existing store cuts it off before appending again.
Every chunk is stored, even one holding only fill values (`layout.WRITE_EMPTY_CHUNKS`), so an absent object
is always damage, which `pmoe check` reports.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
import zarr

from pmoe_core.errors import FormatError, StoreError
from pmoe_core.scene import FIELD_SPECS, Scene
from pmoe_core.schemas import validate
from pmoe_core.sources.base import Warn
from pmoe_core.store import attrs as store_attrs
from pmoe_core.store.layout import (
    EMBEDDINGS,
    FORMAT_NAME,
    FORMAT_VERSION,
    LOCK_KEY,
    NAMES,
    NAMES_CHUNK,
    OFFSETS,
    OFFSETS_CHUNK,
    UNWRITTEN_OFFSET,
    WRITE_EMPTY_CHUNKS,
    committed_offsets,
    field_array_kwargs,
    group_arrays,
    is_url,
    local_or_url,
    open_zarr_store,
    quiet_lock_listing,
    split_groups,
)
from pmoe_core.store.lock import WriterLock
from pmoe_core.vocab.label_spaces import label_space, resolve_dataset

# Scene names become file names downstream (route-inspect PLY folders): one path component, at most 200 bytes.
_NAME_RE = re.compile(r"^(?!\.\.?$)[A-Za-z0-9_.\-]{1,200}$")  # not "." or ".."
_SPLIT_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def _python_warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


@dataclass
class _Split:
    """Write state of one split: its arrays, committed names and end offset."""

    group: zarr.Group
    fields: tuple[str, ...] = ()
    arrays: dict[str, zarr.Array] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    end: int = 0

    @property
    def count(self) -> int:
        return len(self.names)


class StoreWriter:
    """Appends scenes to `<dataset>.zarr`, one committed scene at a time; only one writer per store."""

    def __init__(self, url: str, root: zarr.Group, lock: WriterLock, dataset: str, num_classes: int):
        self.url = url
        self.root = root
        self.dataset = dataset
        self.num_classes = num_classes
        self._lock = lock
        self._splits: dict[str, _Split] = {}
        self._made: list[str] = []  # folders that creating this store made (local stores); see __exit__

    # --- opening ---

    @classmethod
    def open(
        cls,
        url: str,
        dataset: str,
        *,
        text_encoder: str = "minilm",
        text_checkpoint: str | None = None,
        source: str = "",
        overwrite: bool = False,
        warn: Warn | None = None,
    ) -> "StoreWriter":
        """Create the store, or resume an existing one of the same dataset, format version and text encoder.

        A creation that fails leaves nothing behind: the class names are embedded (the step that needs the text
        encoder and its weights) before any folder exists, and folders this call made are removed again if it fails
        after all. A store that existed before is never removed."""
        dataset = resolve_dataset(dataset)
        url = local_or_url(url)
        warn = warn or _python_warn
        store = open_zarr_store(url, read_only=False)
        existing = _existing_attrs(store, url)
        creating = existing is None or overwrite
        if creating:
            table = store_attrs.compute_class_table(dataset, text_encoder, text_checkpoint)
            attributes = store_attrs.build_attrs(dataset, table, source)
            validate(attributes, "store", url)
        made = _missing_folders(url)
        lock = WriterLock(url).acquire(warn)
        try:
            if not creating:
                _check_resumable(existing, url, dataset, text_encoder)
                root = zarr.open_group(store, mode="r+")
                writer = cls(url, root, lock, dataset, len(existing["classes"]))
                writer._repair()
                return writer
            root = zarr.open_group(store, mode="a")
            with quiet_lock_listing():
                for name in list(root.keys()):
                    del root[name]
            root.create_array(EMBEDDINGS, data=table.vectors, chunks=table.vectors.shape,
                              attributes={"encoder": table.encoder})
            root.attrs.put(attributes)  # last: a store without its attributes is an unfinished creation
            writer = cls(url, root, lock, dataset, len(table.classes))
            writer._made = made
            return writer
        except BaseException:
            lock.release()
            _remove_folders(made)
            raise

    def _repair(self) -> None:
        """Cut every split back to its committed scenes (the resume half of the commit protocol)."""
        for split in split_groups(self.root):
            group = self.root[split]
            arrays = group_arrays(group)
            if OFFSETS not in arrays or NAMES not in arrays:
                del self.root[split]  # created but never committed anything
                continue
            offsets = committed_offsets(arrays[OFFSETS][:])
            count, end = offsets.shape[0] - 1, int(offsets[-1])
            if count == 0:
                del self.root[split]  # nothing committed: the first scene appended fixes the fields anew
                continue
            if arrays[OFFSETS].shape[0] != count + 1:
                arrays[OFFSETS].resize((count + 1,))
            if arrays[NAMES].shape[0] < count:
                raise StoreError(f"split {split!r} has {arrays[NAMES].shape[0]} names for {count} scenes; "
                                 "the store is damaged (run pmoe check)", self.url)
            if arrays[NAMES].shape[0] > count:
                arrays[NAMES].resize((count,))
            fields = tuple(f for f in FIELD_SPECS if f in arrays)
            for name in fields:
                arr = arrays[name]
                if arr.shape[0] < end:
                    raise StoreError(f"{split}/{name} has {arr.shape[0]} rows but committed scenes need {end}; "
                                     "the store is damaged (run pmoe check)", self.url)
                if arr.shape[0] > end:
                    arr.resize((end, *arr.shape[1:]))
            names = [str(n) for n in arrays[NAMES][:count]]
            state = _Split(group=group, fields=fields, names=names, end=end)
            # zarr keeps write_empty_chunks per opened array, not in the metadata: set it again on resume
            state.arrays = {f: arrays[f].with_config(WRITE_EMPTY_CHUNKS) for f in (*fields, OFFSETS, NAMES)}
            self._splits[split] = state

    # --- writing ---

    def committed(self, split: str) -> set[str]:
        """Names of the scenes of `split` already in the store."""
        state = self._splits.get(split)
        return set(state.names) if state else set()

    def append(self, split: str, scene: Scene) -> None:
        """Validate `scene` and commit it as the next scene of `split` (all of it, or nothing a reader sees)."""
        if not _SPLIT_RE.fullmatch(split):
            raise FormatError(f"bad split name {split!r} (letters, digits, _ and - only)", self.url)
        where = f"{self.url}/{split}/{scene.name if _NAME_RE.fullmatch(scene.name or '') else '(bad name)'}"
        self._validate(scene, where)
        state = self._splits.get(split)
        if state is not None and scene.name in state.names:
            raise StoreError(f"scene {scene.name!r} is already committed in split {split!r}", self.url)
        present = tuple(scene.present_fields())
        if state is None or state.count == 0:
            state = self._start_split(split, present)
        elif present != state.fields:
            raise FormatError(
                f"scene has fields {', '.join(present)} but split {split!r} stores {', '.join(state.fields)} "
                "(fixed by its first scene)",
                where,
            )
        for name in state.fields:
            state.arrays[name].append(getattr(scene, name), axis=0)
        state.arrays[NAMES].append(np.array([scene.name], dtype=object))
        new_end = state.end + len(scene)
        state.arrays[OFFSETS].append(np.array([new_end], dtype=np.int64))  # the commit
        state.end = new_end
        state.names.append(scene.name)

    def _validate(self, scene: Scene, where: str) -> None:
        if not _NAME_RE.fullmatch(scene.name or ""):  # fullmatch: "$" alone accepts a trailing newline
            raise FormatError(f"bad scene name {scene.name[:80]!r} (1-200 letters, digits, _ . - only)", where)
        scene.validate(source=where)
        if scene.segment is not None and len(scene):
            lo, hi = int(scene.segment.min()), int(scene.segment.max())
            if lo < -1 or hi >= self.num_classes:
                raise FormatError(
                    f"segment values span [{lo}, {hi}] but {self.dataset} has {self.num_classes} classes "
                    f"(allowed: -1 .. {self.num_classes - 1})",
                    where,
                )

    def _start_split(self, split: str, fields: tuple[str, ...]) -> _Split:
        """(Re)create a split's arrays for the field set of its first scene."""
        if split in split_groups(self.root):
            del self.root[split]
        group = self.root.create_group(split)
        state = _Split(group=group, fields=fields)
        for name in fields:
            state.arrays[name] = group.create_array(name, **field_array_kwargs(name))
        state.arrays[NAMES] = group.create_array(NAMES, shape=(0,), dtype=str, chunks=(NAMES_CHUNK,),
                                                 config=WRITE_EMPTY_CHUNKS)
        offsets = group.create_array(OFFSETS, shape=(1,), dtype=np.int64, chunks=(OFFSETS_CHUNK,),
                                    fill_value=UNWRITTEN_OFFSET, config=WRITE_EMPTY_CHUNKS)
        offsets[0] = 0
        state.arrays[OFFSETS] = offsets
        self._splits[split] = state
        return state

    # --- closing ---

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """A store this writer created and that failed before its first commit is removed (nothing half-written);
        once a scene is committed the store stays, so the run can resume."""
        self.close()
        if exc_type is not None and self._made and not any(state.count for state in self._splits.values()):
            _remove_folders(self._made)


def _existing_attrs(store: zarr.abc.store.Store, url: str) -> dict | None:
    """The root attributes of an existing store, None where nothing is there yet; StoreError for anything else."""
    try:
        root = zarr.open_group(store, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        if _has_content(url):
            raise StoreError("exists but is not a zarr scene store; choose another output folder", url) from None
        return None
    found = dict(root.attrs)
    if not found:
        with quiet_lock_listing():
            members = set(root.keys())
        if members <= {EMBEDDINGS}:
            return None  # a creation killed before its attributes were written: start again
    if found.get("format") != FORMAT_NAME:
        raise StoreError("is a zarr group but not a pmoe scene store; choose another output folder", url)
    return found


def _has_content(url: str) -> bool:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    try:
        entries = fs.ls(path, detail=False)
    except FileNotFoundError:
        return False
    return any(not str(e).rstrip("/").endswith(LOCK_KEY) for e in entries)  # a dead creator's lock is not content


def _check_resumable(existing: dict, url: str, dataset: str, text_encoder: str) -> None:
    version = existing.get("format_version")
    if version != FORMAT_VERSION:
        raise StoreError(
            f"store has format version {version}, this pmoe writes version {FORMAT_VERSION}; "
            "convert again with --overwrite or into another folder",
            url,
        )
    validate(existing, "store", url)
    if existing.get("dataset") != dataset:
        raise StoreError(
            f"store holds dataset {existing.get('dataset')!r}, not {dataset!r}; choose another output folder", url
        )
    stored = [c.get("name") for c in existing.get("classes", [])]
    if stored != list(label_space(dataset).classes):  # a custom spec edited since: labels would mean other classes
        raise StoreError(f"store holds the classes {', '.join(map(str, stored))}, not {dataset}'s "
                         f"{', '.join(label_space(dataset).classes)} (a custom dataset's spec changed?); resume with "
                         "the same classes or use --overwrite", url)
    encoder = (existing.get("text_encoder") or {}).get("name")
    if encoder != text_encoder:
        raise StoreError(
            f"store was written with text encoder {encoder!r}, not {text_encoder!r}; resume with the same "
            "encoder or use --overwrite",
            url,
        )


def _missing_folders(url: str) -> list[str]:
    """The local folders (the store's, then its missing parents, deepest first) that creating `url` will make."""
    if is_url(url):
        return []
    made: list[str] = []
    path = os.path.abspath(url)
    while not os.path.exists(path):
        made.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return made


def _remove_folders(made: list[str]) -> None:
    """Undo _missing_folders: the store folder with what this process put in it, then each parent while empty."""
    if not made:
        return
    shutil.rmtree(made[0], ignore_errors=True)
    for parent in made[1:]:
        try:
            os.rmdir(parent)
        except OSError:  # not empty (someone else's files) or already gone
            return
