import pytest

from pmoe_core.errors import BadInput
from pmoe_core.inspect.layers import default_layers, select_layers

LAYERS = [f"enc{i}.block0.attn.proj" for i in range(3)] + [f"dec{i}.block0.attn.proj" for i in (1, 0)]


def test_defaults_are_first_encoder_deepest_encoder_last_decoder():
    assert default_layers(LAYERS) == [LAYERS[0], LAYERS[2], LAYERS[4]]
    assert select_layers(LAYERS, None) == default_layers(LAYERS)


def test_names_indices_and_all():
    assert select_layers(LAYERS, ["dec1.block0.attn.proj", "0", "-1", "0"]) == [LAYERS[3], LAYERS[0], LAYERS[4]]
    assert select_layers(LAYERS, ["all"]) == LAYERS


@pytest.mark.parametrize("bad", ["enc9.block0.attn.proj", "5", "-6", "deepest"])
def test_unknown_layers_are_named_in_the_error(bad):
    with pytest.raises(BadInput, match="no MoE layer"):
        select_layers(LAYERS, [bad])
