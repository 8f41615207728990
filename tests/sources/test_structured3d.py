import io
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from pmoe_core.errors import FormatError, MissingFile
from pmoe_core.sources import structured3d
from pmoe_core.sources.synthetic_indoor import write_structured3d
from pmoe_core.vocab.label_spaces import STRUCTURED3D

from indoor_helpers import assert_same_points, normal_agreement, read_all


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3d")
    return root, write_structured3d(root, scenes=4, seed=3)


def test_every_pixel_point_matches_the_truth(raw):
    root, truth = raw
    scenes, _, warnings = read_all(structured3d, root)
    assert set(scenes) == set(truth) and warnings == []
    for name, scene in scenes.items():
        assert_same_points(scene, truth[name], coord_atol=1e-5)
        assert (normal_agreement(scene.normal, truth[name].normal) > 0.999).all()
        assert 5_000 <= len(scene) <= 60_000


def test_unlabelled_and_no_depth_pixels_are_dropped_and_non_benchmark_ids_ignored(raw):
    root, truth = raw
    scene = next(iter(read_all(structured3d, root)[0].values()))
    assert len(scene) < 256 * 128 - 256  # semantic 0 ("box") and the depth-0 zenith row are gone
    assert (scene.segment == -1).any()  # bookshelf: NYU40 10 is not among the 25 classes
    assert {STRUCTURED3D.index("wall"), STRUCTURED3D.index("floor"), STRUCTURED3D.index("ceiling")} <= set(
        np.unique(scene.segment))


def test_room_granularity_and_scene_number_splits(raw):
    root, _ = raw
    refs = structured3d.list_scenes(root, structured3d.Options())
    splits = {r.name.rsplit("_room_", 1)[0]: r.split for r in refs}
    assert splits == {"scene_00000": "train", "scene_03000": "val", "scene_03250": "test"}
    assert sum(r.name.startswith("scene_00000_room_") for r in refs) == 2  # the fourth room joins scene 0
    assert len({r.paths[0] for r in refs}) == 3  # read in place from three zips


