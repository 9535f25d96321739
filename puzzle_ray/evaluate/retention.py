"""How a child's figure compares with its parent's, per kind of metric (the `ratio` column of the report).

    higher is better (accuracy, tokens/s):  child / parent                      retention, speedup
    lower is better, in nats (LM loss):     exp(parent - child)                 retention
    lower is better, other (perplexity):    parent / child                      retention
    lower is better, time (prefill ms):     parent / child                      speedup
    size (parameters, bytes):               child / parent                      fraction of the parent
    divergence (KL from the parent):        none: the parent's own value is 0, so no ratio means anything

For losses in nats a plain ratio would depend on the loss's offset (a loss of 2.0 vs 2.2 is not "91%"); the
exponentiated difference is the parent's perplexity over the child's, i.e. the ratio of the per-token
likelihoods they assign. KL from the parent is 0 for the parent itself by definition: any "retention" of it
(exp(-KL) is one) would read like a quality share it is not, so the report shows the KL alone.
All other kinds give exactly 1.0 when the child is the parent.
"""

from __future__ import annotations

import math
from typing import Literal

Kind = Literal["higher", "nats", "lower", "time", "size", "divergence"]

RATIO_NAMES = {"higher": "retention", "nats": "retention", "lower": "retention", "time": "speedup", "size": "fraction",
               "divergence": ""}


def ratio(direction: Kind, parent: float, child: float) -> float:
    if direction == "divergence" or any(x is None or not math.isfinite(x) for x in (parent, child)):
        return math.nan
    if direction == "nats":
        return math.exp(parent - child)
    if direction in ("time", "lower"):
        return parent / child if child > 0 else math.nan
    if direction == "higher" and parent == child:
        return 1.0  # also when both are 0
    return child / parent if parent != 0 else math.nan


def wilson_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of an accuracy measured on `n` independent examples (it stays inside
    [0, 1] and is sensible at 0 and 1, where the normal approximation is not)."""
    if not n or accuracy is None or not math.isfinite(accuracy):
        return math.nan, math.nan
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)
