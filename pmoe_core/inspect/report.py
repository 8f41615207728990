"""The JSON routing report (`report.json`, schema `schemas/routing_report.schema.json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pmoe_core.inspect.information import Information
from pmoe_core.inspect.stats import HIST_BINS, LayerStats
from pmoe_core.schemas import validate

if TYPE_CHECKING:
    from pmoe_core.inspect.run import RouteInspectConfig, RouteInspectResult

REPORT_FORMAT = "pmoe-routing-report"
REPORT_VERSION = 1
DEFINITIONS = {
    "points": "every original point counts once; a point takes the routing of its voxel's token",
    "fractions": "share of the N*k (point, top-k slot) assignments per expert",
    "top1_fractions": "share of points whose top-1 expert is e",
    "load.max_over_mean": "max_e fractions / mean_e fractions (1 = balanced, E = one expert)",
    "load.cv": "population std / mean of fractions",
    "entropy": "H(router softmax) in bits; normalized = H / log2 E, histogram of it clipped to [0, 1]",
    "margin.prob": "top-1 minus top-2 router softmax probability",
    "margin.weight": "w1 - w2 of the renormalised top-k gate weights (null when k = 1)",
    "consistency": "share of query tokens whose top-1 expert differs from the majority top-1 of their k nearest "
                   "other tokens (ties -> lowest expert id)",
    "mi": "mutual information of top-1 expert with class (labelled points) / dataset (all points) in bits; "
          "normalized = 2 MI / (H(expert) + H(Y)); null when fewer than 2 classes / datasets occur; "
          "class_given_dataset_bits = sum_d P(d) MI(expert; class | d)",
    "affinity": "P(top-1 expert | class or dataset), rows from top-1 counts",
}


def build_report(result: "RouteInspectResult", cfg: "RouteInspectConfig", meta: dict[str, Any]) -> dict[str, Any]:
    f = result.files
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "checkpoint": str(cfg.checkpoint),
        "preset": meta.get("preset"),
        "trained_datasets": list(meta.get("datasets", [])),
        "num_experts": result.shape.num_experts,
        "top_k": result.shape.top_k,
        "options": {"knn": cfg.knn, "max_queries": cfg.max_queries, "grid": cfg.grid, "embed": cfg.embed,
                    "seed": cfg.seed, "probs": cfg.probs},
        "definitions": DEFINITIONS,
        "scenes": [vars(s) | {"seconds": round(s.seconds, 3)} for s in result.scenes],
        "datasets": sorted({s.dataset for s in result.scenes}),
        "classes": sorted({c for layer in result.layers for c in layer.classes}),
        "chosen_layers": list(result.chosen_layers),
        "layers": [_layer(s, cfg.knn) for s in result.layers],
        "files": {
            "traces": f.traces, "heatmap": f.heatmap, "entropy": f.entropy, "margin": f.margin, "mi": f.mi,
            "legend_png": f.legend_png, "legend_json": f.legend_json, "features": f.features,
            "ply": [{"scene": k, "layer": layer, "path": p} for k, layer, p in f.plys],
            "affinity": [{"layer": layer, "kind": kind, "path": p} for layer, kind, p in f.affinity],
        },
        "seconds": round(result.seconds, 3),
    }


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Validate against the schema first, so a file on disk always matches it."""
    validate(report, "routing_report", path)
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def _layer(s: LayerStats, knn: int) -> dict[str, Any]:
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1).tolist()
    return {
        "name": s.name,
        "index": s.index,
        "stage": s.stage,
        "points": s.points,
        "fractions": s.fractions.tolist(),
        "top1_fractions": s.top1_fractions.tolist(),
        "load": {"max_over_mean": s.load_max_over_mean, "cv": s.load_cv},
        "entropy": {"mean_bits": s.entropy_bits_mean, "mean_normalized": s.entropy_norm_mean,
                    "hist": {"edges": edges, "counts": s.entropy_hist.tolist()}},
        "margin": {"prob_mean": s.prob_margin_mean, "weight_mean": s.weight_margin_mean,
                   "prob_hist": {"edges": edges, "counts": s.prob_margin_hist.tolist()}},
        "consistency": {"k": knn, "queries": s.consistency_queries, "inconsistent_fraction": s.inconsistent_fraction},
        "mi": {"class": _info(s.mi_class), "dataset": _info(s.mi_dataset),
               "class_given_dataset_bits": s.mi_class_given_dataset_bits},
        "affinity": {
            "class": _table(s.classes, s.class_counts, s.class_affinity) if s.classes else None,
            "dataset": _table(s.datasets, s.dataset_counts, s.dataset_affinity),
        },
    }


def _info(info: Information | None) -> dict[str, Any] | None:
    return None if info is None else {"bits": info.bits, "normalized": info.normalized, "points": info.points}


def _table(rows: list[str], counts: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    return {"rows": list(rows), "counts": counts.tolist(), "p": p.tolist()}
