"""How a child's figure compares with its parent's, per kind of metric (the `ratio` column of the report).

    higher is better (accuracy, tokens/s):  child / parent                      retention, speedup
    lower is better, in nats (LM loss, KL): exp(parent - child)                 retention
    lower is better, other (perplexity):    parent / child                      retention
    lower is better, time (prefill ms):     parent / child                      speedup
    size (parameters, bytes):               child / parent                      fraction of the parent

For losses in nats a plain ratio would depend on the loss's offset (a loss of 2.0 vs 2.2 is not "91%"); the
exponentiated difference is the parent's perplexity over the child's, i.e. the ratio of the per-token
likelihoods they assign. KL from the parent is 0 for the parent itself, so its retention is exp(-KL).
All kinds give exactly 1.0 when the child is the parent.
"""

from __future__ import annotations

import math
from typing import Literal

Kind = Literal["higher", "nats", "lower", "time", "size"]

RATIO_NAMES = {"higher": "retention", "nats": "retention", "lower": "retention", "time": "speedup", "size": "fraction"}


def ratio(direction: Kind, parent: float, child: float) -> float:
    if any(x is None or not math.isfinite(x) for x in (parent, child)):
        return math.nan
    if direction == "nats":
        return math.exp(parent - child)
    if direction in ("time", "lower"):
        return parent / child if child > 0 else math.nan
    if direction == "higher" and parent == child:
        return 1.0  # also when both are 0
    return child / parent if parent != 0 else math.nan
