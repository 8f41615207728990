"""route-inspect end to end on a trained pmoe-tiny checkpoint: every number of report.json is recomputed here from
traces.h5 with plain numpy (written independently of pmoe_core.inspect), PLY colours are checked against the legend,
and the report against its schema."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from pmoe_core.inspect.run import RouteInspectConfig, route_inspect
from pmoe_core.io import read_ply
from pmoe_core.schemas import validate

pytestmark = pytest.mark.slow
BINS = 20


def load_scenes(h5: h5py.File) -> list[h5py.Group]:
    return [h5[k] for k in sorted(h5) if k != "embedding"]


def stacked(scenes: list[h5py.Group], what: str, layer: str) -> np.ndarray:
    return np.concatenate([g[what][layer][...] for g in scenes])


def H(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def mi_and_nmi(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """MI = H(X) + H(Y) - H(X, Y) from integer label arrays (another route than the table formula under test)."""
    cx, cy = np.bincount(x), np.bincount(y)
    cxy = np.bincount(x * len(cy) + y)
    mi = H(cx) + H(cy) - H(cxy)
    denom = H(cx) + H(cy)
    return mi, 2 * mi / denom if denom else 0.0


def brute_knn(coord: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    d = ((coord[queries, None, :].astype(np.float64) - coord[None, :, :].astype(np.float64)) ** 2).sum(-1)
    d[np.arange(len(queries)), queries] = np.inf
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def knn_disagreements(top1: np.ndarray, queries: np.ndarray, nbrs: np.ndarray, experts: int) -> int:
    wrong = 0
    for q, row in zip(queries, nbrs):
        votes = np.bincount(top1[row], minlength=experts)
        wrong += int(np.argmax(votes) != top1[q])
    return wrong


@pytest.fixture(scope="module")
def report(inspected) -> dict:
    return json.loads((inspected.out / "report.json").read_text())


@pytest.fixture(scope="module")
def traces(inspected):
    with h5py.File(inspected.out / "traces.h5", "r") as h5:
        yield h5


def test_report_matches_schema_and_lists_all_scenes(report, inspected):
    validate(report, "routing_report", "report.json")
    assert [s["source"].split("::")[-1] for s in report["scenes"]] == ["0", "1", "val_001", str(inspected.ply_input)]
    assert [s["dataset"] for s in report["scenes"]] == ["scannet", "scannet", "semantickitti", "unknown"]
    assert report["datasets"] == ["scannet", "semantickitti", "unknown"]
    assert set(report["classes"]) == {"wall", "floor", "table", "road", "building", "car",
                                      "label_0", "label_1", "label_6"}
    assert report["num_experts"] == 4 and report["top_k"] == 2 and len(report["layers"]) == 9
    for name in ("heatmap", "entropy", "margin", "mi", "legend_png", "features"):
        assert (inspected.out / report["files"][name]).read_bytes()[:4] == b"\x89PNG"
    kinds = {(a["layer"], a["kind"]) for a in report["files"]["affinity"]}
    assert kinds == {(layer, kind) for layer in report["chosen_layers"] for kind in ("class", "dataset")}


def test_traces_are_consistent_router_outputs(traces, report):
    """The recorded top-k is the top-k of the recorded softmax, renormalised; points share their voxel's token."""
    for g in load_scenes(traces):
        coord, pt, tp = g["coord"][...], g["point_token"][...], g["token_point"][...]
        voxel = np.floor((coord - coord.min(0)) / g.attrs["grid_size"]).astype(np.int64)
        assert (voxel[tp[pt]] == voxel).all()
        assert len(np.unique(voxel[tp], axis=0)) == len(tp)
        for layer in traces.attrs["layers"]:
            ids, w, p = g["experts"][layer][...], g["weights"][layer][...], g["probs"][layer][...]
            top = np.sort(p, axis=1)[:, ::-1][:, :2]
            np.testing.assert_allclose(np.take_along_axis(p, ids.astype(np.int64), 1), top, rtol=1e-6)
            np.testing.assert_allclose(w, top / top.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_every_layer_number_matches_recomputation(traces, report):
    scenes = load_scenes(traces)
    e, k = report["num_experts"], report["top_k"]
    knn = report["options"]["knn"]
    datasets = np.concatenate([np.full(len(g["coord"]), g.attrs["dataset"]) for g in scenes])
    keys = np.concatenate([g["class_key"][...].astype(str) if "class_key" in g else np.full(len(g["coord"]), "")
                           for g in scenes])
    labelled = keys != ""
    _, dataset_code = np.unique(datasets, return_inverse=True)
    _, class_code = np.unique(keys, return_inverse=True)
    neighbours = [brute_knn(g["coord"][...][g["token_point"][...]], g["knn_queries"][...], knn) for g in scenes]
    for layer in report["layers"]:
        name = layer["name"]
        ids, w, p = (stacked(scenes, what, name).astype(np.float64) for what in ("experts", "weights", "probs"))
        ids = ids.astype(np.int64)
        n = len(ids)
        assert layer["points"] == n == sum(s["points"] for s in report["scenes"])

        frac = np.bincount(ids.ravel(), minlength=e) / (n * k)
        np.testing.assert_allclose(layer["fractions"], frac, rtol=1e-12)
        np.testing.assert_allclose(layer["top1_fractions"], np.bincount(ids[:, 0], minlength=e) / n, rtol=1e-12)
        np.testing.assert_allclose(layer["load"]["max_over_mean"], frac.max() / frac.mean(), rtol=1e-12)
        np.testing.assert_allclose(layer["load"]["cv"], frac.std() / frac.mean(), rtol=1e-9)

        ent = -np.where(p > 0, p * np.log2(np.where(p > 0, p, 1)), 0).sum(1)
        np.testing.assert_allclose(layer["entropy"]["mean_bits"], ent.mean(), rtol=1e-9)
        np.testing.assert_allclose(layer["entropy"]["mean_normalized"], ent.mean() / np.log2(e), rtol=1e-9)
        hist, edges = np.histogram(np.clip(ent / np.log2(e), 0, 1), bins=BINS, range=(0, 1))
        assert layer["entropy"]["hist"]["counts"] == hist.tolist()
        np.testing.assert_allclose(layer["entropy"]["hist"]["edges"], edges)

        ps = np.sort(p, axis=1)
        margin = ps[:, -1] - ps[:, -2]
        np.testing.assert_allclose(layer["margin"]["prob_mean"], margin.mean(), rtol=1e-9)
        assert layer["margin"]["prob_hist"]["counts"] == np.histogram(margin, bins=BINS, range=(0, 1))[0].tolist()
        np.testing.assert_allclose(layer["margin"]["weight_mean"], (w[:, 0] - w[:, 1]).mean(), rtol=1e-9)

        top1 = ids[:, 0]
        mi, nmi = mi_and_nmi(top1, dataset_code)
        assert layer["mi"]["dataset"]["bits"] == pytest.approx(mi, abs=1e-9)
        assert layer["mi"]["dataset"]["normalized"] == pytest.approx(nmi, abs=1e-9)
        mi, nmi = mi_and_nmi(top1[labelled], class_code[labelled])
        assert layer["mi"]["class"]["bits"] == pytest.approx(mi, abs=1e-9)
        assert layer["mi"]["class"]["normalized"] == pytest.approx(nmi, abs=1e-9)
        assert layer["mi"]["class"]["points"] == int(labelled.sum())
        cond = sum(
            (sel := labelled & (datasets == d)).sum() / labelled.sum() * mi_and_nmi(top1[sel], class_code[sel])[0]
            for d in np.unique(datasets[labelled])
        )
        assert layer["mi"]["class_given_dataset_bits"] == pytest.approx(cond, abs=1e-9)

        for kind, groups, sel in (("class", keys, labelled), ("dataset", datasets, np.ones(n, bool))):
            table = layer["affinity"][kind]
            assert table["rows"] == sorted(np.unique(groups[sel]).tolist())
            for row, counts, probs in zip(table["rows"], table["counts"], table["p"]):
                expected = np.bincount(top1[sel & (groups == row)], minlength=e)
                assert counts == expected.tolist()
                np.testing.assert_allclose(probs, expected / expected.sum(), rtol=1e-12)

        wrong = queries = 0
        for g, nbrs in zip(scenes, neighbours):
            tp, q = g["token_point"][...], g["knn_queries"][...]
            wrong += knn_disagreements(g["experts"][name][...][tp, 0].astype(np.int64), q, nbrs, e)
            queries += len(q)
        assert layer["consistency"]["queries"] == queries
        assert layer["consistency"]["inconsistent_fraction"] == pytest.approx(wrong / queries, abs=1e-12)


def test_consistency_subsamples_queries(traces, report):
    for g, scene in zip(load_scenes(traces), report["scenes"]):
        q = g["knn_queries"][...]
        assert len(q) == min(1500, scene["tokens"]) and len(np.unique(q)) == len(q)
    assert any(s["tokens"] > 1500 for s in report["scenes"])


def test_ply_colours_are_top1_experts(traces, report, inspected):
    legend = json.loads((inspected.out / report["files"]["legend_json"]).read_text())
    colours = np.array([entry["rgb"] for entry in legend["experts"]], dtype=np.uint8)
    assert len(colours) == 4 and len(np.unique(colours, axis=0)) == 4
    groups = {g.name.strip("/"): g for g in load_scenes(traces)}
    assert len(report["files"]["ply"]) == len(report["scenes"]) * len(report["chosen_layers"])
    for entry in report["files"]["ply"]:
        cloud = read_ply(inspected.out / entry["path"])
        g = groups[entry["scene"]]
        top1 = g["experts"][entry["layer"]][...][:, 0]
        np.testing.assert_array_equal(cloud.coord, g["coord"][...])
        np.testing.assert_array_equal(cloud.color, colours[top1])


def test_default_layers_are_first_encoder_deepest_last_decoder(report):
    assert report["chosen_layers"] == ["enc0.block0.attn.proj", "enc4.block0.attn.proj", "dec0.block0.attn.proj"]
    assert [layer["stage"] for layer in report["layers"]] == ["encoder"] * 5 + ["decoder"] * 4


def test_aggregation_does_not_change_a_scenes_routing(checkpoints, inspected, traces, tmp_path):
    """The PLY input alone (now told it is scannet) routes exactly as the same scene read from the store did inside
    the four-scene run, and its report counts only its own points."""
    result = route_inspect(RouteInspectConfig(str(checkpoints.pmoe), (str(inspected.ply_input),), out=str(tmp_path),
                                              dataset="scannet", layers=("all",), embed="none", plys=False))
    assert [s.dataset for s in result.scenes] == ["scannet"]
    with h5py.File(tmp_path / "traces.h5", "r") as single:
        alone = single[next(iter(single))]
        in_store = traces["000_val_000"]
        for layer in traces.attrs["layers"]:
            np.testing.assert_array_equal(alone["experts"][layer][...], in_store["experts"][layer][...])
            np.testing.assert_allclose(alone["weights"][layer][...], in_store["weights"][layer][...], atol=1e-6)
        assert sorted(set(alone["class_key"][...].astype(str))) == ["floor", "table", "wall"]
    assert all(s.points == 3000 for s in result.layers)
    assert all(s.mi_dataset is None for s in result.layers)  # one dataset: nothing to tell apart
