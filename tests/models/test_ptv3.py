import dataclasses

import pytest
import torch

from pmoe_core.errors import BadInput
from pmoe_core.models import PPT, PRESETS, SegmentationModel, build_model, count_parameters, get_config
from pmoe_core.models.ptv3 import PTv3, build_patch_layout
from pmoe_core.models.sparse_conv import HAS_SPCONV


def reference_patches(sizes: list[int], k: int) -> list[list[int]]:
    """The reference's padding written out per sample: n > K pads to a multiple of K with the previous window."""
    patches, start = [], 0
    for n in sizes:
        if n > k:
            n_pad = -(-n // k) * k
            seq = list(range(n)) + [j - k for j in range(n, n_pad)]
        else:
            seq = list(range(n))
        for i in range(0, len(seq), k):
            patches.append([start + s for s in seq[i : i + k]])
        start += n
    return patches


@pytest.mark.parametrize("sizes,k", [([5, 300, 128, 129, 256], 128), ([3, 7], 16), ([40, 0, 17], 16), ([10], 64)])
def test_patch_layout_matches_reference(sizes, k):
    offset = torch.cumsum(torch.tensor(sizes), 0)
    layout = build_patch_layout(offset, k)
    mask = torch.ones_like(layout.src, dtype=torch.bool) if layout.mask is None else layout.mask
    got = [row[m].tolist() for row, m in zip(layout.src, mask)]
    assert got == reference_patches(sizes, k)
    n = sum(sizes)
    assert torch.equal(layout.src.flatten()[layout.out_index], torch.arange(n))  # each point reads its own slot
    assert torch.all(mask.flatten()[layout.out_index])


def test_base_parameter_count_matches_reference():
    with torch.device("meta"):
        total, active = count_parameters(build_model("ptv3-base", backend="torch"))
    assert abs(total - 46.2e6) / 46.2e6 < 0.005 and total == active


def test_moe_presets_count_active_parameters():
    with torch.device("meta"):
        dense_total, _ = count_parameters(build_model("ptv3-base", backend="torch"))
        total, active = count_parameters(build_model("pmoe-l", backend="torch"))
    # pmoe-l = the base-width backbone with 22 MoE layers on the attention proj: 8 experts of 3*C*2C, 2 active;
    # plus router, minus the Linear(C, C)+bias they replace.
    channels = [32] * 2 + [64] * 2 + [128] * 2 + [256] * 6 + [512] * 2 + [64] * 2 + [64] * 2 + [128] * 2 + [256] * 2
    expected = dense_total + sum(8 * 6 * c * c + 8 * c - c * c - c for c in channels)
    assert total == expected
    assert active == total - sum(6 * 6 * c * c for c in channels)


@pytest.mark.parametrize("preset", ["ptv3-tiny", "pmoe-tiny"])
def test_forward_shapes_and_eval_determinism(make_batch, preset):
    torch.manual_seed(0)
    model = build_model(preset).eval()
    batch = make_batch((900, 400, 60), extent=40)
    with torch.no_grad():
        a, b = model(batch), model(batch)
    assert a.shape == (batch.coord.shape[0], model.out_channels) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    torch.manual_seed(0)
    again = build_model(preset).eval()
    with torch.no_grad():
        assert torch.equal(again(batch), a)


@pytest.mark.skipif(not HAS_SPCONV, reason="spconv not installed")
def test_model_backends_agree(make_batch):
    torch.manual_seed(0)
    ref = build_model("pmoe-tiny", backend="torch").eval()
    sp = build_model("pmoe-tiny", backend="spconv").eval()
    sp.load_state_dict(ref.state_dict())
    batch = make_batch((700, 300), extent=32, surface=True)
    with torch.no_grad():
        torch.testing.assert_close(sp(batch), ref(batch), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "change",
    [
        {"block_norm": "bn"},
        {"block_norm": "rms"},
        {"moe_at": "ffn"},
        {"enable_rpe": True},
    ],
)
def test_config_variants_train_step(make_batch, change):
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_config("pmoe-tiny"), backend="torch", drop_path=0.2, **change)
    model = PTv3(cfg).train()
    batch = make_batch((300, 150), extent=24)
    out = model(batch)
    out.square().mean().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "w_" not in n and "router" not in n)


def test_ppt_needs_a_single_known_dataset(make_batch):
    torch.manual_seed(0)
    model = build_model("ppt-tiny", dataset_names=["scannet", "nuscenes"], backend="torch").eval()
    batch = make_batch((200, 100), extent=20)
    with pytest.raises(BadInput, match="one dataset"):
        model(batch, ["scannet", "nuscenes"])
    with pytest.raises(BadInput, match="no norms"):
        model(batch, "waymo")
    with pytest.raises(BadInput):
        model(batch)
    with torch.no_grad():
        for norm in model._pdnorms:  # make the nuScenes norms differ from the ScanNet ones
            for p in norm.norms[1].parameters():
                p.add_(0.5)
        a, b = model(batch, "ScanNetV2"), model(batch, ["nus", "nus"])
    assert a.shape == b.shape and not torch.allclose(a, b)
    assert all(m.condition is None for m in model._pdnorms)


def test_no_dataset_reaches_ptv3_or_pmoe():
    import inspect

    for preset in PRESETS:
        with torch.device("meta"):
            model = build_model(preset, backend="torch")
        params = inspect.signature(model.forward).parameters
        assert ("dataset" in params) == isinstance(model, PPT), preset


def test_language_head_scores_any_label_set(make_batch):
    torch.manual_seed(0)
    model = build_model("ptv3-tiny", text_dim=24).eval()
    assert isinstance(model, SegmentationModel)
    batch = make_batch((300,), extent=20)
    with torch.no_grad():
        for k in (3, 11):
            logits = model(batch, torch.randn(k, 24))
            assert logits.shape == (batch.coord.shape[0], k) and logits.abs().max() <= 100.0 + 1e-3
    with pytest.raises(ValueError):
        model(batch, torch.randn(4, 23))


def test_tiny_pmoe_overfits_a_tiny_batch(make_batch):
    torch.manual_seed(0)
    model = build_model("pmoe-tiny", text_dim=32, backend="torch")
    batch = make_batch((300, 200), extent=16, surface=True)
    labels = (batch.grid_coord[:, 0] > 8).long() + 2 * (batch.grid_coord[:, 2] > 4).long()
    classes = torch.randn(4, 32)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(batch, classes), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
