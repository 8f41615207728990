"""Your own dataset: spec parsing and checks, class -> vocabulary matching, PLY/LAS/NPY scenes read point by point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_fakes import embedding_cache  # noqa: F401

from pmoe_core.convert import convert
from pmoe_core.errors import BadInput, FormatError, MissingFile, StoreError
from pmoe_core.io.las import write_las
from pmoe_core.io.ply import write_ply_arrays
from pmoe_core.scene import Scene
from pmoe_core.sources import custom
from pmoe_core.sources.base import SceneRef
from pmoe_core.store import check_store, open_store, store_path
from pmoe_core.vocab import custom as vocab_custom
from pmoe_core.vocab import dataset_entries, label_space, resolve_dataset

SPEC = """
name = "warehouse"
domain = "indoor"
format = "{format}"
label_field = "{label_field}"
ignore_id = 255
fields = ["color"]
classes = [
  "floor",
  {{ name = "wall", id = 7 }},
  {{ name = "rack", entry = "bookshelf" }},
  {{ name = "pallet", prompt = "wooden pallet" }},
  {{ name = "worker", synonyms = ["person"] }},
]
"""
EXPECTED = {0: 0, 7: 1, 2: 2, 3: 3, 4: 4, 255: -1}  # raw id in the files -> class index (255 = ignore_id)


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Each test starts with no custom label space registered (a process registers the stores it opens)."""
    monkeypatch.setattr(vocab_custom, "_REGISTRY", {})


def write_spec(folder: Path, fmt: str = "ply", label_field: str = "label", text: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "warehouse.toml"
    path.write_text(text if text is not None else SPEC.format(format=fmt, label_field=label_field))
    return path


def test_spec_builds_the_label_space(tmp_path):
    spec = custom.load_spec(write_spec(tmp_path))
    assert spec.name == "warehouse" and spec.ignore_id == 255 and spec.fields == ("color",)
    space = spec.label_space.space
    assert space.classes == ("floor", "wall", "rack", "pallet", "worker")
    assert space.raw_to_name == {0: "floor", 7: "wall", 2: "rack", 3: "pallet", 4: "worker"}
    entries = [(e.name, e.prompt) for e in spec.label_space.entries]
    assert entries == [("floor", "floor"), ("wall", "wall"), ("bookshelf", "bookshelf"),
                       ("pallet", "wooden pallet"), ("person", "person")]
    lut = spec.lookup_table()
    assert lut.tolist() == [0, -2, 2, 3, 4, -2, -2, 1]


def test_registered_space_is_found_by_name_everywhere(tmp_path):
    spec = custom.load_spec(write_spec(tmp_path))
    vocab_custom.register(spec.label_space)
    from pmoe_core.data.recipes import domain_of

    assert resolve_dataset("warehouse") == "warehouse"
    assert label_space("warehouse").classes[2] == "rack"
    assert [e.name for e in dataset_entries("warehouse")][3] == "pallet"
    assert domain_of("warehouse") == "indoor"
    other = vocab_custom.build("warehouse", "indoor", [vocab_custom.ClassSpec("floor")], [0])
    with pytest.raises(FormatError, match="already known with other classes"):
        vocab_custom.register(other)


def test_json_spec_reads_like_toml(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"name": "site_scans", "domain": "outdoor", "format": "las",
                                "label_field": "classification", "classes": ["road", "building", "vegetation"],
                                "splits": {"train": "train.txt"}}))
    spec = custom.load_spec(path)
    assert spec.label_space.domain == "outdoor" and spec.splits == {"train": tmp_path / "train.txt"}
    assert spec.ignore_id == -1 and spec.fields == ()


@pytest.mark.parametrize("edit, error, problem", [
    (('"floor",', '"floor", "floor",'), BadInput, "class name 'floor' appears twice"),
    (('{ name = "wall", id = 7 }', '{ name = "wall", id = 70000 }'), FormatError,
     "at classes/1/id: 70000 is greater than the maximum of 65535"),
    (('{ name = "wall", id = 7 }', '{ name = "wall", id = -2 }'), FormatError,
     "at classes/1/id: -2 is less than the minimum of 0"),
    (('{ name = "wall", id = 7 }', '{ name = "wall", id = 4 }'), BadInput,
     "classes 'wall' and 'worker' both have label id 4"),
    (("ignore_id = 255", "ignore_id = 2"), BadInput, "ignore_id 2 is also the label id of class 'rack'"),
    (('label_field = "label"\n', ""), FormatError, "'label_field' is a required property"),
    (('"floor",', '"flor",'), BadInput, "class 'flor' matches no unified-vocabulary entry .* close entries: floor"),
    (('entry = "bookshelf"', 'entry = "bookshelves"'), BadInput,
     "entry 'bookshelves' is not in the unified vocabulary"),
    (('synonyms = ["person"]', 'synonyms = ["human"]'), BadInput, "class 'worker' matches no unified-vocabulary"),
    (('{ name = "rack", entry = "bookshelf" }', '{ name = "rack", entry = "floor" }'), BadInput,
     "classes 'floor' and 'rack' both map to the vocabulary entry 'floor'"),
    (('name = "warehouse"', 'name = "kitti"'), BadInput, "dataset name 'kitti' is a built-in dataset"),
    (('name = "warehouse"', 'name = "Ware House"'), FormatError, "at name: 'Ware House' does not match"),
    (('domain = "indoor"', 'domain = "underwater"'), FormatError, "at domain: 'underwater' is not one of"),
    (('fields = ["color"]', 'fields = ["colour"]'), FormatError, "at fields/0: 'colour' is not one of"),
    (('format = "ply"', 'format = "obj"'), FormatError, "at format: 'obj' is not one of"),
    (('name = "warehouse"', 'name = "warehouse"\nsplits = "lists"'), FormatError, "at splits: 'lists' does not match"),
    (("classes = [", "classes = [[["), FormatError, "not a TOML dataset spec"),
])
def test_bad_specs_fail_with_one_line_naming_the_file(tmp_path, edit, error, problem):
    text = SPEC.format(format="ply", label_field="label").replace(*edit)
    path = write_spec(tmp_path, text=text)
    with pytest.raises(error, match=problem) as err:
        custom.load_spec(path)
    assert err.value.message.startswith(str(path.resolve())) and "\n" not in err.value.message


