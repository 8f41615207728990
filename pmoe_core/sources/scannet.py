"""ScanNet v2 reader: `scans/<scene>/` meshes + over-segmentation + aggregation -> ScanNet20 labels.

Per scene: `<scene>_vh_clean_2.ply` (vertices, colours, faces -> area-weighted normals),
`<scene>_vh_clean_2.0.010000.segs.json` (segment id per vertex), `<scene>.aggregation.json` (segment groups with a
raw category each; instance = the group's `id`), `<scene>.txt` (axisAlignment). Raw categories reach ScanNet20
through `scannetv2-labels.combined.tsv` (raw_category -> nyu40id). Vertices in no group are ignored (-1, -1).
A raw category missing from the table is warned about and ignored. Scenes under `scans_test/` carry no labels.

Splits: the official lists `scannetv2_{train,val,test}.txt` (from `Options.split_lists`, else the raw root, else
`Tasks/Benchmark/` under it); scenes on disk that no list names are left out. Without lists every scene under
`scans/` is train and every scene under `scans_test/` is test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.io.ply import read_ply_file, require_properties
from pmoe_core.jsonio import read_json
from pmoe_core.scene import IGNORE_INDEX, Scene
from pmoe_core.sources.base import SceneRef, Warn
from pmoe_core.sources.label_tables import column_map
from pmoe_core.sources.meshes import check_faces, vertex_normals
from pmoe_core.vocab.label_spaces import SCANNET

NAME = "scannet"
ALIASES = ("scannetv2", "scannet20")
FAR_M = 1_000.0  # indoor: farther than this from the scene median is implausible (warned, kept)
LABELS_TSV = "scannetv2-labels.combined.tsv"
SPLIT_FILES = {"train": "scannetv2_train.txt", "val": "scannetv2_val.txt", "test": "scannetv2_test.txt"}


@dataclass
class Options:
    align: bool = field(default=True, metadata={"help": "apply axisAlignment from <scene>.txt when present"})
    split_lists: str | None = field(default=None, metadata={"help": "folder holding scannetv2_{train,val,test}.txt"})
    labels_tsv: str | None = field(default=None, metadata={
        "help": "path of scannetv2-labels.combined.tsv (default: in the raw root)"})


def list_scenes(root: Path, options: Options) -> list[SceneRef]:
    root = Path(root)
    folders = [(root / "scans", "train"), (root / "scans_test", "test")]
    if not any(folder.is_dir() for folder, _ in folders):
        raise MissingFile("no scans/ or scans_test/ folder: not a ScanNet v2 root", root)
    listed = _split_lists(root, options)
    tsv = str(_tsv_path(root, options))
    refs = []
    for folder, default_split in folders:
        if not folder.is_dir():
            continue
        for scene_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            split = listed.get(scene_dir.name) if listed is not None else default_split
            if split is not None:
                refs.append(SceneRef(scene_dir.name, split, (str(scene_dir),), {"labels_tsv": tsv}))
    if not refs:
        raise MissingFile("no ScanNet scene folders (or none named by the split lists)", root)
    if any(ref.split != "test" for ref in refs) and not Path(tsv).is_file():
        raise MissingFile("label table not found (pass -O labels_tsv=PATH)", tsv)
    return refs


def _split_lists(root: Path, options: Options) -> dict[str, str] | None:
    candidates = [Path(options.split_lists)] if options.split_lists else [root, root / "Tasks" / "Benchmark"]
    for folder in candidates:
        files = {split: folder / name for split, name in SPLIT_FILES.items() if (folder / name).is_file()}
        if files:
            return {
                line.strip(): split for split, path in files.items()
                for line in path.read_text(errors="replace").splitlines() if line.strip()
            }
    if options.split_lists:
        raise MissingFile(f"no {', '.join(SPLIT_FILES.values())} in the split-list folder", options.split_lists)
    return None


def _tsv_path(root: Path, options: Options) -> Path:
    return Path(options.labels_tsv) if options.labels_tsv else root / LABELS_TSV


def read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene:
    scene_dir = Path(ref.paths[0])
    mesh_path = scene_dir / f"{ref.name}_vh_clean_2.ply"
    _, ply = read_ply_file(mesh_path)
    vertex = ply.get("vertex", {})
    require_properties(vertex, ("x", "y", "z", "red", "green", "blue"), "vertex", mesh_path)
    require_properties(ply.get("face", {}), ("vertex_indices",), "face", mesh_path)
    coord = np.column_stack([vertex["x"], vertex["y"], vertex["z"]]).astype(np.float64)
    if not np.isfinite(coord).all():
        raise FormatError(f"{int((~np.isfinite(coord)).any(1).sum())} vertices have NaN/infinite coordinates",
                          mesh_path)
    if options.align:
        coord = _align(coord, scene_dir / f"{ref.name}.txt")
    faces = check_faces(ply["face"]["vertex_indices"], len(coord), mesh_path)
    color = np.column_stack([vertex["red"], vertex["green"], vertex["blue"]]).astype(np.uint8)
    try:
        segment, instance = _labels(scene_dir, ref, len(coord), warn)
    except (OverflowError, TypeError, ValueError) as err:  # ids beyond int64/int32, non-integers, nested lists
        raise FormatError(f"annotation ids cannot be decoded ({type(err).__name__}: {err})",
                          scene_dir / f"{ref.name}.aggregation.json") from None
    scene = Scene(ref.name, coord.astype(np.float32), color=color, normal=vertex_normals(coord, faces),
                  segment=segment, instance=instance)
    return scene.validate(str(mesh_path))


def _align(coord: np.ndarray, meta_path: Path) -> np.ndarray:
    """Apply the 4x4 row-major `axisAlignment` of <scene>.txt, if the file has one."""
    matrix = axis_alignment(meta_path)
    if matrix is None:
        return coord
    with np.errstate(over="ignore", invalid="ignore"):
        aligned = coord @ matrix[:3, :3].T + matrix[:3, 3]
    if not np.isfinite(aligned).all():  # NaN in the matrix, or values that overflow float64
        raise FormatError("axisAlignment moves vertices to NaN or infinity", meta_path)
    check_invertible(matrix, meta_path)
    return aligned


def axis_alignment(meta_path: Path) -> np.ndarray | None:
    """The 4x4 `axisAlignment` of a <scene>.txt (None when the file or the key is absent); FormatError when it is
    not 16 numbers."""
    if not meta_path.is_file():
        return None
    for line in meta_path.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "axisAlignment":
            try:
                matrix = np.array([float(v) for v in value.split()], dtype=np.float64)
            except ValueError:
                raise FormatError("axisAlignment holds a non-numeric value", meta_path) from None
            if matrix.size != 16:
                raise FormatError(f"axisAlignment has {matrix.size} values, expected 16", meta_path)
            return matrix.reshape(4, 4)
    return None


def check_invertible(matrix: np.ndarray, meta_path: Path) -> None:
    """FormatError for an alignment that would collapse every vertex onto a plane or a point (all zero, rank
    deficient): a rotation's determinant is 1."""
    with np.errstate(over="ignore", invalid="ignore"):
        det = np.linalg.det(matrix[:3, :3])
    if not abs(det) > 1e-6:
        raise FormatError(f"axisAlignment is singular (determinant {det:.3g}; a rotation has 1)", meta_path)


