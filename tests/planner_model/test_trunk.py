"""The trunk: bidirectional over text + scene, padding ignored, relation bias used, upcycling exact at the switch."""

from __future__ import annotations

import torch

from pmoe_core.models.moe import MoE
from pmoe_core.planner.trunk import Trunk, TrunkConfig


def _inputs(b=2, t=5, s=7, text_dim=12, scene_dim=10, r=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    text, scene = torch.randn(b, t, text_dim, generator=g), torch.randn(b, s, scene_dim, generator=g)
    text_mask = torch.ones(b, t, dtype=torch.bool)
    text_mask[1, 3:] = False
    scene_mask = torch.ones(b, s, dtype=torch.bool)
    scene_mask[0, 5:] = False
    return text, text_mask, scene, scene_mask, torch.randn(b, s, s, r, generator=g)


def _trained_like(trunk: Trunk) -> Trunk:
    """Random values in every weight, so zero-initialised parts (the relation bias) matter too."""
    with torch.no_grad():
        for p in trunk.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return trunk


def test_upcycled_trunk_equals_the_dense_one_at_the_switch():
    torch.manual_seed(0)
    trunk = _trained_like(Trunk(TrunkConfig(dim=16, depth=2, heads=2, experts=4, top_k=2, relation_dim=4), 12, 10))
    inputs = _inputs()
    dense = trunk(*inputs)
    assert not trunk.is_moe and float(dense.aux_loss) == 0.0
    trunk.upcycle()
    assert trunk.is_moe and all(isinstance(b.ffn, MoE) for b in trunk.blocks)
    with torch.no_grad():  # a router that strongly prefers some experts changes nothing either
        for b in trunk.blocks:
            b.ffn.router.weight.normal_(std=3.0)
    moe = trunk(*inputs)
    real = dense.mask
    torch.testing.assert_close(moe.seq[real], dense.seq[real], atol=1e-5, rtol=1e-5)
    assert moe.aux_loss.item() > 0
    trunk.upcycle()  # twice is a no-op
    assert isinstance(trunk.blocks[0].ffn, MoE)


def test_padding_changes_nothing_and_every_token_reads_the_other_part():
    torch.manual_seed(0)
    trunk = _trained_like(Trunk(TrunkConfig(dim=16, depth=1, heads=2, relation_dim=4), 12, 10)).eval()
    text, text_mask, scene, scene_mask, rel = _inputs()
    base = trunk(text, text_mask, scene, scene_mask, rel)
    text2, scene2 = text.clone(), scene.clone()
    text2[1, 3:] += 100.0  # padding of sample 1's text
    scene2[0, 5:] += 100.0  # padding of sample 0's scene
    padded = trunk(text2, text_mask, scene2, scene_mask, rel)
    torch.testing.assert_close(padded.seq[base.mask], base.seq[base.mask])
    text3 = text.clone()
    text3[0, 0] += 1.0  # a word changes the scene tokens (bidirectional)
    assert not torch.allclose(trunk(text3, text_mask, scene, scene_mask, rel).scene[0], base.scene[0])


def test_relations_bias_attention_between_scene_tokens():
    torch.manual_seed(0)
    trunk = _trained_like(Trunk(TrunkConfig(dim=16, depth=1, heads=2, relation_dim=4), 12, 10)).eval()
    text, text_mask, scene, scene_mask, rel = _inputs()
    base = trunk(text, text_mask, scene, scene_mask, rel)
    other = trunk(text, text_mask, scene, scene_mask, rel * 2)
    assert not torch.allclose(other.scene[1], base.scene[1])
    fresh = Trunk(TrunkConfig(dim=16, depth=1, heads=2, relation_dim=4), 12, 10).eval()  # bias starts at zero
    torch.testing.assert_close(fresh(text, text_mask, scene, scene_mask, rel).seq,
                               fresh(text, text_mask, scene, scene_mask, rel * 2).seq)
