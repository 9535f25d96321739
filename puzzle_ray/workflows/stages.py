"""The Puzzle job graph: each stage a plain function of its config slice and its inputs' outputs.

    parent ─> measure ─> check ─┐
       └──> library ─> score ───┴─> solve ─> realize ─> distill ─> evaluate ─> publish

`parent` also tokenises the data once (every later stage and Ray worker reads the same token cache).
`measure` and `check` come before the library: block runtimes depend on shapes only, so an unreachable
target is reported (with the search's explanation) before any training starts.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

from ..arch.summary import load_puzzle_config
from ..data import open_token_cache
from ..library.build import BLDData, build_library
from ..library.record import Library
from ..parent.gguf import gguf_identity
from ..store import ArtifactStore
from .config import WorkflowConfig
from .engine import Stage, StageContext


# -- helpers ------------------------------------------------------------------------------------------------
def local_dir(store: ArtifactStore, key: str) -> Path:
    """A local folder for a store folder (in place on a local store)."""
    return store.get_dir(key)


def save_library(store: ArtifactStore, prefix: str, library: Library) -> None:
    store.write_json(f"{prefix}/library_meta.json", library.meta)
    store.write_json(f"{prefix}/block_library.json", library.to_json())


def read_library(store: ArtifactStore, prefix: str) -> Library:
    return Library.from_json(store.read_json(f"{prefix}/block_library.json"), store.read_json(f"{prefix}/library_meta.json"))


def tokens(ctx: StageContext):
    return open_token_cache(ctx.inputs["parent"]["tokens"])


def publish_dir(ctx: StageContext, build) -> Path:
    """Run `build(local_folder)` so that the folder ends at `<prefix>/model` in the store (uploaded if remote)."""
    key = f"{ctx.prefix}/model"
    if ctx.store.is_local:
        target = Path(ctx.store.path(key))
        build(target)
        ctx.store.write_bytes(f"{key}/.complete", b"")
        return target
    tmp = Path(tempfile.mkdtemp(prefix="puzzle-")) / "model"
    build(tmp)
    ctx.store.put_dir(tmp, key)
    return tmp


def _file_stats(path: Path | None) -> list | None:
    """Names, sizes and times of a parent folder's files: a cheap stand-in for its content (None if absent)."""
    if path is None or not Path(path).exists():
        return None
    files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
    return [[str(p.relative_to(path) if Path(path).is_dir() else p.name), p.stat().st_size, int(p.stat().st_mtime)] for p in files]


# -- stages -------------------------------------------------------------------------------------------------
def run_parent(ctx: StageContext) -> dict:
    from ..arch.convert import convert_from_hf
    from ..arch.export import export_pretrained
    from ..data import DataConfig, PythonDocsSource, prepare_tokens
    from ..parent.build import data_config, ensure_embedded_parent
    from ..parent.gguf import ensure_gguf_parent

    cfg: WorkflowConfig = ctx.config
    if cfg.parent.gguf is not None:  # dequantised, converted and verified once, then cached by content
        model_dir = ensure_gguf_parent(cfg.parent.gguf, cfg.cache)
        data = cfg.data or DataConfig(sources=[PythonDocsSource()], cache_dir=cfg.cache)
    elif cfg.parent.path is None:
        model_dir = ensure_embedded_parent(cfg.parent.embedded, cfg.cache)
        data = cfg.data or data_config(cfg.parent.embedded, cfg.cache)
    else:
        source = cfg.parent.path
        load_puzzle_config(source)  # a clear error for a missing folder or an unsupported model type
        if json.loads((source / "config.json").read_text()).get("model_type") == "nemotron-nas":
            model_dir = source
        else:  # a Llama / Qwen2 / Mistral parent: the same model in the nemotron-nas layout
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
            model_dir = publish_dir(ctx, lambda out: export_pretrained(convert_from_hf(source), out, tokenizer=tok, overwrite=True))
        data = cfg.data or DataConfig(sources=[PythonDocsSource()], cache_dir=cfg.cache)
    token_data = prepare_tokens(data, tokenizer=model_dir)
    report = Path(model_dir) / "quality_report.json"
    if report.is_file():  # the embedded parent: show how well it is trained before anything is built on it
        from ..parent.quality import report_tables
        from ..ui import console

        for table in report_tables(json.loads(report.read_text())):
            console.print(table)
    return {
        "model_dir": str(model_dir),
        "tokens": str(token_data.path),
        "train_tokens": token_data.train.num_tokens,
        "validation_tokens": token_data.validation.num_tokens,
        "quality_report": json.loads(report.read_text()) if report.is_file() else None,
    }


