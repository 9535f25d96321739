"""Console output shared by every command: one-line errors, rich progress bars with rates and ETA.

In a terminal the bars are rich's live display. Elsewhere (CI logs, `ray job submit` logs, pipes) rich draws a
bar only once, when it ends, and wraps at 80 columns; there the console is `LOG_WIDTH` wide and every running
bar also prints one plain line every `LOG_EVERY_S` seconds, so long work shows in the log while it runs.
"""

from __future__ import annotations

import os
import sys
import threading

import typer
from rich.console import Console, ConsoleDimensions
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

LOG_WIDTH = 160
"""Columns of the console when it does not write to a terminal (and COLUMNS is not set)."""
LOG_EVERY_S = 30.0
"""Seconds between the plain progress lines of a running bar when the console does not write to a terminal."""


class _Console(Console):
    """rich's Console, `LOG_WIDTH` columns wide when it writes to no terminal (decided at every print, since
    stdout can be redirected after import); COLUMNS, an explicit width, terminals and notebooks are as in rich."""

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        if self._width is None and not self._environ.get("COLUMNS") and self.is_log:
            return ConsoleDimensions(LOG_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)

    @property
    def is_log(self) -> bool:
        """Writing to a file or pipe (not a terminal, not a notebook)."""
        return not self.is_terminal and not self.is_jupyter


def fmt_number(x) -> str:
    """A figure for tables and cards: blank for None, "n/a" for NaN / inf, thousands separators for large
    integers, else 4 significant digits."""
    import math

    if x is None:
        return ""
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a"
    if isinstance(x, int) or (abs(x) >= 1000 and float(x).is_integer()):
        return f"{int(x):,}"
    return f"{x:.4g}"


def make_console(**kwargs) -> Console:
    """A console of the project's kind (wide when not writing to a terminal); kwargs as rich's Console."""
    return _Console(**kwargs)


console = make_console()
err_console = make_console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print one clear error line and exit non-zero (for CLI commands)."""
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


class RateColumn(ProgressColumn):
    """Advances per second in the task's unit (tokens/s, variants/s, ...): the task's `unit` field when it
    has one (`add_task(..., unit="batch")`), else the bar's."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        unit = task.fields.get("unit", self.unit)
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} {unit}/s" if speed else f"- {unit}/s", style="cyan")


class _Progress(Progress):
    """rich's Progress; when its console writes to no terminal, a background thread prints the running
    tasks' rows every `log_every` seconds (rich itself would print nothing until the end)."""

    def __init__(self, *columns, log_every: float = LOG_EVERY_S, **kwargs):
        super().__init__(*columns, **kwargs)
        self.log_every = log_every
        self._log_stop: threading.Event | None = None
        self._log_thread: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        is_log = getattr(self.console, "is_log", not self.console.is_terminal and not self.console.is_jupyter)
        if not self.disable and is_log and self.log_every and self._log_thread is None:
            self._log_stop = threading.Event()
            self._log_thread = threading.Thread(target=self._log_lines, name="progress-log", daemon=True)
            self._log_thread.start()

    def stop(self) -> None:
        if self._log_thread is not None:
            self._log_stop.set()
            self._log_thread.join()
            self._log_thread = None
        super().stop()

    def _log_lines(self) -> None:
        while not self._log_stop.wait(self.log_every):
            running = [t for t in self.tasks if t.visible and t.started and not t.finished]
            if running:
                self.console.print(self.make_tasks_table(running))


def progress(unit: str = "it", transient: bool = False, log_every: float = LOG_EVERY_S) -> Progress:
    """Description, bar, done/total, rate in `unit`/s, elapsed and ETA. Advance tasks in `unit`s (a task may
    name its own: `add_task(description, total=n, unit="batch")`). `transient`: erased from a terminal when
    done (and never printed in full to a log). Not in a terminal, running tasks print a line every `log_every`
    seconds (0: never)."""
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        log_every=log_every,
    )


QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",  # transformers' "Loading weights" / "Writing model shards" bars and notices
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",  # tqdm bars of gguf, datasets and DeepSpeed
    "DS_ACCELERATOR": "cpu",  # only when no GPU: stops DeepSpeed's "Setting accelerator to CPU" warning
    "RAY_USAGE_STATS_ENABLED": "0",  # Ray's usage-stats notice at cluster start
}
MACHINE_ENV = ("DS_ACCELERATOR",)
"""Variables of QUIET_ENV that describe this machine: not passed on to the workers of another cluster."""
QUIET_LOGGERS = ("mlflow", "alembic", "ray", "DeepSpeed", "datasets", "urllib3", "filelock", "httpx",
                 "mlflow.store.db.utils")
"""Loggers set to ERROR. MLflow resets its root logger's level when it is imported (after this runs), so its
noisiest child is named too: "Creating initial MLflow database tables..." on every new SQLite store."""


def quiet_third_party() -> dict[str, str]:
    """Silence other libraries' progress bars and start-up notices in this process; returns the environment
    variables that do the same in Ray workers (our own rich bars and errors are unaffected). Values the user
    set are kept. Cheap: it imports nothing heavy (libraries not imported yet read the variables at import).

    Ray actors and tasks call it first thing too, so that what their runtime environment lacks (e.g. on a
    cluster whose job environment is the user's) is set before they import transformers or DeepSpeed."""
    import logging

    env = dict(QUIET_ENV)
    if _has_gpu():
        env.pop("DS_ACCELERATOR")
    for name, value in env.items():
        if name not in os.environ:
            os.environ[name] = value
            _SET_HERE.add(name)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ONCE_LOGGERS:
        _once(logging.getLogger(name))
    if "transformers" in sys.modules and os.environ.get("TRANSFORMERS_VERBOSITY") == "error":
        try:  # already imported: its verbosity and bars were fixed at import, set them now
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:  # a partial install in tools that import ui only
            pass
    return {name: os.environ[name] for name in env}


ONCE_LOGGERS = ("puzzle_ray.arch.export",)
"""Our loggers whose identical warnings print once per process: every export of one architecture repeats the
same engine warnings (realize exports the child, distill exports it again with the distilled weights)."""


class _OncePerMessage:
    """A logging filter passing each distinct (level, message) once."""

    def __init__(self):
        self.seen: set[tuple[int, str]] = set()

    def filter(self, record) -> bool:
        key = (record.levelno, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _once(logger) -> None:
    if not any(isinstance(f, _OncePerMessage) for f in logger.filters):
        logger.addFilter(_OncePerMessage())


def worker_quiet_env(same_machine: bool = True) -> dict[str, str]:
    """`quiet_third_party()`'s variables for Ray workers; for workers on other machines (`same_machine`
    False) without those that describe this machine, unless the user set them."""
    env = quiet_third_party()
    if not same_machine:
        for name in MACHINE_ENV:
            if name in _SET_HERE:
                env.pop(name, None)
    return env


_SET_HERE: set[str] = set()
"""Variables `quiet_third_party` set itself (the others were the user's)."""


def _has_gpu() -> bool:
    """A CUDA device is usable here (asks torch only when it is imported already; else the device nodes)."""
    if "torch" in sys.modules:
        return sys.modules["torch"].cuda.is_available()
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(name.startswith("nvidia") and name[6:].isdigit() for name in _dev_entries())


def _dev_entries() -> list[str]:
    try:
        return os.listdir("/dev")
    except OSError:
        return []
