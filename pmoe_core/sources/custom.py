"""Your own dataset -> Scene: folders of PLY / LAS / NPY scenes described by a small spec file (TOML or JSON).

The spec (schema `schemas/dataset_spec.schema.json`, guide `docs/custom-dataset.md`) names the dataset, its domain,
its classes in id order (each matched to the unified vocabulary, see `pmoe_core.vocab.custom`), the label field, the
ignore id, the fields every scene has, and how splits are listed. The store then carries the label space in its
attributes, so training, evaluation and routing inspection need nothing but the store.

Scenes: `format = "ply"` one `.ply` per scene (labels: a vertex property); `"las"` one `.las`/`.laz` per scene
(labels: `classification` or an extra dimension); `"npy"` one folder per scene with `coord.npy` and one `.npy` per
field, Pointcept's layout (labels: `<label_field>.npy`). Train and val scenes must carry labels; test scenes may not.
A label value that is neither a class id nor `ignore_id` refuses the scene, naming the file (`unknown_ids =
"ignore"`: stored as ignored, with a warning). Only the spec's `fields` are stored, and every scene must have them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.jsonio import loads_json
from pmoe_core.scene import IGNORE_INDEX, Scene
from pmoe_core.schemas import validate
from pmoe_core.sources.base import SPLITS, SceneRef, Warn
from pmoe_core.sources.pointcept import NOT_A_CLASS, read_array, read_folder
from pmoe_core.vocab.custom import ClassSpec, CustomLabelSpace, build, register

NAME = "custom"
FAR_M = 10_000.0
MAX_SPEC_BYTES = 1 << 20
SUFFIXES = {"ply": (".ply",), "las": (".las", ".laz")}
OPTIONAL = ("color", "normal", "strength", "instance")


@dataclass
class Options:
    spec: str = field(default="", metadata={"help": "the dataset spec file (TOML or JSON), as --spec gives it"})


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed, checked dataset spec."""

    path: Path
    label_space: CustomLabelSpace
    format: str
    label_field: str
    ignore_id: int
    unknown_ids: str
    fields: tuple[str, ...]
    splits: str | dict[str, Path]  # "folders", or split -> list file

    @property
    def name(self) -> str:
        return self.label_space.dataset

    def lookup_table(self) -> np.ndarray:
        """`lut[raw id] = class index`; NOT_A_CLASS for ids that name no class."""
        raw_to_name = self.label_space.space.raw_to_name
        lut = np.full(max(raw_to_name) + 1, NOT_A_CLASS, dtype=np.int16)
        for raw, name in raw_to_name.items():
            lut[raw] = self.label_space.space.index(name)
        return lut


def load_spec(path: str | Path) -> DatasetSpec:
    """Read and check a dataset spec (BadInput / FormatError naming the file for anything wrong)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile("dataset spec not found" if not path.exists() else "dataset spec is not a file", path)
    stat = path.stat()
    return _load_spec(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_spec(path_text: str, _mtime: int, size: int) -> DatasetSpec:
    """Cached per (path, mtime, size): every worker reads the spec once, an edited spec is read again."""
    path = Path(path_text)
    if size > MAX_SPEC_BYTES:
        raise FormatError(f"dataset spec of {size} bytes is larger than the {MAX_SPEC_BYTES}-byte limit", path)
    data = path.read_bytes()
    if path.suffix.lower() == ".json":
        raw = loads_json(data, path)
    else:
        try:
            raw = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise FormatError(f"not a TOML dataset spec ({err}); a .json file is read as JSON", path) from None
    if isinstance(raw, dict) and isinstance(raw.get("classes"), list):
        raw = {**raw, "classes": [{"name": c} if isinstance(c, str) else c for c in raw["classes"]]}
    validate(raw, "dataset_spec", path)
    return _checked(raw, path)


def _checked(raw: dict[str, Any], path: Path) -> DatasetSpec:
    classes = [ClassSpec(name=c["name"], entry=c.get("entry"), synonyms=tuple(c.get("synonyms", ())),
                         prompt=c.get("prompt")) for c in raw["classes"]]
    ids = [int(c.get("id", i)) for i, c in enumerate(raw["classes"])]
    ignore_id = int(raw.get("ignore_id", -1))
    seen: dict[int, str] = {}
    for cls, raw_id in zip(classes, ids):
        if raw_id in seen:
            raise BadInput(f"classes {seen[raw_id]!r} and {cls.name!r} both have label id {raw_id}", path)
        seen[raw_id] = cls.name
    if ignore_id in seen:
        raise BadInput(f"ignore_id {ignore_id} is also the label id of class {seen[ignore_id]!r}", path)
    space = build(raw["name"], raw["domain"], classes, ids, str(path))
    splits_raw = raw.get("splits", "folders")
    splits: str | dict[str, Path] = "folders" if splits_raw == "folders" else {
        split: (path.parent / file) for split, file in splits_raw.items()}
    return DatasetSpec(path=path, label_space=space, format=raw["format"], label_field=raw["label_field"],
                       ignore_id=ignore_id, unknown_ids=raw.get("unknown_ids", "error"),
                       fields=tuple(f for f in OPTIONAL if f in raw.get("fields", ())), splits=splits)


def _spec(options: Options) -> DatasetSpec:
    if not options.spec:
        raise BadInput("a custom dataset needs --spec SPEC (a TOML or JSON file; see docs/custom-dataset.md)")
    return load_spec(options.spec)


def dataset_name(options: Options) -> str:
    """The spec's dataset name, its label space registered in this process (the store writer embeds it)."""
    spec = _spec(options)
    register(spec.label_space, str(spec.path))
    return spec.name


