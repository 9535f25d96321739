"""`puzzle-ray score`: the workflow's replace-1-block scoring stage (and the stages it needs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def score(config: Annotated[Path, typer.Argument(help="a workflow YAML (workflows/*.yaml)")]) -> None:
    """Score every library entry by replace-1-block, KL from the parent (and the stages it needs)."""
    from ..workflows.cli import run_until

    run_until(config, "score")


def register(app: typer.Typer) -> None:
    app.command(name="score")(score)