def bld_data(ctx: StageContext) -> BLDData:
    cfg: WorkflowConfig = ctx.config
    data, mb = tokens(ctx), cfg.bld.micro_batch_size
    train, val = data.train, data.validation

    def train_batches(start: int):
        return train.batches(mb, token_budget=cfg.bld.token_budget, seed=cfg.bld.seed, cycle=True, start_batch=start)

    return BLDData(
        train=train_batches,
        calibration=lambda: list(itertools.islice(train.batches(mb, seed=cfg.bld.seed + 1, cycle=True), cfg.bld.calibration_batches)),
        validation=lambda: list(itertools.islice(val.batches(mb, shuffle=False, cycle=True), cfg.bld.eval_batches)),
        seq_len=train.seq_len,
        fingerprint=Path(ctx.inputs["parent"]["tokens"]).name,
    )


def run_library(ctx: StageContext) -> dict:
    cfg: WorkflowConfig = ctx.config
    result = build_library(ctx.inputs["parent"]["model_dir"], cfg.search_space, cfg.bld, bld_data(ctx), ctx.store,
                           mlflow_run_id=ctx.mlflow_run_id)
    lib = result.library
    return {"library": result.key, "entries": sum(len(layer) for layer in lib.layers), "reused": result.reused}


def run_score(ctx: StageContext) -> dict:
    from ..score import score_library
    from .figures import log_library_heatmap

    cfg: WorkflowConfig = ctx.config
    from ..library.build import load_library

    library = load_library(ctx.store, ctx.inputs["library"]["library"])
    val = tokens(ctx).validation
    batches = list(itertools.islice(val.batches(cfg.bld.micro_batch_size, shuffle=False, cycle=True), cfg.score.eval_batches))
    scored = score_library(library, batches, cfg.score, ctx.store)
    save_library(ctx.store, ctx.prefix, scored)
    if ctx.mlflow_run_id:
        log_library_heatmap(ctx.mlflow_run_id, scored, "metrics", cfg.score.metrics[0])
    return {"library": ctx.prefix}


def run_measure(ctx: StageContext) -> dict:
    """Costs of every (layer, variant) of the search space. Runtime depends on shapes only, so this needs no
    trained weights and runs before the library: an unreachable target is found before any training."""
    from ..arch.blocks import BlockConfig
    from ..library.space import expand
    from ..measure import measure_library, skeleton_library

    cfg: WorkflowConfig = ctx.config
    parent = load_puzzle_config(ctx.inputs["parent"]["model_dir"])
    blocks = [[BlockConfig(a.config, f.config) for a in layer.attention for f in layer.ffn] for layer in expand(cfg.search_space, parent)]
    measured = measure_library(skeleton_library(parent, blocks), parent, cfg.measure.scenario, cfg.measure.measure, ctx.store)
    save_library(ctx.store, ctx.prefix, measured)
    return {"library": ctx.prefix}


def run_check(ctx: StageContext) -> dict:
    """Can any architecture of the search space meet the constraints? (Costs only; no scores needed yet.)"""
    from ..search import SearchConfig, search

    cfg: WorkflowConfig = ctx.config
    costs_only = SearchConfig(**{**cfg.search.model_dump(), "objective": "stats.num_params", "maximize": False, "num_solutions": 1})
    result = search(read_library(ctx.store, ctx.inputs["measure"]["library"]), costs_only)  # InfeasibleError explains
    return {"feasible": True, "smallest": result.best.costs}


