"""Reading the token cache: a split is an (N, T) array of packed sequences in memory-mapped shard files.

A `TokenSplit` is a picklable handle holding only its folder's path and its small `split.json`; workers
memory-map the shards themselves, so Ray ships a few hundred bytes and every worker shares the page cache.

Order and sharding: epoch e visits the sequences in the permutation drawn from `(seed, e)` (the same on every
rank); the global stream is epoch 0, then epoch 1, ... and rank r of W takes stream positions r, r + W,
r + 2W, ... So one epoch over all ranks reads every sequence exactly once, and a token budget is a count of
global stream positions (ceil(budget / T) sequences shared by all ranks).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .errors import DataError


class TokenSplit:
    """One split (train or validation) of a token cache, opened from its folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_file = self.path / "split.json"
        if not meta_file.is_file():
            raise DataError(f"{self.path}: not a token-cache split (no split.json)")
        self.meta = json.loads(meta_file.read_text())
        self.name: str = self.meta["name"]
        self.seq_len: int = self.meta["seq_len"]
        self.dtype = np.dtype(self.meta["dtype"])
        counts = [s["sequences"] for s in self.meta["shards"]]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # (num_shards + 1,)
        self._maps: list[np.memmap] | None = None

    def __repr__(self) -> str:
        return f"TokenSplit({str(self.path)!r}, sequences={self.num_sequences}, seq_len={self.seq_len})"

    def __reduce__(self):
        return (TokenSplit, (str(self.path),))  # ship the path; whoever unpickles reopens the memory maps

    @property
    def num_sequences(self) -> int:
        return int(self._offsets[-1])

    @property
    def num_tokens(self) -> int:
        return self.num_sequences * self.seq_len

    def __len__(self) -> int:
        return self.num_sequences

    def _shards(self) -> list[np.memmap]:
        if self._maps is None:
            self._maps = [
                np.memmap(self.path / s["file"], dtype=self.dtype, mode="r", shape=(s["sequences"], self.seq_len))
                for s in self.meta["shards"]
            ]
        return self._maps

    def sequences(self, indices) -> np.ndarray:
        """Rows `indices` as an (n, T) int64 array."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_sequences):
            raise IndexError(f"{self}: index out of range")
        out = np.empty((idx.size, self.seq_len), dtype=np.int64)
        shard_of = np.searchsorted(self._offsets, idx, side="right") - 1
        maps = self._shards()
        for s in np.unique(shard_of):
            rows = np.nonzero(shard_of == s)[0]
            out[rows] = maps[s][idx[rows] - self._offsets[s]]
        return out

    def __getitem__(self, i: int) -> np.ndarray:
        return self.sequences([i])[0]

    def token_counts(self, vocab_size: int | None = None) -> np.ndarray:
        """How often each token id occurs in the split (for unigram baselines), in one pass over the shards."""
        counts = np.zeros(vocab_size or 0, dtype=np.int64)
        for m in self._shards():
            for start in range(0, len(m), 4096):
                c = np.bincount(np.asarray(m[start : start + 4096]).reshape(-1), minlength=len(counts))
                if len(c) > len(counts):
                    counts = np.pad(counts, (0, len(c) - len(counts)))
                counts[: len(c)] += c
        return counts

    # -- batches ------------------------------------------------------------------------------------------
    def _stream_length(self, batch_size, token_budget, world_size, cycle, drop_last) -> int | None:
        """How many global stream positions are read (None: forever)."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if world_size < 1:
            raise ValueError(f"world_size={world_size} must be >= 1")
        if self.num_sequences == 0:
            raise DataError(f"{self}: the split is empty")
        if token_budget is None:
            total = None if cycle else self.num_sequences
        else:
            if token_budget <= 0:
                raise ValueError(f"token_budget={token_budget} must be positive")
            total = math.ceil(token_budget / self.seq_len)
            if total > self.num_sequences and not cycle:
                raise DataError(
                    f"token budget of {token_budget:,} tokens exceeds the {self.num_tokens:,} tokens of the "
                    f"{self.name} split at {self.path}; lower the budget, add data, or allow cycling (cycle=True)"
                )
        if total is not None and drop_last:
            total = total // (world_size * batch_size) * (world_size * batch_size)
        return total

    def num_batches(self, batch_size: int, token_budget: int | None = None, rank: int = 0, world_size: int = 1,
                    cycle: bool = False, drop_last: bool = False) -> int | None:
        """Batches `batches(...)` yields to this rank with the same arguments (None: endless)."""
        total = self._stream_length(batch_size, token_budget, world_size, cycle, drop_last)
        if total is None:
            return None
        mine = max(0, math.ceil((total - rank) / world_size))
        return math.ceil(mine / batch_size)

    def _permutation(self, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
        if not shuffle:
            return np.arange(self.num_sequences)
        return np.random.default_rng([seed, epoch]).permutation(self.num_sequences)

    def batches(
        self,
        batch_size: int,
        token_budget: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        cycle: bool = False,
        shuffle: bool = True,
        drop_last: bool = False,
        start_batch: int = 0,
    ) -> Iterator[torch.Tensor]:
        """(B, T) int64 token batches: this rank's share of ceil(token_budget / T) sequences (one epoch if no
        budget, endless if `cycle` and no budget). A budget above the split's tokens raises `DataError` unless
        `cycle`. `drop_last` trims the stream so that every rank gets the same number of full batches (what
        data-parallel training needs); `start_batch` skips this rank's first batches (resuming)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} is not in [0, world_size={world_size})")
        total = self._stream_length(batch_size, token_budget, world_size, cycle, drop_last)
        n = self.num_sequences
        position = rank + start_batch * batch_size * world_size  # global stream position of the next row
        perm_epoch, perm = -1, None
        while total is None or position < total:
            rows = []
            while len(rows) < batch_size and (total is None or position < total):
                epoch = position // n
                if epoch != perm_epoch:
                    perm_epoch, perm = epoch, self._permutation(seed, epoch, shuffle)
                rows.append(perm[position % n])
                position += world_size
            yield torch.from_numpy(self.sequences(rows))


class TokenData:
    """A complete token cache: `train` and `validation` splits plus the build record (`meta`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise DataError(f"{self.path}: not a complete token cache (no meta.json)")
        self.meta = json.loads(meta_file.read_text())
        self.key: str = self.meta["key"]
        self.seq_len: int = self.meta["seq_len"]
        self.vocab_size: int = self.meta["vocab_size"]
        self.train = TokenSplit(self.path / "train")
        self.validation = TokenSplit(self.path / "validation")

    def __repr__(self) -> str:
        counts = f"train={self.train.num_sequences}, validation={self.validation.num_sequences}"
        return f"TokenData({str(self.path)!r}, {counts})"

    def __reduce__(self):
        return (TokenData, (str(self.path),))

    def split(self, name: str) -> TokenSplit:
        if name not in ("train", "validation"):
            raise ValueError(f"split {name!r}: expected 'train' or 'validation'")
        return getattr(self, name)


def open_token_cache(path: str | Path) -> TokenData:
    """Open a cache folder written by `prepare_tokens` (no tokenizer, no tokenising)."""
    return TokenData(path)
