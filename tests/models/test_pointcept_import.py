"""Pointcept PT-v3m1 / PTMoE-v0m0 checkpoints imported into pmoe reproduce the golden reference outputs.

The golden files live in ../shared/fixtures/pointcept/ (see its README.md); they are read from there, never copied.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pmoe_core.errors import BadInput, FormatError
from pmoe_core.models.pointcept import ImportOptions, convert, read_state_dict
from pmoe_core.models.presets import build_model
from pmoe_core.models.ptv3 import Pooling, PTv3
from pmoe_core.models.serialization import serialize
from pmoe_core.models.sparse_conv import HAS_SPCONV

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(os.environ.get("PMOE_POINTCEPT_FIXTURES", REPO.parent / "shared" / "fixtures" / "pointcept"))
BACKENDS = ["torch", pytest.param("spconv", marks=pytest.mark.skipif(not HAS_SPCONV, reason="spconv not installed"))]
SMALL = ImportOptions(enc_patch_size=(32,), dec_patch_size=(32,))  # the fixture's patch size (README)
TOL = 1e-4


@pytest.fixture(scope="module")
def golden() -> Path:
    if not (GOLDEN / "README.md").is_file():
        pytest.skip(f"Pointcept golden fixtures not found at {GOLDEN} (set PMOE_POINTCEPT_FIXTURES)")
    return GOLDEN


def _load(golden: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    state = read_state_dict(golden / f"{name}_small_ckpt.pth")
    with np.load(golden / f"{name}_small_io.npz") as io:
        return state, {k: io[k] for k in io.files}


def _batch(io: dict[str, np.ndarray]):
    from pmoe_core.models.batch import PointBatch

    return PointBatch(torch.from_numpy(io["coord"]), torch.from_numpy(io["feat"]),
                      torch.from_numpy(io["grid_coord"]).long(), torch.from_numpy(io["offset"]).long())


def _model(state, options: ImportOptions):
    imported = convert(state, options)
    model = build_model(imported.config)
    model.load_state_dict(imported.weights)
    return imported, model.eval()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["ptv3", "ptmoe"])
def test_imported_model_reproduces_reference_outputs(golden, name, backend):
    state, io = _load(golden, name)
    imported, model = _model(state, ImportOptions(**{**SMALL.__dict__, "backend": backend}))
    assert imported.wrapper == "DefaultSegmentorV2"
    assert imported.arch == ("PTMoE-v0m0" if name == "ptmoe" else "PT-v3m1")
    with torch.no_grad():
        feat = model.features(_batch(io))
        logits = model.head(feat)
    np.testing.assert_allclose(feat.numpy(), io["backbone_feat"], atol=TOL, rtol=0)
    np.testing.assert_allclose(logits.numpy(), io["seg_logits"], atol=TOL, rtol=0)


def test_inferred_config_is_the_fixture_config(golden):
    state, _ = _load(golden, "ptmoe")
    cfg = convert(state, SMALL).config
    assert (cfg.in_channels, cfg.in_features) == (6, "pointcept6")
    assert cfg.enc_depths == (1, 1, 1, 4, 1) and cfg.dec_depths == (1, 1, 1, 1)
    assert cfg.enc_channels == (16, 16, 32, 32, 64) and cfg.dec_channels == (16, 16, 32, 32)
    assert cfg.enc_num_head == (1, 1, 2, 2, 4) and cfg.dec_num_head == (1, 1, 2, 2)
    assert cfg.mlp_ratio == 4 and cfg.qkv_bias and not cfg.enable_rpe
    assert (cfg.moe.num_experts, cfg.moe.top_k, cfg.moe.ratio, cfg.moe.shared_expert) == (4, 2, 1.0, False)
    assert (cfg.head, cfg.head_classes, cfg.unpool_cpe) == ("linear", 20, "skip")
    assert sum(p.numel() for p in build_model(cfg).parameters()) == 657348  # README: 657,348 parameters


def test_pmoe_decoder_differs_from_reference(golden):
    """The reference quirk matters: with pmoe's own unpooling (cpe sees skip + up) the outputs move."""
    import dataclasses

    state, io = _load(golden, "ptv3")
    imported = convert(state, SMALL)
    model = build_model(dataclasses.replace(imported.config, unpool_cpe="sum"))
    model.load_state_dict(imported.weights)
    with torch.no_grad():
        feat = model.eval().features(_batch(io))
    assert float((feat - torch.from_numpy(io["backbone_feat"])).abs().max()) > 1e-2