def test_unzipped_folder_gives_the_same_points(raw, tmp_path):
    root, truth = raw
    for archive in root.glob("*.zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp_path)
    scenes, _, _ = read_all(structured3d, tmp_path)
    assert set(scenes) == set(truth)
    for name, scene in scenes.items():
        assert_same_points(scene, truth[name])


def _rewrite_member(root, tmp_path, member_suffix, data):
    """Copy the raw set and replace the first room's member ending in `member_suffix`."""
    shutil.copytree(root, tmp_path / "raw")
    ref = structured3d.list_scenes(tmp_path / "raw", structured3d.Options())[0]
    archive = ref.paths[0]
    with zipfile.ZipFile(archive) as zf:
        content = {n: zf.read(n) for n in zf.namelist()}
    target = ref.meta["prefix"] + member_suffix
    if data is None:
        del content[target]
    else:
        content[target] = data
    with zipfile.ZipFile(archive, "w") as zf:
        for name, value in content.items():
            zf.writestr(name, value)
    return ref, f"{archive}:{target}"


def _png(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_grey_and_equal_rgb_semantic_images_are_accepted(raw, tmp_path):
    root, truth = raw
    ref0 = structured3d.list_scenes(root, structured3d.Options())[0]
    with zipfile.ZipFile(ref0.paths[0]) as zf:
        ids = np.array(Image.open(io.BytesIO(zf.read(ref0.meta["prefix"] + "full/semantic.png"))))
    ref, _ = _rewrite_member(root, tmp_path, "full/semantic.png", _png(np.repeat(ids[..., None], 3, axis=2)))
    scene = structured3d.read_scene(ref, structured3d.Options(), print)
    assert_same_points(scene, truth[ref.name])


def test_colour_semantic_image_is_rejected(raw, tmp_path):
    rgb = np.zeros((128, 256, 3), np.uint8)
    rgb[..., 0] = 5
    ref, where = _rewrite_member(raw[0], tmp_path, "full/semantic.png", _png(rgb))
    with pytest.raises(FormatError, match="colour") as err:
        structured3d.read_scene(ref, structured3d.Options(), print)
    assert where in str(err.value)


def test_size_mismatch_and_missing_member_name_the_member(raw, tmp_path):
    ref, where = _rewrite_member(raw[0], tmp_path, "full/normal.png", _png(np.zeros((64, 128, 3), np.uint8)))
    with pytest.raises(FormatError, match="shape") as err:
        structured3d.read_scene(ref, structured3d.Options(), print)
    assert where in str(err.value)
    shutil.rmtree(tmp_path / "raw")
    ref, where = _rewrite_member(raw[0], tmp_path, "full/depth.png", None)
    with pytest.raises(MissingFile) as err:
        structured3d.read_scene(ref, structured3d.Options(), print)
    assert where in str(err.value)


def test_corrupt_png_and_bad_camera(raw, tmp_path):
    ref, where = _rewrite_member(raw[0], tmp_path, "full/depth.png", b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(FormatError, match="decode") as err:
        structured3d.read_scene(ref, structured3d.Options(), print)
    assert where in str(err.value)
    shutil.rmtree(tmp_path / "raw")
    ref, where = _rewrite_member(raw[0], tmp_path, "camera_xyz.txt", b"12.5 nan\n")
    with pytest.raises(FormatError, match="camera") as err:
        structured3d.read_scene(ref, structured3d.Options(), print)
    assert where in str(err.value)


def test_all_pixels_unlabelled_is_an_empty_scene(raw, tmp_path):
    ref, where = _rewrite_member(raw[0], tmp_path, "full/semantic.png", _png(np.zeros((128, 256), np.uint8)))
    with pytest.raises(FormatError, match="no pixel") as err:
        structured3d.read_scene(ref, structured3d.Options(), print)
    assert ref.paths[0] in str(err.value)


def test_unreadable_zip_names_the_archive(tmp_path):
    bad = tmp_path / "Structured3D_panorama_00.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(FormatError, match="zip") as err:
        structured3d.list_scenes(tmp_path, structured3d.Options())
    assert str(bad) in str(err.value)


def test_truncated_zip_member_names_the_archive(raw, tmp_path):
    root, _ = raw
    shutil.copytree(root, tmp_path / "raw")
    ref = structured3d.list_scenes(tmp_path / "raw", structured3d.Options())[0]
    data = bytearray(open(ref.paths[0], "rb").read())
    with zipfile.ZipFile(ref.paths[0]) as zf:
        info = zf.getinfo(ref.meta["prefix"] + "full/rgb_rawlight.png")
    data[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF  # flip a byte inside the stored PNG
    open(ref.paths[0], "wb").write(bytes(data))
    with pytest.raises(FormatError) as err:
        structured3d.read_scene(ref, structured3d.Options(), print)
    assert ref.paths[0] in str(err.value)


def test_a_settled_archive_is_opened_once_and_a_rewritten_one_afresh(raw, tmp_path, monkeypatch):
    """Opening a real panorama zip parses ~30k directory entries: rooms of an unchanged archive share one open."""
    import os
    import time

    from pmoe_core.sources import archive as archive_module

    root, truth = raw
    shutil.copytree(root, tmp_path / "raw")
    old = time.time() - 3600
    for path in (tmp_path / "raw").glob("*.zip"):
        os.utime(path, (old, old))  # a downloaded dataset: last modified long ago
    refs = structured3d.list_scenes(tmp_path / "raw", structured3d.Options())
    opened = []
    real_zipfile = zipfile.ZipFile
    monkeypatch.setattr(archive_module.zipfile, "ZipFile",
                        lambda path, *args: opened.append(path) or real_zipfile(path, *args))
    archive_module.close_archives()
    first = [r for r in refs if r.paths[0] == refs[0].paths[0]]
    assert len(first) == 2  # the fixture's zip holding two rooms
    for ref in first:
        assert_same_points(structured3d.read_scene(ref, structured3d.Options(), print), truth[ref.name])
    assert len(opened) == 1
    # rewritten in place (same inode) with another room's panorama: the new content is read, not the kept directory
    with zipfile.ZipFile(first[0].paths[0]) as zf:
        content = {n: zf.read(n) for n in zf.namelist()}
    swap = {first[0].meta["prefix"] + k[len(first[1].meta["prefix"]):]: v for k, v in content.items()
            if k.startswith(first[1].meta["prefix"])}
    content.update(swap)
    with open(first[0].paths[0], "r+b") as fh:
        fh.truncate(0)
        with zipfile.ZipFile(fh, "w") as zf:
            for name, value in content.items():
                zf.writestr(name, value)
    scene = structured3d.read_scene(first[0], structured3d.Options(), print)
    assert len(scene) == len(truth[first[1].name])
    archive_module.close_archives()
