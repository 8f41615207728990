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

Normals: the raw release has none; `normals="pca"` (the default) estimates them per room at convert time
(sources/normals.py: k nearest neighbours, facing the room's inside), as the Point-MoE release trains S3DIS on colour +
normal. The choice and k are recorded in the store's `source` attribute (fields marked `recorded`).
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.scene import Scene
from pmoe_core.sources.base import SceneRef, Warn
from pmoe_core.sources.normals import DEFAULT_K, estimate_normals
from pmoe_core.vocab.label_spaces import S3DIS

NAME = "s3dis"
ALIASES = ()
FAR_M = 1_000.0  # indoor: farther than this from the scene median is implausible (warned, kept)
RELEASE_FOLDER = "Stanford3dDataset_v1.2_Aligned_Version"
AREA = re.compile(r"^Area_(\d+)$")
COPY = re.compile(r"^(?P<stem>.+) \((?P<k>\d+)\)$")

_NUMBER_BYTES = np.zeros(256, dtype=bool)
_NUMBER_BYTES[np.frombuffer(b"0123456789.-+eE \t\r\n", dtype=np.uint8)] = True
_SPACE_BYTES = np.zeros(256, dtype=bool)
_SPACE_BYTES[np.frombuffer(b" \t\r\n", dtype=np.uint8)] = True
COLUMNS = 6
BLOCK = 1 << 20  # bytes parsed at a time
MAX_LINE = 1 << 16  # a row of six numbers is ~40 bytes; a longer line is malformed
NORMALS = ("pca", "none")


@dataclass
class Options:
    val_area: int = field(default=5, metadata={"help": "this area is the val split; every other area is train"})
    normals: str = field(default="pca", metadata={
        "help": "pca: estimate normals per room (k nearest neighbours, facing the room's inside); none: no normals",
        "recorded": True})
    normals_k: int = field(default=DEFAULT_K, metadata={"help": "neighbours per normal (normals=pca)",
                                                        "recorded": True})

    def __post_init__(self) -> None:
        if self.val_area < 1:
            raise BadInput(f"option val_area must be an area number (1 or more), got {self.val_area}")
        if self.normals not in NORMALS:
            raise BadInput(f"option normals must be one of {', '.join(NORMALS)}, got {self.normals!r}")
        if self.normals_k < 3:
            raise BadInput(f"option normals_k must be at least 3 (a plane needs three points), got {self.normals_k}")


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
    coord = np.concatenate(coords).astype(np.float32)
    normal = estimate_normals(coord, options.normals_k) if options.normals == "pca" else None
    scene = Scene(ref.name, coord, color=np.clip(np.rint(color), 0, 255).astype(np.uint8), normal=normal,
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


@dataclass
class _Lines:
    """Line numbers of one kind of defect: how many, and the first few (for the warning)."""

    count: int = 0
    first: list[int] = field(default_factory=list)

    def add(self, numbers: Iterable[int], shown: int = 5) -> None:
        for number in numbers:
            self.count += 1
            if len(self.first) < shown:
                self.first.append(int(number))

    def __str__(self) -> str:
        more = self.count - len(self.first)
        return ", ".join(map(str, self.first)) + (f" and {more} more" if more else "")


@dataclass
class _Defects:
    """What parsing a file survived, gathered over its blocks for one warning of each kind."""

    stray_bytes: int = 0
    stray_lines: _Lines = field(default_factory=_Lines)
    malformed_lines: _Lines = field(default_factory=_Lines)


def parse_annotation(path: Path, warn: Warn) -> np.ndarray:
    """(M, 6) float64 rows `x y z r g b`, repairing stray bytes and dropping malformed lines (vectorised).

    The file is parsed in blocks of whole lines (BLOCK bytes), so the per-byte work arrays of the repair path cost a
    constant, and the rows go into one array sized by the file's line count: memory stays ~1.3x the file size
    (it was ~23x for a file with one stray byte). Almost every block is clean and goes straight to numpy's C text
    parser; only a block with a stray byte or a line numpy refuses takes the byte-screening path."""
    lines = _count_lines(path)
    out = np.empty((lines, COLUMNS), dtype=np.float64)
    rows = 0
    defects = _Defects()
    for first_line, block in _blocks(path, defects):
        values = _parse_block(block, first_line, defects, path)
        out[rows: rows + len(values)] = values
        rows += len(values)
    if defects.stray_bytes:
        warn(f"{path}: removed {defects.stray_bytes} stray byte(s) on line(s) {defects.stray_lines}")
    if defects.malformed_lines.count:
        warn(f"{path}: dropped {defects.malformed_lines.count} line(s) without exactly {COLUMNS} values: line(s) "
             f"{defects.malformed_lines}")
    return out[:rows]


def _count_lines(path: Path) -> int:
    """Lines in the file (a last line without a newline counts), read in blocks."""
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _blocks(path: Path, defects: _Defects) -> Iterator[tuple[int, bytes]]:
    """(number of the first line, bytes of whole lines) of about BLOCK bytes each; a line longer than MAX_LINE
    cannot be a row of six numbers and is dropped as malformed without being held in memory."""
    line, carry = 1, b""
    with open(path, "rb") as f:
        while True:
            data = f.read(BLOCK)
            if not data:
                if carry:
                    yield line, carry
                return
            carry += data
            cut = carry.rfind(b"\n") + 1
            if cut:
                yield line, carry[:cut]
                line += carry.count(b"\n", 0, cut)
                carry = carry[cut:]
            if len(carry) > MAX_LINE:  # skip the rest of this overlong line
                defects.malformed_lines.add([line])
                while True:
                    end = carry.find(b"\n")
                    if end >= 0:
                        carry, line = carry[end + 1:], line + 1
                        break
                    carry = f.read(BLOCK)
                    if not carry:
                        return


def _parse_block(data: bytes, first_line: int, defects: _Defects, path: Path) -> np.ndarray:
    """The rows of one block of whole lines (see parse_annotation); line numbers in `defects` count from 1."""
    raw = np.frombuffer(data, dtype=np.uint8)
    stray = ~_NUMBER_BYTES[raw]
    if not stray.any():
        values = _parse_clean(data)
        if values is not None:
            return _in_float32_range(values, path)
    if stray.any():
        at = np.flatnonzero(stray)
        newlines = np.flatnonzero(raw == 10)
        stray_lines = np.unique(np.searchsorted(newlines, at)) + first_line  # stray bytes are never newlines
        defects.stray_bytes += len(at)
        defects.stray_lines.add(stray_lines[:5])
        defects.stray_lines.count += max(len(stray_lines) - 5, 0)
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
        bad = np.flatnonzero(malformed) + first_line
        defects.malformed_lines.add(bad[:5])
        defects.malformed_lines.count += max(len(bad) - 5, 0)
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