def _labels(scene_dir: Path, ref: SceneRef, n: int, warn: Warn) -> tuple[np.ndarray | None, np.ndarray | None]:
    segs_path = scene_dir / f"{ref.name}_vh_clean_2.0.010000.segs.json"
    agg_path = scene_dir / f"{ref.name}.aggregation.json"
    if not agg_path.is_file():
        agg_path = scene_dir / f"{ref.name}_vh_clean.aggregation.json"  # name used by early releases
    if not agg_path.is_file() and not segs_path.is_file():
        if ref.split == "test":
            return None, None
        raise MissingFile(f"labelled ({ref.split}) scene has no aggregation.json / segs.json",
                          scene_dir / f"{ref.name}.aggregation.json")
    seg_indices = np.asarray(_load_json(segs_path).get("segIndices", []), dtype=np.int64)
    if seg_indices.shape != (n,):
        raise FormatError(f"segIndices has {seg_indices.size} entries but the mesh has {n} vertices", segs_path)
    groups = _load_json(agg_path).get("segGroups")
    if not isinstance(groups, list):
        raise FormatError("aggregation has no segGroups list", agg_path)
    nyu40 = column_map(ref.meta["labels_tsv"], "raw_category", "nyu40id")
    group_ids, group_nyu, seg_keys, seg_group = [], [], [], []
    unknown = set()
    for k, group in enumerate(groups):
        try:
            label, gid, segments = group["label"], int(group["id"]), group["segments"]
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"segGroup {k} lacks label/id/segments", agg_path) from None
        if label not in nyu40:
            unknown.add(label)
        group_ids.append(gid)
        group_nyu.append(nyu40.get(label, 0))
        seg_keys.append(np.asarray(segments, dtype=np.int64))
        seg_group.append(np.full(len(segments), k))
    for label in sorted(unknown):
        warn(f"{agg_path}: raw category {label!r} is not in {ref.meta['labels_tsv']}; its points are ignored")
    group_of_vertex = _group_of_vertex(seg_indices, seg_keys, seg_group)
    assigned = group_of_vertex >= 0
    group_class = SCANNET.map_raw(np.asarray(group_nyu, dtype=np.int64))
    segment = np.full(n, IGNORE_INDEX, dtype=np.int16)
    instance = np.full(n, IGNORE_INDEX, dtype=np.int32)
    segment[assigned] = group_class[group_of_vertex[assigned]]
    instance[assigned] = np.asarray(group_ids, dtype=np.int32)[group_of_vertex[assigned]]
    return segment, instance


def _group_of_vertex(seg_indices: np.ndarray, seg_keys: list[np.ndarray], seg_group: list[np.ndarray]) -> np.ndarray:
    """Index of the segGroup holding each vertex's segment (-1 = none; a segment in two groups: the later wins)."""
    if not seg_keys or not sum(len(k) for k in seg_keys):
        return np.full(len(seg_indices), -1, dtype=np.int64)
    keys, groups = np.concatenate(seg_keys), np.concatenate(seg_group)
    order = np.lexsort((np.arange(len(keys)), keys))
    keys, groups = keys[order], groups[order]
    last = np.r_[keys[1:] != keys[:-1], True]
    keys, groups = keys[last], groups[last]
    pos = np.clip(np.searchsorted(keys, seg_indices), 0, len(keys) - 1)
    return np.where(keys[pos] == seg_indices, groups[pos], -1)


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise MissingFile("annotation file not found", path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise FormatError("expected a JSON object", path)
    return data
