import json
import shutil

import numpy as np
import pytest

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.io.ply import write_ply_arrays
from pmoe_core.sources import scannet
from pmoe_core.sources.base import SceneRef
from pmoe_core.sources.synthetic_indoor import write_scannet
from pmoe_core.vocab.label_spaces import SCANNET

from indoor_helpers import assert_same_points, normal_agreement, read_all


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("scannet")
    return root, write_scannet(root, scenes=3, seed=1)


def fresh_copy(raw, tmp_path):
    root, truth = raw
    shutil.copytree(root, tmp_path / "raw")
    return tmp_path / "raw", truth


def test_every_point_matches_the_truth(raw):
    root, truth = raw
    scenes, splits, warnings = read_all(scannet, root)
    assert set(scenes) == set(truth)
    assert warnings == []
    for name, scene in scenes.items():
        assert_same_points(scene, truth[name], coord_atol=2e-5)  # aligned through axisAlignment
        assert 5_000 <= len(scene) <= 60_000


def test_hard_cases_unassigned_and_ignored_classes(raw):
    root, truth = raw
    scene = read_all(scannet, root)[0]["scene0000_00"]
    unassigned = scene.instance == -1
    assert unassigned.any() and (scene.segment[unassigned] == -1).all()
    ceiling = (scene.instance >= 0) & (scene.segment == -1)  # the "ceiling" group: an instance, ignored class
    assert ceiling.any()
    assert set(np.unique(scene.segment)) >= {-1, SCANNET.index("wall"), SCANNET.index("floor"), SCANNET.index("door")}


def test_normals_follow_the_surfaces(raw):
    root, truth = raw
    for name, scene in read_all(scannet, root)[0].items():
        cos = normal_agreement(scene.normal, truth[name].normal)
        assert np.median(cos) > 0.99 and (cos > 0.7).mean() > 0.95


def test_splits_from_official_lists_and_test_scenes_unlabelled(raw):
    root, _ = raw
    scenes, splits, _ = read_all(scannet, root)
    assert splits == {"scene0000_00": "train", "scene0001_00": "val", "scene0002_00": "test"}
    assert scenes["scene0002_00"].segment is None and scenes["scene0002_00"].instance is None


def test_without_lists_scans_is_train_and_scans_test_is_test(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    for split in ("train", "val", "test"):
        (root / f"scannetv2_{split}.txt").unlink()
    refs = scannet.list_scenes(root, scannet.Options())
    assert {r.name: r.split for r in refs} == {"scene0000_00": "train", "scene0001_00": "train",
                                               "scene0002_00": "test"}


def test_split_list_folder_option_limits_scenes(raw, tmp_path):
    root, _ = raw
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "scannetv2_val.txt").write_text("scene0000_00\n")
    refs = scannet.list_scenes(root, scannet.Options(split_lists=str(lists)))
    assert [(r.name, r.split) for r in refs] == [("scene0000_00", "val")]


def test_align_false_gives_the_stored_frame(raw):
    root, truth = raw
    scene = read_all(scannet, root, scannet.Options(align=False))[0]["scene0000_00"]
    assert not np.allclose(scene.coord, truth["scene0000_00"].coord, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(np.diff(scene.coord[:50], axis=0), axis=1),
                               np.linalg.norm(np.diff(truth["scene0000_00"].coord[:50], axis=0), axis=1), atol=1e-4)


def _ref(root, name="scene0000_00"):
    return next(r for r in scannet.list_scenes(root, scannet.Options()) if r.name == name)


def _mesh(root, name="scene0000_00"):
    return root / "scans" / name / f"{name}_vh_clean_2.ply"


