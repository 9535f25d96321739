"""Many-shot in-context learning with 1..B parallel windows: accuracy per number of windows over random draws.

For each number of windows b and each draw, b x k shots are drawn from each task's pool, split into b windows
balanced by length, encoded once, and every test query of the task is classified against them
(`{separator}{query}` continues the windows, as the reference). Accuracy = correct / tested over all tasks.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import PCWEvalConfig
from .labels import encode_labels
from .parallel_context import ParallelContextWindows
from .shots import balance_windows, shots_per_window
from .variants import build_variant
from .tasks import (
    SHOT_SEPARATOR,
    ClassificationTask,
    PrefixFormat,
    episode_separator,
    jsonl_task,
    synthetic_episode_tasks,
)

MAX_REDRAWS = 20


@dataclass
class PCWEvalResult:
    shots_per_window: int
    accuracies: dict[int, list[float]] = field(default_factory=dict)
    """Number of windows -> accuracy of each draw."""
    num_tasks: int = 0
    num_tests: int = 0

    def mean(self, windows: int) -> float:
        return statistics.fmean(self.accuracies[windows])

    def std(self, windows: int) -> float:
        acc = self.accuracies[windows]
        return statistics.stdev(acc) if len(acc) > 1 else 0.0

    def to_dict(self) -> dict:
        return {
            "shots_per_window": self.shots_per_window,
            "num_tasks": self.num_tasks,
            "num_tests": self.num_tests,
            "windows": {
                str(b): {"mean": self.mean(b), "std": self.std(b), "draws": acc} for b, acc in self.accuracies.items()
            },
        }


@dataclass(frozen=True)
class _Measured:
    """A task's texts and token counts, computed once."""

    task: ClassificationTask
    shots: tuple[str, ...]
    shot_lengths: tuple[int, ...]
    queries: tuple[str, ...]
    longest_query: int
    """Tokens of the longest `{separator}{query}`."""
    longest_label: int


