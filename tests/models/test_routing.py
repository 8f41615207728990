import torch

from pmoe_core.models import build_model, record_routing
from pmoe_core.models.moe import MoE, MoEConfig
from pmoe_core.models.serialization import curve_depth, morton_encode


def level_map(batch, s: int) -> torch.Tensor:
    """Independent input point -> level-s token map: level 0 tokens are the input points themselves; a pooled
    level's tokens are its voxels (grid >> s) sorted by z-code (curve 0, unshuffled in eval)."""
    if s == 0:
        return torch.arange(batch.coord.shape[0])
    depth = curve_depth(batch.grid_coord) - s
    key = (batch.batch_index() << (3 * depth)) | morton_encode(batch.grid_coord >> s, depth)
    return torch.unique(key, return_inverse=True)[1]


def test_recorded_ids_for_input_points_match_manual_routing(make_batch):
    torch.manual_seed(0)
    model = build_model("pmoe-tiny", backend="torch").eval()
    batch = make_batch((500, 300), extent=40, surface=True)
    tokens = {}
    hooks = [m.register_forward_hook(lambda m, a, o: tokens.__setitem__(m.layer_name, a[0])) for m in model.modules() if isinstance(m, MoE)]
    with torch.no_grad(), record_routing(model) as rec:
        model(batch)
    for h in hooks:
        h.remove()
    names = rec.layer_names
    assert len(names) == 9 and "enc2.block0.attn.proj" in names and "dec0.block0.attn.proj" in names
    n = batch.coord.shape[0]
    for name, r in rec.last().items():
        s = int(name[3])
        moe = next(m for m in model.modules() if isinstance(m, MoE) and m.layer_name == name)
        routing = moe.route(tokens[name])
        m = level_map(batch, s)
        assert r.expert_ids.shape == (n, 2) and r.probs.shape == (n, 4)
        assert torch.equal(r.expert_ids, routing.expert_ids[m]), name
        torch.testing.assert_close(r.weights, routing.weights[m])
        torch.testing.assert_close(r.probs, routing.probs[m])


def test_recorder_leaves_nothing_behind(make_batch):
    model = build_model("pmoe-tiny", backend="torch").eval()
    batch = make_batch((200,), extent=16)
    with torch.no_grad():
        with record_routing(model) as rec:
            model(batch)
            model(batch)
        model(batch)
    assert all(len(v) == 2 for v in rec.records.values())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
        if isinstance(m, MoE):
            assert not m.record and m.last_routing is None


def test_standalone_moe_records_tokens():
    moe = MoE(8, MoEConfig(4, 2, 1.0))
    x = torch.randn(30, 8)
    with record_routing(moe) as rec:
        moe(x)
    (r,) = rec.records["<unnamed>"] if "<unnamed>" in rec.records else rec.records[""]
    assert torch.equal(r.expert_ids, moe.route(x).expert_ids)
