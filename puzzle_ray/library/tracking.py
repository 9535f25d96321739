"""MLflow records of a library build: BLD loss curves (batched), the library table, a heat map of final NMSE."""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric  # noqa: E402

from .record import Library  # noqa: E402

BATCH = 1000  # MLflow accepts up to 1000 metrics per log_batch call


def metric_key(uid: str) -> str:
    return "bld_loss/" + uid.replace("+", "_and_")


def log_library(run_id: str, library: Library, losses: dict[str, list[tuple[int, float]]]) -> None:
    client = MlflowClient()
    now = int(time.time() * 1000)
    metrics = [Metric(metric_key(uid), float(v), now, int(step)) for uid, curve in losses.items() for step, v in curve]
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + BATCH])
    client.log_table(run_id, data=columns(library.table()), artifact_file="library/block_library_table.json")
    client.log_dict(run_id, library.to_json(), "library/block_library.json")
    client.log_dict(run_id, library.meta.to_json(), "library/library_meta.json")
    fig = nmse_figure(library)
    client.log_figure(run_id, fig, "library/bld_nmse.png")
    plt.close(fig)


KEY_COLUMN_ORDER = ("layer", "variant", "metrics.", "stats.")
"""Columns a reviewer reads first: where, which variant, its quality, its costs; then the rest (sparse BLD
training figures) in name order."""


def columns(rows: list[dict]) -> dict[str, list]:
    """Row dicts as the column-major table that `log_table` takes (`KEY_COLUMN_ORDER` first)."""
    def rank(key: str) -> tuple[int, str]:
        first = [i for i, p in enumerate(KEY_COLUMN_ORDER) if key == p or (p.endswith(".") and key.startswith(p))]
        return (first[0] if first else len(KEY_COLUMN_ORDER), key)

    keys = sorted({k for r in rows for k in r}, key=rank)
    return {k: [r.get(k) for r in rows] for k in keys}


def nmse_figure(library: Library, key: str = "nmse_final"):
    """Layers x variants heat map of the BLD normalised MSE."""
    return heatmap(library, lambda v: v.extra.get("bld", {}).get(key), f"BLD normalised MSE ({key})")


def heatmap(library: Library, value, title: str, log_scale: bool = True):
    """Variants (rows) x layers (columns) heat map of `value(variant)` (blank only where None).

    The log scale is symmetric-log: logarithmic above the smallest positive value and linear below it, so a
    zero (the parent's own block: KL 0) gets the lowest colour instead of vanishing."""
    import numpy as np
    from matplotlib.colors import SymLogNorm

    names = sorted({n for layer in library.layers for n in layer})
    grid = np.full((len(names), library.num_layers), np.nan)
    for i, layer in enumerate(library.layers):
        for n, v in layer.items():
            x = value(v)
            if x is not None and np.isfinite(x):
                grid[names.index(n), i] = x
    fig, ax = plt.subplots(figsize=(2.5 + 0.5 * library.num_layers, 1.2 + 0.28 * len(names)))
    finite = grid[np.isfinite(grid)]
    positive = finite[finite > 0]
    norm = None
    if log_scale and positive.size and finite.min() >= 0:
        norm = SymLogNorm(linthresh=float(positive.min()), vmin=0.0, vmax=float(finite.max()), base=10)
    im = ax.imshow(grid, aspect="auto", cmap="viridis", norm=norm)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xticks(range(library.num_layers))
    ax.set_xlabel("layer")
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig
