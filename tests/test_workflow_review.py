"""What a reviewer reads: the figures logged to MLflow and the summary are correct and honest."""

from __future__ import annotations

import math

import numpy as np
import pytest

from puzzle_ray.arch.blocks import AttentionConfig, BlockConfig, FFNConfig
from puzzle_ray.arch.config import PuzzleConfig
from puzzle_ray.evaluate.report import EvalReport, Row
from puzzle_ray.evaluate.retention import wilson_interval
from puzzle_ray.library.record import Library, Variant
from puzzle_ray.library.tracking import columns, heatmap
from puzzle_ray.solve.constraints import Limit
from puzzle_ray.solve.sweep import Frontier, SweepSpec
from puzzle_ray.workflows.figures import architecture_figure
from puzzle_ray.workflows.summary import headline, headline_metrics, prediction_warnings


def test_frontier_is_drawn_in_the_units_its_axis_names():
    spec = SweepSpec("stats.num_params", "<=", [Limit(1.0, True), Limit(0.75, True), Limit(0.5, True)])
    rows = [{"target": 1e6 * x, "target_x": x, "feasible": True, "objective": 1 - x} for x in (1.0, 0.75, 0.5)]
    ax = Frontier(spec, rows, "metrics.kl_div").figure().axes[0]
    assert "(x parent)" in ax.get_xlabel()
    assert list(ax.lines[0].get_xdata()) == [1.0, 0.75, 0.5]  # fractions, not the absolute 1e6-scale targets


def _library(values: list[list[float | None]]) -> Library:
    return Library([{f"v{j}": Variant(f"v{j}", {"stats.x": 1.0}, {} if x is None else {"kl_div": x})
                     for j, x in enumerate(layer)} for layer in values])


def test_heatmap_shows_the_parent_zero_and_blanks_only_missing_values():
    fig = heatmap(_library([[0.0, 0.02, None], [0.0, 0.5, 3.0]]), lambda v: v.metrics.get("kl_div"), "kl")
    grid = np.ma.getdata(fig.axes[0].images[0].get_array())
    assert grid[0, 0] == 0 and grid[0, 1] == 0  # v0 (KL 0) is drawn in both layers
    assert math.isnan(grid[2, 0]) and grid[2, 1] == 3.0
    rgba = fig.axes[0].images[0].to_rgba(np.array([[0.0, 0.02]]))
    assert rgba[0, 0, 3] > 0 and not np.allclose(rgba[0, 0], rgba[0, 1])  # zero has a colour of its own


def test_library_table_puts_key_columns_first():
    rows = [{"layer": 0, "variant": "a", "bld.nmse": 0.1, "stats.decode_ms": 2.0, "metrics.kl_div": 0.3, "zz": 1}]
    assert list(columns(rows)) == ["layer", "variant", "metrics.kl_div", "stats.decode_ms", "bld.nmse", "zz"]


def test_architecture_legend_hides_no_bar_and_labels_fit():
    parent = PuzzleConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                          num_hidden_layers=4, vocab_size=32)
    child = list(parent.block_configs)
    child[-1] = BlockConfig(AttentionConfig(no_op=True), FFNConfig(no_op=True))
    fig = architecture_figure(parent, child)
    assert fig.legends and not any(ax.get_legend() for ax in fig.axes)  # one legend, outside the axes
    for ax in fig.axes:
        tallest = max(p.get_height() for p in ax.patches)
        assert ax.get_ylim()[1] > 1.3 * tallest  # head room above every bar for the names


def _report() -> EvalReport:
    return EvalReport("parent", "child", {}, [
        Row("quality", "lm_loss", "nats", 3.0, 3.2),
        Row("quality", "kl_from_parent", "divergence", 0.0, 0.25),
        Row("quality", "icl:word_category@4", "higher", 0.8, 0.3, examples=40, chance=0.25),
        Row("speed", "decode_tokens_per_s@1", "higher", 279.0, 400.0, 419.0, 410.0, ratio_name="speedup"),
        Row("memory", "num_params", "size", 100.0, 60.0),
    ])


def test_no_retention_of_a_divergence_and_accuracies_with_interval_and_chance():
    report = _report()
    kl = report.row("kl_from_parent")
    assert kl.ratio_name == "" and math.isnan(kl.ratio) and kl.ratio_cell() == ""
    lines = "\n".join(headline(report))
    assert "kl_from_parent: 0.25 nats" in lines and "retention" not in lines.split("kl_from_parent")[1].split("\n")[0]
    low, high = wilson_interval(0.3, 40)
    assert 0.17 < low < 0.3 < high < 0.46
    assert f"child 0.3 [{low:.4g}, {high:.4g}]" in lines and "chance 0.25" in lines
    md = report.to_markdown()
    assert "| chance |" in md and "| 0.25 |" in md


def test_predicted_and_measured_speed_disagreeing_is_flagged():
    warnings = prediction_warnings(_report())
    assert len(warnings) == 1 and warnings[0].startswith("parent decode_tokens_per_s@1: predicted 419, measured 279")
    assert "+50%" in warnings[0]  # the child's 410 vs 400 is within 10 %


def test_headline_metrics_names_and_values():
    m = headline_metrics(_report())
    assert m["decode_speedup_at_1"] == pytest.approx(400 / 279) and m["params_fraction"] == pytest.approx(0.6)
    assert m["kl_from_parent"] == 0.25 and m["lm_loss_retention"] == pytest.approx(math.exp(-0.2))
    assert m["icl:word_category_at_4_retention"] == pytest.approx(0.375)
