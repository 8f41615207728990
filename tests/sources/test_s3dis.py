import shutil

import numpy as np
import pytest

from pmoe_core.errors import BadInput, FormatError, MissingFile
from pmoe_core.sources import s3dis
from pmoe_core.sources.synthetic_indoor import write_s3dis
from pmoe_core.vocab.label_spaces import S3DIS

from indoor_helpers import assert_same_points, read_all

RELEASE = "Stanford3dDataset_v1.2_Aligned_Version"


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3dis")
    return root, write_s3dis(root, scenes=3, seed=2)


def fresh_copy(raw, tmp_path):
    root, truth = raw
    shutil.copytree(root, tmp_path / "raw")
    return tmp_path / "raw", truth


def test_every_point_matches_the_truth(raw):
    root, truth = raw
    scenes, _, _ = read_all(s3dis, root)
    assert set(scenes) == set(truth) == {"Area_1_office_1", "Area_5_conferenceRoom_1", "Area_2_hallway_1"}
    for name, scene in scenes.items():
        assert_same_points(scene, truth[name], coord_atol=0)
        assert 5_000 <= len(scene) <= 60_000
        length = np.linalg.norm(scene.normal, axis=1)  # estimated at read time (normals="pca", the default)
        assert scene.normal.dtype == np.float32 and np.allclose(length[length > 0], 1, atol=1e-5)
        assert (length > 0).mean() > 0.99


def test_floor_normals_point_up_and_ceiling_normals_down(raw):
    """The orientation convention (facing the room's inside) on the synthetic rooms' floors and ceilings."""
    root, _ = raw
    for scene in read_all(s3dis, root)[0].values():
        for cls, sign in (("floor", 1), ("ceiling", -1)):
            mine = scene.segment == S3DIS.index(cls)
            assert mine.sum() > 100
            assert np.median(sign * scene.normal[mine, 2]) > 0.99, (scene.name, cls)


def test_normals_none_reads_no_normals_and_bad_values_are_refused(raw):
    root, _ = raw
    scenes = read_all(s3dis, root, s3dis.Options(normals="none"))[0]
    assert all(scene.normal is None for scene in scenes.values())
    with pytest.raises(BadInput, match="normals must be one of pca, none, got 'mesh'"):
        s3dis.Options(normals="mesh")
    with pytest.raises(BadInput, match="normals_k must be at least 3"):
        s3dis.Options(normals_k=2)


def test_store_records_the_normals_option(raw, tmp_path):
    from pmoe_core.convert import build_options, convert
    from pmoe_core.store import StoreReader

    root, _ = raw
    store = convert("s3dis", root, str(tmp_path / "pca"), workers=1, limit=1, splits=["val"]).store
    reader = StoreReader(store)
    assert reader.attrs["source"].endswith("with options normals='pca', normals_k=30")
    scene = reader.read("val", 0)
    assert scene.normal is not None and np.abs(scene.normal).sum() > 0
    options = build_options("s3dis", ["normals=none"])
    store = convert("s3dis", root, str(tmp_path / "none"), workers=1, limit=1, splits=["val"], options=options).store
    assert StoreReader(store).attrs["source"].endswith("with options normals='none', normals_k=30")
    assert StoreReader(store).read("val", 0).normal is None


def test_known_defects_are_survived_with_warnings_naming_the_files(raw):
    root, truth = raw
    _, _, warnings = read_all(s3dis, root)
    office = root / RELEASE / "Area_1" / "office_1" / "Annotations"
    assert sorted(warnings) == sorted([
        f"{office / 'ceiling_1.txt'}: removed 1 stray byte(s) on line(s) 3",
        f"{office / 'wall_3 (1).txt'}: duplicate of wall_3.txt, skipped",
    ])  # .DS_Store and Icon are ignored silently


def test_stairs_become_clutter(raw):
    root, truth = raw
    office = read_all(s3dis, root)[0]["Area_1_office_1"]
    files = sorted(p.name for p in (root / RELEASE / "Area_1" / "office_1" / "Annotations").glob("*_*.txt")
                   if "(" not in p.name)
    stairs = files.index("stairs_1.txt")
    assert (office.segment[office.instance == stairs] == S3DIS.index("clutter")).all()
    assert (office.instance == stairs).any()


def test_split_by_area(raw):
    root, _ = raw
    assert read_all(s3dis, root)[1] == {"Area_1_office_1": "train", "Area_2_hallway_1": "train",
                                        "Area_5_conferenceRoom_1": "val"}
    refs = s3dis.list_scenes(root, s3dis.Options(val_area=2))
    assert {r.name: r.split for r in refs}["Area_2_hallway_1"] == "val"
    assert {r.name: r.split for r in refs}["Area_5_conferenceRoom_1"] == "train"


def test_release_folder_itself_works_as_root(raw):
    root, _ = raw
    assert len(s3dis.list_scenes(root / RELEASE, s3dis.Options())) == 3


def _ref(root, name="Area_1_office_1"):
    return next(r for r in s3dis.list_scenes(root, s3dis.Options()) if r.name == name)


