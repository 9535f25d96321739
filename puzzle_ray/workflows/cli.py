"""`puzzle-ray run` (and `python -m puzzle_ray.workflows`): run, resume or plan a workflow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..ui import fail

STAGE_HELP = "parent, measure, check, library, score, solve, realize, distill, evaluate, publish"


def run(
    config: Annotated[Path, typer.Argument(help="a workflow YAML (workflows/*.yaml)")],
    start: Annotated[Optional[str],
                     typer.Option("--from", help=f"re-run this stage and all after it ({STAGE_HELP})")] = None,
    only: Annotated[Optional[str],
                    typer.Option("--only", help="run just this stage (its inputs must be complete)")] = None,
    until: Annotated[Optional[str],
                     typer.Option("--until", help="run this stage and what it needs, nothing after")] = None,
    dry_run: Annotated[bool,
                       typer.Option("--dry-run", help="print the plan and a work estimate; load no weights")] = False,
) -> None:
    """Run the whole Puzzle job graph (resuming finished stages) and print the parent-vs-child summary."""
    from ..store import StoreError
    from .config import ConfigError
    from .driver import run_workflow
    from .engine import StageFailed, format_exception

    if only and (start or until):
        fail("--only cannot be combined with --from or --until")
    try:
        run_workflow(config, only=only, start=start, until=until, dry_run=dry_run)
    except (ConfigError, StoreError, ValueError, OSError) as e:
        fail(str(e))
    except StageFailed as e:
        fail(f"stage '{e.stage}' failed: {format_exception(e.cause)}", code=1)


def run_until(config: Path, stage: str) -> None:
    """One stage of a workflow plan and what it needs that has not run yet (the stage packages' commands)."""
    run(config, start=None, only=None, until=stage, dry_run=False)


def register(app: typer.Typer) -> None:
    app.command(name="run")(run)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = typer.Typer(add_completion=False)
    app.command()(run)
    app()
