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
