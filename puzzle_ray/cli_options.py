"""The options that several `puzzle-ray` commands share, defined once so that they are spelled alike everywhere.

Every command module (`puzzle_ray/<package>/cli.py`) takes its shared options from here: an output is `--out`,
MLflow logging is `--mlflow/--no-mlflow` with `--tracking-uri` and `--experiment`, a workflow plan is the
`CONFIG` argument followed by `KEY=VALUE` overrides, a scenario is `--batch-sizes --prefill-len --decode-len
--dtype`, and every boolean is an `--x/--no-x` pair (never an option that takes a value). The
`Annotated` aliases fix name, type and help; the functions return an option whose help a command words itself.

This module imports typer, pathlib and typing only: `puzzle-ray --help` imports it with every command module.
It also holds the command classes (`Group`, `Command`, `QuietCommand`): flags without typer's `<bool>` value
placeholder in help, and other libraries silenced only when a command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand, TyperGroup

# -- the command classes --------------------------------------------------------------------------------------

_quiet = False


def enable_quiet() -> None:
    """Silence other libraries' progress bars and notices in commands that run from now on (`puzzle-ray`'s and
    `python -m puzzle_ray.workflows`' entry points call it; commands invoked in tests leave the process alone)."""
    global _quiet
    _quiet = True


def _no_flag_placeholder(params: list) -> list:
    """Flags take no value, so their help shows none: typer's rich help would print `<bool>` after each one
    (`--overwrite --no-overwrite <bool>`, even `--help <bool>`), as if it took a value."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Group(TyperGroup):
    """The `puzzle-ray` group: its own flags (`--help`) without a value placeholder."""

    def get_params(self, ctx):
        return _no_flag_placeholder(super().get_params(ctx))


class Command(TyperCommand):
    """A `puzzle-ray` command: flags without a value placeholder in its help."""

    def get_params(self, ctx):
        return _no_flag_placeholder(super().get_params(ctx))


class QuietCommand(Command):
    """A command that silences other libraries (`ui.quiet_third_party`) when it runs: that imports transformers
    and torch, so it happens after argument parsing, never for `--help` or a usage error."""

    def invoke(self, ctx):
        if _quiet:
            from .ui import quiet_third_party

            quiet_third_party()
        return super().invoke(ctx)


# -- outputs and inputs ---------------------------------------------------------------------------------------


def out_option(help: str):
    """`--out`: where a command writes its result (a folder, or a file where the command says so)."""
    return typer.Option("--out", help=help)


def store_option(help: str = "artifact store (folder or fsspec URL)"):
    """`--store`: an artifact store, a local folder or an fsspec URL."""
    return typer.Option("--store", help=help)


def config_option(help: str):
    """`--config`: a YAML/JSON file of the command's config fields (a stage command; `run` takes a plan)."""
    return typer.Option("--config", help=help)


CacheDir = Annotated[
    Optional[Path], typer.Option("--cache-dir", help="cache root (overrides the config's; default $PUZZLE_RAY_CACHE or "
                                         "~/.cache/puzzle-ray)")
]
TokensFile = Annotated[Path, typer.Option("--tokens", help="(N, T) token ids: .npy, .safetensors or .pt")]
TokenBudget = Annotated[Optional[int], typer.Option("--token-budget", help="training tokens (overrides the config's)")]
Overwrite = Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="replace an existing output folder")]
JsonOutput = Annotated[bool, typer.Option("--json/--no-json", help="print one JSON object instead of tables")]

# -- a workflow plan ------------------------------------------------------------------------------------------

WorkflowFile = Annotated[Path, typer.Argument(help="a workflow YAML (workflows/*.yaml)", show_default=False)]
Overrides = Annotated[
    Optional[list[str]],
    typer.Argument(
        metavar="[KEY=VALUE]...",
        help="override fields of the plan, e.g. bld.token_budget=49152 or search.constraints='[throughput>=2*parent]'"
        " (values are YAML; validated like the file)",
        show_default=False,
    ),
]

# -- MLflow ---------------------------------------------------------------------------------------------------

Mlflow = Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="log to MLflow (see --tracking-uri)")]
TrackingUri = Annotated[
    Optional[str],
    typer.Option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default)"),
]


def experiment_option(default: str | None):
    """`--experiment`: the MLflow experiment of a new run."""
    return typer.Option("--experiment", help=f"MLflow experiment (default: {default})" if default else
                        "MLflow experiment")


def use_tracking_uri(uri: str | None) -> None:
    """Point MLflow in this process, and in the Ray workers it starts, at `uri` (None: leave it as it is)."""
    if uri:
        os.environ["MLFLOW_TRACKING_URI"] = uri
        import mlflow

        mlflow.set_tracking_uri(uri)


# -- the inference scenario (measure, measure-model, evaluate) --------------------------------------------------

BatchSizes = Annotated[Optional[str], typer.Option("--batch-sizes", help="comma-separated, e.g. 1,8,32")]
PrefillLen = Annotated[Optional[int], typer.Option("--prefill-len", help="prompt tokens per request")]
DecodeLen = Annotated[Optional[int], typer.Option("--decode-len", help="generated tokens per request")]
ScenarioDtype = Annotated[Optional[str], typer.Option("--dtype", help="fp32, bf16 or fp16")]


def batch_sizes(text: str | None) -> list[int] | None:
    """`--batch-sizes 1,8,32` as [1, 8, 32] (None when not given)."""
    if text is None:
        return None
    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--batch-sizes {text!r}: give comma-separated integers, e.g. 1,8,32") from None
