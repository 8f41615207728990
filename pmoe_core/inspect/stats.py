"""Per-layer routing statistics, accumulated scene by scene so any number of scenes fits in memory.

Every statistic counts each ORIGINAL point once (a point takes its voxel token's routing), over all scenes:
- fractions[e]: share of the N*k (point, slot) assignments that go to expert e; top1_fractions[e]: share of
  points whose top-1 expert is e.
- load imbalance from `fractions`: max_over_mean = max_e f / mean_e f (1 = balanced, E = one expert takes all);
  cv = std_e f / mean_e f (population std).
- router entropy H(p) = -sum_e p_e log2 p_e of the full softmax (bits); normalised by log2 E and clipped to [0, 1]
  for the histogram (HIST_BINS equal bins on [0, 1], np.histogram's edges).
- prob margin = p_(1) - p_(2), the gap between the two largest softmax probabilities (defined for any k);
  weight margin = w_1 - w_2 of the renormalised top-k gate weights (k >= 2 only). Means, and a histogram of the
  prob margin on [0, 1].
- affinity P(expert | class) and P(expert | dataset) from top-1 counts (class: labelled points only), and
  MI(top-1 expert; class), MI(top-1 expert; dataset), MI(top-1 expert; class | dataset) in bits (information.py).
- consistency: fraction of query tokens whose top-1 differs from their k-NN majority (consistency.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pmoe_core.inspect.information import Information, conditional_mutual_information, information
from pmoe_core.inspect.traces import LayerTrace

HIST_BINS = 20


@dataclass
class LayerStats:
    name: str
    index: int
    stage: str  # "encoder" | "decoder" | "other", from the layer name
    points: int
    fractions: np.ndarray  # (E,)
    top1_fractions: np.ndarray  # (E,)
    load_max_over_mean: float
    load_cv: float
    entropy_bits_mean: float
    entropy_norm_mean: float
    entropy_hist: np.ndarray  # (HIST_BINS,) point counts of normalised entropy
    prob_margin_mean: float
    prob_margin_hist: np.ndarray  # (HIST_BINS,)
    weight_margin_mean: float | None
    consistency_queries: int
    inconsistent_fraction: float | None
    classes: list[str]
    class_counts: np.ndarray  # (C, E) top-1 counts of labelled points
    datasets: list[str]
    dataset_counts: np.ndarray  # (D, E) top-1 counts of all points
    mi_class: Information | None
    mi_dataset: Information | None
    mi_class_given_dataset_bits: float | None

    @property
    def class_affinity(self) -> np.ndarray:
        return _rows(self.class_counts)

    @property
    def dataset_affinity(self) -> np.ndarray:
        return _rows(self.dataset_counts)


def stage_of(layer: str) -> str:
    return "encoder" if layer.startswith("enc") else "decoder" if layer.startswith("dec") else "other"


def token_entropy_bits(probs: np.ndarray) -> np.ndarray:
    p = probs.astype(np.float64)
    logp = np.log2(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=1)


def token_prob_margin(probs: np.ndarray) -> np.ndarray:
    if probs.shape[1] < 2:
        return np.ones(probs.shape[0])
    top2 = -np.partition(-probs.astype(np.float64), 1, axis=1)[:, :2]
    return top2[:, 0] - top2[:, 1]


@dataclass
class LayerAccumulator:
    """Sufficient statistics of one layer; `add` one scene at a time, `finish` into LayerStats."""

    name: str
    index: int
    num_experts: int
    top_k: int
    points: int = 0
    slot_counts: np.ndarray = field(init=False)
    top1_counts: np.ndarray = field(init=False)
    entropy_sum: float = 0.0
    entropy_hist: np.ndarray = field(init=False)
    prob_margin_sum: float = 0.0
    prob_margin_hist: np.ndarray = field(init=False)
    weight_margin_sum: float = 0.0
    queries: int = 0
    inconsistent: int = 0
    class_counts: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (dataset, class) -> (E,)
    dataset_counts: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        e = self.num_experts
        self.slot_counts = np.zeros(e, np.int64)
        self.top1_counts = np.zeros(e, np.int64)
        self.entropy_hist = np.zeros(HIST_BINS, np.int64)
        self.prob_margin_hist = np.zeros(HIST_BINS, np.int64)

    def add(self, layer: LayerTrace, point_token: np.ndarray, classes: np.ndarray | None, dataset: str) -> None:
        """One scene: token routing `layer`, each point's token, per-point class keys ("" = ignore) or None."""
        e = self.num_experts
        token_count = np.bincount(point_token, minlength=layer.expert_ids.shape[0])  # points per token
        ids = layer.expert_ids.astype(np.int64)
        self.points += int(point_token.shape[0])
        self.slot_counts += np.bincount(ids.reshape(-1), weights=np.repeat(token_count, ids.shape[1]),
                                        minlength=e).astype(np.int64)
        top1 = ids[:, 0][point_token]
        self.top1_counts += np.bincount(top1, minlength=e)

        entropy = token_entropy_bits(layer.probs)
        self.entropy_sum += float((entropy * token_count).sum())
        norm = np.clip(entropy / np.log2(e), 0.0, 1.0) if e > 1 else np.zeros_like(entropy)
        self.entropy_hist += _hist(norm, token_count)
        margin = token_prob_margin(layer.probs)
        self.prob_margin_sum += float((margin * token_count).sum())
        self.prob_margin_hist += _hist(np.clip(margin, 0.0, 1.0), token_count)
        if self.top_k >= 2:
            w = layer.weights.astype(np.float64)
            self.weight_margin_sum += float(((w[:, 0] - w[:, 1]) * token_count).sum())

        self.dataset_counts.setdefault(dataset, np.zeros(e, np.int64))
        self.dataset_counts[dataset] += np.bincount(top1, minlength=e)
        if classes is not None:
            labelled = classes != ""
            names, local = np.unique(classes[labelled].astype(str), return_inverse=True)
            table = np.bincount(local.reshape(-1) * e + top1[labelled], minlength=len(names) * e).reshape(-1, e)
            for name, row in zip(names.tolist(), table):
                self.class_counts.setdefault((dataset, name), np.zeros(e, np.int64))
                self.class_counts[(dataset, name)] += row

    def add_consistency(self, inconsistent: int, queries: int) -> None:
        self.inconsistent += inconsistent
        self.queries += queries

    def finish(self) -> LayerStats:
        n = max(self.points, 1)
        fractions = self.slot_counts / max(int(self.slot_counts.sum()), 1)
        mean = fractions.mean()
        classes = sorted({c for _, c in self.class_counts})
        class_table = np.array([sum((v for (d, c), v in self.class_counts.items() if c == name),
                                    np.zeros(self.num_experts, np.int64)) for name in classes], dtype=np.int64)
        datasets = sorted(self.dataset_counts)
        dataset_table = np.array([self.dataset_counts[d] for d in datasets], dtype=np.int64)
        per_dataset = [np.array([v for (d, _), v in self.class_counts.items() if d == ds]).reshape(-1, self.num_experts)
                       for ds in datasets]
        return LayerStats(
            name=self.name,
            index=self.index,
            stage=stage_of(self.name),
            points=self.points,
            fractions=fractions,
            top1_fractions=self.top1_counts / n,
            load_max_over_mean=float(fractions.max() / mean) if mean > 0 else 0.0,
            load_cv=float(fractions.std() / mean) if mean > 0 else 0.0,
            entropy_bits_mean=self.entropy_sum / n,
            entropy_norm_mean=self.entropy_sum / n / np.log2(self.num_experts) if self.num_experts > 1 else 0.0,
            entropy_hist=self.entropy_hist.copy(),
            prob_margin_mean=self.prob_margin_sum / n,
            prob_margin_hist=self.prob_margin_hist.copy(),
            weight_margin_mean=self.weight_margin_sum / n if self.top_k >= 2 else None,
            consistency_queries=self.queries,
            inconsistent_fraction=self.inconsistent / self.queries if self.queries else None,
            classes=classes,
            class_counts=class_table.reshape(len(classes), self.num_experts),
            datasets=datasets,
            dataset_counts=dataset_table.reshape(len(datasets), self.num_experts),
            mi_class=information(class_table) if classes else None,
            mi_dataset=information(dataset_table),
            mi_class_given_dataset_bits=conditional_mutual_information(per_dataset) if classes else None,
        )


def _hist(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(values, bins=HIST_BINS, range=(0.0, 1.0), weights=weights)
    return np.rint(counts).astype(np.int64)


def _rows(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, np.float64), where=totals > 0)
