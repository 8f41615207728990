"""Fuzz targets: one valid fixture per reader (written by the io writers or the synthetic raw-dataset writers) and
the call that reads it. A target names the one file (or zip member) the fuzzer mutates."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pmoe_core import io as pio
from pmoe_core.scene import Scene
from pmoe_core.sources import matterport3d, nuscenes, s3dis, scannet, semantickitti, structured3d, waymo
from pmoe_core.sources.synthetic_indoor import write_matterport3d, write_s3dis, write_scannet, write_structured3d
from pmoe_core.sources.synthetic_outdoor import write_nuscenes, write_semantickitti, write_waymo

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """`build(dir)` writes the fixture; `file` is the path (relative to dir) to mutate, `member` a zip member
    suffix inside it (then the member's bytes are mutated and the archive rewritten around them)."""

    name: str
    build: Callable[[Path], None]
    file: str
    read: Callable[[Path, Warn], object]
    text_header: bool
    header_bytes: int = 512
    member: str = ""


def small_scene(n: int = 400, seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n, 3))
    return Scene(
        name="fuzz", coord=rng.uniform(-3, 3, (n, 3)).astype(np.float32),
        color=rng.integers(0, 256, (n, 3), dtype=np.uint8),
        normal=(normal / np.linalg.norm(normal, axis=1, keepdims=True)).astype(np.float32),
        strength=rng.random(n, dtype=np.float32), segment=rng.integers(-1, 20, n).astype(np.int16),
        instance=rng.integers(-1, 30, n).astype(np.int32))


def _source(module, options=None) -> Callable[[Path, Warn], list[Scene]]:
    """Read every scene a source lists under the fixture root, as the converter would."""
    def read(root: Path, warn: Warn) -> list[Scene]:
        opts = options() if options else module.Options()
        nuscenes.raw_to_class.cache_clear()  # keyed by path: the mutated category.json must be re-read
        return [module.read_scene(ref, opts, warn) for ref in module.list_scenes(root, opts)]
    return read


def _single(reader: Callable[[Path], Scene], file: str) -> Callable[[Path, Warn], Scene]:
    return lambda root, warn: reader(root / file)


def _write_single(file: str, writer: Callable[[Path], None]) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        writer(root / file)
    return build


def _kitti_bin(path: Path) -> None:
    scene = small_scene()
    np.c_[scene.coord, scene.strength].astype("<f4").tofile(path)


def _npy(path: Path) -> None:
    scene = small_scene()
    np.save(path, np.c_[scene.coord, scene.color, scene.segment].astype(np.float32))


SINGLE_FILE: list[Target] = [
    Target("ply_binary", _write_single("c.ply", lambda p: pio.write_ply(small_scene(), p)), "c.ply",
           _single(pio.read_ply, "c.ply"), text_header=True, header_bytes=400),
    Target("ply_ascii", _write_single("c.ply", lambda p: pio.write_ply(small_scene(150), p, binary=False)), "c.ply",
           _single(pio.read_ply, "c.ply"), text_header=True, header_bytes=400),
    Target("las", _write_single("c.las", lambda p: pio.write_las(small_scene(), p)), "c.las",
           _single(pio.read_las, "c.las"), text_header=False, header_bytes=400),
    Target("laz", _write_single("c.laz", lambda p: pio.write_las(small_scene(), p)), "c.laz",
           _single(pio.read_las, "c.laz"), text_header=False, header_bytes=400),
    Target("kitti_bin", _write_single("c.bin", _kitti_bin), "c.bin", _single(pio.read_kitti_bin, "c.bin"),
           text_header=False, header_bytes=64),
    Target("npy", _write_single("c.npy", _npy), "c.npy", _single(pio.read_npy, "c.npy"), text_header=True,
           header_bytes=128),
    Target("npz", _write_single("c.npz", lambda p: pio.write_npz(small_scene(), p)), "c.npz",
           _single(pio.read_npz, "c.npz"), text_header=True, header_bytes=2048),
]

SCANNET_DIR = "scans/scene0000_00/scene0000_00"
S3DIS_ROOM = "Stanford3dDataset_v1.2_Aligned_Version/Area_1/office_1/Annotations"
NUS_TABLES = "v1.0-trainval"

