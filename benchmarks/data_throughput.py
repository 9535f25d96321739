"""Data-layer and pretraining throughput on this machine, in tokens/s.

    python benchmarks/data_throughput.py            # the default parent's corpus, tokenizer and model
    python benchmarks/data_throughput.py --quick    # a smoke test: small corpus, a few steps

Tables (medians of repeated runs in one process):
  1. tokenisation: the fast tokenizer's `encode_batch` alone, and the whole cache build (pieces, split
     assignment, packing, shard writes) on the embedded corpus;
  2. reading: packed (B, T) batches from the memory-mapped cache;
  3. pretraining: optimiser steps of the default parent (fp32, and bf16 autocast where the CPU supports it),
     with the bf16 / fp32 ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from puzzle_ray.data import DataConfig, EmbeddedSource, load_tokenizer, prepare_tokens
from puzzle_ray.data.cache import plan_tokens
from puzzle_ray.data.sources import embedded_documents
from puzzle_ray.data.tokenizer import encode_batch
from puzzle_ray.parent import EmbeddedParentConfig
from puzzle_ray.parent.model import build_parent_model
from puzzle_ray.parent.tokenizer import ensure_embedded_tokenizer
from puzzle_ray.parent.train import autocast, optimizer_for, resolve_precision

console = Console()


def median_rate(tokens: int, seconds: list[float]) -> float:
    return tokens / statistics.median(seconds)


def tokenisation(cfg: EmbeddedParentConfig, cache: Path, repeats: int) -> tuple[Table, object]:
    start = time.perf_counter()
    tok = load_tokenizer(ensure_embedded_tokenizer(cfg, cache))
    tok_seconds = time.perf_counter() - start
    texts = [d.text for d in embedded_documents(cfg.corpus)]
    chars = sum(map(len, texts))
    encode_times, n_tokens = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        n_tokens = sum(map(len, encode_batch(tok, texts)))
        encode_times.append(time.perf_counter() - t)
    build_times, data = [], None
    for i in range(repeats):
        data_cfg = DataConfig(sources=[cfg.corpus], seq_len=cfg.seq_len, cache_dir=cache / f"build{i}")
        plan = plan_tokens(data_cfg, tok)  # fingerprinting is not tokenising: measured apart from the build
        t = time.perf_counter()
        data = prepare_tokens(data_cfg, tok, show_progress=False)
        build_times.append(time.perf_counter() - t)
        assert plan.key == data.key
    table = Table(title=f"tokenisation ({len(texts):,} documents, {chars / 1e6:.1f} M chars, {n_tokens:,} tokens)")
    for col in ("stage", "median s", "tokens/s", "chars/token"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    table.add_row("train BPE tokenizer (or load cached)", f"{tok_seconds:.2f}", "", "")
    table.add_row("encode_batch (Rust, parallel)", f"{statistics.median(encode_times):.2f}",
                  f"{median_rate(n_tokens, encode_times):,.0f}", f"{chars / n_tokens:.2f}")
    table.add_row("cache build (encode + pack + write)", f"{statistics.median(build_times):.2f}",
                  f"{median_rate(n_tokens, build_times):,.0f}", "")
    return table, data


def reading(data, batch_size: int, repeats: int) -> Table:
    split = data.train
    times, tokens = [], 0
    for r in range(repeats):
        t = time.perf_counter()
        tokens = sum(b.numel() for b in split.batches(batch_size, seed=r))
        times.append(time.perf_counter() - t)
    table = Table(title=f"reading the cache ({split.num_sequences:,} sequences of {split.seq_len})")
    for col in ("batches", "median s / epoch", "tokens/s"):
        table.add_column(col, justify="right")
    table.add_row(f"{batch_size} x {split.seq_len}, shuffled", f"{statistics.median(times):.3f}",
                  f"{median_rate(tokens, times):,.0f}")
    return table


def pretraining(cfg: EmbeddedParentConfig, data, tok, steps: int, warmup: int) -> Table:
    precisions = ["fp32"] + (["bf16"] if resolve_precision("auto") == "bf16" else [])
    table = Table(title=f"pretraining steps ({cfg.train.batch_size} x {cfg.seq_len} tokens; "
                        f"torch threads {torch.get_num_threads()})")
    for col in ("precision", "median step ms", "tokens/s", "vs fp32"):
        table.add_column(col, justify="left" if col == "precision" else "right")
    device = torch.device("cpu")
    fp32_rate = None
    for precision in precisions:
        model = build_parent_model(cfg.model, tok, seed=0).train()
        opt = optimizer_for(model, cfg.train)
        batches = data.train.batches(cfg.train.batch_size, cycle=True)
        times = []
        for i in range(warmup + steps):
            ids = next(batches)
            t = time.perf_counter()
            with autocast(device, precision):
                loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i >= warmup:
                times.append(time.perf_counter() - t)
        rate = median_rate(cfg.train.batch_size * cfg.seq_len, times)
        fp32_rate = fp32_rate or rate
        table.add_row(precision, f"{1000 * statistics.median(times):.0f}", f"{rate:,.0f}", f"{rate / fp32_rate:.2f}x")
    seconds = cfg.train.token_budget / rate
    table.caption = (f"default budget {cfg.train.token_budget:,} tokens at {precisions[-1]}: "
                     f"~{seconds:.0f} s of training")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small corpus and a few steps (smoke test)")
    args = parser.parse_args()
    cfg = EmbeddedParentConfig()
    repeats, steps, warmup = 3, 10, 2
    if args.quick:
        corpus = EmbeddedSource(max_files=20, classification_episodes=300, recall_episodes=150)
        cfg = cfg.model_copy(update={"corpus": corpus})
        repeats, steps, warmup = 1, 3, 1
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        table, data = tokenisation(cfg, cache, repeats)
        console.print(table)
        console.print(reading(data, cfg.train.batch_size, repeats))
        tok = load_tokenizer(ensure_embedded_tokenizer(cfg, cache))
        console.print(pretraining(cfg, data, tok, steps, warmup))


if __name__ == "__main__":
    main()