def _count(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def measure_task(task: ClassificationTask, tokenizer, separator: str) -> _Measured:
    shots = tuple(task.format.demo(e.text, e.label) for e in task.pool)
    queries = tuple(separator + task.format.query(e.text) for e in task.tests)
    return _Measured(
        task=task,
        shots=shots,
        shot_lengths=tuple(_count(tokenizer, s) for s in shots),
        queries=queries,
        longest_query=max(_count(tokenizer, q) for q in queries),
        longest_label=max(len(ids) for ids in encode_labels(task.labels, tokenizer)),
    )


def fitting_shots(measured: Sequence[_Measured], tokenizer, context_size: int, separator: str) -> int:
    """Shots per window that fit `context_size`, sized on the 90th percentile of shot lengths as the reference
    does, but leaving room for what the reference only checks afterwards: the BOS, the separator before the
    query, the longest query and its label (draws that still turn out too long are drawn again)."""
    lengths = [n for m in measured for n in m.shot_lengths]
    sep = _count(tokenizer, separator)
    # k shots take about k * p90(shot + sep) - sep tokens, plus a BOS.
    reserved = 1 - sep + max(m.longest_query + m.longest_label for m in measured)
    return shots_per_window(lengths, sep, reserved, context_size)


def draw_windows(m: _Measured, windows: int, k: int, rng, pcw, context_size: int, separator: str) -> list[str]:
    """b windows of k shots that fit the context beside the longest query (redrawn if too long, as the reference)."""
    for _ in range(MAX_REDRAWS):
        picked = rng.choice(len(m.shots), size=windows * k, replace=False)
        groups = balance_windows([m.shot_lengths[i] for i in picked], windows, rng)
        texts = [separator.join(m.shots[picked[i]] for i in g) for g in groups]
        longest = max(len(pcw.window_ids(t)) for t in texts)
        if longest + m.longest_query + m.longest_label <= context_size:
            return texts
    raise ValueError(
        f"task {m.task.name!r}: {MAX_REDRAWS} draws of {k} shots per window were all too long for "
        f"context_size={context_size}; lower shots_per_window"
    )


def evaluate_tasks(
    pcw: ParallelContextWindows,
    tasks: Sequence[ClassificationTask],
    num_windows: Sequence[int],
    draws: int,
    k: int | None = None,
    context_size: int | None = None,
    method: str = "greedy",
    batch_size: int = 16,
    seed: int = 42,
    separator: str = SHOT_SEPARATOR,
    progress_description: str = "pcw-eval",
) -> PCWEvalResult:
    """Accuracy of every number of windows over `draws` random draws of shots (see the module docstring)."""
    from puzzle_ray.ui import progress

    tokenizer = pcw.tokenizer
    if tokenizer is None:
        raise ValueError("pcw-eval needs the model's tokenizer")
    context_size = context_size or pcw.adapter.max_positions
    if context_size is None:
        raise ValueError("the model declares no position limit: set context_size")
    measured = [measure_task(t, tokenizer, separator) for t in tasks]
    if k is None:
        k = fitting_shots(measured, tokenizer, context_size, separator)
    if k < 1:
        raise ValueError(f"context_size={context_size}: not even one shot fits beside the longest query")
    for m in measured:
        if len(m.shots) < max(num_windows) * k:
            raise ValueError(
                f"task {m.task.name!r} has {len(m.shots)} demonstrations, fewer than {max(num_windows)} windows "
                f"x {k} shots: lower shots_per_window or num_windows"
            )
    result = PCWEvalResult(shots_per_window=k, num_tasks=len(tasks), num_tests=sum(len(t.tests) for t in tasks))
    with progress("contexts") as bar:
        job = bar.add_task(progress_description, total=len(num_windows) * draws * len(tasks))
        for b in num_windows:
            rng = np.random.default_rng(seed + b * k)  # the reference seeds each shot count: seed + n_shots
            result.accuracies[b] = []
            for _ in range(draws):
                correct = total = 0
                for m in measured:
                    windows = draw_windows(m, b, k, rng, pcw, context_size, separator)
                    context = pcw.encode(windows)
                    predicted = pcw.classify(context, m.queries, m.task.labels, method=method, batch_size=batch_size)
                    correct += sum(p == e.label for p, e in zip(predicted, m.task.tests))
                    total += len(m.task.tests)
                    bar.advance(job)
                result.accuracies[b].append(correct / total)
    return result


def build_tasks(config: PCWEvalConfig, tokenizer=None) -> list[ClassificationTask]:
    """The config's tasks; JSONL files are read and checked here, before any model is loaded."""
    if config.train_path is not None:
        task = jsonl_task(
            config.train_path,
            config.test_path,
            text_field=config.text_field,
            label_field=config.label_field,
            format=PrefixFormat(config.x_prefix, config.y_prefix),
            test_size=config.test_size,
            seed=config.seed,
            count_tokens=(lambda text: _count(tokenizer, text)) if tokenizer is not None else None,
            drop_long_quantile=config.drop_long_quantile,
        )
        return [task]
    demos = config.episode_demos or 4 * config.episode_classes
    return synthetic_episode_tasks(config.episodes, config.episode_classes, demos, config.seed)


def run_pcw_eval(config: PCWEvalConfig) -> PCWEvalResult:
    """The `pcw-eval` stage: load the model, evaluate 1..B windows, log to MLflow, optionally write JSON."""
    from .loading import check_model_dir, load_causal_lm

    check_model_dir(config.model)
    if config.train_path is not None:
        build_tasks(config)  # bad files fail here, before the model loads
    model, tokenizer = load_causal_lm(config.model, config.dtype, config.attn_implementation, config.device)
    pcw = build_variant(config.variant, model, tokenizer, alignment=config.alignment, add_bos=config.add_bos,
                        beta=config.nbce_beta, pooling=config.nbce_pooling)
    tasks = build_tasks(config, tokenizer)
    separator = config.separator if config.separator is not None else (
        episode_separator() if config.episodes else SHOT_SEPARATOR
    )
    k = config.shots_per_window
    if config.episodes and config.episode_demos is None:
        # Size each episode's pool to what the largest number of windows needs: measure the shots that fit on
        # probe episodes, then build the episodes again (same seed) with that many demonstrations.
        if k is None:
            measured = [measure_task(t, tokenizer, separator) for t in tasks]
            k = fitting_shots(measured, tokenizer, config.context_size or pcw.adapter.max_positions, separator)
        if k >= 1:
            tasks = synthetic_episode_tasks(
                config.episodes, config.episode_classes, max(config.num_windows) * k, config.seed
            )
    result = evaluate_tasks(
        pcw,
        tasks,
        config.num_windows,
        config.draws,
        k=k,
        context_size=config.context_size,
        method=config.method,
        batch_size=config.batch_size,
        seed=config.seed,
        separator=separator,
    )
    if config.log_mlflow:
        log_to_mlflow(config, result)
    if config.output:
        write_json_atomically(Path(config.output), result.to_dict())
    return result


def log_to_mlflow(config: PCWEvalConfig, result: PCWEvalResult) -> str:
    """One run (nested under an active one): config as parameters, accuracy per windows, the result as JSON."""
    import mlflow

    uri = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(config.experiment)
    data = "episodes" if config.episodes else Path(config.train_path).stem
    name = config.run_name or f"pcw-{Path(config.model).name}-{data}"
    if config.run_name is None and config.variant != "pcw":
        name += f"-{config.variant}"
    with mlflow.start_run(run_name=name, nested=mlflow.active_run() is not None) as run:
        params = {k: v for k, v in config.model_dump(mode="json").items() if v is not None}
        params["num_windows"] = ",".join(map(str, config.num_windows))
        mlflow.log_params({**params, "shots_per_window_used": result.shots_per_window})
        for b, acc in result.accuracies.items():
            mlflow.log_metric(f"accuracy_mean_{b}w", result.mean(b))
            mlflow.log_metric(f"accuracy_std_{b}w", result.std(b))
            for draw, a in enumerate(acc):
                mlflow.log_metric(f"accuracy_{b}w", a, step=draw)
        mlflow.log_dict(result.to_dict(), "pcw_eval.json")
        return run.info.run_id


def write_json_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
