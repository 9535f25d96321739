"""Evaluation of a child against its parent: the parent against itself gives retention 1.0 and KL 0; a
perturbed, narrower child loses quality and memory; predictions come from the cost model; one report in JSON,
Markdown and MLflow."""

import json
import math
import time

import pytest
import torch

from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM
from puzzle_ray.arch.export import export_pretrained
from puzzle_ray.arch.stats import model_stats
from puzzle_ray.distill import TensorBatchSource
from puzzle_ray.evaluate import EvalConfig, EvalInputError, EvalReport, evaluate, ratio
from puzzle_ray.measure import MeasureConfig, Scenario, skeleton_library

PARENT = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=64, max_position_embeddings=64, initializer_range=0.3)
SCENARIO = Scenario(batch_sizes=[1, 2], prefill_len=8, decode_len=3, dtype="fp32")
QUICK = EvalConfig(batch_size=4, max_batches=3, chunk_tokens=7, measure_speed=False)


def _data(seed=0, vocab=96):
    return TensorBatchSource(torch.randint(0, vocab, (12, 16), generator=torch.Generator().manual_seed(seed)))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The parent, and a child with a narrower FFN in layer 1 and 1 KV head there, weights sliced and perturbed."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    parent = PuzzleForCausalLM(PuzzleConfig(**PARENT)).eval()
    blocks = [b.to_dict(32) for b in parent.config.block_configs]
    blocks[1] = {"attention": {"n_heads_in_group": 4}, "ffn": {"intermediate_size": 32}}
    child = PuzzleForCausalLM(PuzzleConfig(**{**PARENT, "block_configs": blocks})).eval()
    src = parent.state_dict()
    child.load_state_dict({k: src[k][tuple(slice(0, n) for n in v.shape)] + 0.02 * torch.randn(v.shape)
                           for k, v in child.state_dict().items()})
    export_pretrained(parent, root / "parent")
    export_pretrained(child, root / "child")
    return root / "parent", root / "child"


def test_ratio_kinds():
    assert ratio("higher", 0.5, 0.4) == pytest.approx(0.8)
    assert ratio("higher", 0.0, 0.0) == 1.0
    assert ratio("nats", 2.0, 2.1) == pytest.approx(math.exp(-0.1))  # parent perplexity / child perplexity
    assert ratio("nats", 0.0, 0.0) == 1.0
    assert ratio("time", 10.0, 5.0) == 2.0  # speedup
    assert ratio("size", 100, 60) == 0.6
    assert math.isnan(ratio("higher", 0.0, 0.3)) and math.isnan(ratio("time", 1.0, float("nan")))


def test_the_parent_against_itself_has_retention_one_and_kl_zero(models, tmp_path, mlflow_uri):
    import mlflow

    parent_dir, _ = models
    config = QUICK.model_copy(update={"measure_speed": True, "measure": MeasureConfig(warmup=0, repeats=2, threads=1)})
    exp = mlflow.create_experiment(f"eval-{time.time_ns()}", artifact_location=(tmp_path / "mlruns").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        report = evaluate(parent_dir, parent_dir, _data(), SCENARIO, config, mlflow_run_id=run.info.run_id,
                          out_dir=tmp_path / "report")
    for metric in ("lm_loss", "top1_accuracy"):
        assert report.row(metric).ratio == 1.0, metric
    assert report.row("kl_from_parent").child == 0.0
    assert report.row("lm_loss").parent == report.row("lm_loss").child > 0
    for row in report.rows:
        if row.section == "memory":
            assert row.ratio == 1.0
    for batch in SCENARIO.batch_sizes:  # measured end to end (timings of one model twice: noisy, but real)
        prefill, decode = report.row(f"prefill_ms@{batch}"), report.row(f"decode_tokens_per_s@{batch}")
        assert prefill.parent > 0 and prefill.child > 0 and decode.parent > 0 and decode.child > 0
        assert decode.ratio_name == "speedup" and math.isfinite(decode.ratio)
    assert any("episodes" in n for n in report.notes) and any("cost-model" in n for n in report.notes)

    saved = json.loads((tmp_path / "report" / "eval_report.json").read_text())
    assert EvalReport.from_json(saved).to_json() == report.to_json()
    markdown = (tmp_path / "report" / "eval_report.md").read_text()
    assert "| quality | kl_from_parent | 0 | 0 |  |" in markdown and "| quality | lm_loss |" in markdown
    logged = mlflow.MlflowClient().get_run(run.info.run_id).data.metrics
    assert logged["eval/quality/kl_from_parent/child"] == 0.0 and logged["eval/quality/lm_loss/retention"] == 1.0
    assert not any(k.startswith("eval/quality/kl_from_parent/retention") for k in logged)
    assert logged == pytest.approx(report.mlflow_metrics())
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "eval")}
    assert artifacts == {"eval/eval_report.json", "eval/eval_report.md"}