def test_missing_spec_option_and_file(tmp_path):
    with pytest.raises(BadInput, match="a custom dataset needs --spec SPEC"):
        custom.dataset_name(custom.Options())
    with pytest.raises(MissingFile, match="dataset spec not found"):
        custom.dataset_name(custom.Options(spec=str(tmp_path / "nope.toml")))


# --- scenes in each format ---


def room(seed: int, n: int = 400) -> tuple[Scene, np.ndarray]:
    """(a scene with colours, the raw label of each point: one of the spec's ids or the ignore id 255)."""
    rng = np.random.default_rng(seed)
    raw = rng.choice(list(EXPECTED), size=n).astype(np.int64)
    raw[: len(EXPECTED)] = list(EXPECTED)
    coord = rng.uniform(0, 4, (n, 3)).astype(np.float32)
    color = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    return Scene(f"room{seed}", coord=coord, color=color), raw


def write_scene(folder: Path, fmt: str, scene: Scene, raw: np.ndarray | None, label_field: str = "label") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "ply":
        vertex = {"x": scene.coord[:, 0], "y": scene.coord[:, 1], "z": scene.coord[:, 2],
                  "red": scene.color[:, 0], "green": scene.color[:, 1], "blue": scene.color[:, 2]}
        if raw is not None:
            vertex[label_field] = raw.astype(np.uint8)
        path = folder / f"{scene.name}.ply"
        write_ply_arrays(path, vertex)
        return path
    if fmt == "las":
        path = folder / f"{scene.name}.las"
        labelled = Scene(scene.name, coord=scene.coord, color=scene.color,
                         segment=None if raw is None else raw.astype(np.int16))
        write_las(labelled, path)  # writes classification = segment + 1 and the extra dimension `segment`
        return path
    path = folder / scene.name
    path.mkdir()
    np.save(path / "coord.npy", scene.coord)
    np.save(path / "color.npy", scene.color)
    if raw is not None:
        np.save(path / f"{label_field}.npy", raw.astype(np.int32).reshape(-1, 1))
    return path


@pytest.mark.parametrize("fmt, label_field", [("ply", "label"), ("las", "segment"), ("npy", "semantic")])
def test_each_format_reads_labels_point_by_point(tmp_path, fmt, label_field):
    spec_path = write_spec(tmp_path, text=SPEC.format(format=fmt, label_field=label_field))
    scene, raw = room(1)
    path = write_scene(tmp_path / "raw" / "train", fmt, scene, raw, label_field)
    ref = SceneRef(scene.name, "train", (str(path),))
    warnings: list[str] = []
    got = custom.read_scene(ref, custom.Options(spec=str(spec_path)), warnings.append)
    np.testing.assert_allclose(got.coord, scene.coord, atol=1e-3 if fmt == "las" else 0, rtol=0)  # LAS: mm grid
    np.testing.assert_array_equal(got.color, scene.color)
    np.testing.assert_array_equal(got.segment, [EXPECTED[int(r)] for r in raw])
    assert got.normal is None and got.instance is None and not warnings


@pytest.mark.parametrize("fmt", ["ply", "npy"])
def test_unknown_ids_refuse_the_scene_or_are_ignored_with_a_warning(tmp_path, fmt):
    scene, raw = room(2)
    raw[7] = 9
    path = write_scene(tmp_path / "raw" / "train", fmt, scene, raw)
    ref = SceneRef(scene.name, "train", (str(path),))
    spec_path = write_spec(tmp_path, text=SPEC.format(format=fmt, label_field="label"))
    with pytest.raises(FormatError, match=r"1 labels \(9\) are neither a class id of the spec nor ignore_id 255"):
        custom.read_scene(ref, custom.Options(spec=str(spec_path)), print)
    write_spec(tmp_path, text=SPEC.format(format=fmt, label_field="label") + 'unknown_ids = "ignore"\n')
    warnings: list[str] = []
    got = custom.read_scene(ref, custom.Options(spec=str(spec_path)), warnings.append)
    assert got.segment[7] == -1 and len(warnings) == 1 and "stored as ignored" in warnings[0]