def test_malformed_line_is_dropped_and_only_that_line(raw, tmp_path):
    root, truth = fresh_copy(raw, tmp_path)
    path = root / RELEASE / "Area_2" / "hallway_1" / "Annotations" / "floor_1.txt"
    lines = path.read_bytes().split(b"\n")
    lines[4] = b"1.000 2.000 3.000 10 20"  # a value missing
    path.write_bytes(b"\n".join(lines))
    warnings = []
    scene = s3dis.read_scene(_ref(root, "Area_2_hallway_1"), s3dis.Options(), warnings.append)
    assert warnings == [f"{path}: dropped 1 line(s) without exactly 6 values: line(s) 5"]
    want = truth["Area_2_hallway_1"]
    assert len(scene) == len(want) - 1


def test_corrupted_number_with_replacement_character_is_repaired(raw, tmp_path):
    root, truth = fresh_copy(raw, tmp_path)
    path = root / RELEASE / "Area_2" / "hallway_1" / "Annotations" / "ceiling_1.txt"
    lines = path.read_bytes().split(b"\n")
    lines[0] = lines[0][:3] + "\ufffd".encode() + lines[0][3:]
    path.write_bytes(b"\n".join(lines))
    warnings = []
    scene = s3dis.read_scene(_ref(root, "Area_2_hallway_1"), s3dis.Options(), warnings.append)
    assert warnings == [f"{path}: removed 3 stray byte(s) on line(s) 1"]
    assert_same_points(scene, truth["Area_2_hallway_1"], coord_atol=0)


def test_different_copy_is_kept_as_its_own_instance(raw, tmp_path):
    root, truth = fresh_copy(raw, tmp_path)
    folder = root / RELEASE / "Area_1" / "office_1" / "Annotations"
    (folder / "wall_3 (1).txt").write_bytes(b"0.5 0.5 0.5 1 2 3\n")
    warnings = []
    scene = s3dis.read_scene(_ref(root), s3dis.Options(), warnings.append)
    assert len(scene) == len(truth["Area_1_office_1"]) + 1
    assert any("wall_3 (1).txt" in w and "kept" in w for w in warnings)


def test_unparseable_number_names_the_file(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    path = root / RELEASE / "Area_2" / "hallway_1" / "Annotations" / "floor_1.txt"
    path.write_bytes(b"1.0.0 2 3 4 5 6\n")
    with pytest.raises(FormatError, match="not a number") as err:
        s3dis.read_scene(_ref(root, "Area_2_hallway_1"), s3dis.Options(), print)
    assert str(path) in str(err.value)


def test_empty_room_and_missing_annotations(raw, tmp_path):
    root, _ = fresh_copy(raw, tmp_path)
    folder = root / RELEASE / "Area_2" / "hallway_1" / "Annotations"
    for path in folder.iterdir():
        path.write_bytes(b"")
    with pytest.raises(FormatError, match="no annotated points") as err:
        s3dis.read_scene(_ref(root, "Area_2_hallway_1"), s3dis.Options(), lambda m: None)
    assert str(folder) in str(err.value)
    shutil.rmtree(folder)
    with pytest.raises(MissingFile, match="Annotations") as err:
        s3dis.read_scene(_ref(root, "Area_2_hallway_1"), s3dis.Options(), print)
    assert "hallway_1" in str(err.value)


def test_not_an_s3dis_root(tmp_path):
    with pytest.raises(MissingFile, match="Area_N") as err:
        s3dis.list_scenes(tmp_path, s3dis.Options())
    assert str(tmp_path) in str(err.value)


def test_parse_is_vectorised_and_exact_for_clean_files(tmp_path):
    path = tmp_path / "chair_1.txt"
    values = np.column_stack([np.arange(1000) / 1000.0, -np.arange(1000) / 100.0, np.full(1000, 2.5),
                              np.arange(1000) % 256, np.full(1000, 7), np.zeros(1000)])
    np.savetxt(path, values, fmt=["%.3f", "%.3f", "%.3f", "%d", "%d", "%d"])
    np.testing.assert_array_equal(s3dis.parse_annotation(path, print), values)


@pytest.mark.parametrize("text, rows, warned", [
    (b"1 2 3 4 5 6\r\n\r\n7 8 9 10 11 12\r\n", [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]], False),  # CRLF, blank line
    (b"1 2 3 4 5 6\n1 2 3 4 5\n7 8 9 10 11 12\n", [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]], True),
    (b"1 2 3 4 5\n1 2 3 4 5\n", np.zeros((0, 6)), True),  # every line short: numpy would accept 5 columns
    (b" \n\t\n", np.zeros((0, 6)), False),
])
def test_clean_and_repair_paths_agree_on_line_rules(tmp_path, text, rows, warned):
    path = tmp_path / "table_1.txt"
    path.write_bytes(text)
    warnings = []
    values = s3dis.parse_annotation(path, warnings.append)
    np.testing.assert_array_equal(values, np.asarray(rows, dtype=np.float64).reshape(-1, 6))
    assert bool(warnings) == warned


def test_float32_overflow_is_refused_on_the_clean_path(tmp_path):
    path = tmp_path / "table_1.txt"
    path.write_bytes(b"1e39 0 0 1 2 3\n")
    with pytest.raises(FormatError, match="float32") as err:
        s3dis.parse_annotation(path, print)
    assert str(path) in str(err.value)
