import numpy as np
import pytest

from pmoe_core.errors import BadInput, MissingFile, StoreError
from pmoe_core.inspect.scenes import resolve_specs
from pmoe_core.io import write_npz


def test_store_specs_by_name_index_and_whole_split(tiny_stores):
    store = tiny_stores / "scannet.zarr"
    one = resolve_specs([f"{store}::val::val_001"])
    assert [r.dataset for r in one] == ["scannet"] and one[0].load().scene.name == "val_001"
    assert resolve_specs([f"{store}::val::-1"])[0].load().scene.name == "val_001"
    split = resolve_specs([f"{store}::train"], limit=4)
    assert [r.load().scene.name for r in split] == [f"train_{i:03d}" for i in range(4)]


def test_store_scene_labels_become_vocabulary_class_keys(tiny_stores):
    loaded = resolve_specs([f"{tiny_stores / 'semantickitti.zarr'}::val::0"])[0].load()
    assert set(loaded.classes) == {"road", "building", "car"}
    assert loaded.dataset_key == "semantickitti"


def test_file_inputs_with_and_without_a_dataset(tmp_path):
    rng = np.random.default_rng(0)
    from pmoe_core.scene import Scene

    scene = Scene("cloud", rng.normal(size=(50, 3)).astype(np.float32), segment=np.r_[[0] * 25, [-1] * 25, ])
    path = tmp_path / "cloud.npz"
    write_npz(scene, path)
    plain = resolve_specs([str(path)])[0].load()
    assert plain.dataset_key == "unknown" and set(plain.classes) == {"label_0", ""}
    named = resolve_specs([str(path)], dataset="scannet")[0].load()
    assert named.dataset_key == "scannet" and set(named.classes) == {"wall", ""}


@pytest.mark.parametrize("spec, error, text", [
    ("{store}::val::val_999", BadInput, "no scene named 'val_999'"),
    ("{store}::val::7", BadInput, "out of range"),
    ("{store}::nosplit::0", BadInput, "no split 'nosplit'"),
    ("{store}::val::0::x", BadInput, "bad scene spec"),
    ("{store}::::0", BadInput, "bad scene spec"),
    ("{root}/missing.zarr::val::0", MissingFile, "no such scene store"),
    ("{root}::val::0", StoreError, "no scene store here"),
    ("{root}/missing.ply", MissingFile, "no such point-cloud file"),
    ("{root}/scannet.zarr/zarr.json", BadInput, "unknown point-cloud file type"),
])
def test_bad_specs_fail_with_one_clear_line(tiny_stores, spec, error, text):
    spec = spec.format(store=tiny_stores / "scannet.zarr", root=tiny_stores)
    with pytest.raises(error, match=text) as info:
        [r.load() for r in resolve_specs([spec])]
    assert "\n" not in info.value.message
