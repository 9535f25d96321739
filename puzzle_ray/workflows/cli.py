"""`puzzle-ray run` (and `python -m puzzle_ray.workflows`): run, resume or plan a workflow.

    puzzle-ray run workflows/tiny-cpu.yaml bld.token_budget=49152 --print-config   # the resolved plan, as YAML
    puzzle-ray run workflows/tiny-cpu.yaml bld.token_budget=49152                  # run it

`KEY=VALUE` overrides are validated like the file (`workflows/config.py`): a bad field or value is one error
naming it, exit code 2, and nothing runs. Heavy imports (the config's stage packages, the driver) stay inside
the command, so that `--help` is fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import Overrides, TrackingUri, WorkflowFile, experiment_option

STAGE_HELP = "parent, measure, check, library, score, solve, realize, distill, evaluate, publish"


def run(
    config: WorkflowFile,
    overrides: Overrides = None,
    start: Annotated[Optional[str],
                     typer.Option("--from", help=f"re-run this stage and all after it ({STAGE_HELP})")] = None,
    only: Annotated[Optional[str],
                    typer.Option("--only", help="run just this stage (its inputs must be complete)")] = None,
    until: Annotated[Optional[str],
                     typer.Option("--until", help="run this stage and what it needs, nothing after")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run/--no-dry-run",
                                          help="print the plan and a work estimate; load no weights")] = False,
    print_config: Annotated[bool, typer.Option("--print-config/--no-print-config",
                                               help="print the resolved plan (after overrides) as YAML and exit")
                            ] = False,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[Optional[str], experiment_option("the plan's mlflow.experiment")] = None,
) -> None:
    """Run the whole Puzzle job graph (resuming finished stages) and print the parent-vs-child summary."""
    from ..ui import fail

    if only and (start or until):
        fail("--only cannot be combined with --from or --until")
    cfg = resolve(config, overrides, tracking_uri, experiment)
    if print_config:
        from .config import config_yaml

        print(config_yaml(cfg), end="")
        return

    from ..store import StoreError
    from .config import ConfigError
    from .driver import run_workflow
    from .engine import StageFailed, format_exception

    try:
        run_workflow(cfg, only=only, start=start, until=until, dry_run=dry_run)
    except (ConfigError, StoreError, ValueError, OSError) as e:
        fail(str(e))
    except StageFailed as e:
        fail(f"stage '{e.stage}' failed: {format_exception(e.cause)}", code=1)


def resolve(config: Path, overrides: list[str] | None, tracking_uri: str | None = None,
            experiment: str | None = None):
    """The validated plan with its overrides (`--tracking-uri` / `--experiment` are `mlflow.*` overrides);
    exits with code 2 and one error line naming the field when it does not validate."""
    from ..ui import fail
    from .config import ConfigError, Override, load_config

    items: list = list(overrides or [])
    for key, value in (("tracking_uri", tracking_uri), ("experiment", experiment)):
        if value is not None:
            items.append(Override(f"--{key.replace('_', '-')} {value}", ("mlflow", key), value))
    try:
        return load_config(config, items)
    except ConfigError as e:
        fail(str(e))


def run_until(config: Path, stage: str, overrides: list[str] | None = None) -> None:
    """One stage of a workflow plan and what it needs that has not run yet (the stage packages' commands)."""
    run(config, overrides, start=None, only=None, until=stage, dry_run=False, print_config=False,
        tracking_uri=None, experiment=None)


def register(app: typer.Typer) -> None:
    app.command(name="run")(run)


def main() -> None:
    """`python -m puzzle_ray.workflows CONFIG [KEY=VALUE ...] [--from STAGE] ...`, the Ray job entrypoint."""
    from ..cli_options import QuietCommand, enable_quiet

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    enable_quiet()
    app = typer.Typer(add_completion=False)
    app.command(cls=QuietCommand)(run)
    app()
