import io
import shutil
import zipfile

import numpy as np
import pytest

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.io.ply import read_ply_bytes, write_ply_arrays
from pmoe_core.sources import matterport3d
from pmoe_core.sources.meshes import majority_vertex_label
from pmoe_core.sources.synthetic_indoor import write_matterport3d
from pmoe_core.vocab.label_spaces import MATTERPORT3D

from indoor_helpers import assert_same_points, read_all


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("mp3d")
    return root, write_matterport3d(root, scenes=4, seed=4)


def test_every_vertex_matches_the_truth(raw):
    root, truth = raw
    scenes, splits, warnings = read_all(matterport3d, root)
    assert set(scenes) == set(truth) and warnings == []
    for name, scene in scenes.items():
        assert_same_points(scene, truth[name], coord_atol=0)
        np.testing.assert_array_equal(scene.normal, truth[name].normal)
        assert 5_000 <= len(scene) <= 60_000
    assert sum(n.endswith("_01") for n in scenes) == 1  # the fourth region is region 1 of the first house


def test_hard_cases_unlabelled_faces_picture_border_and_ceiling(raw):
    root, _ = raw
    scene = next(iter(read_all(matterport3d, root)[0].values()))
    labels = set(np.unique(scene.segment))
    assert {-1, MATTERPORT3D.index("picture"), MATTERPORT3D.index("ceiling"), MATTERPORT3D.index("wall")} <= labels


def test_majority_vote_rules():
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [5, 6, 7]])
    # vertex 0: two wall faces (0) vs one picture face (10) -> wall; vertex 3: wall vs picture tie -> wall (lower)
    # vertex 4: only picture; vertices 5-7: an unlabelled face; vertex 8: on no face
    labels = majority_vertex_label(faces, np.array([0, 0, 10, -1]), 9, 21)
    assert labels.tolist() == [0, 0, 0, 0, 10, -1, -1, -1, -1]
    # an ignored face beats nothing but loses ties: vertex 1 has one chair vote and one ignore vote
    labels = majority_vertex_label(np.array([[0, 1, 2], [1, 3, 4]]), np.array([4, -1]), 5, 21)
    assert labels.tolist() == [4, 4, 4, -1, -1]


def test_house_splits_from_lists_and_without(raw, tmp_path):
    root, _ = raw
    splits = read_all(matterport3d, root)[1]
    assert sorted(set(splits.values())) == ["test", "train", "val"]
    shutil.copytree(root, tmp_path / "raw")
    for split in ("train", "val", "test"):
        (tmp_path / "raw" / f"scenes_{split}.txt").unlink()
    assert {r.split for r in matterport3d.list_scenes(tmp_path / "raw", matterport3d.Options())} == {"train"}


def test_category_mapping_is_crlf_and_index_is_not_nyu40(raw):
    root, _ = raw
    data = (root / "metadata" / "category_mapping.tsv").read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n")
    rows = [line.split(b"\t") for line in data.split(b"\r\n")[1:] if line]
    assert any(row[0] != row[5] for row in rows)


def _house_zip(root, name):
    return root / "v1" / "scans" / name.rsplit("_", 1)[0] / "region_segmentations.zip"


def _replace_region(raw, tmp_path, mutate):
    root, truth = raw
    shutil.copytree(root, tmp_path / "raw")
    ref = matterport3d.list_scenes(tmp_path / "raw", matterport3d.Options())[0]
    with zipfile.ZipFile(ref.paths[0]) as zf:
        content = {n: zf.read(n) for n in zf.namelist()}
    content[ref.meta["member"]] = mutate(content[ref.meta["member"]])
    with zipfile.ZipFile(ref.paths[0], "w") as zf:
        for name, value in content.items():
            zf.writestr(name, value)
    return ref, f"{ref.paths[0]}:{ref.meta['member']}"


def _rewrite_ply(data, drop_vertex=(), face_override=None):
    header, ply = read_ply_bytes(data, "x")
    vertex = {k: v for k, v in ply["vertex"].items() if k not in drop_vertex}
    face = dict(ply["face"])
    face.update(face_override or {})
    out = io.BytesIO()
    write_ply_arrays(out, vertex, face)
    return out.getvalue()


def test_truncated_region_names_the_member(raw, tmp_path):
    ref, where = _replace_region(raw, tmp_path, lambda d: d[: len(d) - 100])
    with pytest.raises(FormatError, match="truncated") as err:
        matterport3d.read_scene(ref, matterport3d.Options(), print)
    assert where in str(err.value)


def test_missing_normals_named(raw, tmp_path):
    ref, where = _replace_region(raw, tmp_path, lambda d: _rewrite_ply(d, drop_vertex=("nx", "ny", "nz")))
    with pytest.raises(FormatError, match="nx, ny, nz") as err:
        matterport3d.read_scene(ref, matterport3d.Options(), print)
    assert where in str(err.value)


def test_category_outside_the_table_named(raw, tmp_path):
    def bad_category(data):
        _, ply = read_ply_bytes(data, "x")
        category = ply["face"]["category_id"].copy()
        category[0] = 5000
        return _rewrite_ply(data, face_override={"category_id": category})

    ref, where = _replace_region(raw, tmp_path, bad_category)
    with pytest.raises(FormatError, match="category_id") as err:
        matterport3d.read_scene(ref, matterport3d.Options(), print)
    assert where in str(err.value)


def test_face_index_out_of_range_named(raw, tmp_path):
    def bad_face(data):
        _, ply = read_ply_bytes(data, "x")
        faces = ply["face"]["vertex_indices"].copy()
        faces[3, 1] = 10_000_000
        return _rewrite_ply(data, face_override={"vertex_indices": faces})

    ref, where = _replace_region(raw, tmp_path, bad_face)
    with pytest.raises(FormatError, match="face 3") as err:
        matterport3d.read_scene(ref, matterport3d.Options(), print)
    assert where in str(err.value)


def test_unreadable_zip_and_missing_mapping(raw, tmp_path):
    root, _ = raw
    shutil.copytree(root, tmp_path / "raw")
    archive = next((tmp_path / "raw" / "v1" / "scans").glob("*/region_segmentations.zip"))
    archive.write_bytes(b"not a zip at all")
    refs = matterport3d.list_scenes(tmp_path / "raw", matterport3d.Options())
    broken = [ref for ref in refs if ref.problem]  # listed as one unreadable scene: convert reports it
    assert [ref.name for ref in broken] == [archive.parent.name]
    assert str(archive) in broken[0].problem and "zip" in broken[0].problem
    with pytest.raises(FormatError, match="zip"):
        matterport3d.read_scene(broken[0], matterport3d.Options(), print)
    (tmp_path / "raw" / "metadata" / "category_mapping.tsv").unlink()
    with pytest.raises(MissingFile, match="category_mapping.tsv"):
        matterport3d.list_scenes(tmp_path / "raw", matterport3d.Options())


def test_unzipped_regions_work(raw, tmp_path):
    root, truth = raw
    shutil.copytree(root, tmp_path / "raw")
    for archive in (tmp_path / "raw" / "v1" / "scans").glob("*/region_segmentations.zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(archive.parent)
        archive.unlink()
    scenes, _, _ = read_all(matterport3d, tmp_path / "raw")
    assert set(scenes) == set(truth)
    for name, scene in scenes.items():
        assert_same_points(scene, truth[name], coord_atol=0)