def merged_library(ctx: StageContext) -> Library:
    """Scores from `score`, costs from `measure`: the search's input."""
    scored = read_library(ctx.store, ctx.inputs["score"]["library"])
    measured = read_library(ctx.store, ctx.inputs["measure"]["library"])
    for layer_s, layer_m in zip(scored.layers, measured.layers):
        for name, v in layer_s.items():
            v.stats = {**v.stats, **layer_m[name].stats}
    scored.meta = {**measured.meta, **scored.meta, "non_block": measured.meta.get("non_block")}
    for key in ("scenario", "hardware", "measurement"):
        if key in measured.meta:
            scored.meta[key] = measured.meta[key]
    return scored


def run_solve(ctx: StageContext) -> dict:
    from ..search import search
    from ..search.tracking import log_search
    from .figures import columns, log_architecture, log_frontier_with_choice

    cfg: WorkflowConfig = ctx.config
    library = merged_library(ctx)
    save_library(ctx.store, ctx.prefix, library)
    result = search(library, cfg.search)
    best = result.best
    ctx.store.write_json(f"{ctx.prefix}/solutions.json", result.to_json(library.meta.get("hidden_size")))
    if ctx.mlflow_run_id:
        from mlflow import MlflowClient

        MlflowClient().log_table(ctx.mlflow_run_id, data=columns(library.table()), artifact_file="solve/library_table.json")
        log_search(result, hidden_size=library.meta.get("hidden_size"))
        parent = load_puzzle_config(ctx.inputs["parent"]["model_dir"])
        log_architecture(ctx.mlflow_run_id, parent, best.block_configs)
        if cfg.sweep_points:
            log_frontier_with_choice(ctx.mlflow_run_id, library, cfg.search, best, cfg.sweep_points)
    return {
        "library": ctx.prefix,
        "chosen": list(best.chosen),
        "objective": best.objective,
        "costs": best.costs,
        "batch_size": best.batch_size,
        "status": best.status,
    }


def run_realize(ctx: StageContext) -> dict:
    from ..library.realize import realize

    library = read_library(ctx.store, ctx.inputs["solve"]["library"])
    chosen = ctx.inputs["solve"]["chosen"]
    model_dir = publish_dir(ctx, lambda out: realize(library, chosen, ctx.store, out, overwrite=True))
    return {"model_dir": str(model_dir)}


def run_distill(ctx: StageContext) -> dict:
    from ..distill import distill

    cfg: WorkflowConfig = ctx.config
    parent_dir = ctx.inputs["parent"]["model_dir"]
    out = distill(parent_dir, ctx.inputs["realize"]["model_dir"], tokens(ctx).train, cfg.distill, ctx.store,
                  mlflow_run_id=ctx.mlflow_run_id, tokenizer_dir=parent_dir)
    return {"model_dir": str(out)}


def run_evaluate(ctx: StageContext) -> dict:
    from ..evaluate import evaluate

    cfg: WorkflowConfig = ctx.config
    library = read_library(ctx.store, ctx.inputs["solve"]["library"])
    with tempfile.TemporaryDirectory(prefix="puzzle-eval-") as out_dir:  # the report is kept in the store below
        report = evaluate(ctx.inputs["parent"]["model_dir"], ctx.inputs["distill"]["model_dir"], tokens(ctx).validation,
                          cfg.measure.scenario, cfg.evaluate, library=library, mlflow_run_id=ctx.mlflow_run_id,
                          out_dir=Path(out_dir))
    ctx.store.write_json(f"{ctx.prefix}/eval_report.json", report.to_json())
    ctx.store.write_bytes(f"{ctx.prefix}/eval_report.md", report.to_markdown().encode())
    return {"report": report.to_json()}


