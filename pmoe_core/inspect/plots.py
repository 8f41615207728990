"""PNG figures of a routing report.

Figures are built with matplotlib's object API (`Figure`, no pyplot), so no display is needed and the backend of a
notebook importing pmoe is left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pmoe_core.inspect.export import palette


def heatmap(path: Path, values: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str,
            xlabel: str, vmax: float | None = None, annotate: bool = True) -> None:
    """rows x cols matrix as an image with labelled axes (values written in the cells when there are few)."""
    h = max(2.5, 0.35 * len(rows) + 1.5)
    w = max(4.0, 0.55 * len(cols) + 3.5)
    fig = Figure(figsize=(w, h))
    ax = fig.subplots()
    im = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax)
    ax.set_xticks(range(len(cols)), cols, rotation=90 if len(cols) > 8 else 0, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    if annotate and values.size <= 400:
        hi = vmax if vmax is not None else (values.max() if values.size else 1.0)
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if v > 0.6 * hi else "white")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def mi_plot(path: Path, layers: Sequence[str], series: dict[str, Sequence[float | None]]) -> None:
    """MI per layer (forward order), one line per variable; missing values are gaps."""
    fig = Figure(figsize=(max(5.0, 0.5 * len(layers) + 2), 3.5))
    ax = fig.subplots()
    x = np.arange(len(layers))
    for label, values in series.items():
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.plot(x, y, marker="o", label=label)
    ax.set_xticks(x, layers, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("bits")
    ax.set_title("MI(top-1 expert; Y) per MoE layer", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def legend_png(path: Path, num_experts: int) -> None:
    colours = palette(num_experts) / 255.0
    fig = Figure(figsize=(2.2, 0.3 * num_experts + 0.4))
    ax = fig.subplots()
    for e in range(num_experts):
        ax.add_patch(Rectangle((0, num_experts - 1 - e), 1, 0.8, color=colours[e]))
        ax.text(1.2, num_experts - 1 - e + 0.4, f"expert {e}", va="center", fontsize=9)
    ax.set_xlim(0, 4)
    ax.set_ylim(-0.2, num_experts)
    ax.axis("off")
    fig.savefig(path, dpi=110, bbox_inches="tight")


def scatter_by_group(path: Path, xy: np.ndarray, groups: np.ndarray, title: str) -> None:
    """2-D points coloured by group name (e.g. dataset)."""
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    names = sorted(set(groups.tolist()))
    colours = palette(max(len(names), 1)) / 255.0
    for i, name in enumerate(names):
        sel = groups == name
        ax.scatter(xy[sel, 0], xy[sel, 1], s=3, color=colours[i], label=f"{name} ({int(sel.sum())})", alpha=0.6)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, markerscale=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
