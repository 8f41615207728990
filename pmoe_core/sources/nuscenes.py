"""nuScenes-lidarseg -> Scene, one scene per key frame of LIDAR_TOP, read from the JSON tables (no devkit).

Points: `samples/LIDAR_TOP/*.pcd.bin` float32 x5 (x, y, z, intensity, ring), in the sensor frame. Labels:
`lidarseg/<version>/<sample_data token>_lidarseg.bin`, one uint8 per point, whose meaning is the `index` of
category.json (looked up by category name, so a renumbered table cannot shift classes), then mapped to the 16
benchmark classes. `sweeps=N` adds the N previous LIDAR_TOP sweeps, moved into the key frame's sensor frame through
their ego poses (sweep points are unlabelled, -1). Strength = intensity / 255.

Scene names are `<scene name>_<k>` (k = the key frame's order in its scene). Splits: the official scene lists for
v1.0-trainval / v1.0-test / v1.0-mini, or a JSON file `{"train": [scene names], "val": [...], "test": [...]}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.jsonio import loads_json, read_json
from pmoe_core.scene import IGNORE_INDEX, Scene
from pmoe_core.sources.base import SPLITS, SceneRef, Warn
from pmoe_core.sources.nuscenes_splits import official_splits
from pmoe_core.vocab.label_spaces import NUSCENES

NAME = "nuscenes"
FAR_M = 10_000.0  # outdoor: farther than this from the key frame median is implausible (warned, kept)
POINT_WIDTH = 5
CHANNEL = "LIDAR_TOP"
MAX_TABLE_BYTES = 8 << 30  # v1.0-trainval's largest table (sample_data.json) is well under 1 GiB

# The 32 lidarseg categories in the order of their official `index` (category.json of v1.0 with lidarseg).
LIDARSEG_CATEGORIES = (
    "noise", "animal", "human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility", "human.pedestrian.police_officer", "human.pedestrian.stroller",
    "human.pedestrian.wheelchair", "movable_object.barrier", "movable_object.debris",
    "movable_object.pushable_pullable", "movable_object.trafficcone", "static_object.bicycle_rack", "vehicle.bicycle",
    "vehicle.bus.bendy", "vehicle.bus.rigid", "vehicle.car", "vehicle.construction", "vehicle.emergency.ambulance",
    "vehicle.emergency.police", "vehicle.motorcycle", "vehicle.trailer", "vehicle.truck", "flat.driveable_surface",
    "flat.other", "flat.sidewalk", "flat.terrain", "static.manmade", "static.other", "static.vegetation",
    "vehicle.ego",
)


@dataclass
class Options:
    version: str = field(default="v1.0-trainval", metadata={
        "help": "table folder under the root: v1.0-trainval, v1.0-test or v1.0-mini"})
    sweeps: int = field(default=0, metadata={
        "help": "previous LIDAR_TOP sweeps to accumulate into each key frame (motion compensated, unlabelled)"})
    sweep_min_distance: float = field(default=1.0, metadata={
        "help": "drop sweep points within this many metres (|x| and |y|) of the sensor, as the devkit does"})
    split_lists: str | None = field(default=None, metadata={
        "help": "JSON file {\"train\": [scene names], \"val\": [...], \"test\": [...]} replacing the official lists"})

    def __post_init__(self) -> None:
        if self.sweeps < 0:
            raise BadInput(f"option sweeps must be 0 or more (previous sweeps to add), got {self.sweeps}")
        if not 0 <= self.sweep_min_distance < float("inf"):
            raise BadInput(f"option sweep_min_distance must be a finite distance >= 0, got {self.sweep_min_distance}")


# --- tables --------------------------------------------------------------------------------------------------------

def _table(tables: Path, name: str, required: bool = True) -> list[dict] | None:
    path = tables / f"{name}.json"
    if not path.is_file():
        if required:
            raise MissingFile(f"nuScenes table {name}.json not found", path)
        return None
    rows = read_json(path, max_bytes=MAX_TABLE_BYTES)
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "token" in r for r in rows):
        raise FormatError("expected a JSON list of records with a 'token'", path)
    return rows


def _row(index: dict[str, dict], token: str, tables: Path, table: str, referrer: str) -> dict:
    if token not in index:
        raise FormatError(f"{referrer} refers to {table} {token}, which is not in the table", tables / f"{table}.json")
    return index[token]


def _by_token(rows: list[dict]) -> dict[str, dict]:
    return {r["token"]: r for r in rows}


def _check_unique_names(scenes: dict[str, dict], path: Path) -> None:
    """Two scene records with one name would have their key frames merged into one scene (and one split)."""
    token_of: dict[str, str] = {}
    for token, scene in scenes.items():
        other = token_of.setdefault(scene["name"], token)
        if other != token:
            raise FormatError(f"scenes {other} and {token} share the name {scene['name']!r}", path)


def _split_of(options: Options, tables: Path) -> dict[str, str]:
    """scene name -> split."""
    if options.split_lists:
        path = Path(options.split_lists)
        if not path.is_file():
            raise MissingFile("split list file not found", path)
        lists = read_json(path)
        if not isinstance(lists, dict) or not all(isinstance(v, list) for v in lists.values()):
            raise FormatError('expected {"train": [scene names], "val": [...], "test": [...]}', path)
        bad = set(lists) - set(SPLITS)
        if bad:
            raise FormatError(f"unknown split names {sorted(bad)} (use {', '.join(SPLITS)})", path)
        seen: dict[str, str] = {}
        for split, names in lists.items():
            for scene in names:
                if seen.setdefault(scene, split) != split:
                    raise FormatError(f"scene {scene!r} is listed in both {seen[scene]} and {split}", path)
    else:
        lists = official_splits(options.version)
        if not lists:
            raise BadInput(f"no built-in split lists for version {options.version!r}; pass -O split_lists=FILE",
                           tables)
    return {scene: split for split, names in lists.items() for scene in names}


def _pose(row: dict) -> dict[str, list[float]]:
    return {"translation": list(row["translation"]), "rotation": list(row["rotation"])}


def list_scenes(root: Path, options: Options) -> list[SceneRef]:
    try:
        return _list_scenes(Path(root), options)
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a record lacking or mistyping a field
        raise FormatError(f"a table record lacks or mistypes a field ({type(err).__name__}: {err})",
                          Path(root) / options.version) from None


def _list_scenes(root: Path, options: Options) -> list[SceneRef]:
    tables = root / options.version
    if not tables.is_dir():
        raise MissingFile(f"nuScenes table folder {options.version}/ not found (set -O version=...)", tables)
    scenes = _by_token(_table(tables, "scene"))
    samples = _by_token(_table(tables, "sample"))
    sample_data = _table(tables, "sample_data")
    sd_index = _by_token(sample_data)
    calibrated = _by_token(_table(tables, "calibrated_sensor"))
    ego_poses = _by_token(_table(tables, "ego_pose"))
    sensors = _by_token(_table(tables, "sensor"))
    _table(tables, "category")  # required to interpret labels; read per scene (it is tiny)
    lidarseg = {r["sample_data_token"]: r["filename"] for r in (_table(tables, "lidarseg", required=False) or [])}
    split_of = _split_of(options, tables)

    def frame(sd: dict) -> dict:
        cs = _row(calibrated, sd["calibrated_sensor_token"], tables, "calibrated_sensor", f"sample_data {sd['token']}")
        ego = _row(ego_poses, sd["ego_pose_token"], tables, "ego_pose", f"sample_data {sd['token']}")
        return {"file": str(root / sd["filename"]), "sensor": _pose(cs), "ego": _pose(ego)}

    def channel(sd: dict) -> str:
        cs = _row(calibrated, sd["calibrated_sensor_token"], tables, "calibrated_sensor", f"sample_data {sd['token']}")
        return _row(sensors, cs["sensor_token"], tables, "sensor", f"calibrated_sensor {cs['token']}")["channel"]

    _check_unique_names(scenes, tables / "scene.json")
    keyframes: dict[str, list[dict]] = {}
    for sd in sample_data:
        if sd.get("fileformat") == "pcd" and sd["is_key_frame"] and channel(sd) == CHANNEL:
            sample = _row(samples, sd["sample_token"], tables, "sample", f"sample_data {sd['token']}")
            scene = _row(scenes, sample["scene_token"], tables, "scene", f"sample {sample['token']}")
            keyframes.setdefault(scene["name"], []).append(sd)

    refs = []
    for scene_name in sorted(keyframes):
        if scene_name not in split_of:
            raise BadInput(f"scene {scene_name} is in no split list of {options.version}; pass -O split_lists=FILE",
                           tables / "scene.json")
        for k, sd in enumerate(sorted(keyframes[scene_name], key=lambda s: s["timestamp"])):
            chain, seen, problem = [frame(sd)], {sd["token"]}, ""
            prev = sd.get("prev", "")
            while len(chain) <= options.sweeps and prev:
                if prev in seen:  # a corrupt table: following it would add the same sweeps again and again
                    problem = FormatError(f"the prev chain of sample_data {sd['token']} comes back to {prev} after "
                                          f"{len(chain)} frames (a cycle)", tables / "sample_data.json").message
                    break
                seen.add(prev)
                sweep = _row(sd_index, prev, tables, "sample_data", f"sample_data {sd['token']} (prev chain)")
                chain.append(frame(sweep))
                prev = sweep.get("prev", "")
            labels = lidarseg.get(sd["token"])
            if labels is None and not lidarseg:
                guess = root / "lidarseg" / options.version / f"{sd['token']}_lidarseg.bin"
                labels = str(guess.relative_to(root)) if guess.is_file() else None
            meta = {"token": sd["token"], "frames": json.dumps(chain), "category": str(tables / "category.json"),
                    "labels": str(root / labels) if labels else ""}
            paths = (chain[0]["file"],) + ((meta["labels"],) if labels else ())
            refs.append(SceneRef(f"{scene_name}_{k:02d}", split_of[scene_name], paths, meta, problem))
    return refs


# --- reading -------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def raw_to_class(category_json: str) -> np.ndarray:
    """uint8 lidarseg value -> benchmark class (int16 LUT of 256), via category.json's name and `index`."""
    path = Path(category_json)
    rows = _table(path.parent, path.stem)
    canonical = np.full(256, -1, dtype=np.int64)
    if not any("index" in r for r in rows):  # tables from before lidarseg: values are the official indices
        canonical[: len(LIDARSEG_CATEGORIES)] = np.arange(len(LIDARSEG_CATEGORIES))
    for r in rows:
        if "index" not in r:
            continue
        index = int(r["index"])
        if not 0 <= index < 256:
            raise FormatError(f"category {r.get('name')!r} has index {index} outside 0..255", path)
        if r.get("name") in LIDARSEG_CATEGORIES:
            canonical[index] = LIDARSEG_CATEGORIES.index(r["name"])
    return NUSCENES.map_raw(canonical)


