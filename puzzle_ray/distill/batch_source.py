"""What GKD and evaluation read tokens from: any picklable object with the data layer's `batches(...)` method.

The data layer's token-cache splits (`puzzle_ray.data`) are batch sources as they are; `TensorBatchSource`
serves an in-memory (N, T) tensor of token ids (benchmarks, notebooks, tests, tokens already in hand).
Workers receive the source pickled and each reads its own shard (`rank`, `world_size`).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class BatchSource(Protocol):
    def batches(
        self,
        batch_size: int,
        token_budget: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        cycle: bool = False,
    ) -> Iterator[torch.Tensor]:
        """(B, T) int64 token ids; this rank's share; stop after `token_budget` tokens; reshuffle and repeat if
        `cycle`."""
        ...


class TensorBatchSource:
    """Fixed-length token sequences held in memory, (N, T) int64, served like a data-layer split."""

    def __init__(self, tokens: torch.Tensor):
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32) \
                or tokens.shape[0] == 0:
            got = f"{tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"tokens: expected a non-empty (N, T) integer tensor, got {got}")
        self.tokens = tokens.long().contiguous()

    @classmethod
    def from_file(cls, path: str | Path) -> TensorBatchSource:
        """Token ids saved as .npy (allow_pickle=False), .safetensors (tensor `tokens`, or the only one) or .pt
        (weights_only)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such token file")
        if path.suffix not in (".npy", ".safetensors", ".pt"):
            raise ValueError(f"{path}: token files are .npy, .safetensors or .pt")
        try:
            tokens = _load_tokens(path)
        except Exception as e:  # truncated or corrupt: numpy, safetensors and torch each raise their own kinds
            problem = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"{path}: not a readable {path.suffix} token file ({problem})") from None
        try:
            return cls(tokens)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    @property
    def seq_len(self) -> int:
        return self.tokens.shape[1]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def content_hash(self) -> str:
        return hashlib.sha256(self.tokens.numpy().tobytes()).hexdigest()[:16]

    def batches(
        self,
        batch_size: int,
        token_budget: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        cycle: bool = False,
    ) -> Iterator[torch.Tensor]:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} is not in [0, world_size={world_size})")
        left = token_budget
        epoch = 0
        while True:
            # Every rank draws the same permutation, then takes every world_size-th sequence of it.
            order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed + epoch))
            mine = order[rank::world_size]
            for start in range(0, len(mine), batch_size):
                batch = self.tokens[mine[start : start + batch_size]]  # (B, T)
                if left is not None:
                    if left <= 0:
                        return
                    left -= batch.numel()
                yield batch
            epoch += 1
            if not cycle or len(mine) == 0:
                return


def _load_tokens(path: Path) -> torch.Tensor:
    """The token tensor of a .npy (allow_pickle=False), .safetensors or .pt (weights_only) file."""
    if path.suffix == ".npy":
        import numpy as np

        return torch.from_numpy(np.load(path, allow_pickle=False))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(path)
        if "tokens" not in tensors and len(tensors) != 1:
            raise ValueError(f"expected a tensor named 'tokens' (found {sorted(tensors)})")
        return tensors.get("tokens", next(iter(tensors.values())))
    with warnings.catch_warnings():  # torch's note on the "pickle protocol" of a file that is not its own
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, weights_only=True, map_location="cpu")
