"""The Puzzle job graph: each stage a plain function of its config slice and its inputs' outputs.

    parent ─> measure ─> check ─┐
       └──> library ─> score ───┴─> solve ─> realize ─> distill ─> evaluate ─> publish

`parent` also tokenises the data once (every later stage and Ray worker reads the same token cache).
`measure` and `check` come before the library: block runtimes depend on shapes only, so an unreachable
target is reported (with the search's explanation) before any training starts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..arch.config import load_puzzle_config
from ..data import TokenData, open_token_cache
from ..library.build import BLDData, build_library
from ..library.record import Library
from ..parent.gguf import gguf_identity
from .config import WorkflowConfig
from .engine import Stage, StageContext
from .outputs import (
    CheckOutput,
    EvaluateOutput,
    LibraryOutput,
    MeasureOutput,
    ModelOutput,
    ParentOutput,
    PublishOutput,
    ScoreOutput,
    SolveOutput,
)


# -- helpers ------------------------------------------------------------------------------------------------
def tokens(ctx: StageContext) -> TokenData:
    """The token cache the parent stage prepared."""
    parent: ParentOutput = ctx.inputs["parent"]
    return open_token_cache(parent.tokens)


def publish_dir(ctx: StageContext, build) -> Path:
    """Run `build(local_folder)` so that the folder ends at `<prefix>/model` in the store (uploaded if remote)."""
    key = f"{ctx.prefix}/model"
    if ctx.store.is_local:
        target = Path(ctx.store.path(key))
        build(target)
        ctx.store.mark_dir_complete(key, target)
        return target
    tmp = Path(tempfile.mkdtemp(prefix="puzzle-")) / "model"
    build(tmp)
    ctx.store.put_dir(tmp, key)
    return tmp


def _entries(library: Library) -> int:
    return sum(len(layer) for layer in library.layers)


def _file_stats(path: Path | None) -> list | None:
    """Names, sizes and times of a parent folder's files: a cheap stand-in for its content (None if absent)."""
    if path is None or not Path(path).exists():
        return None
    files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
    return [[str(p.relative_to(path) if Path(path).is_dir() else p.name), p.stat().st_size, int(p.stat().st_mtime)]
            for p in files]


# -- stages -------------------------------------------------------------------------------------------------
def run_parent(ctx: StageContext) -> ParentOutput:
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
        else:  # a parent family's HF folder: the same model in the nemotron-nas layout
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
            model_dir = publish_dir(
                ctx, lambda out: export_pretrained(convert_from_hf(source), out, tokenizer=tok, overwrite=True))
        data = cfg.data or DataConfig(sources=[PythonDocsSource()], cache_dir=cfg.cache)
    token_data = prepare_tokens(data, tokenizer=model_dir)
    report = Path(model_dir) / "quality_report.json"
    if report.is_file():  # the embedded parent: show how well it is trained before anything is built on it
        from ..parent.quality import report_tables
        from ..ui import console

        for table in report_tables(json.loads(report.read_text())):
            console.print(table)
    return ParentOutput(
        model_dir=str(model_dir),
        tokens=str(token_data.path),
        train_tokens=token_data.train.num_tokens,
        validation_tokens=token_data.validation.num_tokens,
        quality_report=json.loads(report.read_text()) if report.is_file() else None,
    )


def run_library(ctx: StageContext) -> LibraryOutput:
    cfg: WorkflowConfig = ctx.config
    parent: ParentOutput = ctx.inputs["parent"]
    result = build_library(parent.model_dir, cfg.search_space, cfg.bld, BLDData.from_tokens(tokens(ctx), cfg.bld),
                           ctx.store, mlflow_run_id=ctx.mlflow_run_id)
    return LibraryOutput(library=result.key, entries=_entries(result.library), reused=result.reused)


def run_score(ctx: StageContext) -> ScoreOutput:
    from ..score import score_library, validation_batches
    from .figures import log_library_heatmap

    cfg: WorkflowConfig = ctx.config
    built: LibraryOutput = ctx.inputs["library"]
    library = Library.read(ctx.store, built.library)
    scored = score_library(library, validation_batches(tokens(ctx).validation, cfg.score), cfg.score, ctx.store)
    scored.write(ctx.store, ctx.prefix)
    if ctx.mlflow_run_id:
        log_library_heatmap(ctx.mlflow_run_id, scored, "metrics", cfg.score.metrics[0])
    return ScoreOutput(library=ctx.prefix, entries=_entries(scored))