def quaternion_matrix(wxyz: list[float]) -> np.ndarray:
    q = np.asarray(wxyz, dtype=np.float64)
    norm = np.linalg.norm(q) if q.shape == (4,) and np.isfinite(q).all() else 0.0
    if not 1e-6 < norm < 1e6:  # a zero quaternion has no rotation; NaN would spread to every point
        raise ValueError(f"rotation {list(wxyz)} is not a usable quaternion (w, x, y, z with a nonzero finite norm)")
    w, x, y, z = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def pose_matrix(pose: dict) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = quaternion_matrix(pose["rotation"])
    m[:3, 3] = pose["translation"]
    return m


def read_points(path: Path) -> np.ndarray:
    if not path.is_file():
        raise MissingFile("lidar points file not found", path)
    size = path.stat().st_size
    record = 4 * POINT_WIDTH
    if size % record:
        raise FormatError(f"size {size} bytes is not a multiple of {record} (float32 x, y, z, intensity, ring)", path)
    return np.fromfile(path, dtype="<f4").reshape(-1, POINT_WIDTH)


def read_labels(path: Path, num_points: int) -> np.ndarray:
    if not path.is_file():
        raise MissingFile("lidarseg labels file not found", path)
    labels = np.fromfile(path, dtype=np.uint8)
    if labels.size != num_points:
        raise FormatError(f"{labels.size} labels for {num_points} points in the key-frame lidar file", path)
    return labels


