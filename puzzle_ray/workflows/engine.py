"""A small, resumable stage-graph runner (Ray Workflows no longer exists in Ray 2.60).

Every stage is a plain function of its config slice and its inputs' outputs. Its key is the content hash of
(stage name, stage version, config slice, input keys), so a stage whose inputs changed gets a new key and
re-runs with everything after it. A finished stage writes `stages/<name>/<key>/record.json` to the
artifact store last; a re-run finds it and skips the stage. An interrupted run therefore resumes where it
stopped (and long stages resume from their own checkpoints inside).

A stage returns its typed output (`workflows.outputs`); the record holds its JSON form, and the runner turns
records back into typed outputs, so a later stage reads `ctx.inputs["parent"].model_dir` whether its input ran
now or in an earlier run.
"""

from __future__ import annotations

import logging
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.table import Table

from ..configs import content_hash
from ..store import ArtifactStore, CorruptRecord
from ..ui import console
from .outputs import StageOutput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: tuple[str, ...]
    config_slice: Callable[[Any], Any]
    """The part of the workflow config this stage's output depends on (JSON-able)."""
    run: Callable[["StageContext"], StageOutput]
    """Does the work; returns what later stages and the summary need (store keys, figures)."""
    output: type[StageOutput]
    """The type `run` returns; its JSON form is the record's `outputs`."""
    describe: Callable[[Any], str] = lambda cfg: ""
    """One line for the plan: what the stage will do and how much work it is (no weights loaded)."""
    version: int = 1
    """Bump when the stage's code changes what it produces."""


@dataclass
class StageContext:
    config: Any
    store: ArtifactStore
    stage: str
    key: str
    inputs: dict[str, StageOutput]
    """Outputs of every stage this one depends on (transitively), by stage name."""
    mlflow_run_id: str | None = None
    """This stage's MLflow run (None without tracking)."""
    workflow_run_id: str | None = None
    """The workflow's parent MLflow run, the one reviewers open (None without tracking)."""

    @property
    def prefix(self) -> str:
        """Store prefix for this stage's outputs."""
        return f"stages/{self.stage}/{self.key}"


@dataclass
class StageStatus:
    stage: Stage
    key: str
    state: str = "pending"  # pending | cached | running | done | failed | skipped
    seconds: float | None = None
    outputs: dict = field(default_factory=dict)
    """The output's JSON form, as in the record (empty until the stage has run)."""
    output: StageOutput | None = None
    """The stage's typed output (None until it has run)."""


class StageFailed(RuntimeError):
    def __init__(self, stage: str, cause: BaseException):
        super().__init__(f"stage '{stage}' failed: {cause}")
        self.stage, self.cause = stage, cause


def stage_keys(stages: list[Stage], config: Any) -> dict[str, str]:
    keys: dict[str, str] = {}
    for s in stages:
        missing = [i for i in s.inputs if i not in keys]
        if missing:
            raise ValueError(f"stage '{s.name}' depends on {missing}, which come later or do not exist")
        keys[s.name] = content_hash(
            {"stage": s.name, "version": s.version, "config": s.config_slice(config),
             "inputs": {i: keys[i] for i in s.inputs}}
        )
    return keys


def record_key(stage: str, key: str) -> str:
    return f"stages/{stage}/{key}/record.json"