# --- listing ---


def list_scenes(root: Path, options: Options) -> list[SceneRef]:
    spec = _spec(options)
    root = Path(root)
    if spec.splits == "folders":
        refs = [SceneRef(_scene_name(p.relative_to(root / split)), split, (str(p),))
                for split in SPLITS if (root / split).is_dir() for p in _scenes_in(root / split, spec)]
        if not refs:
            raise MissingFile(f"no {spec.format} scenes found in {', '.join(f'{s}/' for s in SPLITS)} "
                              "(the spec's splits = \"folders\")", root)
        return refs
    refs = []
    for split, list_file in spec.splits.items():
        for number, line in enumerate(_lines(list_file), 1):
            refs.append(SceneRef(_scene_name(Path(line)), split, (str(_locate(root, line, spec, list_file, number)),)))
    return refs


def _scenes_in(folder: Path, spec: DatasetSpec) -> list[Path]:
    if spec.format == "npy":
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES[spec.format])


def _scene_name(relative: Path) -> str:
    """A store scene name from a file's path below its split folder (or a list line): suffix dropped, / -> _."""
    parts = relative.with_suffix("").parts if relative.suffix.lower() in (".ply", ".las", ".laz") else relative.parts
    return "_".join(parts)


def _lines(list_file: Path) -> list[str]:
    if not list_file.is_file():
        raise MissingFile("split list file (named in the dataset spec) not found", list_file)
    if list_file.stat().st_size > 64 << 20:
        raise FormatError("split list file is larger than 64 MiB", list_file)
    try:
        text = list_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"split list is not UTF-8 text ({err})", list_file) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _locate(root: Path, line: str, spec: DatasetSpec, list_file: Path, number: int) -> Path:
    """The file or folder of a scene named in a split list (with or without its suffix)."""
    relative = Path(line)
    if relative.is_absolute() or ".." in relative.parts:
        raise BadInput(f"line {number}: scene {line!r} must be a path inside RAW", list_file)
    candidates = [root / relative] + ([] if spec.format == "npy" else
                                      [root / f"{line}{suffix}" for suffix in SUFFIXES[spec.format]])
    for candidate in candidates:
        if (candidate.is_dir() if spec.format == "npy" else candidate.is_file()):
            return candidate
    raise MissingFile(f"line {number}: no scene {line!r} under {root}", list_file)


# --- reading ---


