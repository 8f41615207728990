"""Pointcept's preprocessed scene folders -> scene store, point by point, for every dataset Pointcept writes so.

Each test builds a small folder in Pointcept's layout from pmoe's synthetic generator (ground-truth Scenes), written
the way Pointcept's preprocessing scripts write it (per-dataset file names, dtypes and (N, 1) columns; labels as
Pointcept's ids, looked up by class name in Pointcept's own class list, copied here from its configs), converts it,
and compares the store with the truth.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_fakes import embedding_cache  # noqa: F401

from pmoe_cli import app as app_module
from pmoe_core.convert import convert
from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.scene import Scene
from pmoe_core.sources import pointcept, synthetic_indoor, synthetic_outdoor
from pmoe_core.sources.base import SceneRef
from pmoe_core.store import check_store, open_store, store_path
from pmoe_core.vocab.label_spaces import LABEL_SPACES

pytestmark = pytest.mark.usefixtures("embedding_cache")

# Pointcept's class lists, as its configs spell them (configs/<dataset>/semseg-pt-v3m1-0-base.py `names`).
POINTCEPT_NAMES = {
    "scannet": ["wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
                "counter", "desk", "curtain", "refridgerator", "shower curtain", "toilet", "sink", "bathtub",
                "otherfurniture"],
    "s3dis": ["ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa", "bookcase",
              "board", "clutter"],
    "structured3d": ["wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "picture", "desk",
                     "shelves", "curtain", "dresser", "pillow", "mirror", "ceiling", "refrigerator", "television",
                     "nightstand", "sink", "lamp", "otherstructure", "otherfurniture", "otherprop"],
    "matterport3d": ["wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
                     "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
                     "bathtub", "other", "ceiling"],
    "waymo": ["Car", "Truck", "Bus", "Other Vehicle", "Motorcyclist", "Bicyclist", "Pedestrian", "Sign",
              "Traffic Light", "Pole", "Construction Cone", "Bicycle", "Motorcycle", "Building", "Vegetation",
              "Tree Trunk", "Curb", "Road", "Lane Marker", "Other Ground", "Walkable", "Sidewalk"],
}
SPELLING = {"refridgerator": "refrigerator"}  # Pointcept's ScanNet typo


def pointcept_ids(dataset: str, segment: np.ndarray) -> np.ndarray:
    """pmoe class indices -> Pointcept's ids, by class name (-1 stays -1)."""
    def key(name: str) -> str:
        return "".join(ch for ch in SPELLING.get(name, name).lower() if ch not in " _-")

    index = {key(n): i for i, n in enumerate(POINTCEPT_NAMES[dataset])}
    table = np.array([index[key(c)] for c in LABEL_SPACES[dataset].classes] + [-1], dtype=np.int64)
    return table[segment.astype(np.int64)]  # -1 picks the trailing -1