def run_measure(ctx: StageContext) -> MeasureOutput:
    """Costs of every (layer, variant) of the search space. Runtime depends on shapes only, so this needs no
    trained weights and runs before the library: an unreachable target is found before any training."""
    from ..arch.blocks import BlockConfig
    from ..library.space import expand
    from ..measure import measure_library, skeleton_library

    cfg: WorkflowConfig = ctx.config
    parent = load_puzzle_config(ctx.inputs["parent"].model_dir)
    blocks = [[BlockConfig(a.config, f.config) for a in layer.attention for f in layer.ffn]
              for layer in expand(cfg.search_space, parent)]
    measured = measure_library(skeleton_library(parent, blocks), parent, cfg.measure.scenario, cfg.measure.measure,
                               ctx.store)
    measured.write(ctx.store, ctx.prefix)
    return MeasureOutput(library=ctx.prefix, entries=_entries(measured))


def run_check(ctx: StageContext) -> CheckOutput:
    """Can any architecture of the search space meet the constraints? (Costs only; no scores needed yet.)"""
    from ..solve import SearchConfig, search

    cfg: WorkflowConfig = ctx.config
    costs_only = SearchConfig(**{**cfg.search.model_dump(), "objective": "stats.num_params", "maximize": False,
                                 "num_solutions": 1})
    result = search(Library.read(ctx.store, ctx.inputs["measure"].library), costs_only)  # InfeasibleError explains
    return CheckOutput(feasible=True, smallest=result.best.costs)


def run_solve(ctx: StageContext) -> SolveOutput:
    from ..solve import search
    from ..solve.tracking import log_search
    from .figures import columns, log_architecture, log_frontier_with_choice

    cfg: WorkflowConfig = ctx.config
    scored = Library.read(ctx.store, ctx.inputs["score"].library)
    library = scored.with_costs(Library.read(ctx.store, ctx.inputs["measure"].library))  # the MIP's input
    library.write(ctx.store, ctx.prefix)
    result = search(library, cfg.search)
    best = result.best
    ctx.store.write_json(f"{ctx.prefix}/solutions.json", result.to_json(library.meta.hidden_size))
    if ctx.mlflow_run_id:
        from mlflow import MlflowClient

        MlflowClient().log_table(ctx.mlflow_run_id, data=columns(library.table()),
                                 artifact_file="solve/library_table.json")
        log_search(result, hidden_size=library.meta.hidden_size)
        parent = load_puzzle_config(ctx.inputs["parent"].model_dir)
        log_architecture(ctx.mlflow_run_id, parent, best.block_configs)
        if cfg.sweep_points:
            log_frontier_with_choice(ctx.mlflow_run_id, library, cfg.search, best, cfg.sweep_points)
    return SolveOutput(library=ctx.prefix, chosen=list(best.chosen), objective=best.objective, costs=best.costs,
                       batch_size=best.batch_size, status=best.status)


def run_realize(ctx: StageContext) -> ModelOutput:
    from ..library.realize import realize

    solved: SolveOutput = ctx.inputs["solve"]
    library = Library.read(ctx.store, solved.library)
    cfg: WorkflowConfig = ctx.config
    model_dir = publish_dir(ctx, lambda out: realize(library, solved.chosen, ctx.store, out, overwrite=True,
                                                     search=cfg.search, name=cfg.publish.registered_name))
    return ModelOutput(model_dir=str(model_dir))


def run_distill(ctx: StageContext) -> ModelOutput:
    from ..distill import distill

    cfg: WorkflowConfig = ctx.config
    parent_dir = ctx.inputs["parent"].model_dir
    out = distill(parent_dir, ctx.inputs["realize"].model_dir, tokens(ctx).train, cfg.distill, ctx.store,
                  mlflow_run_id=ctx.mlflow_run_id, tokenizer_dir=parent_dir)
    return ModelOutput(model_dir=str(out))


def run_evaluate(ctx: StageContext) -> EvaluateOutput:
    from ..evaluate import evaluate

    cfg: WorkflowConfig = ctx.config
    library = Library.read(ctx.store, ctx.inputs["solve"].library)
    with tempfile.TemporaryDirectory(prefix="puzzle-eval-") as out_dir:  # the report is kept in the store below
        report = evaluate(ctx.inputs["parent"].model_dir, ctx.inputs["distill"].model_dir, tokens(ctx).validation,
                          cfg.measure.scenario, cfg.evaluate, library=library, mlflow_run_id=ctx.mlflow_run_id,
                          out_dir=Path(out_dir))
    from ..arch.card import refresh_card

    refresh_card(ctx.inputs["distill"].model_dir, report)  # the child's README.md gets its evaluation table
    ctx.store.write_json(f"{ctx.prefix}/eval_report.json", report.to_json())
    ctx.store.write_bytes(f"{ctx.prefix}/eval_report.md", report.to_markdown().encode())
    return EvaluateOutput(report=report.to_json())


