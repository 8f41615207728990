"""`pmoe convert` against hostile raw data (issue #16): every defect is either a skipped scene with its reason
counted (fatal under --strict), a warning naming the file, or one line on stderr; never a silent drop, a wrong
label, a traceback or unbounded memory."""

from __future__ import annotations

import json
import shutil
import struct
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support_loader import reliability_conftest

from pmoe_core.convert import build_options, convert
from pmoe_core.errors import BadInput, FormatError, PmoeError, StoreError
from pmoe_core.sources import archive as archive_module
from pmoe_core.sources import matterport3d, nuscenes, s3dis, structured3d, waymo
from pmoe_core.sources.archive import read_member
from pmoe_core.sources.synthetic_indoor import (
    write_matterport3d,
    write_s3dis,
    write_scannet,
    write_structured3d,
)
from pmoe_core.sources.synthetic_outdoor import (
    write_nuscenes,
    write_semantickitti,
    write_waymo,
)

run_pmoe = reliability_conftest().run_pmoe


def _convert(dataset: str, raw: Path, out: Path, **kwargs):
    return convert(dataset, raw, str(out), workers=1, **kwargs)


# --- item 3: Matterport houses are never dropped silently ---

@pytest.fixture(scope="module")
def matterport_raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mp3d")
    write_matterport3d(root, scenes=2, seed=0)
    return root


def _houses(root: Path) -> list[Path]:
    return sorted(p for p in (root / "v1" / "scans").iterdir() if p.is_dir())


@pytest.mark.parametrize("damage", ["dangling link", "folder", "missing", "no regions"])
def test_matterport_house_without_readable_regions_is_skipped_and_counted(damage, matterport_raw, tmp_path,
                                                                          cache_env):
    raw = tmp_path / "raw"
    shutil.copytree(matterport_raw, raw)
    house = _houses(raw)[0]
    archive = house / "region_segmentations.zip"
    archive.unlink()
    if damage == "dangling link":
        archive.symlink_to(tmp_path / "nowhere.zip")
    elif damage == "folder":
        archive.mkdir()
    elif damage == "no regions":
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("readme.txt", "no meshes here")
    summary = _convert("matterport3d", raw, tmp_path / "out")
    assert [s.name for s in summary.skipped] == [house.name]
    assert str(archive) in summary.skipped[0].reason
    assert summary.written >= 1  # the other house still converts
    with pytest.raises(FormatError, match=f"{house.name}.*strict"):
        _convert("matterport3d", raw, tmp_path / "strict", strict=True)


def test_matterport_cli_summary_counts_the_dropped_house(matterport_raw, tmp_path, cache_env):
    raw = tmp_path / "raw"
    shutil.copytree(matterport_raw, raw)
    house = _houses(raw)[1]
    (house / "region_segmentations.zip").unlink()
    (house / "region_segmentations.zip").symlink_to("missing.zip")
    done = run_pmoe(cache_env, "convert", "mp3d", raw, tmp_path / "out", "--workers", 1)
    assert done.returncode == 0, done.stderr
    assert "1 skipped" in done.stdout and f"skipped {house.name} " in done.stdout
    strict = run_pmoe(cache_env, "convert", "mp3d", raw, tmp_path / "strict", "--workers", 1, "--strict")
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    errors = [line for line in strict.stderr.splitlines() if line.startswith("pmoe: error:")]
    assert len(errors) == 1 and "dangling link" in errors[0] and house.name in errors[0]


# --- item 4: category_mapping.tsv indices ---

def _set_first_index(raw: Path, text: str) -> Path:
    tsv = raw / "metadata" / "category_mapping.tsv"
    lines = tsv.read_text().split("\n")
    _, _, rest = lines[1].partition("\t")
    lines[1] = f"{text}\t{rest}"
    tsv.write_text("\n".join(lines))
    matterport3d.category_table.cache_clear()
    return tsv


@pytest.mark.parametrize("index, problem", [("-3", "below 1"), ("0", "below 1"), ("abc", "not an integer"),
                                            ("1e12", "not an integer"), ("2", "two rows")])