def save(folder: Path, **arrays: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in arrays.items():
        np.save(folder / f"{name}.npy", value)


def write_scene(folder: Path, dataset: str, scene: Scene, labelled: bool = True) -> set[str]:
    """One scene folder as Pointcept's preprocessing for `dataset` writes it; returns the Scene fields written."""
    arrays: dict[str, np.ndarray] = {"coord": scene.coord.astype(np.float32)}
    if scene.color is not None:
        arrays["color"] = scene.color.astype(np.uint8)
    if scene.normal is not None:
        arrays["normal"] = scene.normal.astype(np.float32)
    seg = pointcept_ids(dataset, scene.segment) if labelled else None
    if dataset == "scannet":  # segment20/segment200/instance saved with .astype(int): int64
        if labelled:
            arrays["segment20"] = seg
            arrays["segment200"] = np.full(len(scene), 150, np.int64)  # ScanNet200 ids: must never be read
            arrays["instance"] = scene.instance.astype(np.int64)
    elif dataset == "s3dis":  # (N, 1) int16 columns
        arrays["segment"] = seg.astype(np.int16).reshape(-1, 1)
        arrays["instance"] = scene.instance.astype(np.int16).reshape(-1, 1)
    elif dataset == "structured3d":  # (N, 1) int16
        if labelled:
            arrays["segment"] = seg.astype(np.int16).reshape(-1, 1)
    elif dataset == "matterport3d":
        if labelled:
            arrays["segment"] = seg.astype(np.int16)
    elif dataset == "waymo":  # strength = tanh(intensity) as (N, 1); label - 1 (int32); pose; pickled mask
        arrays["strength"] = scene.strength.astype(np.float32).reshape(-1, 1)
        arrays["pose"] = np.eye(4, dtype=np.float32)
        if labelled:
            arrays["segment"] = seg.astype(np.int32)
    save(folder, **arrays)
    if dataset == "waymo":
        np.save(folder / "mask.npy", np.array([np.ones(3, bool), None], dtype=object), allow_pickle=True)
    return {"segment" if k.startswith("segment") else k for k in arrays} & set(scene.present_fields())


def folder_of(dataset: str, root: Path, name: str, split: str) -> Path:
    """Where Pointcept puts scene `name` (pmoe's name of the same scene) of `split`."""
    if dataset == "s3dis":
        area, _, room = name.partition("_")[2].partition("_")
        return root / f"Area_{area}" / room
    if dataset == "structured3d":
        scene, _, room = name.partition("_room_")
        return root / split / scene / f"room_{room}"
    if dataset == "waymo":
        context, _, ts = name.rpartition("_")
        return root / {"train": "training", "val": "validation", "test": "testing"}[split] / context / ts
    return root / split / name


GENERATORS = {
    "scannet": synthetic_indoor.write_scannet,
    "s3dis": synthetic_indoor.write_s3dis,
    "structured3d": synthetic_indoor.write_structured3d,
    "matterport3d": synthetic_indoor.write_matterport3d,
    "waymo": synthetic_outdoor.write_waymo,
}


def pointcept_folder(tmp_path: Path, dataset: str) -> tuple[Path, dict[str, Scene], dict[str, str]]:
    """(root, truth by name, split by name): two labelled scenes (train, val) and one unlabelled test scene.
    The truth holds only the fields Pointcept writes for the dataset (e.g. no Waymo instances)."""
    truth = GENERATORS[dataset](tmp_path / "raw", scenes=2, seed=3)
    names = sorted(truth)
    if dataset == "s3dis":  # the split is the area: Area_5 is val (the default val_area)
        splits = {n: "val" if n.startswith("Area_5_") else "train" for n in names}
    else:
        splits = {names[0]: "train", names[1]: "val"}
    root = tmp_path / "pointcept"
    for name in names:
        written = write_scene(folder_of(dataset, root, name, splits[name]), dataset, truth[name])
        truth[name] = Scene(name, **{k: v for k, v in truth[name].arrays().items() if k in written})
    if dataset != "s3dis":  # a test scene: no labels (S3DIS has no test split)
        test = names[0].replace("0", "7", 1) if dataset != "waymo" else names[0][:-1] + "7"
        if dataset == "structured3d":
            test = names[0].replace("scene_00000", "scene_03300")
        base = truth[names[0]]
        truth[test] = Scene(test, coord=base.coord, color=base.color, normal=base.normal, strength=base.strength)
        splits[test] = "test"
        write_scene(folder_of(dataset, root, test, "test"), dataset, truth[test], labelled=False)
    return root, truth, splits


@pytest.mark.parametrize("dataset", sorted(GENERATORS))
def test_pointcept_folders_convert_point_by_point(tmp_path, dataset):
    root, truth, splits = pointcept_folder(tmp_path, dataset)
    summary = convert("pointcept", root, str(tmp_path / "out"), options=pointcept.Options(dataset=dataset),
                      workers=2 if dataset == "waymo" else 1)  # one dataset through reader processes
    assert summary.dataset == dataset and summary.written == len(truth) and not summary.skipped, summary
    url = store_path(str(tmp_path / "out"), dataset)
    assert check_store(url) == []
    store = open_store(url)
    assert store.dataset == dataset and store.class_names == list(LABEL_SPACES[dataset].classes)
    for name, want in truth.items():
        got = store.read(splits[name], name)
        np.testing.assert_array_equal(got.coord, want.coord)
        for field in ("color", "normal", "strength", "instance"):
            expected = getattr(want, field)
            if expected is None:
                assert getattr(got, field) is None, (name, field)
            else:
                np.testing.assert_array_equal(getattr(got, field), expected, err_msg=f"{name} {field}")
        if splits[name] == "test":
            assert got.segment is None
        else:
            np.testing.assert_array_equal(got.segment, want.segment, err_msg=name)
            assert (got.segment >= 0).sum() > 0.5 * len(got)  # the labels are really there, not all ignored


def test_labels_are_mapped_by_name_not_position(tmp_path, monkeypatch):
    """A Pointcept list in another order moves each id to the class of the same name."""
    shuffled = list(reversed(pointcept.POINTCEPT_CLASSES["s3dis"]))
    monkeypatch.setitem(pointcept.POINTCEPT_CLASSES, "s3dis", tuple(shuffled))
    lut = pointcept.label_table("s3dis")
    classes = LABEL_SPACES["s3dis"].classes
    assert [classes[i] for i in lut] == shuffled
    scannet = pointcept.label_table("scannet")
    assert classes_of("scannet", scannet)[14] == "refrigerator"  # Pointcept's "refridgerator"
    assert classes_of("matterport3d", pointcept.label_table("matterport3d"))[19:] == ["other", "ceiling"]
    assert classes_of("waymo", pointcept.label_table("waymo"))[10] == "construction_cone"


def classes_of(dataset: str, lut: np.ndarray) -> list[str]:
    return [LABEL_SPACES[dataset].classes[i] for i in lut]


# --- bad input: one clear line naming the file ---


@pytest.fixture
def scannet_folder(tmp_path) -> Path:
    truth = synthetic_indoor.write_scannet(tmp_path / "raw", scenes=1, seed=1)
    scene = next(iter(truth.values()))
    folder = tmp_path / "pc" / "train" / scene.name
    write_scene(folder, "scannet", scene)
    return folder


def read(folder: Path, dataset: str = "scannet", split: str = "train") -> Scene:
    ref = SceneRef(folder.name, split, (str(folder),), {"dataset": dataset})
    return pointcept.read_scene(ref, pointcept.Options(dataset=dataset), lambda m: None)


def test_missing_coord_names_the_folder(scannet_folder):
    (scannet_folder / "coord.npy").unlink()
    with pytest.raises(MissingFile, match="no coord.npy") as err:
        read(scannet_folder)
    assert str(scannet_folder) in err.value.message


@pytest.mark.parametrize("field, value, problem", [
    ("color", lambda n: np.zeros((n - 1, 3), np.uint8), r"color.npy: \d+ rows, but coord.npy has \d+ points"),
    ("coord", lambda n: np.zeros((n, 3), np.int32), "coord.npy: dtype int32 is not floating-point"),
    ("segment20", lambda n: np.zeros(n, np.float32), "segment20.npy: dtype float32 is not integer"),
    ("normal", lambda n: np.zeros((n, 2), np.float32), r"normal.npy: shape \(\d+, 2\), expected \(N, 3\)"),
    ("segment20", lambda n: np.full(n, 20, np.int64),
     r"segment20.npy: \d+ labels \(20\) are neither a class id 0..19 nor the ignore id -1"),
    ("color", lambda n: np.full((n, 3), 300.0), "color.npy: colour values 300.0..300.0 are not 0..255"),
])
def test_bad_arrays_name_the_file(scannet_folder, field, value, problem):
    n = np.load(scannet_folder / "coord.npy").shape[0]
    np.save(scannet_folder / f"{field}.npy", value(n))
    with pytest.raises(FormatError, match=problem):
        read(scannet_folder)


def test_pickled_npy_is_refused(scannet_folder):
    np.save(scannet_folder / "normal.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="normal.npy: holds pickled Python objects"):
        read(scannet_folder)


def test_train_scene_without_labels_is_refused(scannet_folder):
    (scannet_folder / "segment20.npy").unlink()
    with pytest.raises(MissingFile, match="no segment20.npy"):
        read(scannet_folder)


def test_bad_scene_is_skipped_or_fatal_under_strict(tmp_path, scannet_folder):
    broken = scannet_folder.parent / "scene0999_00"
    broken.mkdir()
    np.save(broken / "color.npy", np.zeros((3, 3), np.uint8))
    root = scannet_folder.parents[1]
    summary = convert("pointcept", root, str(tmp_path / "out"), options=pointcept.Options(dataset="scannet"),
                      workers=1)
    assert summary.written == 1 and [s.name for s in summary.skipped] == ["scene0999_00"]
    assert summary.skipped[0].reason == f"{broken}: no coord.npy in this Pointcept scannet scene folder"
    with pytest.raises(FormatError, match="strict mode"):
        convert("pointcept", root, str(tmp_path / "out2"), options=pointcept.Options(dataset="scannet"), workers=1,
                strict=True)


@pytest.mark.parametrize("options, problem", [
    (pointcept.Options(), "pointcept folders need --dataset NAME"),
    (pointcept.Options(dataset="kitti"), "Pointcept reads semantickitti from its raw layout"),
    (pointcept.Options(dataset="scannet", segment="segment200"), "segment200 holds ScanNet200 ids"),
    (pointcept.Options(dataset="nonsense"), "unknown dataset 'nonsense'"),
])
def test_bad_dataset_options(tmp_path, options, problem):
    with pytest.raises(BadInput, match=problem):
        pointcept.dataset_name(options)


def test_cli_converts_and_refuses_without_dataset(tmp_path, scannet_folder, capsys):
    root, out = scannet_folder.parents[1], tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        app_module.main(["convert", "pointcept", str(root), str(out), "--dataset", "scannet", "--workers", "1"])
    captured = capsys.readouterr()
    assert exc.value.code in (0, None), captured.err
    assert captured.out.startswith(f"{store_path(str(out), 'scannet')}: wrote 1 scene (")
    with pytest.raises(SystemExit) as exc:
        app_module.main(["convert", "pointcept", str(root), str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert exc.value.code == 1
    assert err.strip() == ("pmoe: error: pointcept folders need --dataset NAME (scannet, s3dis, structured3d, "
                           "matterport3d, waymo)")
    assert not (tmp_path / "out2").exists()
