"""Synthetic raw indoor datasets in the real on-disk formats, with the ground truth the readers must recover.

`write_scannet`, `write_s3dis`, `write_structured3d` and `write_matterport3d` build rooms (synthetic_rooms.py)
and write them the way each dataset ships: ScanNet meshes + segs/aggregation JSON + label TSV, S3DIS annotation
text files, Structured3D panoramas ray-cast into PNGs inside zips, Matterport3D region meshes with per-face
categories inside zips. Each returns `{scene name: Scene}` holding exactly what a correct reader yields (labels
derived here from class *names*, not through the readers' NYU40 tables). Densities follow the real datasets:
mesh vertices (ScanNet, Matterport3D), dense laser samples (S3DIS), one point per panorama pixel (Structured3D).

Hard cases built in: ScanNet unassigned vertices (segment and instance -1) and a "ceiling" group (ignored class);
S3DIS `stairs_1.txt` (clutter), `.DS_Store`/`Icon` litter, a stray byte inside a number and an identical
`wall_3 (1).txt` copy (first room); Structured3D unlabelled pixels (semantic 0), no-depth pixels and a
non-benchmark NYU40 class; Matterport3D unlabelled faces (-1), a picture painted onto wall faces (majority vote at
its border) and categories outside the 21 classes.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from pmoe_core.io.ply import write_ply_arrays
from pmoe_core.scene import IGNORE_INDEX, Scene
from pmoe_core.sources.synthetic_rooms import (
    KINDS, Mesh, Room, make_room, noisy_colors, raycast, sample_mesh_surface, shell_meshes, solid_mesh,
)
from pmoe_core.vocab.label_spaces import MATTERPORT3D, S3DIS, SCANNET, STRUCTURED3D

NYU40_NAMES = (
    "unlabeled", "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat",
    "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel", "shower curtain", "box",
    "whiteboard", "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)

# Generic kind -> (raw category as written in ScanNet/Matterport3D label tables, its NYU40 id).
RAW_CATEGORY: dict[str, tuple[str, int]] = {
    "wall": ("wall", 1), "floor": ("floor", 2), "ceiling": ("ceiling", 22), "door": ("door", 8),
    "window": ("window", 9), "table": ("table", 7), "chair": ("office chair", 5), "sofa": ("couch", 6),
    "bed": ("bed", 4), "cabinet": ("kitchen cabinets", 3), "bookshelf": ("bookshelf", 10), "desk": ("desk", 14),
    "refrigerator": ("refrigerator", 24), "toilet": ("toilet", 33), "sink": ("sink", 34), "bathtub": ("bathtub", 36),
    "counter": ("kitchen counter", 12), "trash can": ("trash can", 39), "lamp": ("lamp", 35), "box": ("box", 29),
    "picture": ("picture", 11), "curtain": ("curtain", 16), "nightstand": ("nightstand", 32),
    "dresser": ("dresser", 17), "television": ("tv", 25), "mirror": ("mirror", 19), "shelves": ("shelf", 15),
    "whiteboard": ("whiteboard", 30), "column": ("column", 38), "beam": ("beam", 38), "stairs": ("stairs", 38),
}
# Generic kind -> class name in each benchmark (None = ignore). Written by hand from the benchmark definitions.
SCANNET_CLASS = {
    "wall": "wall", "floor": "floor", "door": "door", "window": "window", "table": "table", "chair": "chair",
    "sofa": "sofa", "bed": "bed", "cabinet": "cabinet", "bookshelf": "bookshelf", "desk": "desk",
    "refrigerator": "refrigerator", "toilet": "toilet", "sink": "sink", "bathtub": "bathtub", "counter": "counter",
    "trash can": "otherfurniture", "picture": "picture", "curtain": "curtain",
}
MATTERPORT_CLASS = {**SCANNET_CLASS, "trash can": "other", "ceiling": "ceiling"}
STRUCTURED3D_CLASS = {
    "wall": "wall", "floor": "floor", "ceiling": "ceiling", "door": "door", "window": "window", "table": "table",
    "chair": "chair", "sofa": "sofa", "bed": "bed", "cabinet": "cabinet", "desk": "desk", "refrigerator":
    "refrigerator", "sink": "sink", "picture": "picture", "curtain": "curtain", "nightstand": "nightstand",
    "dresser": "dresser", "television": "television", "mirror": "mirror", "shelves": "shelves", "lamp": "lamp",
    "trash can": "otherfurniture", "column": "otherstructure",
}
S3DIS_FILE_CLASS = {
    "wall": "wall", "floor": "floor", "ceiling": "ceiling", "door": "door", "window": "window", "table": "table",
    "desk": "table", "chair": "chair", "sofa": "sofa", "bookshelf": "bookcase", "whiteboard": "board",
    "column": "column", "beam": "beam", "stairs": "stairs",
}
FURNITURE = ("table", "chair", "chair", "sofa", "bed", "cabinet", "bookshelf", "desk", "refrigerator", "toilet",
             "sink", "counter", "trash can", "lamp", "box", "picture", "curtain", "nightstand", "television")


def _index(space, table: dict[str, str], kind: str) -> int:
    name = table.get(kind)
    return space.index(name) if name is not None else IGNORE_INDEX


def _furnish(rng: np.random.Generator, pool: tuple[str, ...], count: int, always: tuple[str, ...]) -> list[str]:
    return list(always) + [str(k) for k in rng.choice(pool, size=count, replace=False)]


def _objects(room: Room, shell_step: float, solid_step: float) -> list[tuple[str, Mesh, tuple[int, int, int]]]:
    """(kind, mesh, base colour) for each wall side, the floor, the ceiling and each solid."""
    shell = shell_meshes(room, shell_step)
    out = [("floor", shell["floor"], room.shell_colors["floor"]), ("ceiling", shell["ceiling"],
                                                                    room.shell_colors["ceiling"])]
    walls = shell["wall"]
    for part in np.unique(walls.part):
        out.append(("wall", _submesh(walls, walls.part == part), room.shell_colors["wall"]))
    out += [(s.kind, solid_mesh(s, solid_step, room.size), s.color) for s in room.solids]
    return out


def _submesh(mesh: Mesh, keep: np.ndarray) -> Mesh:
    index = np.full(len(keep), -1)
    index[keep] = np.arange(int(keep.sum()))
    faces = index[mesh.faces]
    faces = faces[(faces >= 0).all(1)]
    return Mesh(mesh.vertices[keep], faces, mesh.normals[keep], mesh.part[keep])


# --- ScanNet ------------------------------------------------------------------------------------------------------

SCANNET_TSV_COLUMNS = ("id", "raw_category", "category", "count", "nyu40id", "eigen13id", "nyuClass", "nyu40class",
                       "eigen13class", "ModelNet40", "ModelNet10", "ShapeNetCore55", "synsetoffset", "wnsynsetid",
                       "wnsynsetkey", "mpcat40", "mpcat40index")


def write_scannet(out: str | Path, scenes: int = 3, seed: int = 0) -> dict[str, Scene]:
    """ScanNet v2 layout: scans/ + scans_test/, label TSV and split lists. Scene i is train/val/test by i % 3."""
    out, rng = Path(out), np.random.default_rng(seed)
    truth, lists = {}, {"train": [], "val": [], "test": []}
    for i in range(scenes):
        name, split = f"scene{i:04d}_00", ("train", "val", "test")[i % 3]
        lists[split].append(name)
        folder = out / ("scans_test" if split == "test" else "scans") / name
        folder.mkdir(parents=True, exist_ok=True)
        truth[name] = _scannet_scene(rng, folder, name, labelled=split != "test")
    _write_scannet_tsv(out / "scannetv2-labels.combined.tsv")
    for split, names in lists.items():
        (out / f"scannetv2_{split}.txt").write_text("".join(n + "\n" for n in names))
    return truth


def _scannet_scene(rng, folder: Path, name: str, labelled: bool) -> Scene:
    room = make_room(rng, _furnish(rng, FURNITURE, 9, ("door", "window")))
    objects = _objects(room, shell_step=0.12, solid_step=0.07)
    unassigned = len(objects) - 1  # the last object is in no segGroup: its vertices are ignored
    coords, colors, normals, segs, segment, instance, groups, faces = [], [], [], [], [], [], [], []
    base = next_seg = 0
    for k, (kind, mesh, color) in enumerate(objects):
        n = len(mesh.vertices)
        coords.append(mesh.vertices + rng.normal(0, 0.003, (n, 3)))
        colors.append(noisy_colors(rng, color, n))
        normals.append(mesh.normals)
        faces.append(mesh.faces + base)
        base += n
        cell = np.floor(mesh.vertices / 0.6).astype(np.int64)
        _, local = np.unique(cell, axis=0, return_inverse=True)
        seg_ids = next_seg + local.ravel()
        next_seg += int(local.max()) + 1
        segs.append(seg_ids * 3 + 7)  # real segment ids are sparse, not 0..S-1
        group_segments = np.unique(seg_ids * 3 + 7)
        gid = len(groups)
        if k == unassigned:
            segment.append(np.full(n, IGNORE_INDEX))
            instance.append(np.full(n, IGNORE_INDEX))
            continue
        if kind == "floor":  # one floor segment left out of the group: an unassigned patch
            dropped = group_segments[0]
            group_segments = group_segments[1:]
        else:
            dropped = None
        in_group = segs[-1] != dropped
        cls = _index(SCANNET, SCANNET_CLASS, kind)
        segment.append(np.where(in_group, cls, IGNORE_INDEX))
        instance.append(np.where(in_group, gid, IGNORE_INDEX))
        groups.append({"id": gid, "objectId": gid, "segments": group_segments.tolist(),
                       "label": RAW_CATEGORY[kind][0]})
    raw = np.concatenate(coords)
    align = _random_alignment(rng) if labelled else None
    stored = raw if align is None else (raw - align[:3, 3]) @ align[:3, :3]  # inverse rigid transform
    face_array = np.concatenate(faces).astype(np.int32)
    color = np.concatenate(colors)
    vertex = {"x": stored[:, 0].astype(np.float32), "y": stored[:, 1].astype(np.float32),
              "z": stored[:, 2].astype(np.float32), "red": color[:, 0], "green": color[:, 1],
              "blue": color[:, 2], "alpha": np.full(len(color), 255, np.uint8)}
    write_ply_arrays(folder / f"{name}_vh_clean_2.ply", vertex, {"vertex_indices": face_array},
                     comments=("VCGLIB generated",))
    meta = ["colorHeight = 968", "colorWidth = 1296", "sceneType = Office"]
    if align is not None:
        meta.insert(0, "axisAlignment = " + " ".join(f"{v:.9g}" for v in align.ravel()))
    (folder / f"{name}.txt").write_text("\n".join(meta) + "\n")
    if not labelled:
        return Scene(name, raw.astype(np.float32), color=color, normal=np.concatenate(normals))
    (folder / f"{name}_vh_clean_2.0.010000.segs.json").write_text(json.dumps(
        {"params": {"kThresh": "0.0001", "segMinVerts": "20", "minPoints": "750", "maxPoints": "5000",
                    "thinThresh": "0.05", "flatThresh": "0.001", "minLength": "0.02", "maxLength": "1"},
         "sceneId": name, "segIndices": np.concatenate(segs).tolist()}))
    (folder / f"{name}.aggregation.json").write_text(json.dumps(
        {"sceneId": f"scannet.{name}", "appId": "Aggregator.v2", "segGroups": groups,
         "segmentsFile": f"scannet.{name}_vh_clean_2.0.010000.segs.json"}))
    return Scene(name, raw.astype(np.float32), color=color, normal=np.concatenate(normals),
                 segment=np.concatenate(segment), instance=np.concatenate(instance))


def _random_alignment(rng) -> np.ndarray:
    theta = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    matrix = np.eye(4)
    matrix[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    matrix[:3, 3] = rng.uniform(-3, 3, 3) * (1, 1, 0.1)
    return matrix


def _write_scannet_tsv(path: Path) -> None:
    rows = ["\t".join(SCANNET_TSV_COLUMNS)]
    for k, (raw, nyu40) in enumerate(sorted(set(RAW_CATEGORY.values())), start=1):
        nyu_name = NYU40_NAMES[nyu40]
        rows.append("\t".join([str(k), raw, raw, str(100 + k), str(nyu40), "", nyu_name, nyu_name, "", "", "", "",
                               "", "", "", nyu_name, str(nyu40)]))
    path.write_text("\n".join(rows) + "\n")


# --- S3DIS --------------------------------------------------------------------------------------------------------

S3DIS_AREAS = (1, 5, 2, 3, 4, 6)
S3DIS_ROOMS = ("office", "conferenceRoom", "hallway", "lounge", "pantry", "storage", "WC")
S3DIS_POOL = ("table", "chair", "chair", "chair", "sofa", "bookshelf", "whiteboard", "desk", "lamp", "box",
              "trash can", "cabinet")


def write_s3dis(out: str | Path, scenes: int = 3, seed: int = 0) -> dict[str, Scene]:
    """Stanford3dDataset_v1.2_Aligned_Version layout; room i lies in Area S3DIS_AREAS[i % 6] (Area_5 = val)."""
    out, rng = Path(out) / "Stanford3dDataset_v1.2_Aligned_Version", np.random.default_rng(seed)
    truth, counters = {}, {}
    for i in range(scenes):
        area = f"Area_{S3DIS_AREAS[i % 6]}"
        kind = S3DIS_ROOMS[i % len(S3DIS_ROOMS)]
        counters[(area, kind)] = counters.get((area, kind), 0) + 1
        room_name = f"{kind}_{counters[(area, kind)]}"
        folder = out / area / room_name
        (folder / "Annotations").mkdir(parents=True, exist_ok=True)
        extra = ("column", "beam", "door", "window") + (("stairs",) if i == 0 else ())
        room = make_room(rng, _furnish(rng, S3DIS_POOL, 7, extra), size_scale=0.85)
        truth[f"{area}_{room_name}"] = _s3dis_room(rng, room, folder, room_name, hard=i == 0)
    for area in sorted({p.name for p in out.iterdir()}):
        rooms = sorted(p.name for p in (out / area).iterdir() if p.is_dir())
        (out / area / f"{area}_alignmentAngle.txt").write_text(
            f"## Global alignment angle per disjoint space in {area} ##\n"
            "## Disjoint Space Name Global Alignment Angle ##\n" + "".join(f"{r} 0\n" for r in rooms))
    return truth


def _s3dis_room(rng, room: Room, folder: Path, room_name: str, hard: bool) -> Scene:
    files: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    counts: dict[str, int] = {}
    for kind, mesh, color in _objects(room, shell_step=0.5, solid_step=0.2):
        points, _ = sample_mesh_surface(mesh, 300.0, rng)
        points = points + rng.normal(0, 0.002, points.shape)
        cls = S3DIS_FILE_CLASS.get(kind, "clutter")
        counts[cls] = counts.get(cls, 0) + 1
        mm = np.round(points * 1000).astype(np.int64)
        files[f"{cls}_{counts[cls]}.txt"] = (mm, noisy_colors(rng, color, len(points), sigma=10))
    texts = {name: _s3dis_lines(mm, rgb) for name, (mm, rgb) in files.items()}
    for name, text in texts.items():
        (folder / "Annotations" / name).write_bytes(text)
    (folder / f"{room_name}.txt").write_bytes(b"".join(texts.values()))
    if hard:
        (folder / "Annotations" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1\x00\x00(\x0b")
        (folder / "Annotations" / "Icon\r").write_bytes(b"")
        (folder.parent / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        _insert_stray_byte(folder / "Annotations" / "ceiling_1.txt")
        (folder / "Annotations" / "wall_3 (1).txt").write_bytes(texts["wall_3.txt"])
    coords, colors, segments, instances = [], [], [], []
    for index, name in enumerate(sorted(files)):
        mm, rgb = files[name]
        cls = name.split("_")[0]
        coords.append(mm / 1000.0)
        colors.append(rgb)
        segments.append(np.full(len(mm), S3DIS.index("clutter" if cls == "stairs" else cls)))
        instances.append(np.full(len(mm), index))
    return Scene(f"{folder.parent.name}_{room_name}", np.concatenate(coords).astype(np.float32),
                 color=np.concatenate(colors), segment=np.concatenate(segments), instance=np.concatenate(instances))


def _s3dis_lines(mm: np.ndarray, rgb: np.ndarray) -> bytes:
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack([mm / 1000.0, rgb]), fmt=["%.3f", "%.3f", "%.3f", "%d", "%d", "%d"])
    return buffer.getvalue().encode("ascii")


def _insert_stray_byte(path: Path) -> None:
    """Put a control byte inside the first number of line 3 (like the real Area_5/hallway_6 ceiling_1.txt)."""
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2][:2] + b"\x10" + lines[2][2:]
    path.write_bytes(b"\n".join(lines))


# --- Structured3D -------------------------------------------------------------------------------------------------

S3D_SCENE_BASE = (0, 3000, 3250)  # one train, one val, one test scene number per round
S3D_POOL = ("table", "chair", "chair", "sofa", "bed", "cabinet", "desk", "lamp", "nightstand",
            "dresser", "television", "mirror", "picture", "curtain", "trash can", "refrigerator")
UNLABELLED_KIND = "box"  # rendered with semantic id 0 (unlabelled) in the synthetic panoramas


def write_structured3d(out: str | Path, scenes: int = 3, seed: int = 0, width: int = 256) -> dict[str, Scene]:
    """Panorama zips `Structured3D_panorama_XX.zip` (XX = scene number // 200); `scenes` rooms in all.

    Room r belongs to scene number S3D_SCENE_BASE[s % 3] + s // 3 with s = r for r < 3, else r - 3 (so the fourth
    room onward becomes a second room of an existing scene). Panoramas are width x width/2.
    """
    out, rng = Path(out), np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    truth, members = {}, {}
    palette = rng.integers(0, 256, (256, 3)).astype(np.uint8)
    palette[0] = 0
    for r in range(scenes):
        s = r if r < 3 else r - 3
        number = S3D_SCENE_BASE[s % 3] + s // 3
        room_id = str(int(rng.integers(100000, 999999)))
        prefix = f"Structured3D/scene_{number:05d}/2D_rendering/{room_id}/panorama/"
        files, scene = _panorama(rng, width, palette, f"scene_{number:05d}_room_{room_id}")
        members.setdefault(f"Structured3D_panorama_{number // 200:02d}.zip", {}).update(
            {prefix + name: data for name, data in files.items()})
        truth[scene.name] = scene
    for zip_name, content in members.items():
        with zipfile.ZipFile(out / zip_name, "w", compression=zipfile.ZIP_STORED) as zf:
            for member, data in content.items():
                zf.writestr(member, data)
    return truth


def _panorama(rng, width: int, palette: np.ndarray, name: str) -> tuple[dict[str, bytes], Scene]:
    room = make_room(rng, _furnish(rng, S3D_POOL, 7, ("door", "window", "column", UNLABELLED_KIND, "bookshelf")))
    w, d, h = room.size
    camera = _free_spot(rng, room)
    camera_world_mm = np.round(np.array([camera[1], camera[0], camera[2]]) * 1000, 1)
    camera = np.array([camera_world_mm[1], camera_world_mm[0], camera_world_mm[2]]) / 1000
    height = width // 2
    v, u = np.divmod(np.arange(width * height), width)
    a = u / width * 2 * np.pi - np.pi
    b = np.pi / 2 - v / height * np.pi
    dirs = np.stack([np.cos(a) * np.cos(b), np.sin(a) * np.cos(b), np.sin(b)], axis=1)
    t, hit, normal = raycast(room, camera, dirs)
    depth = np.round(t * 1000).astype(np.uint16)
    depth[v == 0] = 0  # the zenith row carries no reading
    kinds = np.array(["floor", "ceiling", "wall"] + [s.kind for s in room.solids])
    kind_of = kinds[np.where(hit < 0, -hit - 1, hit + 3)]
    nyu = np.array([0 if k == UNLABELLED_KIND else KINDS[k].nyu40 for k in kinds])[
        np.where(hit < 0, -hit - 1, hit + 3)]
    base = np.array([room.shell_colors[k] for k in ("floor", "ceiling", "wall")] + [s.color for s in room.solids])
    shade = 0.55 + 0.45 * np.abs((normal * dirs).sum(1))
    rgb = np.clip(base[np.where(hit < 0, -hit - 1, hit + 3)] * shade[:, None] + rng.normal(0, 4, (len(t), 3)),
                  0, 255).round().astype(np.uint8)
    normal_y_up = normal[:, [0, 2, 1]]
    normal_png = np.clip(np.round(128 * (1 + normal_y_up)), 0, 255).astype(np.uint8)
    files = {
        "camera_xyz.txt": (" ".join(f"{c:.1f}" for c in camera_world_mm) + "\n").encode(),
        "full/depth.png": _png(Image.fromarray(depth.reshape(height, width))),
        "full/semantic.png": _png(_palette_image(nyu.reshape(height, width).astype(np.uint8), palette)),
        "full/rgb_rawlight.png": _png(Image.fromarray(rgb.reshape(height, width, 3))),
        "full/normal.png": _png(Image.fromarray(normal_png.reshape(height, width, 3))),
    }
    keep = (depth > 0) & (nyu > 0)
    coord = camera + (depth[keep] / 1000.0)[:, None] * dirs[keep]
    segment = np.array([_index(STRUCTURED3D, STRUCTURED3D_CLASS, k) for k in kinds])[
        np.where(hit < 0, -hit - 1, hit + 3)[keep]]
    assert (kind_of[keep] != UNLABELLED_KIND).all()
    return files, Scene(name, coord.astype(np.float32), color=rgb[keep], normal=normal[keep].astype(np.float32),
                        segment=segment)


def _free_spot(rng, room: Room) -> np.ndarray:
    """A camera position at eye height not inside any solid."""
    w, d, h = room.size
    for _ in range(200):
        p = np.array([rng.uniform(0.8, w - 0.8), rng.uniform(0.8, d - 0.8), rng.uniform(1.3, 1.6)])
        if all(not (np.all(p > np.array(s.lo) - 0.1) and np.all(p < np.array(s.hi) + 0.1)) for s in room.solids):
            return p
    raise RuntimeError("no free camera position in the synthetic room")


def _palette_image(ids: np.ndarray, palette: np.ndarray) -> Image.Image:
    image = Image.frombytes("P", ids.shape[::-1], ids.tobytes())
    image.putpalette(palette.ravel().tolist())
    return image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --- Matterport3D -------------------------------------------------------------------------------------------------

MP_TSV_COLUMNS = ("index", "raw_category", "category", "count", "nyuId", "nyu40id", "eigen13id", "nyuClass",
                  "nyu40class", "eigen13class", "ModelNet40", "ModelNet10", "ShapeNetCore55", "synsetoffset",
                  "wnsynsetid", "wnsynsetkey", "mpcat40index", "mpcat40")
MP_POOL = ("table", "chair", "chair", "sofa", "bed", "cabinet", "bookshelf", "desk", "toilet", "sink", "bathtub",
           "counter", "trash can", "lamp", "curtain", "refrigerator")
MP_UNLABELLED_KIND = "box"  # its faces carry category_id -1


def write_matterport3d(out: str | Path, scenes: int = 3, seed: int = 0) -> dict[str, Scene]:
    """`v1/scans/<house>/region_segmentations.zip`, metadata/category_mapping.tsv (CRLF), scenes_*.txt.

    Region r goes to house r % 3 as region number r // 3; house h is train/val/test by h % 3.
    """
    out, rng = Path(out), np.random.default_rng(seed)
    kinds = sorted(RAW_CATEGORY)
    order = rng.permutation(len(kinds))  # table rows in a shuffled order: index != nyu40 id
    category_index = {kinds[k]: row + 1 for row, k in enumerate(order)}
    _write_category_mapping(out / "metadata" / "category_mapping.tsv", [kinds[k] for k in order])
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    houses = ["".join(rng.choice(alphabet, 11)) for _ in range(min(scenes, 3))]
    truth, regions = {}, {h: {} for h in houses}
    for r in range(scenes):
        house, number = houses[r % 3], r // 3
        files, scene = _region(rng, f"{house}_{number:02d}", number, category_index)
        regions[house].update({f"{house}/region_segmentations/region{number}.{ext}": data for ext, data in files.items()})
        truth[scene.name] = scene
    for house, content in regions.items():
        folder = out / "v1" / "scans" / house
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(folder / "region_segmentations.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for member, data in content.items():
                zf.writestr(member, data)
    for h, split in enumerate(("train", "val", "test")):
        (out / f"scenes_{split}.txt").write_text("".join(f"{x}\n" for x in houses[h::3]))
    return truth


def _write_category_mapping(path: Path, kinds: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["\t".join(MP_TSV_COLUMNS)]
    for index, kind in enumerate(kinds, start=1):
        raw, nyu40 = RAW_CATEGORY[kind]
        rows.append("\t".join([str(index), raw, raw, str(10 * index), str(nyu40), str(nyu40), "", raw,
                               NYU40_NAMES[nyu40], "", "", "", "", "", "", "", str(nyu40), NYU40_NAMES[nyu40]]))
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("utf-8"))


def _region(rng, name: str, number: int, category_index: dict[str, int]) -> tuple[dict[str, bytes], Scene]:
    room = make_room(rng, _furnish(rng, MP_POOL, 8, ("door", "window", "picture", MP_UNLABELLED_KIND)))
    offset = np.array([8.0 * number, 0.0, 0.0])
    coords, normals, colors, faces, face_cat, face_cls, face_seg = [], [], [], [], [], [], []
    base = 0
    for k, (kind, mesh, color) in enumerate(_objects(room, shell_step=0.15, solid_step=0.08)):
        n, f = len(mesh.vertices), len(mesh.faces)
        coords.append(mesh.vertices + offset + rng.normal(0, 0.002, (n, 3)))
        normals.append(mesh.normals)
        colors.append(noisy_colors(rng, color, n))
        faces.append(mesh.faces + base)
        base += n
        cat = np.full(f, -1 if kind == MP_UNLABELLED_KIND else category_index[kind])
        cls = np.full(f, IGNORE_INDEX if kind == MP_UNLABELLED_KIND else _index(MATTERPORT3D, MATTERPORT_CLASS, kind))
        if kind == "wall" and k == 2:  # a picture painted onto this wall: faces whose centre lies in a rectangle
            centre = mesh.vertices[mesh.faces].mean(1)
            lo, hi = centre.min(0), centre.max(0)
            mid = (lo + hi) / 2
            inside = (np.abs(centre - mid) <= (hi - lo) * 0.15 + 1e-9).all(1)
            cat[inside] = category_index["picture"]
            cls[inside] = MATTERPORT3D.index("picture")
        if kind == "floor":  # scattered unlabelled faces
            holes = rng.random(f) < 0.1
            cat[holes], cls[holes] = -1, IGNORE_INDEX
        face_cat.append(cat)
        face_cls.append(cls)
        face_seg.append(np.full(f, k))
    coord = np.concatenate(coords).astype(np.float32)
    normal = np.concatenate(normals).astype(np.float32)
    color = np.concatenate(colors)
    face_array = np.concatenate(faces).astype(np.int32)
    category = np.concatenate(face_cat).astype(np.int32)
    segment_id = np.concatenate(face_seg).astype(np.int32)
    vertex = {"x": coord[:, 0], "y": coord[:, 1], "z": coord[:, 2], "nx": normal[:, 0], "ny": normal[:, 1],
              "nz": normal[:, 2], "tx": rng.random(len(coord)).astype(np.float32),
              "ty": rng.random(len(coord)).astype(np.float32), "red": color[:, 0], "green": color[:, 1],
              "blue": color[:, 2]}
    face = {"vertex_indices": face_array, "material_id": rng.integers(0, 4, len(face_array)).astype(np.int32),
            "segment_id": segment_id, "category_id": category}
    ply = io.BytesIO()
    write_ply_arrays(ply, vertex, face)
    truth_segment = _majority_truth(face_array, np.concatenate(face_cls), len(coord))
    groups = [{"id": int(s), "objectId": int(s), "label": "", "segments": [int(s)]} for s in np.unique(segment_id)]
    files = {
        "ply": ply.getvalue(),
        "fsegs.json": json.dumps({"sceneId": name, "segIndices": segment_id.tolist()}).encode(),
        "semseg.json": json.dumps({"sceneId": name, "segGroups": groups}).encode(),
    }
    return files, Scene(name, coord, color=color, normal=normal, segment=truth_segment)


def _majority_truth(faces: np.ndarray, face_cls: np.ndarray, num_vertices: int) -> np.ndarray:
    """Per-vertex majority written independently of the reader: dense (V, C+1) counts via np.add.at."""
    classes = MATTERPORT3D.num_classes
    counts = np.zeros((num_vertices, classes + 1), dtype=np.int64)
    vote = np.where(face_cls < 0, classes, face_cls)
    for corner in range(3):
        np.add.at(counts, (faces[:, corner], vote), 1)
    winner = counts.argmax(1)
    return np.where((winner == classes) | (counts.sum(1) == 0), IGNORE_INDEX, winner)