def run_publish(ctx: StageContext) -> PublishOutput:
    from ..evaluate import publish

    cfg: WorkflowConfig = ctx.config
    if not cfg.publish.registered_name:
        return PublishOutput(published=False)
    evaluated: EvaluateOutput = ctx.inputs["evaluate"]
    published = publish(ctx.inputs["distill"].model_dir, cfg.publish.registered_name, cfg.publish.alias,
                        evaluated.eval_report, run_id=ctx.mlflow_run_id, source_run_id=ctx.workflow_run_id)
    from ..ui import console

    console.print(f"registered {published.model_uri} (version {published.version})")
    return PublishOutput(published=True, model_uri=published.model_uri, version=published.version)


# -- the graph ----------------------------------------------------------------------------------------------
def _dump(x):
    return x.model_dump(mode="json") if hasattr(x, "model_dump") else x


def _parent_slice(c: WorkflowConfig):
    slice_ = {"path": str(c.parent.path) if c.parent.path else None, "files": _file_stats(c.parent.path),
              "embedded": _dump(c.parent.embedded) if c.parent.is_embedded else None, "data": _dump(c.data)}
    if c.parent.gguf is not None:  # how the file is named, and its path, size and mtime: a changed file re-runs
        slice_["gguf"] = gguf_identity(c.parent.gguf)
    return slice_


def _score_slice(c: WorkflowConfig):
    # The batch size keeps the key it had when scoring used BLD's micro-batch, so finished runs keep their keys.
    return {"score": c.score.model_dump(mode="json", exclude={"batch_size"}), "batch": c.score.batch_size}


def _describe_parent(c: WorkflowConfig) -> str:
    if c.parent.gguf is not None:
        return f"GGUF {c.parent.gguf.describe()} (dequantised once, cached)"
    return str(c.parent.path or "embedded default")


def _describe_library(c: WorkflowConfig) -> str:
    att, ffn = len(c.search_space.attention) + 1, len(c.search_space.ffn) + 1
    return (f"<= {att} attention x {ffn} FFN variants / layer, {c.bld.token_budget:,} BLD tokens, "
            f"{c.bld.num_actors} actor(s)")


def _measure_slice(c: WorkflowConfig):
    return {"space": _dump(c.search_space), "scenario": _dump(c.measure.scenario), "method": c.measure.measure.method()}


def _describe_measure(c: WorkflowConfig) -> str:
    s = c.measure.scenario
    return f"time every variant: batches {s.batch_sizes}, prefill {s.prefill_len}, decode {s.decode_len}"


def _describe_score(c: WorkflowConfig) -> str:
    s = c.score
    metrics = "/".join(s.metrics)
    return f"replace-1-block {metrics} on {s.eval_batches} batches of {s.batch_size}, {s.num_actors} actor(s)"


def _describe_publish(c: WorkflowConfig) -> str:
    p = c.publish
    return f"register as {p.registered_name}@{p.alias}" if p.registered_name else "not registered"


STAGES = [
    Stage("parent", (), _parent_slice, run_parent, ParentOutput,
          lambda c: f"parent {_describe_parent(c)}; tokenise {'the default corpus' if c.data is None else 'data'}"),
    Stage("measure", ("parent",), _measure_slice, run_measure, MeasureOutput, _describe_measure),
    Stage("check", ("measure",), lambda c: _dump(c.search), run_check, CheckOutput,
          lambda c: f"can any architecture meet: {'; '.join(c.search.constraints) or 'no constraints'}"),
    Stage("library", ("parent",), lambda c: {"space": _dump(c.search_space), "bld": c.bld.result_hash_fields()},
          run_library, LibraryOutput, _describe_library),
    Stage("score", ("library",), _score_slice, run_score, ScoreOutput, _describe_score),
    Stage("solve", ("score", "measure"), lambda c: {"search": _dump(c.search), "sweep": c.sweep_points}, run_solve,
          SolveOutput, lambda c: f"MIP: {c.search.objective}, {c.search.num_solutions} solution(s)"),
    Stage("realize", ("solve",), lambda c: {}, run_realize, ModelOutput,
          lambda c: "assemble the child from the library"),
    Stage("distill", ("realize", "parent"), lambda c: c.distill.result_hash_fields(), run_distill, ModelOutput,
          lambda c: f"GKD {c.distill.engine}, {c.distill.token_budget:,} tokens, {c.distill.num_workers} worker(s)"),
    Stage("evaluate", ("distill", "solve"), lambda c: _dump(c.evaluate) | {"scenario": _dump(c.measure.scenario)},
          run_evaluate, EvaluateOutput, lambda c: "quality, speed and memory: child vs parent"),
    Stage("publish", ("evaluate",), lambda c: _dump(c.publish), run_publish, PublishOutput, _describe_publish),
]
