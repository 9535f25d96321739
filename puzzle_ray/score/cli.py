"""`puzzle-ray score`: the workflow's replace-1-block scoring stage (and the stages it needs)."""

from __future__ import annotations

import typer

from ..cli_options import Overrides, WorkflowFile


def score(config: WorkflowFile, overrides: Overrides = None) -> None:
    """Score every library entry by replace-1-block, KL from the parent (and the stages it needs)."""
    from ..workflows.cli import run_until

    run_until(config, "score", overrides)


def register(app: typer.Typer) -> None:
    app.command(name="score")(score)