def test_pool_shuffle_always_reproduces_reference_default(golden):
    """Pointcept's default (orders reshuffled at every pooling, eval too) with torch.manual_seed(0) before the
    forward, as the *_poolshuffle outputs were made."""
    state, io = _load(golden, "ptv3")
    _, model = _model(state, ImportOptions(**{**SMALL.__dict__, "pool_shuffle": "always"}))
    torch.manual_seed(0)
    with torch.no_grad():
        logits = model(_batch(io))
    np.testing.assert_allclose(logits.numpy(), io["seg_logits_poolshuffle"], atol=TOL, rtol=0)
    assert float(np.abs(io["seg_logits_poolshuffle"] - io["seg_logits"]).max()) > 1e-3  # the option matters


def test_serialization_codes_match_every_level(golden):
    state, io = _load(golden, "ptv3")
    _, model = _model(state, SMALL)
    levels = []
    for module in model.modules():
        if isinstance(module, Pooling):
            module.register_forward_hook(lambda m, args, out: levels.append(out))
    batch = _batch(io)
    with torch.no_grad():
        model.features(batch)
    ser0 = serialize(batch.grid_coord, batch.batch_index(), model.backbone.cfg.order)
    assert ser0.depth == int(io["serialized_depth"])
    for key, got in (("code", ser0.code), ("order", ser0.order), ("inverse", ser0.inverse)):
        np.testing.assert_array_equal(got.numpy(), io[f"serialized_{key}"])
    assert len(levels) == 4
    for lvl, level in enumerate(levels, start=1):
        np.testing.assert_array_equal(level.ser.code.numpy(), io[f"enc{lvl}_serialized_code"])
        np.testing.assert_array_equal(level.ser.order.numpy(), io[f"enc{lvl}_serialized_order"])
        np.testing.assert_array_equal(level.ser.inverse.numpy(), io[f"enc{lvl}_serialized_inverse"])
        assert level.ser.depth == int(io[f"enc{lvl}_serialized_depth"])
        np.testing.assert_array_equal(level.grid_coord.numpy(), io[f"enc{lvl}_grid_coord"])
        np.testing.assert_array_equal(level.cluster.numpy(), io[f"enc{lvl}_pooling_inverse"])
        np.testing.assert_array_equal(level.offset.numpy(), io[f"enc{lvl}_offset"])


def test_moe_top2_routing_matches_reference(golden):
    """Every MoE layer picks the golden top-2 experts (as a set) with the golden weights; a flip is allowed only
    where the 2nd and 3rd router scores are within 1e-4 (README: 47 such points in dec1)."""
    state, io = _load(golden, "ptmoe")
    _, model = _model(state, SMALL)
    from pmoe_core.models.moe import MoE

    seen: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def keep(module, args, out):
        r = module.last_routing
        seen[module.layer_name] = (r.expert_ids, r.weights, r.probs)

    moes = [m for m in model.modules() if isinstance(m, MoE)]
    for m in moes:
        m.record = True
        m.register_forward_hook(keep)
    with torch.no_grad():
        model.features(_batch(io))
    names = [str(n) for n in io["gate_module_names"]]
    assert len(names) == len(moes) == 12
    flips = 0
    for j, name in enumerate(names):
        layer = name[len("backbone."):-len(".gate")].split(".", 1)[1]  # "enc3.block1.attn.proj"
        ids, weights, probs = seen[layer]
        order = torch.argsort(ids, dim=1)  # golden rows are sorted by expert index
        ids, weights = torch.gather(ids, 1, order).numpy(), torch.gather(weights, 1, order).numpy()
        gold_ids, gold_w = io[f"gate{j}_topk_idx"], io[f"gate{j}_topk_weight"]
        assert ids.shape == gold_ids.shape
        top3 = torch.topk(probs, 3, dim=1).values
        tiny = (top3[:, 1] - top3[:, 2] < 1e-4).numpy()
        differ = (ids != gold_ids).any(axis=1)
        assert not (differ & ~tiny).any(), f"{name}: {int((differ & ~tiny).sum())} points routed differently"
        flips += int(differ.sum())
        same = ~differ
        np.testing.assert_allclose(weights[same], gold_w[same], atol=TOL, rtol=0)
    assert flips <= 47


