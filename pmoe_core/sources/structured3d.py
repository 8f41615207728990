"""Structured3D reader: panorama renders back-projected to points, read in place from the release zips.

Scene granularity: one scene per room (`scene_XXXXX_room_<roomID>`), as Pointcept does: each room has its own
panorama camera, and merging a scene's rooms would stack views of the same walls seen through doorways.

Per room: `panorama/camera_xyz.txt` (camera centre, mm, z up) and `panorama/full/{rgb_rawlight,semantic,depth,
normal}.png`. Back-projection (y-up intermediate frame, then y/z swapped back, as the community converters do):
a = u/W*2pi - pi, b = pi/2 - v/H*pi, p = d*(cos a cos b, sin b, sin a cos b)/1000 + [[0,1,0],[0,0,1],[1,0,0]] @ cam/1000,
then p @ [[1,0,0],[0,0,1],[0,1,0]]. normal.png is taken to be in the same y-up frame as p: n = v/128 - 1, swapped the
same way, renormalised. Pixels with depth > 0 and semantic > 0 are kept, in row-major order.
semantic.png holds NYU40 ids: 8-bit grey, or a palette image whose indices are the ids, or (tolerated) an RGB
image whose three channels are equal. Splits by scene number: 0-2999 train, 3000-3249 val, 3250-3499 test.
Sources: `Structured3D_panorama_XX.zip` files in the raw root, or an unzipped `Structured3D/` folder.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.scene import Scene
from pmoe_core.sources.archive import read_member
from pmoe_core.sources.base import SceneRef, Warn
from pmoe_core.vocab.label_spaces import STRUCTURED3D

NAME = "structured3d"
ALIASES = ("s3d", "struct3d")
FAR_M = 1_000.0  # indoor: farther than this from the scene median is implausible (warned, kept)
RENDERS = ("empty", "simple", "full")
LIGHTINGS = ("cold", "raw", "warm")
ROOM = re.compile(r"(?:^|/)(scene_(\d+))/2D_rendering/([^/]+)/panorama/camera_xyz\.txt$")
Z_UP_TO_Y_UP = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float64)
SWAP_Y_Z = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float64)
# Release panoramas are 1024 x 512; anything far larger is a corrupt header or a decompression bomb, refused
# before decoding (PIL only warns below 89M pixels, and a 16-bit image of that size is ~180 MB per copy).
MAX_MEMBER_BYTES = 256 << 20
MAX_PIXELS = 16 << 20
MAX_CAMERA_MM = 1e9  # 1000 km: keeps every back-projected point (depth <= 65.5 m) far inside float32


@dataclass
class Options:
    render: str = field(default="full", metadata={"help": "renders to read: empty | simple | full (furnished)"})
    lighting: str = field(default="raw", metadata={"help": "colour image rgb_<cold|raw|warm>light.png"})

    def __post_init__(self) -> None:
        if self.render not in RENDERS:
            raise BadInput(f"option render must be one of {', '.join(RENDERS)}, got {self.render!r}")
        if self.lighting not in LIGHTINGS:
            raise BadInput(f"option lighting must be one of {', '.join(LIGHTINGS)}, got {self.lighting!r}")


def split_of(scene_number: int) -> str:
    return "train" if scene_number < 3000 else ("val" if scene_number < 3250 else "test")


def list_scenes(root: Path, options: Options) -> list[SceneRef]:
    root = Path(root)
    found: dict[str, SceneRef] = {}
    for archive in sorted(root.glob("*.zip")):
        for member in _namelist(archive):
            _add(found, ROOM.search(member), str(archive), member[: -len("camera_xyz.txt")])
    folder = root / "Structured3D" if (root / "Structured3D").is_dir() else root
    for camera in sorted(folder.glob("scene_*/2D_rendering/*/panorama/camera_xyz.txt")):
        _add(found, ROOM.search(camera.relative_to(folder).as_posix()), str(camera.parent), "")
    if not found:
        raise MissingFile("no Structured3D_panorama_*.zip (or Structured3D/scene_*/.../panorama) found", root)
    return [found[name] for name in sorted(found)]


def _add(found: dict[str, SceneRef], match: re.Match | None, path: str, prefix: str) -> None:
    if match is None:
        return
    scene, number, room = match.group(1), int(match.group(2)), match.group(3)
    name = f"{scene}_room_{room}"
    found.setdefault(name, SceneRef(name, split_of(number), (path,), {"prefix": prefix}))


def _namelist(archive: Path) -> list[str]:
    try:
        with zipfile.ZipFile(archive) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise FormatError(f"cannot read zip archive ({err})", archive) from None


def read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene:
    read, where = _reader(ref)
    camera = _camera(read("camera_xyz.txt"), where("camera_xyz.txt"))
    render = options.render
    depth = _image(read(f"{render}/depth.png"), where(f"{render}/depth.png"))
    semantic = _semantic(read(f"{render}/semantic.png"), where(f"{render}/semantic.png"))
    rgb_name = f"{render}/rgb_{options.lighting}light.png"
    rgb = _image(read(rgb_name), where(rgb_name))
    normal_png = _image(read(f"{render}/normal.png"), where(f"{render}/normal.png"))
    if depth.ndim != 2:
        raise FormatError(f"depth image has shape {depth.shape}, expected a single channel", where(f"{render}/depth.png"))
    for label, image in ((f"{render}/semantic.png", semantic), (rgb_name, rgb), (f"{render}/normal.png", normal_png)):
        if image.shape[:2] != depth.shape or (image.ndim == 3 and image.shape[2] < 3):
            raise FormatError(f"image has shape {image.shape}, depth.png has {depth.shape}", where(label))
    keep = np.flatnonzero(((depth > 0) & (semantic > 0)).ravel())
    if not keep.size:
        raise FormatError("no pixel has both depth > 0 and a semantic label", where(f"{render}/depth.png"))
    coord = backproject(depth, camera, keep)
    normal = normal_png.reshape(-1, normal_png.shape[-1])[keep, :3].astype(np.float64) / 128.0 - 1.0
    normal = normal @ SWAP_Y_Z
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
    scene = Scene(
        ref.name,
        coord.astype(np.float32),
        color=rgb.reshape(-1, rgb.shape[-1])[keep, :3],
        normal=normal.astype(np.float32),
        segment=STRUCTURED3D.map_raw(semantic.ravel()[keep]),
    )
    return scene.validate(where(f"{render}/depth.png"))


def backproject(depth: np.ndarray, camera_mm: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Points (metres, z up) of the flat pixel indices `keep` of an equirectangular depth panorama (mm)."""
    height, width = depth.shape
    v, u = np.divmod(keep, width)
    a = u / width * 2 * np.pi - np.pi
    b = np.pi / 2 - v / height * np.pi
    d = depth.ravel()[keep].astype(np.float64)[:, None]
    ray = np.stack([np.cos(a) * np.cos(b), np.sin(b), np.sin(a) * np.cos(b)], axis=1)
    p = d * ray / 1000.0 + Z_UP_TO_Y_UP @ (camera_mm / 1000.0)
    return p @ SWAP_Y_Z


