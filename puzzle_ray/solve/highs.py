"""HiGHS process-level details: its stdout banner, and checking option names before any solve."""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import Any


@cache
def quiet_highs_banner() -> None:
    """HiGHS prints a licence banner on stdout (the C file descriptor) the first time a `Highs` object is built in
    a process. Build that first one with stdout pointing at /dev/null, so `--json` output stays one JSON object."""
    import highspy

    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def check_highs_option(name: str, value: Any) -> None:
    """Raise ValueError unless HiGHS accepts `name = value` (so a typo fails before the first solve)."""
    import highspy

    quiet_highs_banner()
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    if highs.setOptionValue(name, value) == highspy.HighsStatus.kError:
        raise ValueError(f"highs_options: HiGHS rejects {name}={value!r} (unknown option or wrong type)")