class Runner:
    def __init__(self, stages: list[Stage], config: Any, store: ArtifactStore | None):
        """`store` None: plan only (statuses unknown, nothing can run)."""
        self.stages, self.config, self.store = stages, config, store
        self.keys = stage_keys(stages, config)
        self.status = {s.name: StageStatus(s, self.keys[s.name], "pending" if store else "unknown") for s in stages}
        for st in self.status.values():
            if store is not None and store.exists(record_key(st.stage.name, st.key)):
                try:
                    outputs = store.read_json(record_key(st.stage.name, st.key))["outputs"]
                    output = st.stage.output.from_json(outputs)
                except (CorruptRecord, KeyError, TypeError, ValueError) as e:
                    # a damaged record is no record: the stage runs again (and writes a sound one)
                    log.warning("stage %s: its completion record is damaged, so it runs again (%s)",
                                st.stage.name, e)
                    continue
                st.state, st.outputs, st.output = "cached", outputs, output

    def selected(self, only: str | None = None, start: str | None = None, until: str | None = None) -> list[str]:
        names = [s.name for s in self.stages]
        for opt, value in (("--only", only), ("--from", start), ("--until", until)):
            if value is not None and value not in names:
                raise ValueError(f"{opt} {value!r}: no such stage (stages: {', '.join(names)})")
        if only:
            return [only]
        chosen = names[names.index(start) :] if start else names
        if until:  # the stage and what it needs, nothing after it
            needed = set(self._deps(until)) | {until}
            chosen = [n for n in chosen if n in needed]
        return chosen

    def plan_table(self, title: str = "plan") -> Table:
        table = Table(title=title)
        for col in ("#", "stage", "key", "status", "time", "work"):
            table.add_column(col)
        for i, s in enumerate(self.stages):
            st = self.status[s.name]
            style = {"done": "green", "cached": "cyan", "failed": "red", "running": "yellow"}.get(st.state, "")
            secs = f"{st.seconds:.1f} s" if st.seconds is not None else ""
            state = f"[{style}]{st.state}[/]" if style else st.state
            table.add_row(str(i + 1), s.name, st.key[:10], state, secs, s.describe(self.config))
        return table

    def run(self, only: str | None = None, start: str | None = None, until: str | None = None,
            on_stage: Callable[[StageStatus], Any] | None = None,
            stage_context: Callable[[str, str], Any] | None = None,
            workflow_run_id: str | None = None) -> dict[str, StageStatus]:
        """Run the selected stages (skipping finished ones unless forced by --from/--only).

        `stage_context(name, key)` is a context manager around each stage's work that yields its MLflow run id;
        `workflow_run_id` is the parent MLflow run the stages see as `ctx.workflow_run_id`.
        """
        chosen = self.selected(only, start, until)
        forced = set(chosen) if (only or start) else set()
        for s in self.stages:
            st = self.status[s.name]
            if s.name not in chosen:
                if st.state != "cached" and any(s.name in self._deps(c) for c in chosen):
                    raise ValueError(f"stage '{s.name}' has not run yet; run it first (or drop --only/--from)")
                continue
            if st.state == "cached" and s.name not in forced:
                if on_stage:
                    on_stage(st)
                continue
            inputs = {d: self.status[d].output for d in self._deps(s.name)}
            st.state = "running"
            if on_stage:
                on_stage(st)
            started = time.time()
            try:
                with (stage_context(s.name, st.key) if stage_context else nullcontext()) as run_id:
                    ctx = StageContext(self.config, self.store, s.name, st.key, inputs, run_id, workflow_run_id)
                    output = s.run(ctx)
                if not isinstance(output, s.output):
                    raise TypeError(f"stage '{s.name}' returned {type(output).__name__}, not {s.output.__name__}")
            except BaseException as e:  # noqa: BLE001 - recorded, then re-raised
                st.state, st.seconds = "failed", time.time() - started
                if on_stage:
                    on_stage(st)
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                raise StageFailed(s.name, e) from e
            st.seconds, st.output, st.outputs, st.state = time.time() - started, output, output.to_json(), "done"
            self.store.write_json(
                record_key(s.name, st.key),
                {"outputs": st.outputs, "config": s.config_slice(self.config),
                 "inputs": {i: self.keys[i] for i in s.inputs},
                 "started": started, "seconds": st.seconds},
            )
            if on_stage:
                on_stage(st)
        return self.status

    def _deps(self, name: str) -> list[str]:
        """Every stage `name` depends on, transitively, in plan order."""
        by_name = {s.name: s for s in self.stages}
        seen: set[str] = set()
        todo = list(by_name[name].inputs)
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                todo.extend(by_name[d].inputs)
        return [s.name for s in self.stages if s.name in seen]


def format_exception(e: BaseException) -> str:
    """The innermost message of a chained failure (Ray wraps worker exceptions)."""
    while isinstance(e, StageFailed):
        e = e.cause
    cause = getattr(e, "cause", None)
    if cause is not None and cause is not e:
        return format_exception(cause)
    return "".join(traceback.format_exception_only(type(e), e)).strip()


__all__ = ["Runner", "Stage", "StageContext", "StageFailed", "StageStatus", "console", "format_exception", "stage_keys"]
