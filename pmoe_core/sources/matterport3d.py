"""Matterport3D reader: region meshes from `v1/scans/<house>/region_segmentations.zip`, one scene per region.

Region PLY: vertices x,y,z,nx,ny,nz,tx,ty,red,green,blue; faces vertex_indices, material_id, segment_id,
category_id. Labels are per face: category_id is the 1-based `index` row of `category_mapping.tsv` (CRLF; -1 =
unlabelled) -> nyu40id -> Matterport21. A vertex takes the majority label of its faces; unlabelled or
non-benchmark faces vote for "ignore", which loses ties (ties between classes go to the lower class index).
Scene name `<house>_<K:02d>`. Splits: Pointcept-style `scenes_{train,val,test}.txt` house lists from
`Options.split_lists` or the raw root (houses no list names are left out); without lists every house is train.
The zip is read in place; an unzipped `<house>/[<house>/]region_segmentations/` folder works too. A house whose
regions cannot be listed (no archive or folder, a dangling link, not a regular file, a corrupt zip, no region
meshes inside) is listed as one unreadable scene `<house>`, so convert reports it instead of dropping the house.
`category_mapping.tsv` indices must be distinct integers >= 1 (a negative index would wrap onto other rows).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.io.ply import read_ply_bytes, require_properties
from pmoe_core.scene import Scene
from pmoe_core.sources.archive import read_member
from pmoe_core.sources.base import SceneRef, Warn
from pmoe_core.sources.label_tables import column_map, read_tsv
from pmoe_core.sources.meshes import check_faces, majority_vertex_label
from pmoe_core.vocab.label_spaces import MATTERPORT3D

NAME = "matterport3d"
ALIASES = ("matterport", "mp3d")
FAR_M = 1_000.0  # indoor: farther than this from the scene median is implausible (warned, kept)
REGION = re.compile(r"(?:^|/)region_segmentations/region(\d+)\.ply$")
SPLIT_FILES = {"train": "scenes_train.txt", "val": "scenes_val.txt", "test": "scenes_test.txt"}
MAPPING = "category_mapping.tsv"
MAX_REGION_BYTES = 2 << 30  # the largest release region mesh is ~100 MB; beyond this a zip entry is corrupt


@dataclass
class Options:
    split_lists: str | None = field(default=None, metadata={
        "help": "folder holding scenes_{train,val,test}.txt (house ids); default: all houses train"})
    category_mapping: str | None = field(default=None, metadata={
        "help": "path of category_mapping.tsv (default: searched in the raw root, metadata/, v1/)"})


def list_scenes(root: Path, options: Options) -> list[SceneRef]:
    root = Path(root)
    scans = next((p for p in (root / "v1" / "scans", root / "scans") if p.is_dir()), root)
    mapping = _mapping_path(root, options)
    listed = _split_lists(root, options)
    refs = []
    for house in sorted(p for p in scans.iterdir() if p.is_dir() and not p.name.startswith(".")):
        split = listed.get(house.name) if listed is not None else "train"
        if split is None:
            continue
        try:
            regions = _regions(house)
        except (FormatError, MissingFile) as err:
            refs.append(SceneRef(house.name, split, (str(house),), problem=err.message))
            continue
        for number, path, member in regions:
            refs.append(SceneRef(f"{house.name}_{number:02d}", split, (path,), {"member": member,
                                                                                  "mapping": str(mapping)}))
    if all(ref.problem for ref in refs):  # nothing readable at all: most likely not a Matterport3D root
        raise MissingFile("no <house>/region_segmentations.zip (or region_segmentations/) found"
                          + (f" (first house: {refs[0].problem})" if refs else ""), scans)
    return refs


def _mapping_path(root: Path, options: Options) -> Path:
    if options.category_mapping:
        path = Path(options.category_mapping)
        if not path.is_file():
            raise MissingFile("category mapping not found", path)
        return path
    for candidate in (root / MAPPING, root / "metadata" / MAPPING, root / "v1" / MAPPING, root / "v1" / "metadata" / MAPPING):
        if candidate.is_file():
            return candidate
    raise MissingFile(f"{MAPPING} not found in the raw root or its metadata/ (pass -O category_mapping=PATH)", root)


def _split_lists(root: Path, options: Options) -> dict[str, str] | None:
    folder = Path(options.split_lists) if options.split_lists else root
    files = {split: folder / name for split, name in SPLIT_FILES.items() if (folder / name).is_file()}
    if not files:
        if options.split_lists:
            raise MissingFile(f"no {', '.join(SPLIT_FILES.values())} in the split-list folder", folder)
        return None
    return {line.strip(): split for split, path in files.items()
            for line in path.read_text(errors="replace").splitlines() if line.strip()}


def _regions(house: Path) -> list[tuple[int, str, str]]:
    """(region number, file or zip path, zip member or "") for every region mesh of a house (at least one)."""
    archive = house / "region_segmentations.zip"
    if archive.is_symlink() and not archive.exists():
        raise MissingFile("is a dangling link", archive)
    if archive.exists():
        if not archive.is_file():
            raise FormatError("is not a regular file", archive)
        try:
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise FormatError(f"cannot read zip archive ({type(err).__name__}: {err})", archive) from None
        found = [(int(m.group(1)), str(archive), name) for name in names if (m := REGION.search(name))]
        if not found:
            raise FormatError("archive holds no region_segmentations/region<N>.ply", archive)
    else:
        found = [(int(m.group(1)), str(p), "") for p in house.glob("**/region_segmentations/region*.ply")
                 if (m := REGION.search(p.as_posix()))]
        if not found:
            raise MissingFile("house has no region_segmentations.zip (or region_segmentations/ folder)", archive)
    return sorted(found)


def read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene:
    if ref.problem:
        raise FormatError(ref.problem)
    path, member = Path(ref.paths[0]), ref.meta.get("member", "")
    source = f"{path}:{member}" if member else str(path)
    _, ply = read_ply_bytes(_read_bytes(path, member, source), source)
    vertex, face = ply.get("vertex", {}), ply.get("face", {})
    require_properties(vertex, ("x", "y", "z", "nx", "ny", "nz", "red", "green", "blue"), "vertex", source)
    require_properties(face, ("vertex_indices", "category_id"), "face", source)
    coord = np.column_stack([vertex["x"], vertex["y"], vertex["z"]]).astype(np.float32)
    faces = check_faces(face["vertex_indices"], len(coord), source)
    face_class = _face_classes(face["category_id"].astype(np.int64), ref.meta["mapping"], source)
    segment = majority_vertex_label(faces, face_class, len(coord), MATTERPORT3D.num_classes)
    scene = Scene(
        ref.name,
        coord,
        color=np.column_stack([vertex["red"], vertex["green"], vertex["blue"]]).astype(np.uint8),
        normal=np.column_stack([vertex["nx"], vertex["ny"], vertex["nz"]]).astype(np.float32),
        segment=segment,
    )
    return scene.validate(source)


def _face_classes(category: np.ndarray, mapping: str, source: str) -> np.ndarray:
    """Matterport21 class per face from its 1-based category_mapping row (-1 = unlabelled -> ignore)."""
    indices, nyu40_of_row = category_table(mapping)
    ids, inverse = np.unique(category, return_inverse=True)  # a handful of distinct ids, however large they are
    row = np.searchsorted(indices, ids)
    known = (row < len(indices)) & (indices[np.minimum(row, len(indices) - 1)] == ids)
    bad = ~known & (ids != -1)
    if bad.any():
        raise FormatError(f"{int(np.isin(category, ids[bad]).sum())} faces have a category_id that is neither -1 nor an "
                          f"index of {mapping} (first: {int(ids[bad][0])})", source)
    nyu40 = np.where(known, nyu40_of_row[np.minimum(row, len(indices) - 1)], 0)
    return MATTERPORT3D.map_raw(nyu40[inverse.reshape(-1)])


@lru_cache(maxsize=4)
def category_table(mapping: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted `index` values, their nyu40id) of category_mapping.tsv, refusing an index that is not a distinct
    integer >= 1 (a negative one used to wrap onto other rows, a huge one to allocate a table that large)."""
    nyu40_of = column_map(mapping, "index", "nyu40id")  # checks the columns and that nyu40ids are integers
    if len(nyu40_of) != len(read_tsv(mapping)[1]):
        raise FormatError("a category index appears on two rows", mapping)
    indices = []
    for text in nyu40_of:
        try:
            index = int(text)
        except ValueError:
            raise FormatError(f"category index {text!r} is not an integer", mapping) from None
        if index < 1:
            raise FormatError(f"category index {index} is below 1 (indices are 1-based row numbers)", mapping)
        indices.append(index)
    if len(set(indices)) != len(indices):
        raise FormatError("a category index appears on two rows", mapping)
    order = np.argsort(indices)
    return np.asarray(indices, dtype=np.int64)[order], np.asarray(list(nyu40_of.values()), dtype=np.int64)[order]


def _read_bytes(path: Path, member: str, source: str) -> bytes:
    if not member:
        if not path.is_file():
            raise MissingFile("region mesh not found", path)
        return path.read_bytes()
    return read_member(path, member, source, MAX_REGION_BYTES)
