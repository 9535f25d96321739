"""Console output shared by every command: one-line errors, rich progress bars with rates and ETA."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print one clear error line and exit non-zero (for CLI commands)."""
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


class RateColumn(ProgressColumn):
    """Advances per second in the task's unit (tokens/s, variants/s, ...)."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} {self.unit}/s" if speed else f"- {self.unit}/s", style="cyan")


def progress(unit: str = "it", transient: bool = False) -> Progress:
    """Description, bar, done/total, rate in `unit`/s, elapsed and ETA. Advance tasks in `unit`s."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",  # transformers' "Loading weights" / "Writing model shards" bars and notices
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",  # tqdm bars of gguf, datasets and DeepSpeed
    "DS_ACCELERATOR": "cpu",  # only when no GPU: stops DeepSpeed's "Setting accelerator to CPU" warning
}


def quiet_third_party() -> dict[str, str]:
    """Silence other libraries' progress bars and start-up notices in this process; returns the environment
    variables that do the same in Ray workers (our own rich bars and errors are unaffected)."""
    import logging
    import os

    env = dict(QUIET_ENV)
    if _has_cuda():
        env.pop("DS_ACCELERATOR")
    for name, value in env.items():
        os.environ.setdefault(name, value)
    for name in ("mlflow", "alembic", "ray", "DeepSpeed", "datasets", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # transformers is a dependency; tolerate a partial install in tools that import ui only
        pass
    return env


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
