"""SemanticKITTI -> Scene, one scene per scan: `sequences/NN/velodyne/NNNNNN.bin` + `labels/NNNNNN.label`.

Points are float32 x4 (x, y, z, remission); labels uint32 with semantic = l & 0xFFFF, instance = l >> 16, mapped
to the 19 benchmark classes by the official learning map (moving classes fold into their static class). Scans
without a label file (the test sequences) are converted without labels. Strength = remission.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.scene import Scene
from pmoe_core.sources.base import SPLITS, SceneRef, Warn
from pmoe_core.sources.label_tables import warn_unknown_ids
from pmoe_core.vocab.label_spaces import SEMANTICKITTI

NAME = "semantickitti"
FAR_M = 10_000.0  # outdoor: farther than this from the scan median is implausible (warned, kept)
POINT_DTYPE = np.dtype("<f4")
POINT_WIDTH = 4
LABEL_DTYPE = np.dtype("<u4")

# The official sequence splits (semantic-kitti.yaml).
TRAIN_SEQUENCES = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10)
VAL_SEQUENCES = (8,)
TEST_SEQUENCES = tuple(range(11, 22))
LABELLED_SEQUENCES = TRAIN_SEQUENCES + VAL_SEQUENCES
# Raw ids of semantic-kitti.yaml that the learning map sends to ignore: unlabeled, outlier, other-structure,
# other-object. Any id neither here nor in the map is not a SemanticKITTI label: ignored too, with a warning.
IGNORED_RAW = (0, 1, 52, 99)
KNOWN_RAW = frozenset(SEMANTICKITTI.raw_to_name) | frozenset(IGNORED_RAW)
MAX_SEQUENCE = 9999  # sequence folders are numbers; bounds what "0-N" may expand to


@dataclass
class Options:
    sequences: str | None = field(default=None, metadata={
        "help": "only these sequences, e.g. '08' or '00-07,09,10' (default: every sequence found)"})
    split: str | None = field(default=None, metadata={
        "help": "put every converted scan in this split instead of the official one (train, val or test)"})

    def __post_init__(self) -> None:
        if self.split is not None and self.split not in SPLITS:
            raise BadInput(f"option split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.sequences is not None:
            parse_sequences(self.sequences)


def official_split(sequence: int) -> str | None:
    if sequence in TRAIN_SEQUENCES:
        return "train"
    if sequence in VAL_SEQUENCES:
        return "val"
    if sequence in TEST_SEQUENCES:
        return "test"
    return None


def parse_sequences(text: str) -> set[int]:
    """'00-07,09' -> {0..7, 9}."""
    chosen: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi or lo)
            if not 0 <= first <= last <= MAX_SEQUENCE:
                raise ValueError(part)
            chosen.update(range(first, last + 1))
    except ValueError:
        raise BadInput(f"option sequences must look like '00-07,09' (numbers 0..{MAX_SEQUENCE}, low-high), "
                       f"got {text!r}") from None
    return chosen


def sequences_dir(root: Path) -> Path:
    """Accept the dataset root, its `dataset/` folder, or the `sequences/` folder itself."""
    for candidate in (root / "sequences", root / "dataset" / "sequences", root):
        if candidate.is_dir() and any(p.is_dir() and p.name.isdigit() for p in candidate.iterdir()):
            return candidate
    raise MissingFile("no SemanticKITTI sequences folder (expected sequences/NN/velodyne/*.bin)", root)


def list_scenes(root: Path, options: Options) -> list[SceneRef]:
    seq_root = sequences_dir(Path(root))
    wanted = parse_sequences(options.sequences) if options.sequences else None
    refs = []
    for seq_dir in sorted(p for p in seq_root.iterdir() if p.is_dir() and p.name.isdigit()):
        seq = int(seq_dir.name)
        if wanted is not None and seq not in wanted:
            continue
        split = options.split or official_split(seq)
        if split is None:
            raise BadInput(f"sequence {seq_dir.name} is not an official sequence (00-21); choose sequences with "
                           "-O sequences=... or give -O split=...", seq_dir)
        for scan in sorted((seq_dir / "velodyne").glob("*.bin")):
            label = seq_dir / "labels" / f"{scan.stem}.label"
            paths = (str(scan), str(label)) if label.is_file() else (str(scan),)
            refs.append(SceneRef(f"{seq_dir.name}_{scan.stem}", split, paths, {"sequence": seq_dir.name}))
    return refs


def read_points(path: Path) -> np.ndarray:
    """(N, 4) float32 from a velodyne .bin, checking the size is whole records."""
    size = path.stat().st_size if path.is_file() else None
    if size is None:
        raise MissingFile("velodyne scan not found", path)
    record = POINT_DTYPE.itemsize * POINT_WIDTH
    if size % record:
        raise FormatError(f"size {size} bytes is not a multiple of {record} (float32 x, y, z, remission)", path)
    return np.fromfile(path, dtype=POINT_DTYPE).reshape(-1, POINT_WIDTH)


def read_labels(path: Path, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(semantic raw id uint16-range int64, instance int32) from a .label file with one uint32 per point."""
    size = path.stat().st_size
    if size % LABEL_DTYPE.itemsize:
        raise FormatError(f"size {size} bytes is not a multiple of 4 (one uint32 per point)", path)
    raw = np.fromfile(path, dtype=LABEL_DTYPE)
    if raw.size != num_points:
        raise FormatError(f"{raw.size} labels for {num_points} points in the matching velodyne scan", path)
    return (raw & 0xFFFF).astype(np.int64), (raw >> 16).astype(np.int32)


def read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene:
    scan = Path(ref.paths[0])
    points = read_points(scan)
    segment = instance = None
    if len(ref.paths) > 1:
        semantic, instance = read_labels(Path(ref.paths[1]), points.shape[0])
        warn_unknown_ids(semantic, KNOWN_RAW, f"{ref.paths[1]}", "the SemanticKITTI label map", warn)
        segment = SEMANTICKITTI.map_raw(semantic)
    elif int(ref.meta.get("sequence", "99")) in LABELLED_SEQUENCES:
        warn(f"{scan}: no labels file in a labelled sequence; converted without labels")
    return Scene(name=ref.name, coord=points[:, :3], strength=points[:, 3], segment=segment,
                 instance=instance).validate(str(scan))
