"""A tiny embedded parent: trains, checkpoints, resumes to the same weights, exports, reports, and is reused."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from puzzle_ray.data import DataError, EmbeddedSource
from puzzle_ray.parent import (
    EmbeddedParentConfig,
    ParentModelConfig,
    PretrainConfig,
    QualityReportConfig,
    TokenizerTrainingConfig,
    ensure_embedded_parent,
    parent_dir,
    pretrain,
)
from puzzle_ray.parent import build as build_module

TINY = dict(
    corpus=EmbeddedSource(max_files=4, classification_episodes=120, recall_episodes=60, max_demos=16),
    seq_len=64,
    validation_fraction=0.2,
    tokenizer=TokenizerTrainingConfig(vocab_size=512),
    model=ParentModelConfig(hidden_size=32, num_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            intermediate_size=64, max_position_embeddings=128),
    train=PretrainConfig(token_budget=24 * 4 * 64, batch_size=4, warmup_steps=3, eval_every=8, eval_tokens=512,
                         checkpoint_every=8, precision="fp32"),
    report=QualityReportConfig(eval_tokens=1024, episodes=6, num_classes=4, demo_counts=[0, 4], recall_pairs=[2]),
)


def tiny_config(**overrides) -> EmbeddedParentConfig:
    return EmbeddedParentConfig(**{**TINY, **overrides})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One interrupted run (stopped after 10 of 24 steps), then the call that resumes and finishes it."""
    cache = tmp_path_factory.mktemp("parent-cache")
    cfg = tiny_config()
    interrupted = pretrain(cfg, cache, show_progress=False, max_steps=10)
    metrics = []
    finished = pretrain(cfg, cache, show_progress=False, on_metrics=lambda m, step: metrics.append((step, m)))
    return cache, cfg, interrupted, finished, metrics


def test_interrupted_run_leaves_a_checkpoint_and_no_model(built):
    cache, cfg, interrupted, _, _ = built
    assert interrupted.path is None and interrupted.summary["steps"] == 10 and not interrupted.summary["complete"]


def test_resumed_run_equals_an_uninterrupted_one(built, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    _, cfg, _, finished, metrics = built
    assert finished.summary["steps"] == finished.summary["total_steps"] == 24 and finished.summary["complete"]
    assert min(step for step, _ in metrics) > 10  # the resumed call logged only steps after the checkpoint
    # Two concurrent callers on a fresh cache: one trains straight through, the other waits and reuses it.
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: pretrain(cfg, tmp_path, show_progress=False), range(2)))
    assert sorted(r.reused for r in results) == [False, True] and results[0].path == results[1].path
    straight = next(r for r in results if not r.reused)
    a = load_file(finished.path / "model.safetensors")
    b = load_file(straight.path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [h["val_loss"] for h in straight.summary["history"] if "val_loss" in h]
    assert losses[-1] < losses[0]  # it learns


def test_export_loads_with_auto_classes(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer


    _, cfg, _, finished, _ = built
    folder = finished.path
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "nemotron-nas" and len(config["block_configs"]) == 2
    assert config["block_configs"][0]["attention"]["n_heads_in_group"] == 2  # 4 query heads / 2 KV heads
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=False)
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    assert len(tok) == model.config.vocab_size == 512
    assert tok("def f():")["input_ids"][0] == tok.bos_token_id == model.config.bos_token_id
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).startswith("<|user|>")
    record = json.loads((folder / "pretrain.json").read_text())
    assert len(record["corpus_files"]) == 4 and record["summary"]["precision"] == "fp32"


def test_quality_report(built):
    _, _, _, finished, _ = built
    report = json.loads((finished.path / "quality_report.json").read_text())
    assert report == finished.report
    text = report["heldout_text"]
    assert 0 < text["unigram_top1"] < 1 and 0 <= text["top1"] <= 1 and text["tokens"] > 0
    assert text["loss"] < text["unigram_loss"] + 2  # a few steps already approach the unigram baseline
    cls = report["episodes"]["classification"]
    assert set(cls["accuracy_by_demos"]) == {"0", "4"} and cls["chance"] == 0.25
    assert set(report["episodes"]["recall"]["accuracy_by_pairs"]) == {"2"}