SOURCES: list[Target] = [
    Target("scannet_ply", lambda d: write_scannet(d, scenes=1), f"{SCANNET_DIR}_vh_clean_2.ply", _source(scannet),
           text_header=True, header_bytes=400),
    Target("scannet_segs_json", lambda d: write_scannet(d, scenes=1), f"{SCANNET_DIR}_vh_clean_2.0.010000.segs.json",
           _source(scannet), text_header=True, header_bytes=4096),
    Target("scannet_aggregation_json", lambda d: write_scannet(d, scenes=1), f"{SCANNET_DIR}.aggregation.json",
           _source(scannet), text_header=True, header_bytes=4096),
    Target("scannet_alignment_txt", lambda d: write_scannet(d, scenes=1), f"{SCANNET_DIR}.txt", _source(scannet),
           text_header=True, header_bytes=256),
    Target("s3dis_txt", lambda d: write_s3dis(d, scenes=1), f"{S3DIS_ROOM}/chair_1.txt", _source(s3dis),
           text_header=True, header_bytes=4096),
    Target("structured3d_zip", lambda d: write_structured3d(d, scenes=1, width=64), "Structured3D_panorama_00.zip",
           _source(structured3d), text_header=False, header_bytes=64),
    Target("structured3d_depth_png", lambda d: write_structured3d(d, scenes=1, width=64),
           "Structured3D_panorama_00.zip", _source(structured3d), text_header=False, header_bytes=48,
           member="full/depth.png"),
    Target("structured3d_semantic_png", lambda d: write_structured3d(d, scenes=1, width=64),
           "Structured3D_panorama_00.zip", _source(structured3d), text_header=False, header_bytes=48,
           member="full/semantic.png"),
    Target("structured3d_camera_txt", lambda d: write_structured3d(d, scenes=1, width=64),
           "Structured3D_panorama_00.zip", _source(structured3d), text_header=True, header_bytes=64,
           member="camera_xyz.txt"),
    Target("matterport_zip", lambda d: write_matterport3d(d, scenes=1),
           "v1/scans/goPmvXc9x8X/region_segmentations.zip", _source(matterport3d), text_header=False, header_bytes=64),
    Target("matterport_region_ply", lambda d: write_matterport3d(d, scenes=1),
           "v1/scans/goPmvXc9x8X/region_segmentations.zip", _source(matterport3d), text_header=True,
           header_bytes=600, member=".ply"),
    Target("semantickitti_bin", lambda d: write_semantickitti(d, scenes=1, columns=256),
           "sequences/00/velodyne/000000.bin", _source(semantickitti), text_header=False, header_bytes=64),
    Target("semantickitti_label", lambda d: write_semantickitti(d, scenes=1, columns=256),
           "sequences/00/labels/000000.label", _source(semantickitti), text_header=False, header_bytes=64),
    Target("nuscenes_sample_data_json", lambda d: write_nuscenes(d, scenes=1, samples_per_scene=1),
           f"{NUS_TABLES}/sample_data.json", _source(nuscenes), text_header=True, header_bytes=1 << 16),
    Target("nuscenes_category_json", lambda d: write_nuscenes(d, scenes=1, samples_per_scene=1),
           f"{NUS_TABLES}/category.json", _source(nuscenes), text_header=True, header_bytes=1 << 16),
    Target("nuscenes_ego_pose_json", lambda d: write_nuscenes(d, scenes=1, samples_per_scene=1),
           f"{NUS_TABLES}/ego_pose.json", _source(nuscenes, lambda: nuscenes.Options(sweeps=2)), text_header=True,
           header_bytes=1 << 16),
    Target("nuscenes_lidarseg_bin", lambda d: write_nuscenes(d, scenes=1, samples_per_scene=1),
           "lidarseg/v1.0-trainval", _source(nuscenes), text_header=False, header_bytes=64),
    Target("nuscenes_lidar_pcd_bin", lambda d: write_nuscenes(d, scenes=1, samples_per_scene=1),
           "samples/LIDAR_TOP", _source(nuscenes), text_header=False, header_bytes=64),
    Target("nuscenes_sweep_pcd_bin", lambda d: write_nuscenes(d, scenes=1, samples_per_scene=1),
           "sweeps/LIDAR_TOP", _source(nuscenes, lambda: nuscenes.Options(sweeps=10)), text_header=False,
           header_bytes=64),
    Target("waymo_v2_lidar_parquet", lambda d: write_waymo(d, scenes=1),
           "training/lidar/7407392502195170000_1000_000_1020_000.parquet", _source(waymo), text_header=False,
           header_bytes=64),
    Target("waymo_v2_calibration_parquet", lambda d: write_waymo(d, scenes=1),
           "training/lidar_calibration/7407392502195170000_1000_000_1020_000.parquet", _source(waymo),
           text_header=False, header_bytes=64),
    Target("waymo_v1_tfrecord", lambda d: write_waymo(d, scenes=1, fmt="v1"),
           "training/segment-7407392502195170000_1000_000_1020_000_with_camera_labels.tfrecord", _source(waymo),
           text_header=False, header_bytes=64),
]


def resolve_file(root: Path, target: Target) -> Path:
    """The concrete file of a target (a folder entry names the first file inside it)."""
    path = root / target.file
    return sorted(p for p in path.iterdir() if p.is_file())[0] if path.is_dir() else path


def member_name(archive: Path, suffix: str) -> str:
    with zipfile.ZipFile(archive) as zf:
        return next(n for n in zf.namelist() if n.endswith(suffix))


def read_member(archive: Path, member: str) -> bytes:
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def replace_member(original: bytes, member: str, data: bytes) -> bytes:
    """The archive `original` with `member`'s content replaced (other members copied as they are)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, data if info.filename == member else src.read(info.filename))
    return out.getvalue()
