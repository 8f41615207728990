"""S3DIS reader (Stanford3dDataset_v1.2_Aligned_Version): one room = the union of its `Annotations/*.txt`.

Each annotation file `<class>_<k>.txt` holds lines `x y z r g b`. Class = file name before the first `_`; names
outside the 13 classes (e.g. `stairs`) become clutter; instance = index of the file among the room's annotation
files in sorted order. Scene name `Area_N_<room>`; split by area (`Options.val_area` is val, the others train).

Rules for the known raw defects (each survived with a warning naming the file):
- bytes that cannot belong to a number (a stray control byte, a U+FFFD inside "103.0\ufffd0000") are deleted, which
  restores the number they interrupted; lines that then do not hold exactly 6 values are dropped;
- `<name> (1).txt` copies (Area_5/office_36 `wall_3 (1).txt`): skipped when byte-identical to `<name>.txt`, else
  kept as an instance of their own;
- `.DS_Store`, `Icon\r` and other hidden files are ignored silently; other non-.txt entries with a warning.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.scene import Scene
from pmoe_core.sources.base import SceneRef, Warn
from pmoe_core.vocab.label_spaces import S3DIS

NAME = "s3dis"
ALIASES = ()
RELEASE_FOLDER = "Stanford3dDataset_v1.2_Aligned_Version"
AREA = re.compile(r"^Area_(\d+)$")
COPY = re.compile(r"^(?P<stem>.+) \((?P<k>\d+)\)$")

_NUMBER_BYTES = np.zeros(256, dtype=bool)
_NUMBER_BYTES[np.frombuffer(b"0123456789.-+eE \t\r\n", dtype=np.uint8)] = True
_SPACE_BYTES = np.zeros(256, dtype=bool)
_SPACE_BYTES[np.frombuffer(b" \t\r\n", dtype=np.uint8)] = True
COLUMNS = 6


@dataclass
class Options:
    val_area: int = field(default=5, metadata={"help": "this area is the val split; every other area is train"})


def list_scenes(root: Path, options: Options) -> list[SceneRef]:
    root = Path(root)
    if not any(AREA.match(p.name) for p in root.iterdir()) and (root / RELEASE_FOLDER).is_dir():
        root = root / RELEASE_FOLDER
    areas = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := AREA.match(p.name)) and p.is_dir())
    if not areas:
        raise MissingFile("no Area_N folders: not an S3DIS root", root)
    refs = []
    for number, area in areas:
        split = "val" if number == options.val_area else "train"
        for room in sorted(p for p in area.iterdir() if p.is_dir() and not p.name.startswith(".")):
            refs.append(SceneRef(f"{area.name}_{room.name}", split, (str(room),)))
    if not refs:
        raise MissingFile("no room folders under the Area_N folders", root)
    return refs


def read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene:
    folder = Path(ref.paths[0]) / "Annotations"
    if not folder.is_dir():
        raise MissingFile("room has no Annotations folder", folder)
    files = _annotation_files(folder, warn)
    coords, colors, segments, instances = [], [], [], []
    for index, path in enumerate(files):
        values = parse_annotation(path, warn)
        if not len(values):
            warn(f"{path}: annotation file holds no points")
        cls = S3DIS.map_name(path.stem.split("_")[0])
        coords.append(values[:, :3])
        colors.append(values[:, 3:])
        segments.append(np.full(len(values), cls, dtype=np.int16))
        instances.append(np.full(len(values), index, dtype=np.int32))
    if not files or not sum(len(c) for c in coords):
        raise FormatError("room has no annotated points", folder)
    color = np.concatenate(colors)
    if (color < 0).any() or (color > 255).any():
        warn(f"{folder}: colour values outside 0..255 were clipped")
    scene = Scene(ref.name, np.concatenate(coords).astype(np.float32),
                  color=np.clip(np.rint(color), 0, 255).astype(np.uint8),
                  segment=np.concatenate(segments), instance=np.concatenate(instances))
    return scene.validate(str(folder))


def _annotation_files(folder: Path, warn: Warn) -> list[Path]:
    """The room's annotation files in sorted order, without OS litter and byte-identical ` (k)` copies."""
    kept = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name.startswith("Icon"):
            continue
        if not path.is_file() or path.suffix != ".txt":
            warn(f"{path}: not an annotation .txt file, skipped")
            continue
        copy = COPY.match(path.stem)
        if copy:
            original = path.with_name(copy.group("stem") + ".txt")
            if original.is_file() and original.read_bytes() == path.read_bytes():
                warn(f"{path}: duplicate of {original.name}, skipped")
                continue
            warn(f"{path}: copy-style name but different content from {original.name}; kept as its own instance")
        kept.append(path)
    return kept


def parse_annotation(path: Path, warn: Warn) -> np.ndarray:
    """(M, 6) float64 rows `x y z r g b`, repairing stray bytes and dropping malformed lines (vectorised).

    Almost every real file is clean: those go straight to numpy's C text parser. Only a file with a stray byte or a
    line numpy refuses takes the byte-screening path below, which also finds what to warn about."""
    data = path.read_bytes()
    raw = np.frombuffer(data, dtype=np.uint8)
    if not raw.size:
        return np.zeros((0, COLUMNS))
    stray = ~_NUMBER_BYTES[raw]
    if not stray.any():
        values = _parse_clean(data)
        if values is not None:
            return _in_float32_range(values, path)
    if stray.any():
        lines = np.unique(np.cumsum(raw == 10)[stray] + 1)  # stray bytes are never newlines
        warn(f"{path}: removed {int(stray.sum())} stray byte(s) on line(s) {_few(lines)}")
        raw = raw[~stray]
        if not raw.size:
            return np.zeros((0, COLUMNS))
    newline = raw == 10
    line_of_byte = np.cumsum(newline) - newline
    space = _SPACE_BYTES[raw]
    token_start = ~space & np.r_[True, space[:-1]]
    tokens_per_line = np.bincount(line_of_byte[token_start], minlength=int(line_of_byte[-1]) + 1)
    malformed = (tokens_per_line != COLUMNS) & (tokens_per_line != 0)
    if malformed.any():
        warn(f"{path}: dropped {int(malformed.sum())} line(s) without exactly {COLUMNS} values: line(s) "
             f"{_few(np.flatnonzero(malformed) + 1)}")
        raw = raw[~malformed[line_of_byte]]
    try:
        values = np.array(raw.tobytes().split(), dtype=np.float64)
    except ValueError:
        raise FormatError("a value is not a number (even after removing stray bytes)", path) from None
    return _in_float32_range(values.reshape(-1, COLUMNS), path)


def _parse_clean(data: bytes) -> np.ndarray | None:
    """The rows of a file holding only number bytes, or None when some line does not hold 6 numbers."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data" for whitespace-only files
            values = np.loadtxt(io.BytesIO(data), dtype=np.float64, ndmin=2)
    except ValueError:  # a token that is not a number ("1.0.0", "-"), or lines of different lengths
        return None
    if not values.size:
        return np.zeros((0, COLUMNS))
    return values if values.shape[1] == COLUMNS else None


def _in_float32_range(values: np.ndarray, path: Path) -> np.ndarray:
    if not (np.abs(values) <= np.finfo(np.float32).max).all():  # points are stored as float32
        raise FormatError("values overflow to infinity (beyond float32)", path)
    return values


def _few(numbers: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(n)) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")
