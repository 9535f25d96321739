"""Figures the workflow logs to MLflow: score heat map, chosen architecture vs parent, frontier with the choice."""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

from ..arch.blocks import BlockConfig  # noqa: E402
from ..arch.config import PuzzleConfig  # noqa: E402
from ..library.record import Library  # noqa: E402
from ..library.tracking import columns, heatmap  # noqa: E402

log = logging.getLogger(__name__)


def log_library_heatmap(run_id: str, library: Library, section: str, key: str) -> None:
    client = MlflowClient()
    fig = heatmap(library, lambda v: getattr(v, section).get(key), f"replace-1-block {key} per layer and variant")
    client.log_figure(run_id, fig, f"score/{key}_heatmap.png")
    plt.close(fig)
    client.log_table(run_id, data=columns(library.table()), artifact_file="score/scored_library_table.json")


def architecture_figure(parent: PuzzleConfig, child: list[BlockConfig]):
    """Per layer: KV heads (0 = linear / no-op) and FFN width of the child beside the parent's."""
    import numpy as np

    heads = parent.num_attention_heads
    layers = np.arange(len(child))
    fig, (a, f) = plt.subplots(2, 1, figsize=(max(7, 0.45 * len(child) + 2), 5.5), sharex=True)
    for ax, get, label in (
        (a, lambda b: b.attention.num_kv_heads(heads), "KV heads"),
        (f, lambda b: b.ffn.kind.size(b.ffn) or 0, "FFN width"),
    ):
        parent_values = [get(b) for b in parent.block_configs]
        ax.bar(layers - 0.2, parent_values, 0.4, label="parent", color="lightgray")
        ax.bar(layers + 0.2, [get(b) for b in child], 0.4, label="child", color="tab:blue")
        top = max(parent_values + [1])
        ax.set_ylim(0, top * 1.45)  # head room for the replacement names, so none is cut at the top
        for i, b in enumerate(child):
            kind = b.attention.kind if ax is a else b.ffn.kind
            if not kind.resizable:  # no bar to see: name the replacement
                ax.text(i + 0.2, top * 0.02, str(kind), rotation=90, ha="center", va="bottom", fontsize=7)
        ax.set_ylabel(label)
        ax.margins(x=0.01)
    # One legend above the plots, outside the axes: it hides no layer's bars.
    handles, names = a.get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", ncol=2, fontsize=8, frameon=False)
    f.set_xlabel("layer")
    f.set_xticks(layers)
    a.set_title("chosen architecture vs parent", loc="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def log_architecture(run_id: str, parent: PuzzleConfig, child: list[BlockConfig]) -> None:
    client = MlflowClient()
    fig = architecture_figure(parent, child)
    client.log_figure(run_id, fig, "solve/architecture.png")
    plt.close(fig)
    heads = parent.num_attention_heads
    rows = [{"layer": i, "parent_attention": p.describe(heads)[0], "child_attention": c.describe(heads)[0],
             "parent_ffn": p.describe(heads)[1], "child_ffn": c.describe(heads)[1]}
            for i, (p, c) in enumerate(zip(parent.block_configs, child))]
    client.log_table(run_id, data=columns(rows), artifact_file="solve/architecture.json")


def log_frontier_with_choice(run_id: str, library: Library, config, best, points: int) -> None:
    """Sweep the first constraint's key over targets relative to the parent and mark the chosen solution."""
    from ..solve import SearchConfig
    from ..solve.sweep import SweepSpec, parse_sweep, sweep

    if not config.constraints:
        return
    first = config.parsed_constraints()[0]
    key, op, limit = first.key, "<=" if first.upper else ">=", first.upper or first.lower
    span = "100%:25%" if op == "<=" else "100%:300%"
    spec = parse_sweep(f"{key}{op}{span}", points)
    if limit.of_parent:  # the chosen target is one of the sweep's points, so the star sits on the curve
        spec = SweepSpec(spec.key, spec.op, sorted({*spec.limits, limit}, key=lambda x: x.value, reverse=op == "<="))
    rest = SearchConfig(**{**config.model_dump(), "constraints": config.constraints[1:], "num_solutions": 1})
    try:
        frontier = sweep(library, rest, spec, show_progress=False)
    except Exception as e:  # noqa: BLE001 - the frontier is a figure, not a result: never fail the stage for it
        log.warning("frontier sweep failed: %s", e)
        return
    fig = frontier.figure()
    ax = fig.axes[0]
    if limit.of_parent:  # the sweep's x axis is in units of the parent's figure
        ax.plot([limit.value], [best.objective], "*", color="tab:red", markersize=14, label="chosen")
        ax.legend()
    client = MlflowClient()
    client.log_figure(run_id, fig, "solve/frontier.png")
    client.log_table(run_id, data=frontier.columns(), artifact_file="solve/frontier.json")
