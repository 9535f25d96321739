"""How fast does an induction circuit form in the parent's architecture on this machine?

    python benchmarks/icl_formation.py            # the grid below, about 7 minutes on 2 CPU cores
    python benchmarks/icl_formation.py --quick    # a smoke test: 2 layers, a few steps

In-context answers to the embedded episodes ("cat B ... cat -> B") need an induction circuit: a head that
finds the earlier occurrence of the current token and copies the token after it. Small transformers learn it
in an abrupt phase change after a plateau. This script measures where that plateau ends for the embedded
parent's block (hidden 256, GQA 8/2, SwiGLU 768, RoPE), trained from scratch with the parent's optimiser on the
cleanest possible signal: every sequence is one random segment of `length` tokens, drawn from an alphabet of
`alphabet` token ids, repeated to fill the context. The table reports, on fixed held-out sequences, the loss on
the first occurrence (cannot be predicted: about ln(alphabet)) and on the repeats (about 0 once the circuit
works): repeat / first = 1.0 means no induction yet.

It is the evidence behind the parent's quality report showing episodes at chance: the plateau grows with depth,
context length and alphabet, and the 8-layer parent at its 256-token context does not leave it within the
~5-minute pretraining budget of the demo (see the README's measured results).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from puzzle_ray.arch import PuzzleForCausalLM
from puzzle_ray.parent import ParentModelConfig, PretrainConfig
from puzzle_ray.parent.model import build_parent_model
from puzzle_ray.parent.train import optimizer_for

VOCAB = 4096  # the embedded tokenizer's size; only `alphabet` ids of it occur


@dataclass(frozen=True)
class Setting:
    layers: int
    context: int
    alphabet: int
    steps: int


GRID = [
    Setting(2, 32, 100, 200),
    Setting(2, 64, 300, 200),
    Setting(8, 32, 100, 200),
    Setting(8, 256, 100, 200),
]
QUICK = [Setting(2, 32, 100, 4)]


def repeated_segments(rng: np.random.Generator, rows: int, context: int, alphabet: int, length: int | None = None):
    """(rows, context) ids: per row one random segment (length 4..12 unless given) tiled to `context`."""
    out = np.empty((rows, context), dtype=np.int64)
    for r in range(rows):
        seg = rng.integers(VOCAB - alphabet, VOCAB, size=length or int(rng.integers(4, 13)))
        out[r] = np.resize(seg, context)
    return torch.from_numpy(out)


class SyntheticVocabulary:
    """What `build_parent_model` reads of a tokenizer: its size and special tokens (none here)."""

    bos_token_id = eos_token_id = pad_token_id = None

    def __len__(self) -> int:
        return VOCAB


def model_for(layers: int, seed: int = 0) -> PuzzleForCausalLM:
    """The embedded parent's architecture with `layers` blocks."""
    return build_parent_model(ParentModelConfig(num_layers=layers), SyntheticVocabulary(), seed)


@torch.inference_mode()
def first_and_repeat_loss(model, held_out: torch.Tensor, length: int) -> tuple[float, float]:
    """Mean loss predicting the first occurrence (targets 1..length-1) and the repeats (targets >= length)."""
    model.eval()
    logits = model(input_ids=held_out, use_cache=False).logits[:, :-1]  # (B, T-1, V)
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), held_out[:, 1:], reduction="none")  # (B, T-1)
    model.train()
    return float(loss[:, : length - 1].mean()), float(loss[:, length - 1 :].mean())


def run(setting: Setting, tokens_per_step: int, seed: int = 0) -> dict:
    cfg = PretrainConfig()  # the parent's optimiser, learning rate and schedule
    model = model_for(setting.layers, seed).train()
    optimizer = optimizer_for(model, cfg)
    rng = np.random.default_rng(seed)
    held_length = 10
    held_out = repeated_segments(np.random.default_rng(seed + 1), 32, setting.context, setting.alphabet, held_length)
    rows = max(tokens_per_step // setting.context, 1)
    start = time.perf_counter()
    for step in range(setting.steps):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr_at(step, setting.steps)
        ids = repeated_segments(rng, rows, setting.context, setting.alphabet)
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    first, repeat = first_and_repeat_loss(model, held_out, held_length)
    return {"tokens": setting.steps * rows * setting.context, "seconds": seconds, "first": first, "repeat": repeat}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: one 2-layer setting, 4 steps")
    parser.add_argument("--tokens-per-step", type=int, default=2048, help="the parent's 8 x 256")
    args = parser.parse_args(argv)
    table = Table(title="induction formation: loss on repeats vs first occurrence (1.0 = none yet)")
    for col in ("layers", "context", "alphabet", "steps", "tokens", "seconds", "first", "repeat", "repeat/first"):
        table.add_column(col, justify="right")
    for s in QUICK if args.quick else GRID:
        r = run(s, args.tokens_per_step)
        table.add_row(
            str(s.layers), str(s.context), str(s.alphabet), str(s.steps), f"{r['tokens']:,}", f"{r['seconds']:.0f}",
            f"{r['first']:.2f}", f"{r['repeat']:.2f}", f"{r['repeat'] / r['first']:.2f}",
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