def sweep_to_key(key: dict, sweep: dict) -> np.ndarray:
    """4x4: sweep sensor -> ego(sweep) -> global -> ego(key) -> key sensor."""
    with np.errstate(over="ignore", invalid="ignore"):
        transform = (np.linalg.inv(pose_matrix(key["sensor"])) @ np.linalg.inv(pose_matrix(key["ego"]))
                     @ pose_matrix(sweep["ego"]) @ pose_matrix(sweep["sensor"]))
    if not np.isfinite(transform).all():
        raise ValueError("the sensor and ego poses do not compose to a finite transform")
    return transform


def sweep_coords_in_key_frame(points: np.ndarray, transform: np.ndarray, path: Path) -> np.ndarray:
    """float64 (N, 3) sweep coordinates in the key frame; FormatError naming the sweep file if any leaves float32.

    A point near float32's limit (or an infinite one: inf * 0 in the rotation) is finite in the file but not once
    rotated and moved; checked here, by value, so the error names the sweep rather than the key frame.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        coords = np.einsum("ij,nj->ni", transform[:3, :3], points[:, :3].astype(np.float64)) + transform[:3, 3]
    bad = ~(np.abs(coords) <= np.finfo(np.float32).max).all(axis=1)  # also true for NaN
    if bad.any():
        raise FormatError(f"{int(bad.sum())} sweep points are NaN, infinite or beyond float32 range once moved into "
                          "the key frame (corrupt points or pose)", path)
    return coords


def read_scene(ref: SceneRef, options: Options, warn: Warn) -> Scene:
    try:
        return _read_scene(ref, options)
    except (KeyError, TypeError, ValueError, np.linalg.LinAlgError) as err:  # poses with wrong shapes or types
        raise FormatError(f"sensor or ego pose cannot be used ({type(err).__name__}: {err})",
                          Path(ref.meta["category"]).parent) from None


def _read_scene(ref: SceneRef, options: Options) -> Scene:
    chain = loads_json(ref.meta["frames"], "scene reference")
    key_file = Path(chain[0]["file"])
    key = read_points(key_file)
    segment = None
    if ref.meta["labels"]:
        raw = read_labels(Path(ref.meta["labels"]), key.shape[0])
        segment = raw_to_class(ref.meta["category"])[raw]
    coords, intensity, segments = [key[:, :3].astype(np.float64)], [key[:, 3]], [segment]
    for sweep in chain[1:]:
        sweep_file = Path(sweep["file"])
        points = read_points(sweep_file)
        near = (np.abs(points[:, 0]) < options.sweep_min_distance) & (np.abs(points[:, 1]) < options.sweep_min_distance)
        points = points[~near]
        coords.append(sweep_coords_in_key_frame(points, sweep_to_key(chain[0], sweep), sweep_file))
        intensity.append(points[:, 3])
        segments.append(np.full(points.shape[0], IGNORE_INDEX, dtype=np.int16))
    return Scene(
        name=ref.name,
        coord=np.concatenate(coords).astype(np.float32),
        strength=np.clip(np.concatenate(intensity) / 255.0, 0.0, 1.0),
        segment=np.concatenate(segments) if segment is not None else None,
    ).validate(str(key_file))