def test_pptmoe_wrapper_maps_to_the_language_head(golden):
    """The official PPTMoE-v0m0 wrapper (proj_head, class_embedding, logit_scale): pmoe's language head with the
    same projection and temperature gives Pointcept's seg_logits = exp(logit_scale) * cos(proj_head(f), emb)."""
    state, io = _load(golden, "ptmoe")
    g = torch.Generator().manual_seed(0)
    wrapped = {k: v for k, v in state.items() if not k.startswith("seg_head.")}
    wrapped["proj_head.weight"] = torch.randn(512, 16, generator=g) * 0.1
    wrapped["proj_head.bias"] = torch.randn(512, generator=g) * 0.1
    emb = torch.randn(94, 512, generator=g)
    wrapped["class_embedding"] = emb / emb.norm(dim=1, keepdim=True)
    wrapped["logit_scale"] = torch.tensor(np.log(1 / 0.07), dtype=torch.float32)
    imported = convert(wrapped, SMALL)
    assert imported.wrapper == "PPTMoE-v0m0" and imported.config.head == "language"
    model = build_model(imported.config, text_dim=512)
    model.load_state_dict(imported.weights)
    feat = torch.from_numpy(io["backbone_feat"])
    with torch.no_grad():
        got = model.eval().head(feat, imported.class_embeddings[:20])
    proj = torch.nn.functional.normalize(feat @ wrapped["proj_head.weight"].T + wrapped["proj_head.bias"], dim=1)
    expected = wrapped["logit_scale"].exp() * proj @ wrapped["class_embedding"][:20].T
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.update({"backbone.enc.enc0.block0.attn.extra.weight": torch.zeros(1)}), "unknown key"),
        (lambda s: s.pop("backbone.enc.enc2.block0.cpe.1.bias"), "missing key backbone.enc.enc2.block0.cpe.1.bias"),
        (lambda s: s.pop("backbone.dec.dec1.up.proj_skip.1.running_var"), "missing key backbone.dec.dec1.up.proj_skip"),
        (lambda s: s.update({"backbone.enc.enc1.block0.cpe.0.weight": torch.zeros(16, 3, 3, 3, 8)}), "shape mismatch"),
        (lambda s: s.pop("backbone.dec.dec3.block0.attn.proj.experts.3.up_proj.weight"), "missing key"),
        (lambda s: s.pop("seg_head.bias"), "missing key seg_head.bias"),
        (lambda s: [s.pop(k) for k in list(s) if k.startswith("seg_head")], "no seg_head"),
        (lambda s: [s.pop(k) for k in list(s) if ".dec." in k], "no dec stages"),
    ],
)
def test_refuses_what_it_does_not_understand(golden, edit, message):
    state, _ = _load(golden, "ptmoe")
    edit(state)
    with pytest.raises(FormatError, match=message) as err:
        convert(state, SMALL)
    assert "\n" not in err.value.message


def test_refuses_bad_options(golden):
    state, _ = _load(golden, "ptmoe")
    with pytest.raises(BadInput, match="top-k"):
        convert(state, ImportOptions(top_k=5))
    with pytest.raises(BadInput, match="enc-num-head"):
        convert(state, ImportOptions(enc_num_head=(1, 2)))
    with pytest.raises(BadInput, match="do not split into 3 heads"):
        convert(state, ImportOptions(enc_num_head=(3,)))


def test_read_state_dict_refuses_code_and_non_checkpoints(tmp_path):
    import argparse

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": argparse.Namespace(a=1)}, evil)  # a class outside plain data: never unpickled
    with pytest.raises(FormatError, match="refused to load"):
        read_state_dict(evil)
    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": {"a": 1}}, plain)
    with pytest.raises(FormatError, match="not a Pointcept checkpoint"):
        read_state_dict(plain)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(plain.read_bytes()[:200])  # a cut file
    with pytest.raises(FormatError, match="not a readable checkpoint"):
        read_state_dict(junk)


