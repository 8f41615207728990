"""Row-normalised confusion-matrix images (PNG), drawn with matplotlib's Agg canvas (no display, no global backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pmoe_core.engine.eval_report import DatasetResult


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each ground-truth row divided by its total (recall per predicted column); empty rows stay 0."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def save_confusion_png(result: DatasetResult, path: str | Path, title: str | None = None) -> Path:
    """One dataset's confusion matrix: rows = ground truth, columns = prediction, cells annotated where >= 1%."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    rows = [c.name for c in result.classes]
    cols = list(result.columns)
    values = row_normalised(result.confusion)
    size = 2.5 + 0.38 * max(len(rows), len(cols))
    fig = Figure(figsize=(size + 1.2, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of ground-truth row")
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    for i, j in zip(*np.nonzero(values >= 0.01)):
        ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                color="white" if values[i, j] > 0.6 else "black")
    ax.set_title(title or f"{result.dataset} ({result.benchmark}): mIoU {100 * result.miou:.1f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
