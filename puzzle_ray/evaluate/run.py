"""`evaluate()`: a child against its parent on the same held-out data and inference scenario.

    quality  LM loss and perplexity, next-token top-1 accuracy, KL(parent || child), accuracy on in-context
             classification tasks at 0 and k shots, synthetic in-context episode accuracy; greedy completions
    speed    measured end-to-end prefill time and decode throughput at each of the scenario's batch sizes,
             beside the cost model's prediction when a measured block library is given
    memory   parameters, KV-cache bytes per token, and the scenario's total at each batch size
"""

from __future__ import annotations

import gc
import itertools
import math
from pathlib import Path

import torch

from ..arch.convert import convert_from_hf
from ..arch.stats import dtype_bytes, model_stats
from ..arch.config import load_puzzle_config
from ..distill.batch_source import BatchSource
from ..measure.config import Scenario
from .config import EvalConfig
from .episodes import episode_accuracies, episodes_module
from .quality import compare_quality
from .report import EvalReport, Row

MIB = 2**20


class EvalInputError(ValueError):
    """Models or data that cannot be compared; the message names the file or field."""


def _check_inputs(parent_dir: Path, child_dir: Path, data: BatchSource, config: EvalConfig):
    configs = []
    for role, path in (("parent", parent_dir), ("child", child_dir)):
        if not (path / "config.json").is_file():
            raise EvalInputError(f"{role} {path}: not a model folder (no config.json)")
        if not any(path.glob("*.safetensors")):
            raise EvalInputError(f"{role} {path}: no safetensors weights to evaluate")
        configs.append(load_puzzle_config(path))
    parent, child = configs
    if parent.vocab_size != child.vocab_size:
        raise EvalInputError(f"child {child_dir}: vocab_size={child.vocab_size} but the parent's is "
                             f"{parent.vocab_size} (KL and accuracy compare the same vocabulary)")
    if not callable(getattr(data, "batches", None)):
        raise EvalInputError(f"data: {type(data).__name__} has no batches(...) method")
    episodes = episodes_module()
    if episodes is not None and config.episode_demos and not 2 <= config.episode_classes <= episodes.MAX_CLASSES:
        raise EvalInputError(f"episode_classes={config.episode_classes}: the embedded episodes have 2 to "
                             f"{episodes.MAX_CLASSES} classes")
    first = next(iter(data.batches(1)), None)
    if first is None:
        raise EvalInputError("data: the held-out source yields no batches")
    if first.ndim != 2 or first.shape[1] < 2 or int(first.max()) >= parent.vocab_size or int(first.min()) < 0:
        raise EvalInputError(f"data: expected (B, T >= 2) token ids below {parent.vocab_size}, got shape "
                             f"{tuple(first.shape)} with ids in [{int(first.min())}, {int(first.max())}]")
    return parent, child