def test_defaults_do_not_change_pmoe_presets():
    """The reference knobs default to pmoe's behaviour: a preset's config has them off."""
    cfg = build_model("pmoe-tiny").cfg
    assert (cfg.in_features, cfg.unpool_cpe, cfg.pool_shuffle, cfg.head) == ("pmoe7", "sum", "train", "language")
    assert isinstance(build_model("pmoe-tiny"), PTv3)


# ---------------------------------------------------------------------------------------------------------------
# The imported checkpoint in pmoe's commands: input layout, eval, predict, route-inspect.


def _sample(io: dict[str, np.ndarray], dataset: str, n: int = 2000):
    from pmoe_core.data.sample import Sample

    return Sample(dataset=dataset, name="room0", coord=io["coord"][:n].copy(), segment=np.full(n, -1),
                  index=np.arange(n), color=io["color"][:n].astype(np.float32), normal=io["normal"][:n].copy(),
                  strength=np.linspace(0, 1, n, dtype=np.float32))


def test_pointcept6_features_are_the_reference_input(golden):
    """Indoor: [color / 255, normal] exactly as the fixture's `feat`; outdoor: [xyz, strength, 0, 0]."""
    from pmoe_core.data.collate import Collate
    from pmoe_core.data.features import point_features

    _, io = _load(golden, "ptv3")
    indoor = _sample(io, "scannet")
    np.testing.assert_allclose(point_features(indoor, "pointcept6"), io["feat"][:2000], atol=1e-7, rtol=0)
    assert point_features(indoor).shape[1] == 7  # pmoe's own layout is unchanged
    signed = point_features(indoor, "pointcept6-signed")  # Pointcept < 1.6.0 / the Point-MoE fork
    np.testing.assert_allclose(signed[:, :3], io["feat"][:2000, :3] * 2 - 1, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(signed[:, 3:], io["feat"][:2000, 3:])
    assert convert(_load(golden, "ptv3")[0], ImportOptions(color="signed")).config.in_features == "pointcept6-signed"
    outdoor = point_features(_sample(io, "scannet"), "pointcept6", domain="outdoor")
    np.testing.assert_array_equal(outdoor[:, :3], io["coord"][:2000])
    np.testing.assert_array_equal(outdoor[:, 3], np.linspace(0, 1, 2000, dtype=np.float32))
    assert not outdoor[:, 4:].any()
    indoor.grid_coord = io["grid_coord"][:2000].astype(np.int64)
    batch, _ = Collate({"scannet": 20}, in_features="pointcept6")([indoor])
    np.testing.assert_allclose(batch.feat.numpy(), io["feat"][:2000], atol=1e-7, rtol=0)


@pytest.fixture(scope="module")
def imported_ckpts(golden, tmp_path_factory) -> dict[str, Path]:
    from pmoe_core.engine.pointcept_import import import_pointcept

    out = tmp_path_factory.mktemp("imported")
    return {name: import_pointcept(golden / f"{name}_small_ckpt.pth", out / f"{name}.pt", label_set="scannet",
                                   options=SMALL).out for name in ("ptv3", "ptmoe")}


def test_import_writes_a_checkpoint_pmoe_loads(golden, imported_ckpts):
    from pmoe_core.engine.model_io import load_segmentation_model

    _, io = _load(golden, "ptmoe")
    model, meta = load_segmentation_model(str(imported_ckpts["ptmoe"]))
    assert meta["datasets"] == ["scannet"] and meta["imported_from"]["arch"] == "PTMoE-v0m0"
    assert len(meta["imported_from"]["ignored_keys"]) == 24  # 12 layers x (score_accumulator, token counter)
    with torch.no_grad():
        logits = model(_batch(io))  # a fixed-class head needs no class embeddings
    np.testing.assert_allclose(logits.numpy(), io["seg_logits"], atol=TOL, rtol=0)


def test_import_refuses_before_writing(golden, tmp_path):
    from pmoe_core.engine.pointcept_import import import_pointcept

    out = tmp_path / "x.pt"
    with pytest.raises(BadInput, match="--label-set"):
        import_pointcept(golden / "ptv3_small_ckpt.pth", out, options=SMALL)
    with pytest.raises(BadInput, match="13 classes"):
        import_pointcept(golden / "ptv3_small_ckpt.pth", out, label_set="s3dis", options=SMALL)
    assert list(tmp_path.iterdir()) == []


def test_predict_and_route_inspect_feed_the_reference_layout(golden, imported_ckpts):
    """predict labels the fixture room as the reference does (its test recipe voxelises a little differently, so
    not every point sees the same neighbourhood); route-inspect traces every MoE layer of the import."""
    from pmoe_core.engine.predict import load_predictor, predict
    from pmoe_core.inspect.scenes import SceneRef
    from pmoe_core.inspect.traces import moe_shape, trace_scene
    from pmoe_core.scene import Scene

    _, io = _load(golden, "ptv3")
    room = slice(0, 2000)
    predictor = load_predictor(imported_ckpts["ptv3"], device="cpu")
    pred = predict(predictor, io["coord"][room], io["color"][room], io["normal"][room])
    assert pred.classes == tuple(predictor.meta["label_spaces"]["scannet"])
    assert (pred.labels == io["seg_logits"][room].argmax(1)).mean() > 0.95
    with pytest.raises(BadInput, match="fixed classes of scannet"):
        predict(predictor, io["coord"][room], io["color"][room], io["normal"][room], classes=["chair"])

    predictor = load_predictor(imported_ckpts["ptmoe"], device="cpu")
    scene = Scene("room0", coord=io["coord"][room], color=io["color"][room], normal=io["normal"][room])
    loaded = SceneRef("room0", "scannet", lambda: scene).load()
    trace = trace_scene(predictor.model, moe_shape(predictor.model, "ptmoe.pt"), loaded)
    assert len(trace.layers) == 12 and trace.features.shape[1] == 16


def test_eval_scores_the_import_on_its_label_set_only(golden, imported_ckpts, tmp_path, monkeypatch):
    from pmoe_core.engine.evaluate import evaluate
    from pmoe_core.scene import Scene
    from pmoe_core.store import StoreWriter

    monkeypatch.setenv("PMOE_CACHE_DIR", str(tmp_path / "cache"))
    _, io = _load(golden, "ptv3")
    room = slice(0, 2000)
    labels = io["seg_logits"][room].argmax(1).astype(np.int16)  # the reference's own predictions as labels
    scene = Scene("room0", coord=io["coord"][room], color=io["color"][room], normal=io["normal"][room],
                  segment=labels)
    with StoreWriter.open(str(tmp_path / "scannet.zarr"), "scannet") as writer:
        writer.append("val", scene)
    report = evaluate(imported_ckpts["ptv3"], str(tmp_path), device="cpu")
    (result,) = report.results
    assert result.dataset == "scannet" and result.points == 2000
    assert result.all_acc > 0.95  # pmoe's test fragments voxelise slightly differently from the fixture grid
    with pytest.raises(BadInput, match="fixed classes"):
        evaluate(imported_ckpts["ptv3"], str(tmp_path), label_set="union", device="cpu")


def test_init_loads_the_backbone_and_replaces_a_fixed_class_head(golden, imported_ckpts):
    from pmoe_core.engine.init_from import apply_init, load_init

    init = load_init(imported_ckpts["ptmoe"], text_dim=384)
    assert init.config.head == "language" and init.config.in_features == "pointcept6"
    assert init.origin["head"].startswith("new") and init.origin["imported_from"]["arch"] == "PTMoE-v0m0"
    model = build_model(init.config, text_dim=384)
    apply_init(model, init, "x")
    state = model.state_dict()
    imported = convert(_load(golden, "ptmoe")[0], SMALL).weights
    backbone = [k for k in imported if k.startswith("backbone.")]
    assert backbone and all(torch.equal(state[k], imported[k]) for k in backbone)


@pytest.mark.slow
def test_train_init_from_an_import(golden, imported_ckpts, tmp_path, monkeypatch):
    """`pmoe train --init` on an imported checkpoint: the run trains the imported architecture on the reference
    input layout and records where it started."""
    from pmoe_core.engine.checkpoint import load_checkpoint
    from pmoe_core.engine.train import TrainConfig, train
    from pmoe_core.scene import Scene
    from pmoe_core.store import StoreWriter

    monkeypatch.setenv("PMOE_CACHE_DIR", str(tmp_path / "cache"))
    _, io = _load(golden, "ptv3")
    data = tmp_path / "data"
    with StoreWriter.open(str(data / "scannet.zarr"), "scannet") as writer:
        for i, part in enumerate((slice(0, 2000), slice(2000, 3500))):
            writer.append("train", Scene(f"room{i}", coord=io["coord"][part], color=io["color"][part],
                                         normal=io["normal"][part], segment=np.zeros(part.stop - part.start, np.int16)))
    cfg = TrainConfig(data=str(data), datasets=("scannet",), out=str(tmp_path / "run"), steps=1, batch_size=1,
                      workers=0, tensorboard=False, init=str(imported_ckpts["ptv3"]), device="cpu")
    result = train(cfg, echo=lambda line: None)
    meta = load_checkpoint(result.checkpoint)["meta"]
    assert meta["preset"] == "init:import:PT-v3m1" and meta["init_from"]["checkpoint"] == str(imported_ckpts["ptv3"])
    assert meta["config"]["in_features"] == "pointcept6" and meta["config"]["head"] == "language"


def test_pptmoe_import_writes_a_language_head_checkpoint(golden, tmp_path):
    from pmoe_core.engine.model_io import load_segmentation_model
    from pmoe_core.engine.pointcept_import import import_pointcept

    state = torch.load(golden / "ptmoe_small_ckpt.pth", weights_only=True)["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("module.seg_head.")}
    state["module.proj_head.weight"], state["module.proj_head.bias"] = torch.randn(512, 16), torch.zeros(512)
    state["module.class_embedding"] = torch.nn.functional.normalize(torch.randn(94, 512), dim=1)
    state["module.logit_scale"] = torch.tensor(np.log(1 / 0.07), dtype=torch.float32)
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "pptmoe.pth")
    with pytest.raises(BadInput, match="language head"):
        import_pointcept(tmp_path / "pptmoe.pth", tmp_path / "x.pt", label_set="scannet", options=SMALL)
    out = import_pointcept(tmp_path / "pptmoe.pth", tmp_path / "pptmoe.pt", datasets=["scannet", "s3dis"],
                           options=SMALL).out
    model, meta = load_segmentation_model(str(out))
    assert meta["text_encoder"] == "clip" and meta["datasets"] == ["scannet", "s3dis"]
    assert meta["imported_from"]["wrapper"] == "PPTMoE-v0m0"
    assert model.head.proj.out_features == 512 and abs(model.head.logit_scale - 1 / 0.07) < 1e-3


def _to_pointcept(state: dict[str, torch.Tensor], n_dec: int) -> dict[str, torch.Tensor]:
    """pmoe SegmentationModel names -> Pointcept names (the inverse of the import), for a round trip."""
    from pmoe_core.models.pointcept import reference_key

    return {reference_key(k, n_dec).replace("seg_head / proj_head", "seg_head"): v for k, v in state.items()}


def test_round_trip_of_a_deeper_model_with_rpe():
    """Every pmoe parameter of a model with 2-block decoder stages and relative position encoding maps to a
    Pointcept key and back unchanged (mapping coverage; the fixtures have neither)."""
    from pmoe_core.models.ptv3 import PTv3Config

    cfg = PTv3Config(in_channels=6, enc_depths=(2, 1, 2), enc_channels=(16, 32, 48), enc_num_head=(1, 2, 3),
                     enc_patch_size=(48,) * 3, dec_depths=(2, 2), dec_channels=(16, 32), dec_num_head=(1, 2),
                     dec_patch_size=(48,) * 2, enable_rpe=True, mlp_ratio=2.0, head="linear", head_classes=13)
    model = build_model(cfg)
    state = model.state_dict()
    imported = convert(_to_pointcept(state, 2), ImportOptions(enc_patch_size=(48,), dec_patch_size=(48,),
                                                              enc_num_head=(1, 2, 3)))
    assert imported.config.enable_rpe and imported.config.mlp_ratio == 2.0 and imported.config.dec_num_head == (1, 2)
    assert set(imported.weights) == set(state) and all(torch.equal(imported.weights[k], state[k]) for k in state)
