"""A tiny exported parent and deterministic token batches for library, scoring and search tests."""

from __future__ import annotations

from pathlib import Path

import torch

from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM
from puzzle_ray.arch.export import export_pretrained
from puzzle_ray.library.build import BLDData

VOCAB, SEQ = 128, 32


def export_tiny_parent(path: Path, layers: int = 4) -> Path:
    torch.manual_seed(0)
    cfg = PuzzleConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=layers, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=128, max_position_embeddings=128, initializer_range=0.1)
    export_pretrained(PuzzleForCausalLM(cfg), path)
    return path


def batches(seed: int, n: int, batch: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (batch, SEQ), generator=g) for _ in range(n)]


def random_data(steps: int = 200) -> BLDData:
    train = batches(1, steps)
    return BLDData(train=lambda start: iter(train[start:]), calibration=lambda: batches(2, 2),
                   validation=lambda: batches(3, 2), seq_len=SEQ, fingerprint="random-tokens-v1")