def test_matterport_bad_category_index_is_a_format_error(index, problem, matterport_raw, tmp_path, cache_env):
    raw = tmp_path / "raw"
    shutil.copytree(matterport_raw, raw)
    tsv = _set_first_index(raw, index)
    summary = _convert("matterport3d", raw, tmp_path / "out")
    assert summary.written == 0 and summary.skipped
    assert all(str(tsv) in s.reason and problem in s.reason for s in summary.skipped)


def test_matterport_huge_category_index_allocates_nothing_of_its_size(matterport_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(matterport_raw, raw)
    tsv = raw / "metadata" / "category_mapping.tsv"
    tsv.write_text(tsv.read_text().rstrip("\n") + "\n" + "\t".join(["1000000000000", "x", "x", "1", "1", "1"]
                                                                     + [""] * 12) + "\n")
    matterport3d.category_table.cache_clear()
    ref = matterport3d.list_scenes(raw, matterport3d.Options())[0]
    tracemalloc.start()
    try:
        scene = matterport3d.read_scene(ref, matterport3d.Options(), print)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20 and (scene.segment >= 0).any()


# --- item 5: JSON nesting and any PmoeError skip a scene ---

def _deep_json(levels: int = 1000) -> str:
    return "[" * levels + "]" * levels


def test_deep_scannet_json_skips_the_scene(tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_scannet(raw, scenes=2, seed=0)
    scene_dir = min((raw / "scans").iterdir())
    segs = next(scene_dir.glob("*segs.json"))
    segs.write_text('{"segIndices": ' + _deep_json() + "}")
    summary = _convert("scannet", raw, tmp_path / "out")
    assert [s.name for s in summary.skipped] == [scene_dir.name]
    assert "nested deeper" in summary.skipped[0].reason and str(segs) in summary.skipped[0].reason


def test_deep_nuscenes_table_is_one_line(tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_nuscenes(raw, scenes=1, seed=0)
    (raw / "v1.0-trainval" / "sensor.json").write_text(_deep_json())
    done = run_pmoe(cache_env, "convert", "nuscenes", raw, tmp_path / "out", "--workers", 1)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "sensor.json: JSON nested deeper" in done.stderr


@pytest.mark.parametrize("error", [BadInput, StoreError, PmoeError])
def test_any_pmoe_error_of_a_reader_skips_only_that_scene(error, tmp_path, cache_env, monkeypatch):
    raw = tmp_path / "raw"
    write_s3dis(raw, scenes=3, seed=0)
    real, calls = s3dis.read_scene, []

    def flaky(ref, options, warn):
        calls.append(ref.name)
        if len(calls) == 2:
            raise error("reader gave up", ref.paths[0])
        return real(ref, options, warn)

    monkeypatch.setattr(s3dis, "read_scene", flaky)
    summary = _convert("s3dis", raw, tmp_path / "out")
    assert len(summary.skipped) == 1 and "reader gave up" in summary.skipped[0].reason
    assert summary.written == summary.selected - 1


def test_python_warnings_of_a_reader_become_convert_warnings(tmp_path, cache_env, monkeypatch, capfd):
    raw = tmp_path / "raw"
    write_s3dis(raw, scenes=2, seed=0)
    real = s3dis.read_scene

    def noisy(ref, options, warn):
        np.float32(3e38) * np.float32(10)  # RuntimeWarning: overflow
        return real(ref, options, warn)

    monkeypatch.setattr(s3dis, "read_scene", noisy)
    summary = _convert("s3dis", raw, tmp_path / "out")
    numeric = [w for w in summary.warnings if "RuntimeWarning" in w]
    assert len(numeric) == summary.selected and "overflow" in numeric[0]
    assert "RuntimeWarning" not in capfd.readouterr().err


# --- item 6: zip inflation bounded by the bytes inflated, not the recorded size ---

def _lying_zip(path: Path, member: str, inflated: int, claimed: int) -> None:
    """A deflated member of `inflated` zero bytes whose local and central headers claim `claimed` bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, bytes(inflated))
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, claimed)
    struct.pack_into("<I", data, central + 24, claimed)
    path.write_bytes(bytes(data))


def test_zip_member_with_a_lying_size_inflates_only_to_the_limit(tmp_path):
    archive = tmp_path / "bomb.zip"
    _lying_zip(archive, "x.png", inflated=96 << 20, claimed=1000)
    assert archive.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(FormatError) as err:
            read_member(archive, "x.png", f"{archive}:x.png", max_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # zipfile.read() inflated ~all 96 MiB before its CRC check
    assert f"{archive}:x.png" in err.value.message


def test_inflation_stops_once_the_bytes_inflated_pass_the_limit(tmp_path):
    """The bound holds on the bytes that come out, whatever the header said (here: checked after the header)."""
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x", bytes(8 << 20))
    with zipfile.ZipFile(archive) as zf:
        tracemalloc.start()
        try:
            with pytest.raises(FormatError, match="inflates past the 2097152-byte limit"):
                archive_module._inflate(zf, zf.getinfo("x"), "big.zip:x", max_bytes=2 << 20)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < (2 << 20) + 4 * archive_module.CHUNK


def test_zip_member_with_bzip2_is_refused(tmp_path):
    archive = tmp_path / "b.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_BZIP2) as zf:
        zf.writestr("x", bytes(100))
    with pytest.raises(FormatError, match="compression method"):
        read_member(archive, "x", "b.zip:x", max_bytes=1 << 20)


# --- item 11: silent wrong labels or geometry ---

def test_semantickitti_unknown_label_ids_are_warned(tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_semantickitti(raw, scenes=1, seed=0, columns=256)
    label = next(raw.rglob("*.label"))
    label.write_bytes(np.full(label.stat().st_size // 4, 999, dtype="<u4").tobytes())
    summary = _convert("semantickitti", raw, tmp_path / "out")
    unknown = [w for w in summary.warnings if "not in the SemanticKITTI label map" in w]
    assert len(unknown) == 1 and str(label) in unknown[0] and "(999)" in unknown[0]


def test_semantickitti_known_ids_give_no_warning(tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_semantickitti(raw, scenes=2, seed=0, columns=256)
    summary = _convert("semantickitti", raw, tmp_path / "out")
    assert not [w for w in summary.warnings if "label map" in w]


def test_waymo_unknown_segmentation_types_are_warned(tmp_path):
    raw = tmp_path / "raw"
    write_waymo(raw, scenes=1, seed=0)
    ref = waymo.list_scenes(raw, waymo.Options())[0]
    frame = waymo.read_frame(ref)
    clean: list[str] = []
    waymo.frame_to_scene(ref.name, frame, ref.paths[0], clean.append)
    assert not clean
    for laser in frame.lasers.values():
        for k, labels in enumerate(laser.labels):
            if labels is not None:
                labels = labels.copy()
                labels[..., 1] = np.where(labels[..., 1] > 0, 77, labels[..., 1])
                laser.labels[k] = labels
    found: list[str] = []
    scene = waymo.frame_to_scene(ref.name, frame, ref.paths[0], found.append)
    assert len(found) == 1 and "(77)" in found[0] and ref.paths[0] in found[0]
    assert (scene.segment == -1).all()


@pytest.mark.parametrize("matrix", ["0 " * 16, "1 0 0 0 1 0 0 0 0 0 0 0 0 0 0 1", "nan " + "1 " * 15])
def test_scannet_degenerate_axis_alignment_skips_the_scene(matrix, tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_scannet(raw, scenes=2, seed=0)
    meta = min((raw / "scans").glob("*/*.txt"))
    meta.write_text(f"axisAlignment = {matrix}\n")
    summary = _convert("scannet", raw, tmp_path / "out")
    assert len(summary.skipped) == 1 and str(meta) in summary.skipped[0].reason
    assert "singular" in summary.skipped[0].reason or "NaN" in summary.skipped[0].reason


def _nus_tables(raw: Path) -> Path:
    return raw / "v1.0-trainval"


def _edit_table(raw: Path, name: str, edit) -> None:
    path = _nus_tables(raw) / f"{name}.json"
    rows = json.loads(path.read_text())
    edit(rows)
    path.write_text(json.dumps(rows))


def test_nuscenes_prev_cycle_skips_the_key_frame(tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_nuscenes(raw, scenes=2, seed=0)
    first_key: dict = {}

    def make_cycle(rows):
        lidar = [r for r in rows if r["fileformat"] == "pcd"]
        key = next(r for r in lidar if r["is_key_frame"])
        first_key["token"] = key["token"]
        prev = next(r for r in lidar if r["token"] == key["prev"])
        prev["prev"] = key["token"]  # key -> prev -> key -> ...

    _edit_table(raw, "sample_data", make_cycle)
    summary = _convert("nuscenes", raw, tmp_path / "out", options=nuscenes.Options(sweeps=8))
    assert summary.skipped and all("cycle" in s.reason and "sample_data.json" in s.reason for s in summary.skipped)
    assert any(first_key["token"] in s.reason for s in summary.skipped)
    assert summary.written >= 1  # key frames whose chain does not meet the cycle, and the other scene


def test_nuscenes_scenes_sharing_a_name_are_refused(tmp_path):
    raw = tmp_path / "raw"
    write_nuscenes(raw, scenes=2, seed=0)
    tokens: list[str] = []

    def same_name(rows):
        rows[1]["name"] = rows[0]["name"]
        tokens.extend(r["token"] for r in rows[:2])

    _edit_table(raw, "scene", same_name)
    with pytest.raises(FormatError, match="share the name") as err:
        nuscenes.list_scenes(raw, nuscenes.Options())
    assert all(token in err.value.message for token in tokens)


def test_nuscenes_scene_in_two_split_lists_is_refused(tmp_path):
    raw = tmp_path / "raw"
    write_nuscenes(raw, scenes=1, seed=0)
    name = json.loads((_nus_tables(raw) / "scene.json").read_text())[0]["name"]
    lists = tmp_path / "splits.json"
    lists.write_text(json.dumps({"train": [name], "val": [name]}))
    with pytest.raises(FormatError, match="both train and val"):
        nuscenes.list_scenes(raw, nuscenes.Options(split_lists=str(lists)))


# --- item 12: numpy warnings, newlines in names, S3DIS memory, -O ranges, OUT placement ---

def test_nuscenes_zero_quaternion_is_a_format_error_without_runtime_warnings(tmp_path):
    raw = tmp_path / "raw"
    write_nuscenes(raw, scenes=1, seed=0)
    _edit_table(raw, "ego_pose", lambda rows: [r.update(rotation=[0, 0, 0, 0]) for r in rows])
    options = nuscenes.Options(sweeps=2)
    ref = nuscenes.list_scenes(raw, options)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FormatError, match="quaternion"):
            nuscenes.read_scene(ref, options, print)


def test_structured3d_far_camera_is_a_format_error_without_runtime_warnings(tmp_path):
    raw = tmp_path / "raw"
    write_structured3d(raw, scenes=1, width=32)
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(next(raw.glob("*.zip"))) as zf:
        zf.extractall(folder)
    camera = next(folder.rglob("camera_xyz.txt"))
    camera.write_text("1e300 0 0")
    ref = structured3d.list_scenes(folder, structured3d.Options())[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FormatError, match="camera centre") as err:
            structured3d.read_scene(ref, structured3d.Options(), print)
    assert str(camera) in err.value.message


def test_scene_names_with_newlines_stay_one_line_in_the_summary(tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_s3dis(raw, scenes=2, seed=0)
    room = next(p for p in raw.rglob("Area_*/*") if p.is_dir() and (p / "Annotations").is_dir())
    room.rename(room.with_name("evil\nroom"))
    done = run_pmoe(cache_env, "convert", "s3dis", raw, tmp_path / "out", "--workers", 1)
    assert done.returncode == 0, done.stderr
    summary = done.stdout.splitlines()
    assert "1 skipped" in summary[0] and len(summary) == 2  # the summary and one skipped line
    assert "evil\\nroom" in summary[1]
    warned = [line for line in done.stderr.splitlines() if "evil" in line]
    assert warned and all("\\n" in line for line in warned)


def test_s3dis_stray_byte_memory_stays_near_the_file_size(tmp_path):
    path = tmp_path / "chair_1.txt"
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.random((100_000, 3)) * 10, rng.integers(0, 256, (100_000, 3))])
    np.savetxt(path, rows, fmt="%.6f %.6f %.6f %d %d %d")
    clean = s3dis.parse_annotation(path, print)
    data = bytearray(path.read_bytes())
    for at in (50, len(data) // 2):  # a stray byte replacing a digit's neighbour inside a number
        at = data.index(b".", at) + 1
        data[at:at] = b"\x01"
    path.write_bytes(bytes(data))
    found: list[str] = []
    tracemalloc.start()
    try:
        values = s3dis.parse_annotation(path, found.append)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(values, clean)
    assert len(found) == 1 and "removed 2 stray byte(s)" in found[0]
    assert peak < 3 * len(data) + (24 << 20)  # was ~23x the file size


def test_s3dis_overlong_line_is_dropped_as_malformed(tmp_path):
    path = tmp_path / "chair_1.txt"
    path.write_bytes(b"1 2 3 4 5 6\n" + b"7" * (s3dis.MAX_LINE + s3dis.BLOCK + 5) + b"\n8 9 10 11 12 13")
    found: list[str] = []
    values = s3dis.parse_annotation(path, found.append)
    np.testing.assert_array_equal(values, [[1, 2, 3, 4, 5, 6], [8, 9, 10, 11, 12, 13]])
    assert len(found) == 1 and "line(s) 2" in found[0]


@pytest.mark.parametrize("dataset, option", [
    ("nuscenes", "sweeps=-5"), ("nuscenes", "sweep_min_distance=-1"), ("nuscenes", "sweep_min_distance=nan"),
    ("s3dis", "val_area=0"), ("structured3d", "render=fancy"), ("structured3d", "lighting=dim"),
    ("semantickitti", "split=training"), ("semantickitti", "sequences=0-99999999"), ("semantickitti", "sequences=5-2"),
    ("waymo", "format=v3"), ("waymo", "split=dev"),
])
def test_out_of_range_reader_options_are_refused_before_any_work(dataset, option):
    with pytest.raises(BadInput, match="option"):
        build_options(dataset, [option])


def test_negative_sweeps_is_one_line_on_the_command_line(tmp_path, cache_env):
    done = run_pmoe(cache_env, "convert", "nuscenes", tmp_path / "raw", tmp_path / "out", "-O", "sweeps=-5")
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0
    assert "sweeps must be 0 or more" in done.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["inside", "same", "file", "proc"])
def test_out_must_not_be_inside_raw_a_file_or_a_system_tree(where, tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_semantickitti(raw, scenes=1, seed=0, columns=64)
    out = {"inside": raw / "out", "same": raw, "file": tmp_path / "f.txt", "proc": Path("/proc/pmoe-out")}[where]
    if where == "file":
        out.write_text("x")
    before = sorted(p.name for p in raw.rglob("*"))
    done = run_pmoe(cache_env, "convert", "semantickitti", raw, out, "--workers", 1)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr and str(out) in done.stderr
    assert sorted(p.name for p in raw.rglob("*")) == before


# --- far outliers: kept, one warning per scene ---

def test_far_points_are_kept_with_one_warning_per_scene(tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_s3dis(raw, scenes=2, seed=0)
    annotation = next(raw.rglob("Annotations/*.txt"))
    with open(annotation, "a") as f:
        f.write("300000 0 0 1 2 3\n1e17 0 0 1 2 3\n")
    summary = _convert("s3dis", raw, tmp_path / "out")
    far = [w for w in summary.warnings if "points lie more than" in w]
    assert len(far) == 1 and far[0].split(": ")[1].startswith("2 of")
    assert summary.written == summary.selected and not summary.skipped


def test_non_finite_coordinates_skip_the_scene(tmp_path, cache_env):
    raw = tmp_path / "raw"
    write_semantickitti(raw, scenes=2, seed=0, columns=64)
    scan = min(raw.rglob("velodyne/*.bin"))
    points = np.fromfile(scan, dtype="<f4").reshape(-1, 4)
    points[3, 0] = np.nan
    points.tofile(scan)
    summary = _convert("semantickitti", raw, tmp_path / "out")
    assert len(summary.skipped) == 1 and "NaN or infinite" in summary.skipped[0].reason