def read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene:
    spec = _spec(options)
    path = Path(ref.paths[0])
    labelled = ref.split != "test"
    if spec.format == "npy":  # Pointcept's layout: geometry by the shared folder reader, labels mapped here
        scene = read_folder(path, ref.name, spec.label_field, None, labels_required=False, what=f"{spec.name} (npy)",
                            fields=spec.fields)
        label_path = path / f"{spec.label_field}.npy"
        if label_path.is_file():
            scene.segment = map_labels(np.asarray(read_array(label_path, "fiub", 0, len(scene))), spec, label_path,
                                       warn)
        elif labelled:
            raise MissingFile(f"no {spec.label_field}.npy (the spec's label_field; train and val scenes need labels)",
                              path)
        return scene.validate(str(path))
    scene, labels, available = _read_file(path, spec)
    arrays = {"coord": scene.coord}
    for name in spec.fields:
        value = getattr(scene, name)
        if value is None:
            raise FormatError(f"no {name} in this {spec.format.upper()} file, which the dataset spec lists as a field",
                              path)
        arrays[name] = value
    if labels is None and labelled:
        raise FormatError(f"no label field {spec.label_field!r} in this file (it has {', '.join(available)}; train "
                          "and val scenes need labels)", path)
    if labels is not None:
        arrays["segment"] = map_labels(labels, spec, path, warn)
    return Scene(ref.name, **arrays).validate(str(path))


def map_labels(raw: np.ndarray, spec: DatasetSpec, path: Path, warn: Warn) -> np.ndarray:
    """Raw label values -> class indices (-1 ignore), by the spec's ids."""
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all() or not np.array_equal(raw, np.round(raw)):
            raise FormatError(f"label field {spec.label_field!r} holds non-integer values", path)
    elif raw.dtype.kind not in "iub":
        raise FormatError(f"label field {spec.label_field!r} has dtype {raw.dtype}, not integer", path)
    values = raw.astype(np.int64)
    lut = spec.lookup_table()
    out = np.full(values.shape[0], NOT_A_CLASS, dtype=np.int16)
    inside = (values >= 0) & (values < lut.shape[0])
    out[inside] = lut[values[inside]]
    bad = (out == NOT_A_CLASS) & (values != spec.ignore_id)
    out[out < 0] = IGNORE_INDEX
    if bad.any():
        found = np.unique(values[bad])
        shown = ", ".join(str(v) for v in found[:5]) + (", ..." if found.size > 5 else "")
        message = (f"{int(bad.sum())} labels ({shown}) are neither a class id of the spec nor ignore_id "
                   f"{spec.ignore_id}")
        if spec.unknown_ids == "error":
            raise FormatError(message + " (unknown_ids = \"ignore\" keeps them as ignored)", path)
        warn(f"{path}: {message}; stored as ignored")
    return out


def _read_file(path: Path, spec: DatasetSpec) -> tuple[Scene, np.ndarray | None, list[str]]:
    """(the file's Scene, its raw label column or None, the names a label field could have had)."""
    if spec.format == "ply":
        from pmoe_core.io.ply import read_ply_file
        from pmoe_core.io.ply_scene import read_ply

        scene = read_ply(path)
        _, elements = read_ply_file(path, elements=("vertex",))
        vertex = elements.get("vertex", {})
        column = vertex.get(spec.label_field)
        return scene, None if column is None else np.array(column), list(vertex)
    from pmoe_core.io.las import read_las

    scene = read_las(path)
    return (scene, *_las_column(path, spec.label_field, len(scene)))


def _las_column(path: Path, name: str, n: int) -> tuple[np.ndarray | None, list[str]]:
    """One LAS dimension (standard or extra) as an array, streamed in chunks (None when the file lacks it), and the
    file's dimension names."""
    import laspy

    try:
        with laspy.open(path) as reader:
            fmt = reader.header.point_format
            names = list(fmt.dimension_names)
            if name not in names:
                return None, names
            out = np.empty(n, dtype=np.int64 if fmt.dimension_by_name(name).kind.name != "FloatingPoint"
                           else np.float64)
            start = 0
            for chunk in reader.chunk_iterator(1_000_000):
                stop = min(start + len(chunk), n)
                out[start:stop] = np.asarray(chunk[name])[: stop - start]
                start = stop
    except (laspy.errors.LaspyException, ValueError, OSError) as err:  # read_las already read this file once
        raise FormatError(f"cannot read LAS dimension {name!r} ({err})", path) from None
    return out, names


__all__ = ["DatasetSpec", "Options", "dataset_name", "list_scenes", "load_spec", "map_labels", "read_scene"]