def _reader(ref: SceneRef) -> tuple[Callable[[str], bytes], Callable[[str], str]]:
    """A function reading a file of the room's panorama folder, and one naming it for messages."""
    base, prefix = Path(ref.paths[0]), ref.meta.get("prefix", "")
    if base.suffix == ".zip":
        def where(name: str) -> str:
            return f"{base}:{prefix}{name}"

        def read(name: str) -> bytes:
            return read_member(base, prefix + name, where(name), MAX_MEMBER_BYTES)
        return read, where

    def where_file(name: str) -> str:
        return str(base / name)

    def read_file(name: str) -> bytes:
        path = base / name
        if not path.is_file():
            raise MissingFile("file not found", path)
        return path.read_bytes()
    return read_file, where_file


def _camera(data: bytes, where: str) -> np.ndarray:
    try:
        values = np.array(data.decode("ascii", errors="replace").split(), dtype=np.float64)
    except ValueError:
        raise FormatError("camera position is not numeric", where) from None
    if values.size < 3 or not np.isfinite(values[:3]).all():
        raise FormatError(f"expected 3 finite numbers (camera centre in mm), got {values.size}", where)
    if np.abs(values[:3]).max() > MAX_CAMERA_MM:  # rooms span metres; this far is a corrupt file, not a room
        raise FormatError(f"camera centre {values[:3].tolist()} mm is more than {MAX_CAMERA_MM:g} mm from the origin",
                          where)
    return values[:3]


def _image(data: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_pixels(image, where)
            return np.array(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise FormatError(f"cannot decode image ({err})", where) from None


def _check_pixels(image: Image.Image, where: str) -> None:
    """Refuse absurd image sizes from the header, before any pixel is decoded."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise FormatError(f"image claims {width} x {height} pixels, over the {MAX_PIXELS}-pixel limit "
                          "(corrupt header or decompression bomb)", where)


def _semantic(data: bytes, where: str) -> np.ndarray:
    """NYU40 ids from an 8-bit grey or palette PNG (palette indices are the ids); equal-channel RGB tolerated."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_pixels(image, where)
            mode, array = image.mode, np.array(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise FormatError(f"cannot decode image ({err})", where) from None
    if array.ndim == 3:
        if not (array[..., 0] == array[..., 1]).all() or not (array[..., 0] == array[..., 2]).all():
            raise FormatError(f"semantic image is {mode} colour, expected 8-bit NYU40 ids (grey or palette)", where)
        array = array[..., 0]
    if array.max(initial=0) > 255 or array.min(initial=0) < 0:
        raise FormatError("semantic ids outside 0..255", where)
    return array.astype(np.int64)