@pytest.mark.parametrize("fmt", ["ply", "las", "npy"])
def test_missing_label_field_and_fields_name_the_file(tmp_path, fmt):
    spec_path = write_spec(tmp_path, text=SPEC.format(format=fmt, label_field="label"))
    scene, _ = room(3)
    path = write_scene(tmp_path / "raw" / "train", fmt, scene, None)
    options = custom.Options(spec=str(spec_path))
    with pytest.raises((FormatError, MissingFile), match="label") as err:
        custom.read_scene(SceneRef(scene.name, "train", (str(path),)), options, print)
    assert str(path) in err.value.message
    got = custom.read_scene(SceneRef(scene.name, "test", (str(path),)), options, print)  # test scenes: no labels
    assert got.segment is None
    bare = Scene("bare", coord=scene.coord)
    if fmt == "ply":
        bare_path = tmp_path / "bare.ply"
        write_ply_arrays(bare_path, {"x": bare.coord[:, 0], "y": bare.coord[:, 1], "z": bare.coord[:, 2]})
    elif fmt == "las":
        bare_path = tmp_path / "bare.las"
        write_las(bare, bare_path)
    else:
        bare_path = tmp_path / "bare"
        bare_path.mkdir()
        np.save(bare_path / "coord.npy", bare.coord)
    with pytest.raises((FormatError, MissingFile), match="color") as err:
        custom.read_scene(SceneRef("bare", "test", (str(bare_path),)), options, print)
    assert str(bare_path) in err.value.message


@pytest.mark.usefixtures("embedding_cache")
def test_split_lists_and_folders(tmp_path, monkeypatch):
    text = SPEC.format(format="ply", label_field="label") + '\n[splits]\ntrain = "lists/train.txt"\n' \
        'val = "lists/val.txt"\n'
    # TOML: a table after the top-level keys; the classes array is above it
    spec_path = write_spec(tmp_path / "spec", text=text)
    (tmp_path / "spec" / "lists").mkdir()
    (tmp_path / "spec" / "lists" / "train.txt").write_text("# training rooms\nsite_a/room1\nsite_a/room2.ply\n")
    (tmp_path / "spec" / "lists" / "val.txt").write_text("site_b/room3\n")
    raw_root = tmp_path / "raw"
    truth = {}
    for seed, site in ((1, "site_a"), (2, "site_a"), (3, "site_b")):
        scene, raw = room(seed)
        write_scene(raw_root / site, "ply", scene, raw)
        truth[f"{site}_room{seed}"] = (scene, raw)
    refs = custom.list_scenes(raw_root, custom.Options(spec=str(spec_path)))
    assert [(r.name, r.split) for r in refs] == [("site_a_room1", "train"), ("site_a_room2", "train"),
                                                 ("site_b_room3", "val")]
    summary = convert("custom", raw_root, str(tmp_path / "out"), options=custom.Options(spec=str(spec_path)),
                      workers=2)  # reader processes load the spec themselves
    assert summary.dataset == "warehouse" and summary.written == 3 and not summary.skipped
    url = store_path(str(tmp_path / "out"), "warehouse")
    assert check_store(url) == []
    store = open_store(url)
    attrs = store.attrs
    assert attrs["label_space"] == {"origin": "custom", "domain": "indoor", "raw_ids": [0, 2, 3, 4, 7],
                                    "raw_classes": ["floor", "rack", "pallet", "worker", "wall"]}
    assert [(c["name"], c["entry"], c["prompt"]) for c in attrs["classes"]][2:4] == [
        ("rack", "bookshelf", "bookshelf"), ("pallet", "pallet", "wooden pallet")]
    assert store.class_embeddings.shape[0] == 5
    for name, (scene, raw) in truth.items():
        got = store.read("train" if "site_a" in name else "val", name)
        np.testing.assert_array_equal(got.segment, [EXPECTED[int(r)] for r in raw])

    monkeypatch.setattr(vocab_custom, "_REGISTRY", {})  # a new process, with the spec edited since
    spec_path.write_text(text.replace('name = "pallet"', 'name = "crate"'))
    with pytest.raises(StoreError, match="store holds the classes floor, wall, rack, pallet, worker, not warehouse's "
                                         "floor, wall, rack, crate, worker"):
        convert("custom", raw_root, str(tmp_path / "out"), options=custom.Options(spec=str(spec_path)), workers=1)
    (tmp_path / "spec" / "lists" / "val.txt").write_text("site_b/room9\n")
    with pytest.raises(MissingFile, match="line 1: no scene 'site_b/room9' under"):
        custom.list_scenes(raw_root, custom.Options(spec=str(spec_path)))