def test_report_tables_order_counts_numerically(built):
    from puzzle_ray.parent.quality import report_tables

    report = json.loads(built[3].path.joinpath("quality_report.json").read_text())
    cls = report["episodes"]["classification"]
    cls["accuracy_by_demos"] = {"16": 0.5, "32": 0.6, "4": 0.3, "0": 0.25}  # as saved: keys sorted as strings
    _, episodes = report_tables(report)
    assert list(episodes.columns[1].cells)[:4] == ["0 demos", "4 demos", "16 demos", "32 demos"]


def test_second_call_is_reused_without_training(built, monkeypatch):
    cache, cfg, _, finished, _ = built

    def no_training(*a, **k):
        raise AssertionError("the cached parent should have been reused")

    monkeypatch.setattr(build_module, "pretrain_model", no_training)
    again = pretrain(cfg, cache, show_progress=False)
    assert again.reused and again.path == finished.path and again.seconds < 1.0
    assert ensure_embedded_parent(cfg, cache) == finished.path
    # A new report setting re-runs the report only, on the saved model.
    changed = cfg.model_copy(update={"report": cfg.report.model_copy(update={"recall_pairs": [3]})})
    assert parent_dir(changed, cache) == finished.path
    result = pretrain(changed, cache, show_progress=False)
    assert result.reused and set(result.report["episodes"]["recall"]["accuracy_by_pairs"]) == {"3"}
    assert json.loads((finished.path / "quality_report.json").read_text())["config"]["recall_pairs"] == [3]


def test_key_depends_on_training_and_model_but_not_report():
    base = tiny_config()
    assert parent_dir(base, "c") != parent_dir(tiny_config(train=TINY["train"].model_copy(update={"lr": 1e-3})), "c")
    assert parent_dir(base, "c") != parent_dir(tiny_config(model=TINY["model"].model_copy(update={"num_layers": 3})),
                                               "c")
    assert parent_dir(base, "c") == parent_dir(tiny_config(report=QualityReportConfig()), "c")


def test_budget_larger_than_the_corpus_fails_before_training(built, monkeypatch):
    cache, _, _, _, _ = built
    monkeypatch.setattr(build_module, "pretrain_model", lambda *a, **k: pytest.fail("trained"))
    cfg = tiny_config(train=TINY["train"].model_copy(update={"token_budget": 10**8}))
    with pytest.raises(DataError, match="token_budget=100,000,000 exceeds the corpus"):
        pretrain(cfg, cache, show_progress=False)


def test_config_errors_name_the_field():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="num_key_value_heads=3 must divide num_attention_heads=8"):
        ParentModelConfig(num_key_value_heads=3)
    with pytest.raises(ValidationError, match="seq_len=2048 exceeds model.max_position_embeddings=1024"):
        EmbeddedParentConfig(seq_len=2048)
    with pytest.raises(ValidationError, match="Extra inputs"):
        EmbeddedParentConfig(train={"steps": 3})


def test_default_config_is_sized_for_the_demo():
    from puzzle_ray.arch.stats import model_stats
    from puzzle_ray.parent.model import parent_puzzle_config

    cfg = EmbeddedParentConfig()
    tok = type("Tok", (), {"__len__": lambda self: cfg.tokenizer.vocab_size, "bos_token_id": 0, "eos_token_id": 1,
                           "pad_token_id": 2})()
    pc = parent_puzzle_config(cfg.model, tok)
    stats = model_stats(pc, "bfloat16")
    lm_head = cfg.tokenizer.vocab_size * cfg.model.hidden_size  # the embedding is a lookup: no compute
    assert stats.block_params > 4 * lm_head  # transformer blocks dominate the compute
    assert cfg.model.intermediate_size % 256 == 0  # the engines' ffn_mult rounding reproduces it


def test_cli_pretrain_reuses_the_cached_parent(built, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from puzzle_ray.cli import app

    cache, cfg, _, finished, _ = built
    (tmp_path / "parent.yaml").write_text(yaml.safe_dump({"parent": cfg.model_dump(mode="json")}))
    result = CliRunner().invoke(app, ["pretrain", "--config", str(tmp_path / "parent.yaml"), "--cache-dir", str(cache),
                                      "--out", str(tmp_path / "copy")])
    assert result.exit_code == 0, result.output
    assert "reused" in result.output and "held-out text" in result.output
    assert (tmp_path / "copy" / "quality_report.json").is_file()
    bad = CliRunner().invoke(app, ["pretrain", "--config", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 2 and "missing.yaml: no such file" in bad.output