def test_a_narrower_perturbed_child_loses_quality_and_memory(models):
    parent_dir, child_dir = models
    report = evaluate(parent_dir, child_dir, _data(), SCENARIO, QUICK)
    kl, loss = report.row("kl_from_parent"), report.row("lm_loss")
    # a KL from the parent has no meaningful "retention" (the parent's own is 0): the report shows none
    assert kl.parent == 0.0 and kl.child > 0 and kl.kind == "divergence" and math.isnan(kl.ratio)
    assert loss.ratio == pytest.approx(math.exp(loss.parent - loss.child))
    params = report.row("num_params")
    child_stats = model_stats(PuzzleConfig(**{**PARENT}), "fp32")
    assert params.parent == child_stats.num_params and params.child < params.parent
    kv = report.row("kv_bytes_per_token (fp32)")
    assert kv.ratio == pytest.approx(0.75)  # 2 + 1 KV heads instead of 2 + 2
    assert "speed not measured (measure_speed=false)" in report.notes


def test_cost_model_predictions_fill_the_predicted_columns(models):
    parent_dir, child_dir = models
    from puzzle_ray.arch.config import load_puzzle_config

    parent, child = load_puzzle_config(parent_dir), load_puzzle_config(child_dir)
    library = skeleton_library(parent, [parent.block_configs[0], child.block_configs[1]])
    for layer in library.layers:  # known per-variant stats: the prediction is their sum
        for variant in layer.values():
            variant.stats.update(prefill_ms=2.0, decode_ms=0.5, memory_mib=1.0)
    library.meta["scenario"] = SCENARIO.model_dump()
    library.meta["non_block"] = {"prefill_ms": 1.0, "decode_ms": 0.25, "memory_mib": 3.0}
    config = QUICK.model_copy(update={"measure_speed": True, "measure": MeasureConfig(warmup=0, repeats=1, threads=1)})
    report = evaluate(parent_dir, child_dir, _data(), SCENARIO, config, library=library)
    prefill = report.row("prefill_ms@2")
    assert prefill.predicted_parent == prefill.predicted_child == 2 * 2.0 + 1.0
    assert report.row("decode_tokens_per_s@2").predicted_child == pytest.approx(2 * 1e3 / (2 * 0.5 + 0.25))
    assert report.row("memory_mib@1").predicted_child == 2 * 1.0 + 3.0
    assert not any("cost-model" in n for n in report.notes)


def test_bad_inputs_are_refused_before_any_model_is_loaded(models, tmp_path):
    parent_dir, _ = models
    export_pretrained(PuzzleForCausalLM(PuzzleConfig(**{**PARENT, "vocab_size": 80})), tmp_path / "other-vocab")
    with pytest.raises(EvalInputError, match="vocab_size=80 but the parent's is 96"):
        evaluate(parent_dir, tmp_path / "other-vocab", _data(), SCENARIO, QUICK)
    with pytest.raises(EvalInputError, match="child .*missing: not a model folder"):
        evaluate(parent_dir, tmp_path / "missing", _data(), SCENARIO, QUICK)
    with pytest.raises(EvalInputError, match="ids in \\[.*\\]"):
        evaluate(parent_dir, parent_dir, _data(vocab=200), SCENARIO, QUICK)
    with pytest.raises(ValueError, match="episode_demos"):
        EvalConfig(episode_demos=[-1])


def test_the_cli_writes_the_report(models, tmp_path):
    from typer.testing import CliRunner

    from puzzle_ray.cli import app

    parent_dir, child_dir = models
    torch.save(_data().tokens, tmp_path / "heldout.pt")
    base = ["evaluate", str(parent_dir), str(child_dir), "--tokens", str(tmp_path / "heldout.pt"), "--no-mlflow"]
    result = CliRunner().invoke(app, base + ["--no-speed", "--batch-sizes", "1,4", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    report = EvalReport.from_json(json.loads((tmp_path / "r" / "eval_report.json").read_text()))
    assert report.row("kl_from_parent").child > 0 and report.row("memory_mib@4").child > 0
    assert report.scenario["batch_sizes"] == [1, 4]
    result = CliRunner().invoke(app, base + ["--prefill-len", "0"])
    assert result.exit_code == 2 and "prefill_len=0 must be a positive number of tokens" in result.output


def test_quality_and_speed_show_progress_per_batch_and_per_batch_size(models, monkeypatch):
    import puzzle_ray.evaluate.quality as quality_module
    from puzzle_ray import ui

    from .test_score import recording_progress

    quality_bars, run_bars = recording_progress(monkeypatch, quality_module), recording_progress(monkeypatch, ui)
    parent_dir, child_dir = models
    config = QUICK.model_copy(update={"measure_speed": True, "measure": MeasureConfig(warmup=0, repeats=1, threads=1)})
    evaluate(parent_dir, child_dir, _data(), SCENARIO, config)
    bars = quality_bars + run_bars
    tasks = {t.description: t for bar in bars for t in bar.tasks}
    quality, speed = tasks["evaluating quality"], tasks["timing prefill and decode end to end, parent and child"]
    assert quality.total == quality.completed == 3
    assert speed.total == speed.completed == len(SCENARIO.batch_sizes)  # parent and child timed together
    assert all(bar.live.transient for bar in bars)  # nothing left on the terminal once evaluated
