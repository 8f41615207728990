import numpy as np
import pytest

from pmoe_core.errors import BadInput
from pmoe_core.inspect.traces import moe_shape, tokens_of
from pmoe_core.models.presets import build_model
from pmoe_core.scene import Scene


def test_a_model_without_moe_layers_is_refused():
    with pytest.raises(BadInput, match="no MoE layers"):
        moe_shape(build_model("ptv3-tiny", text_dim=16), "ptv3.pt")
    shape = moe_shape(build_model("pmoe-tiny", text_dim=16), "pmoe.pt")
    assert (shape.num_experts, shape.top_k, len(shape.layers)) == (4, 2, 9)
    assert shape.layers[0] == "enc0.block0.attn.proj" and shape.layers[-1] == "dec0.block0.attn.proj"


def test_every_point_maps_to_the_first_point_of_its_voxel():
    rng = np.random.default_rng(0)
    coord = rng.uniform(0, 0.3, (4000, 3)).astype(np.float32)
    sample, token_point, point_token = tokens_of(Scene("s", coord), "outdoor", 0.05)
    voxel = np.floor((coord - coord.min(0)) / 0.05).astype(np.int64)
    assert len(sample) == len(token_point) == len(np.unique(voxel, axis=0))
    np.testing.assert_array_equal(voxel[token_point[point_token]], voxel)
    first = {tuple(v): i for i, v in reversed(list(enumerate(voxel.tolist())))}
    assert sorted(token_point.tolist()) == sorted(first.values())
    np.testing.assert_array_equal(sample.coord, coord[token_point])
