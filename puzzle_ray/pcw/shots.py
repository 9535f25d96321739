"""How many shots fit a window, and windows of shots balanced by length.

As the reference: shots per window = floor(room / the 90th percentile of (shot length + separator length)),
so that windows of k shots almost always fit; a draw whose longest window would not leave room for the query
and its label is drawn again. (The reference's room is the context size minus the longest query; we also
reserve the BOS, the query's separator and the label, which the reference only checks after drawing: with
shots of equal length its k never fits.) Windows are balanced greedily (longest shots
first, each to the window with the fewest tokens that still has room), then shuffled inside each window. (The
reference's balancing permutes by `argsort` where it needs ranks, so with three or more windows it can give the
longest shot to the longest window; this does not.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def shots_per_window(shot_lengths: Sequence[int], separator_len: int, reserved: int, context_size: int) -> int:
    """Shots of 90th-percentile length (plus a separator each) that fit `context_size` tokens beside `reserved`
    ones (the reference reserves the longest query); 0 if none."""
    if not shot_lengths:
        raise ValueError("no shots to measure")
    room = context_size - reserved
    per_shot = float(np.quantile(np.asarray(shot_lengths) + separator_len, 0.9))
    return max(0, int(math.floor(room / per_shot)))


def balance_windows(lengths: Sequence[int], num_windows: int, rng: np.random.Generator) -> list[list[int]]:
    """Split shot indices 0..n-1 (n = num_windows * k) into `num_windows` windows of k shots each, with total
    lengths as equal as a greedy longest-first assignment makes them; shot order inside a window is shuffled."""
    n = len(lengths)
    if num_windows < 1 or n % num_windows:
        raise ValueError(f"{n} shots do not split into {num_windows} windows of equal size")
    per_window = n // num_windows
    windows: list[list[int]] = [[] for _ in range(num_windows)]
    totals = [0] * num_windows
    for i in sorted(range(n), key=lambda i: -lengths[i]):
        open_windows = [w for w in range(num_windows) if len(windows[w]) < per_window]
        w = min(open_windows, key=lambda w: (totals[w], w))
        windows[w].append(i)
        totals[w] += lengths[i]
    for w in windows:
        rng.shuffle(w)
    return windows
