"""benchmarks/icl_formation.py: its synthetic sequences, its loss split, and a smoke run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("icl_formation", ROOT / "benchmarks" / "icl_formation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_repeated_segments_tile_one_segment_from_the_alphabet():
    script = load_script()
    ids = script.repeated_segments(np.random.default_rng(0), rows=6, context=40, alphabet=50, length=7)
    assert ids.shape == (6, 40)
    assert bool((ids >= script.VOCAB - 50).all()) and bool((ids < script.VOCAB).all())
    assert torch.equal(ids[:, 7:], ids[:, :-7])  # period 7: every token after the first segment is a repeat


class _Oracle(torch.nn.Module):
    """Predicts every repeat perfectly and nothing else: repeat loss ~0, first-occurrence loss ln(vocab)."""

    def __init__(self, vocab: int, length: int):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, use_cache=False):
        batch, time = input_ids.shape
        logits = torch.zeros(batch, time, self.vocab)
        copied = input_ids[:, : time - self.length]  # position t predicts token t+1 = token t+1-length
        logits[:, self.length - 1 : time - 1].scatter_(-1, copied[..., None], 100.0)
        return type("Out", (), {"logits": logits})


def test_loss_split_separates_first_occurrence_from_repeats():
    script = load_script()
    held_out = script.repeated_segments(np.random.default_rng(1), rows=4, context=30, alphabet=20, length=10)
    first, repeat = script.first_and_repeat_loss(_Oracle(script.VOCAB, 10), held_out, 10)
    assert abs(first - np.log(script.VOCAB)) < 1e-3
    assert repeat < 1e-3


def test_quick_run_prints_the_table(capsys):
    load_script().main(["--quick", "--tokens-per-step", "256"])
    out = capsys.readouterr().out
    assert "induction formation" in out and "repeat/first" in out