def _tokenizer(*folders: Path):
    from transformers import AutoTokenizer

    for folder in folders:
        if (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists():
            return AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    return None


def evaluate(
    parent_dir: str | Path,
    child_dir: str | Path,
    data: BatchSource,
    scenario: Scenario,
    config: EvalConfig | None = None,
    library=None,
    mlflow_run_id: str | None = None,
    out_dir: str | Path | None = None,
) -> EvalReport:
    """Compare `child_dir` with `parent_dir`; save the report in `out_dir` and log it to `mlflow_run_id`.

    `data` is the held-out split (a `BatchSource`); `library` a measured `puzzle_ray.library.record.Library`
    for the cost model's predictions (optional).
    """
    config = config or EvalConfig()
    parent_dir, child_dir = Path(parent_dir), Path(child_dir)
    parent_cfg, child_cfg = _check_inputs(parent_dir, child_dir, data, config)
    report = EvalReport(str(parent_dir), str(child_dir), scenario.model_dump(mode="json"))

    dtype = torch.bfloat16 if config.dtype == "bf16" else torch.float32
    device = "cuda" if config.measure.num_gpus and torch.cuda.is_available() else "cpu"
    same = parent_dir.resolve() == child_dir.resolve()
    parent = convert_from_hf(parent_dir, dtype=dtype).to(device).eval()
    child = parent if same else convert_from_hf(child_dir, dtype=dtype).to(device).eval()
    batches = data.batches(config.batch_size, seed=0, cycle=False)
    if config.max_batches is not None:
        batches = itertools.islice(batches, config.max_batches)
    pq, cq = compare_quality(parent, child, batches, config.chunk_tokens, config.max_batches, same_model=same)
    report.rows += [
        Row("quality", "lm_loss", "nats", pq["lm_loss"], cq["lm_loss"]),
        Row("quality", "perplexity", "lower", _exp(pq["lm_loss"]), _exp(cq["lm_loss"])),
        Row("quality", "top1_accuracy", "higher", pq["top1_accuracy"], cq["top1_accuracy"]),
        Row("quality", "kl_from_parent", "divergence", pq["kl_from_parent"], cq["kl_from_parent"]),
    ]
    tokenizer = _tokenizer(child_dir, parent_dir)
    _icl_rows(report, parent, child, tokenizer, config)
    _episode_rows(report, parent, child, tokenizer, config)
    _completions(report, parent, child, tokenizer, config)
    del parent, child
    gc.collect()

    _memory_rows(report, parent_cfg, child_cfg, scenario)
    predicted = _predictions(report, parent_cfg, child_cfg, scenario, library)
    if config.measure_speed:
        _speed_rows(report, parent_dir, child_dir, scenario, config, predicted)
    else:
        report.notes.append("speed not measured (measure_speed=false)")

    if out_dir is not None:
        report.save(out_dir)
    if mlflow_run_id:
        report.log_to_mlflow(mlflow_run_id)
    return report


def _exp(loss: float) -> float:
    return math.exp(loss) if math.isfinite(loss) and loss < 700 else math.inf


def _icl_rows(report, parent, child, tokenizer, config: EvalConfig) -> None:
    if not config.icl_tasks or not config.icl_shots:
        return
    if tokenizer is None:
        report.notes.append("in-context tasks skipped: neither model folder has a tokenizer")
        return
    from .icl import icl_accuracies

    try:
        acc = icl_accuracies({"parent": parent, "child": child}, tokenizer, config.icl_tasks, config.icl_shots,
                             config.icl_examples, config.icl_seed, config.icl_batch_size)
    except ValueError as e:  # a prompt past the model's positions, a task file that does not load
        report.notes.append(f"in-context tasks skipped: {e}")
        return
    from .icl import load_task

    tasks = {t.name: t for t in (load_task(name, config.icl_seed) for name in config.icl_tasks)}
    for (task, shots), a in acc.items():
        report.rows.append(Row("quality", f"icl:{task}@{shots}", "higher", a["parent"], a["child"],
                               examples=min(len(tasks[task].tests), config.icl_examples),
                               chance=1 / len(tasks[task].labels)))
    for task in tasks.values():
        if len(task.tests) < config.icl_examples:
            report.notes.append(f"icl:{task.name}: {len(task.tests)} test examples (all of them), fewer than "
                                f"icl_examples={config.icl_examples}")


def _completions(report, parent, child, tokenizer, config: EvalConfig) -> None:
    if not config.completion_prompts or tokenizer is None:
        return
    from ..ui import progress
    from .completions import completions

    prompts = config.completion_prompts
    with progress("prompt", transient=True) as bar:
        task = bar.add_task("greedy completions", total=len(prompts))
        for prompt in prompts:
            report.completions += completions(parent, child, tokenizer, [prompt], config.completion_tokens)
            bar.advance(task)


def _episode_rows(report, parent, child, tokenizer, config) -> None:
    if not config.episode_demos:
        return
    if tokenizer is None:
        report.notes.append("in-context episodes skipped: neither model folder has a tokenizer")
        return
    if episodes_module() is None:
        report.notes.append("in-context episodes skipped: puzzle_ray.data.episodes is not available")
        return
    from ..ui import progress

    models = {"parent": parent} if child is parent else {"parent": parent, "child": child}
    accuracies: dict[int, dict[str, float]] = {}
    with progress("episode", transient=True) as bar:  # one step per (demonstration count, model)
        task = bar.add_task("in-context episodes", total=len(config.episode_demos) * len(models) * config.episode_count)
        for demos in config.episode_demos:
            one = config.model_copy(update={"episode_demos": [demos]})
            for name, model in models.items():
                accuracies.setdefault(demos, {}).update(episode_accuracies({name: model}, tokenizer, one)[demos])
                bar.advance(task, config.episode_count)
            accuracies[demos].setdefault("child", accuracies[demos]["parent"])
    for demos, acc in accuracies.items():
        report.rows.append(Row("quality", f"episode_accuracy@{demos}", "higher", acc["parent"], acc["child"],
                               examples=config.episode_count, chance=1 / config.episode_classes))


def _memory_rows(report, parent_cfg, child_cfg, scenario: Scenario) -> None:
    ps, cs = model_stats(parent_cfg, scenario.dtype), model_stats(child_cfg, scenario.dtype)
    report.rows += [
        Row("memory", "num_params", "size", ps.num_params, cs.num_params),
        Row("memory", f"kv_bytes_per_token ({scenario.dtype})", "size", ps.kv_bytes_per_token, cs.kv_bytes_per_token),
    ]
    weight_bytes = dtype_bytes(scenario.dtype)
    for batch in scenario.batch_sizes:
        tokens = batch * scenario.total_len

        def mib(s) -> float:
            return (s.num_params * weight_bytes + tokens * s.kv_bytes_per_token) / MIB

        report.rows.append(Row("memory", f"memory_mib@{batch}", "size", mib(ps), mib(cs)))


def _predictions(report, parent_cfg, child_cfg, scenario, library) -> dict | None:
    if library is None:
        report.notes.append("no measured block library given: no cost-model predictions")
        return None
    from ..library.record import LibraryError
    from ..measure.cost_model import predict_model_costs

    out = {}
    for role, cfg in (("parent", parent_cfg), ("child", child_cfg)):
        try:
            out[role] = predict_model_costs(cfg, library, scenario)
        except LibraryError as e:
            report.notes.append(f"no cost-model prediction for the {role}: {e}")
            out[role] = {}
    for row in report.rows:
        if row.metric.startswith("memory_mib@"):
            batch = int(row.metric.split("@")[1])
            row.predicted_parent = _pred(out, "parent", batch, "memory_mib")
            row.predicted_child = _pred(out, "child", batch, "memory_mib")
    return out


def _pred(predicted: dict | None, role: str, batch: int, attr: str) -> float | None:
    if not predicted or batch not in predicted.get(role, {}):
        return None
    costs = predicted[role][batch]
    value = getattr(costs, attr)
    return value if costs.fits and math.isfinite(value) else None


def _speed_rows(report, parent_dir, child_dir, scenario, config: EvalConfig, predicted) -> None:
    from ..measure.cost_model import load_model_for_timing, measure_models_costs
    from ..ui import progress

    # Parent and child are timed in shared rounds (one request of each per round): the speed-up is their
    # ratio, and a change of the machine's speed during the timing then moves both alike.
    measured: dict[str, dict] = {"parent": {}, "child": {}}
    batches = scenario.batch_sizes
    device = "cuda" if torch.cuda.is_available() else "cpu"
    models = {role: load_model_for_timing(folder, scenario, device, config.measure.seed)
              for role, folder in (("parent", parent_dir), ("child", child_dir))}
    with progress("batch size", transient=True) as bar:
        task = bar.add_task("timing prefill and decode end to end, parent and child", total=len(batches))
        for batch in batches:
            one = scenario.model_copy(update={"batch_sizes": [batch]})
            for role, costs in measure_models_costs(models, one, config.measure, device).items():
                measured[role].update(costs)
            bar.advance(task)
    del models
    gc.collect()
    for batch in scenario.batch_sizes:
        p, c = measured["parent"][batch], measured["child"][batch]
        if not (p.fits and c.fits):
            report.notes.append(f"batch {batch}: does not fit the device's memory, not timed")
        report.rows += [
            Row("speed", f"prefill_ms@{batch}", "time", p.prefill_ms, c.prefill_ms,
                _pred(predicted, "parent", batch, "prefill_ms"), _pred(predicted, "child", batch, "prefill_ms")),
            Row("speed", f"decode_tokens_per_s@{batch}", "higher", p.decode_tokens_per_s, c.decode_tokens_per_s,
                _pred(predicted, "parent", batch, "decode_tokens_per_s"),
                _pred(predicted, "child", batch, "decode_tokens_per_s"), ratio_name="speedup"),
        ]