def run_publish(ctx: StageContext) -> dict:
    from ..evaluate import publish
    from ..evaluate.report import EvalReport

    cfg: WorkflowConfig = ctx.config
    if not cfg.publish.registered_name:
        return {"published": False}
    report = EvalReport.from_json(ctx.inputs["evaluate"]["report"])
    published = publish(ctx.inputs["distill"]["model_dir"], cfg.publish.registered_name, cfg.publish.alias, report,
                        run_id=ctx.mlflow_run_id)
    return {"published": True, "model_uri": published.model_uri, "version": published.version}


# -- the graph ----------------------------------------------------------------------------------------------
def _dump(x):
    return x.model_dump(mode="json") if hasattr(x, "model_dump") else x


def _parent_slice(c: WorkflowConfig):
    slice_ = {"path": str(c.parent.path) if c.parent.path else None, "files": _file_stats(c.parent.path),
              "embedded": _dump(c.parent.embedded) if c.parent.is_embedded else None, "data": _dump(c.data)}
    if c.parent.gguf is not None:  # how the file is named, and its path, size and mtime: a changed file re-runs
        slice_["gguf"] = gguf_identity(c.parent.gguf)
    return slice_


def _describe_parent(c: WorkflowConfig) -> str:
    if c.parent.gguf is not None:
        return f"GGUF {c.parent.gguf.describe()} (dequantised once, cached)"
    return str(c.parent.path or "embedded default")


def _describe_library(c: WorkflowConfig) -> str:
    att, ffn = len(c.search_space.attention) + 1, len(c.search_space.ffn) + 1
    return f"<= {att} attention x {ffn} FFN variants / layer, {c.bld.token_budget:,} BLD tokens, {c.bld.num_actors} actor(s)"


STAGES = [
    Stage("parent", (), _parent_slice, run_parent,
          lambda c: f"parent {_describe_parent(c)}; tokenise {'the default corpus' if c.data is None else 'data'}"),
    Stage("measure", ("parent",), lambda c: {"space": _dump(c.search_space), "scenario": _dump(c.measure.scenario),
                                             "method": c.measure.measure.method()}, run_measure,
          lambda c: f"time every variant: batches {c.measure.scenario.batch_sizes}, prefill {c.measure.scenario.prefill_len}, "
                    f"decode {c.measure.scenario.decode_len}"),
    Stage("check", ("measure",), lambda c: _dump(c.search), run_check,
          lambda c: f"can any architecture meet: {'; '.join(c.search.constraints) or 'no constraints'}"),
    Stage("library", ("parent",), lambda c: {"space": _dump(c.search_space), "bld": c.bld.result_hash_fields()}, run_library,
          _describe_library),
    Stage("score", ("library",), lambda c: {"score": _dump(c.score), "batch": c.bld.micro_batch_size}, run_score,
          lambda c: f"replace-1-block {'/'.join(c.score.metrics)} on {c.score.eval_batches} batches, {c.score.num_actors} actor(s)"),
    Stage("solve", ("score", "measure"), lambda c: {"search": _dump(c.search), "sweep": c.sweep_points}, run_solve,
          lambda c: f"MIP: {c.search.objective}, {c.search.num_solutions} solution(s)"),
    Stage("realize", ("solve",), lambda c: {}, run_realize, lambda c: "assemble the child from the library"),
    Stage("distill", ("realize", "parent"), lambda c: c.distill.result_hash_fields(), run_distill,
          lambda c: f"GKD {c.distill.engine}, {c.distill.token_budget:,} tokens, {c.distill.num_workers} worker(s)"),
    Stage("evaluate", ("distill", "solve"), lambda c: _dump(c.evaluate) | {"scenario": _dump(c.measure.scenario)}, run_evaluate,
          lambda c: "quality, speed and memory: child vs parent"),
    Stage("publish", ("evaluate",), lambda c: _dump(c.publish), run_publish,
          lambda c: f"register as {c.publish.registered_name}@{c.publish.alias}" if c.publish.registered_name else "not registered"),
]