def test_truncated_mesh_names_the_file(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    data = _mesh(root).read_bytes()
    _mesh(root).write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated") as err:
        scannet.read_scene(_ref(root), scannet.Options(), print)
    assert str(_mesh(root)) in str(err.value)


def test_mesh_without_colours_names_the_missing_properties(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    xyz = np.zeros((3, 3), np.float32)
    write_ply_arrays(_mesh(root), {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]},
                     {"vertex_indices": np.array([[0, 1, 2]], np.int32)})
    with pytest.raises(FormatError, match="red, green, blue") as err:
        scannet.read_scene(_ref(root), scannet.Options(), print)
    assert str(_mesh(root)) in str(err.value)


def test_segment_count_mismatch_names_segs_json(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    segs = root / "scans" / "scene0000_00" / "scene0000_00_vh_clean_2.0.010000.segs.json"
    data = json.loads(segs.read_text())
    data["segIndices"] = data["segIndices"][:-5]
    segs.write_text(json.dumps(data))
    with pytest.raises(FormatError, match="segIndices") as err:
        scannet.read_scene(_ref(root), scannet.Options(), print)
    assert str(segs) in str(err.value)


def test_nan_coordinates_are_rejected(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    xyz = np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]], np.float32)
    rgb = np.zeros(3, np.uint8)
    write_ply_arrays(_mesh(root), {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "red": rgb, "green": rgb,
                                   "blue": rgb}, {"vertex_indices": np.array([[0, 1, 2]], np.int32)})
    with pytest.raises(FormatError, match="NaN") as err:
        scannet.read_scene(_ref(root), scannet.Options(), print)
    assert str(_mesh(root)) in str(err.value)


def test_unknown_raw_category_is_ignored_with_a_warning(raw, tmp_path):
    root, truth = fresh_copy(raw, tmp_path)
    agg = root / "scans" / "scene0000_00" / "scene0000_00.aggregation.json"
    data = json.loads(agg.read_text())
    data["segGroups"][0]["label"] = "flux capacitor"
    agg.write_text(json.dumps(data))
    warnings = []
    scene = scannet.read_scene(_ref(root), scannet.Options(), warnings.append)
    assert len(warnings) == 1 and "flux capacitor" in warnings[0] and str(agg) in warnings[0]
    group0 = scene.instance == data["segGroups"][0]["id"]
    assert group0.any() and (scene.segment[group0] == -1).all()


def test_missing_annotation_of_a_train_scene(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    (root / "scans" / "scene0000_00" / "scene0000_00.aggregation.json").unlink()
    (root / "scans" / "scene0000_00" / "scene0000_00_vh_clean_2.0.010000.segs.json").unlink()
    with pytest.raises(MissingFile, match="aggregation") as err:
        scannet.read_scene(_ref(root), scannet.Options(), print)
    assert "scene0000_00" in str(err.value)


def test_bad_axis_alignment_names_the_txt(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    meta = root / "scans" / "scene0000_00" / "scene0000_00.txt"
    meta.write_text("axisAlignment = 1 0 0\n")
    with pytest.raises(FormatError, match="16") as err:
        scannet.read_scene(_ref(root), scannet.Options(), print)
    assert str(meta) in str(err.value)


def test_missing_label_table_and_empty_root(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    (root / "scannetv2-labels.combined.tsv").unlink()
    with pytest.raises(MissingFile, match="labels.combined.tsv"):
        scannet.list_scenes(root, scannet.Options())
    with pytest.raises(MissingFile) as err:
        scannet.list_scenes(tmp_path, scannet.Options())
    assert str(tmp_path) in str(err.value)


def test_empty_mesh_is_rejected(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    ref = _ref(root, "scene0002_00")
    mesh = root / "scans_test" / "scene0002_00" / "scene0002_00_vh_clean_2.ply"
    empty = np.zeros(0, np.float32)
    write_ply_arrays(mesh, {"x": empty, "y": empty, "z": empty, "red": empty.astype(np.uint8),
                            "green": empty.astype(np.uint8), "blue": empty.astype(np.uint8)},
                     {"vertex_indices": np.zeros((0, 3), np.int32)})
    with pytest.raises(FormatError, match="no points") as err:
        scannet.read_scene(ref, scannet.Options(), print)
    assert str(mesh) in str(err.value)
