"""Scene refs of QA items -> point clouds, deterministically (the same ref always gives the same points).

A ref is one of:
- `tabletop/TASK/SPLIT/SEED[/final]`: a planner-world scene (start or oracle-final state) observed by the three
  tabletop cameras (`pmoe_core.tabletop.observe`; needs the planner extra for MuJoCo);
- `STORE::split::scene`: a scene of a converted pmoe store (name or index);
- a ScanNet scene id (`scene0000_00`, as ScanQA / SQA3D and the synthetic rooms name scenes), read from `root`:
  a converted store (every split is searched for the name) or a raw ScanNet v2 folder such as `pmoe synth scannet`
  writes (scans/ or scans_test/, axis-aligned as the ScanNet reader does, so coordinates match the QA files);
- a point-cloud file path (PLY, LAS, NPY, ...).
"""

from __future__ import annotations

from pathlib import Path

from pmoe_core.errors import BadInput, MissingFile
from pmoe_core.scene import Scene

TABLETOP_PREFIX = "tabletop/"


def load_scene_cloud(scene_ref: str, root: str | Path | None = None) -> Scene:
    """The point cloud (coord, color; more fields where the source has them) that `scene_ref` names."""
    if scene_ref.startswith(TABLETOP_PREFIX):
        return _tabletop_cloud(scene_ref)
    if "::" in scene_ref:
        url, _, rest = scene_ref.partition("::")
        split, sep, key = rest.partition("::")
        if not sep or not split or not key:
            raise BadInput(f"bad scene {scene_ref!r}: expected STORE::split::scene")
        return _store_scene(url, split, key)
    if root is not None:
        return _scene_from_root(scene_ref, Path(root))
    path = Path(scene_ref)
    if path.is_file():
        from pmoe_core.io import read_point_cloud

        return read_point_cloud(path).validate(scene_ref)
    raise MissingFile(f"scene {scene_ref!r} is not a tabletop ref, STORE::split::scene or a file; "
                      "a ScanNet scene id needs a root (a converted store or a raw ScanNet folder)")


def _tabletop_cloud(ref: str) -> Scene:
    from pmoe_core.qa.synthetic_tabletop import tabletop_scene
    from pmoe_core.tabletop.observe import observe

    desc = tabletop_scene(ref)
    scene = observe(desc)
    scene.name = ref
    return scene


def _store_scene(url: str, split: str, key: str) -> Scene:
    from pmoe_core.store.reader import StoreReader

    if "://" not in url and not Path(url).exists():
        raise MissingFile("no such scene store", url)
    reader = StoreReader(url)
    return reader.read(split, int(key) if key.isdigit() else key).validate(f"{url}::{split}::{key}")


def _scene_from_root(name: str, root: Path) -> Scene:
    from pmoe_core.store.layout import is_store_folder

    if is_store_folder(root):
        from pmoe_core.store.reader import StoreReader

        reader = StoreReader(str(root))
        for split in reader.splits:
            if name in reader.names(split):
                return reader.read(split, name).validate(f"{root}::{split}::{name}")
        raise MissingFile(f"no scene named {name!r} in any split of the store", root)
    return read_raw_scannet(name, root)


def read_raw_scannet(name: str, root: Path) -> Scene:
    """One scene of a raw ScanNet v2 folder, read (and axis-aligned) by the ScanNet source."""
    from pmoe_core.sources import scannet
    from pmoe_core.sources.base import noop_warn

    refs = [r for r in scannet.list_scenes(root, scannet.Options()) if r.name == name]
    if not refs:
        raise MissingFile(f"no ScanNet scene {name!r} under scans/ or scans_test/", root)
    return scannet.read_scene(refs[0], scannet.Options(), noop_warn)
