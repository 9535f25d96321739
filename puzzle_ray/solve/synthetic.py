"""Synthetic block libraries shaped like real ones, for tests and the MIP scaling benchmark.

Costs follow the exact parameter formulas of a Llama-like parent (so memory and runtime move together as in a
measured library); scores grow as a block shrinks, scaled by a random per-layer sensitivity, with noise. The
parent's variant of every layer is marked (`bld.is_parent`) and scores 0, like a real replace-1-block KL.
"""

from __future__ import annotations

import numpy as np

from ..arch.blocks import AttentionConfig, BlockConfig, FFNConfig
from ..arch.config import PuzzleConfig
from ..arch.stats import block_params
from ..library.record import Library, Variant, variant_name

ATTENTION_CHOICES = (8, 4, 2, 1, "linear", "no_op")
FFN_CHOICES = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, "linear", "no_op")


def synthetic_library(
    num_layers: int = 80,
    attention: tuple = ATTENTION_CHOICES,
    ffn: tuple = FFN_CHOICES,
    batch_sizes: tuple[int, ...] = (64, 256),
    hidden_size: int = 8192,
    num_attention_heads: int = 64,
    intermediate_size: int = 28672,
    sequence_length: int = 1200,
    seed: int = 0,
) -> Library:
    """`num_layers` x len(attention) x len(ffn) variants; the defaults give 80 x 54 (Llama-3.1-70B shapes)."""
    rng = np.random.default_rng(seed)
    h, heads = hidden_size, num_attention_heads
    head_dim = h // heads
    shape = PuzzleConfig(hidden_size=h, num_attention_heads=heads, intermediate_size=intermediate_size,
                         num_hidden_layers=1, vocab_size=1)  # for the exact parameter formulas
    sensitivity = rng.lognormal(0.0, 0.8, size=num_layers)
    sensitivity[[0, -1]] *= 8  # the first and last layers matter most, as measured on real parents

    def runtime_ms(params: int, kv_bytes: int, batch: int) -> float:
        # bandwidth-bound decode on an H100 (3.35 TB/s, fp8): every step reads the weights and, per sequence,
        # the KV cache (half the sequence on average); `sequence_length` steps
        return sequence_length * (params + batch * sequence_length / 2 * kv_bytes) / 3.35e12 * 1e3

    layers = []
    for i in range(num_layers):
        variants = {}
        for a in attention:
            for f in ffn:
                block = BlockConfig(_attention(a, heads), _ffn(f, intermediate_size))
                kv = block.attention.num_kv_heads(heads)
                size = block.ffn.kind.size(block.ffn) or 0
                params = block_params(shape, block)
                kv_bytes = 2 * kv * head_dim  # fp8 K and V
                by_batch = {
                    str(b): {
                        "memory_mib": (params + b * sequence_length * kv_bytes) / 2**20,
                        "runtime_ms": runtime_ms(params, kv_bytes, b) * rng.uniform(0.97, 1.03),
                        "prefill_ms": b * sequence_length * 2 * params / 400e12 * 1e3 * rng.uniform(0.97, 1.03),
                    }
                    for b in batch_sizes
                }
                is_parent = a == 8 and f == 1.0  # the parent: 8 KV heads, full FFN
                damage = _damage(a, f) * sensitivity[i] * rng.uniform(0.8, 1.25)
                stats = {"num_params": params, "kv_bytes_per_token": kv_bytes, "num_kv_heads": kv,
                         "ffn_intermediate_size": size, **by_batch[str(batch_sizes[0])], "by_batch": by_batch}
                name = variant_name(block, heads)
                metrics = {"kl_div": 0.0 if is_parent else float(damage), "lm_loss": 1.6 + 0.01 * float(damage)}
                variants[name] = Variant(name, stats, metrics, block, {"bld": {"is_parent": is_parent}})
        layers.append(variants)
    non_block_params = 2 * 128256 * h
    meta = {
        "num_attention_heads": heads,
        "hidden_size": h,
        "scenario": {"batch_sizes": list(batch_sizes), "sequence_length": sequence_length, "dtype": "fp8"},
        "non_block": {
            "num_params": non_block_params,
            "memory_mib": non_block_params / 2**20,
            "runtime_ms": runtime_ms(non_block_params, 0, batch_sizes[0]),
            "by_batch": {str(b): {"runtime_ms": runtime_ms(non_block_params, 0, b)} for b in batch_sizes},
        },
    }
    return Library(layers, meta)


def _attention(choice, heads: int) -> AttentionConfig:
    if isinstance(choice, str):  # a kind without a size
        return AttentionConfig.of_kind(choice)
    return AttentionConfig(n_heads_in_group=heads // choice)


def _ffn(choice, full: int) -> FFNConfig:
    if isinstance(choice, str):  # a kind without a size
        return FFNConfig.of_kind(choice)
    return FFNConfig(intermediate_size=max(256, round(choice * full / 256) * 256))


def _damage(a, f) -> float:
    """Score of a variant: 0 for the parent's block, growing as attention and FFN shrink."""
    att = {8: 0.0, 4: 0.02, 2: 0.06, 1: 0.15, "linear": 0.5, "no_op": 0.8}.get(a, 0.3)
    ffn = {"linear": 1.2, "no_op": 2.0}[f] if isinstance(f, str) else 1.5 * (1 - f) ** 1.5
    return att + ffn + att * ffn


def random_library(
    num_layers: int,
    max_variants: int,
    seed: int = 0,
    batch_sizes: tuple[int, ...] | None = None,
    non_block: bool = True,
) -> Library:
    """Unstructured random costs and scores (1..max_variants variants per layer, variant 0 the parent's block):
    small enough for exhaustive enumeration in tests, irregular enough to exercise every constraint kind."""
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(num_layers):
        variants = {}
        for j in range(int(rng.integers(1, max_variants + 1))):
            def stats() -> dict[str, float]:
                return {
                    "memory_mib": float(rng.uniform(0, 100)),
                    "runtime_ms": float(rng.uniform(1, 50)),
                    "prefill_ms": float(rng.uniform(0.5, 5)),
                    "num_params": int(rng.integers(0, 10**6)),
                }

            flat = stats()
            if batch_sizes:
                flat["by_batch"] = {str(b): stats() for b in batch_sizes}
                flat.update(flat["by_batch"][str(batch_sizes[0])])
            metrics = {"kl_div": 0.0 if j == 0 else float(rng.exponential(1.0)), "accuracy": float(rng.uniform(0, 1))}
            name = "parent" if j == 0 else f"v{j}"
            variants[name] = Variant(name, flat, metrics, None, {"is_parent": j == 0})
        layers.append(variants)
    meta: dict = {"scenario": {"sequence_length": 100}}
    if batch_sizes:
        meta["scenario"]["batch_sizes"] = list(batch_sizes)
    if non_block:
        meta["non_block"] = {"memory_mib": 10.0, "runtime_ms": 3.0, "num_params": 1000}
    return Library(layers, meta)
