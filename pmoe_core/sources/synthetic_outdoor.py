"""Synthetic raw data in the real on-disk formats of SemanticKITTI, nuScenes-lidarseg and Waymo (v1 and v2).

A simulated spinning LiDAR is ray-cast against random streets (`synthetic_street`), and the returns are written
exactly as each dataset ships them, with each dataset's own raw label ids. Every writer returns the ground truth:
scene name -> the `Scene` that converting the written files must produce, for point-by-point tests. Poses are built
here from angles with plain matrix products, independently of the readers' quaternion / roll-pitch-yaw code.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np

from pmoe_core.scene import IGNORE_INDEX, Scene
from pmoe_core.sources import nuscenes_splits, waymo_parquet, waymo_tfrecord, waymo_v1
from pmoe_core.sources.nuscenes import LIDARSEG_CATEGORIES
from pmoe_core.sources.synthetic_lidar import Hits, cast, intensity, unit_rays
from pmoe_core.sources.synthetic_street import KINDS, make_street
from pmoe_core.sources.waymo_frame import TOP, LaserCalibration, LaserReturns, WaymoFrame
from pmoe_core.vocab.label_spaces import NUSCENES, SEMANTICKITTI, WAYMO

# Generic kind -> each dataset's raw label id.
KITTI_RAW = {"road": 40, "curb": 48, "sidewalk": 48, "terrain": 72, "building": 50, "vegetation": 70, "trunk": 71,
             "pole": 80, "sign": 81, "car": 10, "truck": 18, "pedestrian": 30, "cyclist": 31, "bicycle": 11,
             "other": 99}
NUSCENES_RAW = {"road": "flat.driveable_surface", "curb": "flat.sidewalk", "sidewalk": "flat.sidewalk",
                "terrain": "flat.terrain", "building": "static.manmade", "vegetation": "static.vegetation",
                "trunk": "static.vegetation", "pole": "static.manmade", "sign": "static.manmade",
                "car": "vehicle.car", "truck": "vehicle.truck", "pedestrian": "human.pedestrian.adult",
                "cyclist": "vehicle.bicycle", "bicycle": "vehicle.bicycle", "other": "static.other"}
WAYMO_RAW = {"road": 18, "curb": 17, "sidewalk": 22, "terrain": 21, "building": 14, "vegetation": 15, "trunk": 16,
             "pole": 10, "sign": 8, "car": 1, "truck": 2, "pedestrian": 7, "cyclist": 6, "bicycle": 12, "other": 0}


def _lut(table: dict[str, int]) -> np.ndarray:
    return np.array([table[k] for k in KINDS], dtype=np.int64)


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rigid(rotation: np.ndarray, translation) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = translation
    return m


def _token(rng: np.random.Generator) -> str:
    return uuid.UUID(bytes=rng.bytes(16)).hex


def _scan(street, world_from_sensor: np.ndarray, elevation: np.ndarray, azimuth: np.ndarray, max_range: float,
          rng: np.random.Generator) -> tuple[np.ndarray, Hits, np.ndarray]:
    """Spin once: (sensor-frame points (M,3) of the returns, their hits, (M,) beam index), misses dropped."""
    rays = unit_rays(elevation, azimuth).reshape(-1, 3)
    world_dirs = np.einsum("ij,nj->ni", world_from_sensor[:3, :3], rays)
    hits = cast(world_from_sensor[:3, 3], world_dirs, street, max_range)
    keep = hits.hit
    t = hits.t[keep] + rng.normal(0, 0.01, int(keep.sum()))
    beam = np.repeat(np.arange(len(elevation)), len(azimuth))[keep]
    return rays[keep] * t[:, None], Hits(t, hits.kind[keep], hits.instance[keep]), beam


# --- SemanticKITTI -------------------------------------------------------------------------------------------------

KITTI_ELEVATION = np.deg2rad(np.linspace(2.0, -24.8, 64))  # HDL-64E


def write_semantickitti(out: str | Path, scenes: int = 3, seed: int = 0, columns: int = 1024) -> dict[str, Scene]:
    """Scans round-robin over sequences 00 (train), 08 (val) and 11 (test, no labels), with calib/poses/times."""
    rng = np.random.default_rng(seed)
    root = Path(out) / "sequences"
    azimuth = np.pi - 2 * np.pi * (np.arange(columns) + 0.5) / columns
    truth: dict[str, Scene] = {}
    poses: dict[str, list[np.ndarray]] = {}
    for i in range(scenes):
        seq = ("00", "08", "11")[i % 3]
        frame = len(poses.setdefault(seq, []))
        street = make_street(np.random.default_rng([seed, i]))
        world_from_sensor = rigid(rot_z(rng.uniform(-0.1, 0.1)), (rng.uniform(-3, 3), -1.75, 1.73))
        poses[seq].append(world_from_sensor)
        xyz, hits, _ = _scan(street, world_from_sensor, KITTI_ELEVATION, azimuth, 80.0, rng)
        xyz = xyz.astype(np.float32)
        remission = intensity(hits, rng).astype(np.float32)
        raw = _lut(KITTI_RAW)[hits.kind]
        moving = (raw == 10) & (hits.instance % 2 == 1)
        raw[moving] = 252  # moving-car folds into car
        raw[rng.random(raw.size) < 0.005] = 0  # a sprinkle of unlabelled points
        seq_dir = root / seq
        (seq_dir / "velodyne").mkdir(parents=True, exist_ok=True)
        name = f"{frame:06d}"
        np.concatenate([xyz, remission[:, None]], axis=1).astype("<f4").tofile(seq_dir / "velodyne" / f"{name}.bin")
        labelled = seq != "11"
        if labelled:
            (seq_dir / "labels").mkdir(exist_ok=True)
            (raw.astype(np.uint32) | (hits.instance.astype(np.uint32) << 16)).astype("<u4").tofile(
                seq_dir / "labels" / f"{name}.label")
        truth[f"{seq}_{name}"] = Scene(
            name=f"{seq}_{name}", coord=xyz, strength=remission,
            segment=SEMANTICKITTI.map_raw(raw) if labelled else None,
            instance=hits.instance.astype(np.int32) if labelled else None)
    for seq, seq_poses in poses.items():
        _write_kitti_sidecars(root / seq, seq_poses)
    return truth


def _write_kitti_sidecars(seq_dir: Path, poses: list[np.ndarray]) -> None:
    """calib.txt (P0..P3, Tr: 12 floats each), poses.txt (3x4 per scan, relative to the first), times.txt."""
    p = np.array([[718.856, 0, 607.1928, 0], [0, 718.856, 185.2157, 0], [0, 0, 1, 0]])
    velo_to_cam = rigid(rot_x(-np.pi / 2) @ rot_z(-np.pi / 2), (0.0, -0.08, -0.27))
    lines = [f"P{k}: " + " ".join(f"{v:.12e}" for v in p.ravel()) for k in range(4)]
    lines.append("Tr: " + " ".join(f"{v:.12e}" for v in velo_to_cam[:3].ravel()))
    (seq_dir / "calib.txt").write_text("\n".join(lines) + "\n")
    first_inv = np.linalg.inv(poses[0])
    (seq_dir / "poses.txt").write_text("".join(
        " ".join(f"{v:.12e}" for v in (first_inv @ pose)[:3].ravel()) + "\n" for pose in poses))
    (seq_dir / "times.txt").write_text("".join(f"{0.1 * k:.6e}\n" for k in range(len(poses))))


# --- nuScenes ------------------------------------------------------------------------------------------------------

NUSCENES_ELEVATION = np.deg2rad(np.linspace(10.0, -30.0, 32))  # HDL-32E
NUSCENES_VERSION = "v1.0-trainval"


def quaternion_wxyz(roll: float, pitch: float, yaw: float) -> list[float]:
    """Quaternion of Rz(yaw) Ry(pitch) Rx(roll) by Hamilton products of the axis quaternions."""
    def mul(a, b):
        w1, x1, y1, z1 = a
        w2, x2, y2, z2 = b
        return (w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2)
    qz = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
    qy = (np.cos(pitch / 2), 0.0, np.sin(pitch / 2), 0.0)
    qx = (np.cos(roll / 2), np.sin(roll / 2), 0.0, 0.0)
    return [float(v) for v in mul(mul(qz, qy), qx)]


def _nuscenes_scene_names(count: int) -> list[str]:
    """Alternate official train and val scene names so both splits appear."""
    return [(nuscenes_splits.TRAIN if i % 2 == 0 else nuscenes_splits.VAL)[i // 2] for i in range(count)]


def write_nuscenes(out: str | Path, scenes: int = 2, seed: int = 0, samples_per_scene: int = 2,
                   sweeps_between: int = 2, sweeps: int = 0, columns: int = 512) -> dict[str, Scene]:
    """A v1.0-trainval layout: tables, samples/ and sweeps/ .pcd.bin, lidarseg bins for key frames.

    The truth is what converting with `Options(sweeps=sweeps)` must give (the devkit's 1 m square around the
    sensor is removed from sweeps, as the reader's default does).
    """
    rng = np.random.default_rng(seed)
    root = Path(out)
    tables = root / NUSCENES_VERSION
    for sub in (tables, root / "samples" / "LIDAR_TOP", root / "sweeps" / "LIDAR_TOP",
                root / "lidarseg" / NUSCENES_VERSION):
        sub.mkdir(parents=True, exist_ok=True)
    category = [{"token": _token(rng), "name": n, "description": n, "index": i}
                for i, n in enumerate(LIDARSEG_CATEGORIES)]
    index_of = {c["name"]: c["index"] for c in category}
    raw_lut = np.array([index_of[NUSCENES_RAW[k]] for k in KINDS], dtype=np.int64)
    sensor = [{"token": _token(rng), "channel": "LIDAR_TOP", "modality": "lidar"},
              {"token": _token(rng), "channel": "CAM_FRONT", "modality": "camera"}]
    t = {name: [] for name in ("calibrated_sensor", "ego_pose", "log", "scene", "sample", "sample_data", "lidarseg")}
    azimuth = np.pi - 2 * np.pi * (np.arange(columns) + 0.5) / columns
    truth: dict[str, Scene] = {}

    for s, scene_name in enumerate(_nuscenes_scene_names(scenes)):
        street = make_street(np.random.default_rng([seed, 100 + s]))
        log = {"token": _token(rng), "logfile": f"n008-2018-08-0{s + 1}-12-00-00-0400", "vehicle": "n008",
               "date_captured": "2018-08-01", "location": "singapore-onenorth"}
        t["log"].append(log)
        roll, pitch, yaw = rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02), -np.pi / 2 + rng.uniform(-0.05, 0.05)
        cs = {"token": _token(rng), "sensor_token": sensor[0]["token"], "translation": [0.94, 0.0, 1.84],
              "rotation": quaternion_wxyz(roll, pitch, yaw), "camera_intrinsic": []}
        cam_cs = {"token": _token(rng), "sensor_token": sensor[1]["token"], "translation": [1.70, 0.02, 1.51],
                  "rotation": quaternion_wxyz(-np.pi / 2, 0.0, -np.pi / 2),
                  "camera_intrinsic": [[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]]}
        t["calibrated_sensor"].extend([cs, cam_cs])
        ego_from_sensor = rigid(rot_z(yaw) @ rot_y(pitch) @ rot_x(roll), cs["translation"])
        n_frames = sweeps_between + samples_per_scene * (sweeps_between + 1)
        samples = [{"token": _token(rng), "scene_token": "", "prev": "", "next": ""} for _ in range(samples_per_scene)]
        frames = []  # per sample_data: dict with world_from_sensor, points, hits, row
        start_ts = 1_533_151_600_000_000 + s * 100_000_000
        x0, heading = rng.uniform(-5, 0), rng.uniform(-0.05, 0.05)
        for f in range(n_frames):
            ts = start_ts + f * 50_000
            key = f >= sweeps_between and (f - sweeps_between) % (sweeps_between + 1) == sweeps_between
            key_index = (f - sweeps_between) // (sweeps_between + 1) if f >= sweeps_between else 0
            ego_yaw = heading + 0.01 * f
            global_from_ego = rigid(rot_z(ego_yaw), (x0 + 0.4 * f, -1.75 + 0.02 * f, 0.0))
            world_from_sensor = global_from_ego @ ego_from_sensor
            xyz, hits, beam = _scan(street, world_from_sensor, NUSCENES_ELEVATION, azimuth, 70.0, rng)
            inten = np.round(intensity(hits, rng) * 255.0)
            points = np.concatenate([xyz, inten[:, None], beam[:, None]], axis=1).astype("<f4")
            folder = "samples" if key else "sweeps"
            filename = f"{folder}/LIDAR_TOP/{log['logfile']}__LIDAR_TOP__{ts}.pcd.bin"
            points.tofile(root / filename)
            ego = {"token": _token(rng), "timestamp": ts, "rotation": quaternion_wxyz(0.0, 0.0, ego_yaw),
                   "translation": list(global_from_ego[:3, 3])}
            t["ego_pose"].append(ego)
            sd = {"token": _token(rng), "sample_token": samples[min(key_index, samples_per_scene - 1)]["token"],
                  "ego_pose_token": ego["token"], "calibrated_sensor_token": cs["token"], "timestamp": ts,
                  "fileformat": "pcd", "is_key_frame": key, "height": 0, "width": 0, "filename": filename,
                  "prev": frames[-1]["row"]["token"] if frames else "", "next": ""}
            if frames:
                frames[-1]["row"]["next"] = sd["token"]
            t["sample_data"].append(sd)
            frames.append({"row": sd, "world_from_sensor": world_from_sensor, "points": points, "hits": hits,
                           "key": key})
            if key:
                samples[key_index]["timestamp"] = ts
        scene = {"token": _token(rng), "log_token": log["token"], "nbr_samples": samples_per_scene,
                 "first_sample_token": samples[0]["token"], "last_sample_token": samples[-1]["token"],
                 "name": scene_name, "description": "synthetic street"}
        t["scene"].append(scene)
        for k, sample in enumerate(samples):
            sample["scene_token"] = scene["token"]
            sample["prev"] = samples[k - 1]["token"] if k else ""
            sample["next"] = samples[k + 1]["token"] if k + 1 < len(samples) else ""
            t["sample"].append(sample)
            cam = {"token": _token(rng), "sample_token": sample["token"], "ego_pose_token": t["ego_pose"][-1]["token"],
                   "calibrated_sensor_token": cam_cs["token"], "timestamp": sample["timestamp"], "fileformat": "jpg",
                   "is_key_frame": True, "height": 900, "width": 1600,
                   "filename": f"samples/CAM_FRONT/{log['logfile']}__CAM_FRONT__{sample['timestamp']}.jpg",
                   "prev": "", "next": ""}
            t["sample_data"].append(cam)
        for f, frame in enumerate(frames):
            if not frame["key"]:
                continue
            raw = raw_lut[frame["hits"].kind]
            raw[rng.random(raw.size) < 0.005] = 0  # noise
            label_file = f"lidarseg/{NUSCENES_VERSION}/{frame['row']['token']}_lidarseg.bin"
            raw.astype(np.uint8).tofile(root / label_file)
            t["lidarseg"].append({"token": frame["row"]["token"], "sample_data_token": frame["row"]["token"],
                                  "filename": label_file})
            k = sum(1 for g in frames[:f] if g["key"])
            name = f"{scene_name}_{k:02d}"
            truth[name] = _nuscenes_truth(name, frames[max(0, f - sweeps): f + 1][::-1], NUSCENES.map_raw(raw))
    for name in ("attribute", "visibility", "instance", "sample_annotation"):
        t[name] = []
    t["map"] = [_nuscenes_map(root, rng, [log["token"] for log in t["log"]])]
    t["category"], t["sensor"] = category, sensor
    for name, rows in t.items():
        (tables / f"{name}.json").write_text(json.dumps(rows, indent=0))
    return truth


def _nuscenes_map(root: Path, rng: np.random.Generator, log_tokens: list[str]) -> dict:
    """One map record and a tiny mask PNG: the devkit's `NuScenes` refuses tables without a loadable map."""
    from PIL import Image

    token = _token(rng)
    filename = f"maps/{token}.png"
    (root / "maps").mkdir(exist_ok=True)
    Image.new("L", (8, 8), 255).save(root / filename)
    return {"token": token, "log_tokens": log_tokens, "category": "semantic_prior", "filename": filename}


def _nuscenes_truth(name: str, chain: list[dict], segment: np.ndarray) -> Scene:
    """Key frame points, then each earlier sweep moved through the world into the key sensor frame."""
    key = chain[0]
    sensor_from_world = np.linalg.inv(key["world_from_sensor"])
    coords, strength, segments = [key["points"][:, :3]], [key["points"][:, 3] / 255.0], [segment]
    for sweep in chain[1:]:
        pts = sweep["points"]
        pts = pts[~((np.abs(pts[:, 0]) < 1.0) & (np.abs(pts[:, 1]) < 1.0))]
        to_key = sensor_from_world @ sweep["world_from_sensor"]
        coords.append(np.einsum("ij,nj->ni", to_key[:3, :3], pts[:, :3].astype(np.float64)) + to_key[:3, 3])
        strength.append(pts[:, 3] / 255.0)
        segments.append(np.full(pts.shape[0], IGNORE_INDEX, dtype=np.int16))
    return Scene(name=name, coord=np.concatenate(coords).astype(np.float32),
                 strength=np.concatenate(strength).astype(np.float32), segment=np.concatenate(segments))


# --- Waymo ---------------------------------------------------------------------------------------------------------

WAYMO_TOP_COLUMNS = 650  # the real TOP is 64 x 2650; a quarter keeps tests fast
WAYMO_SIDE_SHAPE = (16, 64)  # the real side lasers are 200 x 600
# (name, mount xyz, mount yaw) of the four short-range lasers, roughly where Waymo's vehicles carry them.
WAYMO_SIDE_LASERS = ((2, (4.07, 0.0, 0.69), 0.0), (3, (3.25, 1.03, 0.98), np.pi / 2),
                     (4, (3.25, -1.03, 0.98), -np.pi / 2), (5, (-1.15, 0.0, 0.47), np.pi))


def _waymo_calibrations(rng: np.random.Generator) -> dict[int, LaserCalibration]:
    top_incl = np.sort(np.deg2rad(np.linspace(-17.6, 2.4, 64) + rng.uniform(-0.05, 0.05, 64)))
    cals = {TOP: LaserCalibration(TOP, rigid(rot_z(2.6) @ rot_y(0.003), (1.43, 0.0, 2.184)), top_incl,
                                  float(top_incl[0]), float(top_incl[-1]))}
    for name, xyz, yaw in WAYMO_SIDE_LASERS:
        cals[name] = LaserCalibration(name, rigid(rot_z(yaw) @ rot_y(0.01), xyz), None, -np.pi / 2, np.pi / 6)
    return cals


def _rpy(roll, pitch, yaw) -> np.ndarray:
    return rot_z(yaw) @ rot_y(pitch) @ rot_x(roll)


def _waymo_laser(street, cal: LaserCalibration, height: int, width: int, vehicle_pose_at, labelled: bool,
                 max_range: float, rng: np.random.Generator):
    """Range images (and labels, pixel poses) for one laser; also the world-frame hit points per return."""
    incl_desc = (cal.beam_inclinations if cal.beam_inclinations is not None else
                 cal.beam_inclination_min + (np.arange(height) + 0.5) / height
                 * (cal.beam_inclination_max - cal.beam_inclination_min))[::-1]
    mount_yaw = np.arctan2(cal.extrinsic[1, 0], cal.extrinsic[0, 0])
    azimuth = np.pi - 2 * np.pi * (np.arange(width) + 0.5) / width - mount_yaw
    rays = unit_rays(incl_desc, azimuth)  # (H, W, 3) sensor frame
    pose6 = vehicle_pose_at(np.broadcast_to(np.arange(width), (height, width)))  # (H, W, 6) float32
    world_from_vehicle = np.zeros((height, width, 4, 4))
    # Per-column matrices from elementary rotations, independent of the reader's vectorised roll-pitch-yaw.
    rot = np.array([[_rpy(*pose6[0, j, :3]) for j in range(width)]])  # poses vary by column only
    rot = np.broadcast_to(rot, (height, width, 3, 3))
    world_from_vehicle[..., :3, :3] = rot
    world_from_vehicle[..., :3, 3] = pose6[..., 3:]
    world_from_vehicle[..., 3, 3] = 1
    world_from_sensor = world_from_vehicle @ cal.extrinsic
    origin = world_from_sensor[..., :3, 3].reshape(-1, 3)
    dirs = np.einsum("hwij,hwj->hwi", world_from_sensor[..., :3, :3], rays).reshape(-1, 3)
    first = cast(origin, dirs, street, max_range)
    through = np.flatnonzero(first.hit & (first.kind == KINDS.index("vegetation")))  # leaves pass a 2nd return
    behind = cast(origin[through], dirs[through], street, max_range, t_min=first.t[through] + 0.3)
    second = Hits(np.full_like(first.t, np.inf), np.zeros_like(first.kind), np.zeros_like(first.instance))
    second.t[through], second.kind[through], second.instance[through] = behind.t, behind.kind, behind.instance
    second_ok = second.hit
    returns, labels, world = [], [], []
    for hits, valid in ((first, first.hit), (second, second_ok)):
        r = np.where(valid, hits.t + rng.normal(0, 0.005, hits.t.shape), 0.0).astype(np.float32)
        inten = np.where(valid, intensity(hits, rng) * 1.2, 0.0)
        image = np.stack([r, inten, np.zeros_like(r), np.full_like(r, -1.0)], axis=-1).astype(np.float32)
        returns.append(image.reshape(height, width, 4))
        raw = np.where(valid, _lut(WAYMO_RAW)[hits.kind], 0)
        inst = np.where(valid, hits.instance, 0)
        labels.append(np.stack([inst, raw], axis=-1).astype(np.int32).reshape(height, width, 2) if labelled else None)
        world.append(origin + dirs * r.astype(np.float64)[:, None])
    return returns, labels, world


def _waymo_frame(street, cals, context: str, timestamp: int, frame_pose6: np.ndarray, labelled: bool,
                 rng: np.random.Generator) -> tuple[WaymoFrame, Scene | None]:
    """One frame: TOP fired while the vehicle moves (per-pixel poses), side lasers at the frame pose."""
    frame_pose = rigid(_rpy(*frame_pose6[:3]), frame_pose6[3:])

    def moving(col: np.ndarray) -> np.ndarray:  # column -> roll, pitch, yaw, x, y, z during a 0.1 s sweep
        tau = (0.5 - (col + 0.5) / WAYMO_TOP_COLUMNS) * 0.1
        out = np.empty(col.shape + (6,))
        out[..., 0], out[..., 1] = 0.004, -0.003
        out[..., 2] = frame_pose6[2] + 0.2 * tau
        out[..., 3] = frame_pose6[3] + 8.0 * tau * np.cos(frame_pose6[2])
        out[..., 4] = frame_pose6[4] + 8.0 * tau * np.sin(frame_pose6[2])
        out[..., 5] = frame_pose6[5]
        return out.astype(np.float32).astype(np.float64)  # what the file will hold

    def still(col: np.ndarray) -> np.ndarray:
        return np.broadcast_to(frame_pose6, col.shape + (6,))

    lasers, coords, strength, segment, instance = {}, [], [], [], []
    vehicle_from_world = np.linalg.inv(frame_pose)
    for name, cal in cals.items():
        top = name == TOP
        h, w = (64, WAYMO_TOP_COLUMNS) if top else WAYMO_SIDE_SHAPE
        returns, labels, world = _waymo_laser(street, cal, h, w, moving if top else still, labelled and top,
                                              75.0 if top else 20.0, rng)
        pose = moving(np.broadcast_to(np.arange(w), (h, w))).astype(np.float32) if top else None
        lasers[name] = LaserReturns(name, returns, labels, pose)
        for ri, lab, pts in zip(returns, labels, world):
            keep = ri[..., 0].ravel() > 0
            coords.append(np.einsum("ij,nj->ni", vehicle_from_world[:3, :3], pts[keep]) + vehicle_from_world[:3, 3])
            strength.append(np.tanh(ri[..., 1].ravel()[keep]))
            semantic = lab[..., 1].ravel()[keep] if lab is not None else np.full(int(keep.sum()), -1)
            segment.append(WAYMO.map_raw(semantic))
            instance.append(lab[..., 0].ravel()[keep] if lab is not None else np.full(int(keep.sum()), -1))
    frame = WaymoFrame(context, timestamp, frame_pose, cals, lasers)
    if not labelled:
        return frame, None
    name = f"{context}_{timestamp}"
    return frame, Scene(name=name, coord=np.concatenate(coords).astype(np.float32),
                        strength=np.concatenate(strength).astype(np.float32), segment=np.concatenate(segment),
                        instance=np.concatenate(instance).astype(np.int32))


def write_waymo(out: str | Path, scenes: int = 2, seed: int = 0, fmt: str = "v2") -> dict[str, Scene]:
    """`scenes` labelled frames split over a training and a validation segment, each segment with one extra
    unlabelled frame (skipped by the default `labelled_only`), as v2 parquet components or v1 TFRecords."""
    if fmt not in ("v1", "v2"):
        raise ValueError(f"fmt must be 'v1' or 'v2', got {fmt!r}")
    rng = np.random.default_rng(seed)
    truth: dict[str, Scene] = {}
    for s, folder in enumerate(("training", "validation")):
        count = (scenes + 1 - s) // 2
        if count == 0:
            continue
        srng = np.random.default_rng([seed, 200 + s])
        context = f"{srng.integers(10**17, 10**18)}{s}_{1000 + s}_000_{1020 + s}_000"
        street = make_street(np.random.default_rng([seed, 300 + s]))
        cals = _waymo_calibrations(srng)
        frames = []
        base_ts = 1_507_315_488_000_000 + s * 10**9
        for k in range(count + 1):
            labelled = k < count
            pose6 = np.array([0.0, 0.0, srng.uniform(-0.05, 0.05), 2.0 * k - 3.0, -1.75, 0.0])
            frame, scene = _waymo_frame(street, cals, context, base_ts + 100_000 * k, pose6, labelled, rng)
            frames.append(frame)
            if scene is not None:
                truth[scene.name] = scene
        split_dir = Path(out) / folder
        split_dir.mkdir(parents=True, exist_ok=True)
        if fmt == "v2":
            waymo_parquet.write_segment(split_dir, frames)
        else:
            waymo_tfrecord.write_records(split_dir / f"segment-{context}_with_camera_labels.tfrecord",
                                         [waymo_v1.encode_frame(f) for f in frames])
    return truth
