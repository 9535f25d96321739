"""GPU check: measure the block variants of a Llama-3.1-8B-shaped parent (random weights, bf16) on this GPU.

    python benchmarks/gpu_check.py            # ~2-4 min on one H100/H200
    python benchmarks/gpu_check.py --quick    # ~1 min

Prints the per-sub-block table (prefill and decode per batch size, median ± IQR), the composed per-variant
table, whole blocks vs attention + FFN sums, and predicted vs measured end-to-end costs of three 32-layer
children (the cost-model check). Runtime depends on shapes only, so nothing is downloaded. On a machine
without CUDA it prints a message and exits 0 (`--smoke-on-cpu` runs a tiny version of every step on CPU,
to test this script).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer batch sizes and repeats, one child")
    ap.add_argument("--smoke-on-cpu", action="store_true", help="tiny shapes on CPU: tests this script, not a GPU")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end cost-model check")
    args = ap.parse_args()
    if not torch.cuda.is_available() and not args.smoke_on_cpu:
        print("gpu_check: no CUDA device on this machine; nothing to measure (run it on a GPU node).")
        return 0

    import ray
    from rich.console import Console
    from rich.table import Table

    from puzzle_ray.arch import AttentionConfig, BlockConfig, FFNConfig, PuzzleConfig
    from puzzle_ray.measure import (
        MeasureConfig,
        Scenario,
        TimedBlock,
        measure_blocks,
        measure_units,
    )
    from puzzle_ray.measure.library import apply_measurements, skeleton_library
    from puzzle_ray.measure.tables import variants_table
    from puzzle_ray.store import ArtifactStore

    console = Console(width=160)
    smoke = args.smoke_on_cpu
    if smoke:  # same structure, a thousandth of the work
        shape = dict(
            hidden_size=256, num_hidden_layers=4, num_attention_heads=8, intermediate_size=896, vocab_size=2048
        )
        kv_heads, widths = [2, 1], [896, 512]
        scenario = Scenario(name="smoke", batch_sizes=[1, 2], prefill_len=32, decode_len=8, dtype="bf16")
        config = MeasureConfig(stack_depth=2, warmup=1, repeats=3, threads=1)
    else:
        shape = dict(
            hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=14336, vocab_size=128256
        )
        kv_heads, widths = [8, 4, 2, 1], [14336, 10752, 7168, 3584]
        batches = [1, 16] if args.quick else [1, 16, 64]
        scenario = Scenario(name="gpu-check", batch_sizes=batches, prefill_len=1024, decode_len=128, dtype="bf16")
        config = MeasureConfig(stack_depth=4, warmup=3, repeats=7 if args.quick else 15, num_gpus=1)
    parent = PuzzleConfig(
        **shape,
        num_key_value_heads=kv_heads[0],
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        tie_word_embeddings=False,
    )
    parent._attn_implementation = "sdpa"
    heads = parent.num_attention_heads
    attentions = [AttentionConfig(n_heads_in_group=heads // k) for k in kv_heads] + [
        AttentionConfig(replace_with_linear=True),
        AttentionConfig(no_op=True),
    ]
    ffns = [FFNConfig(intermediate_size=w) for w in widths] + [
        FFNConfig(replace_with_linear=True),
        FFNConfig(no_op=True),
    ]
    variants = [BlockConfig(a, f) for a in attentions for f in ffns]

    device = "cpu" if smoke else "cuda"
    console.print(
        f"device: {torch.cuda.get_device_name() if not smoke else 'cpu (smoke)'}; "
        f"torch {torch.__version__}, CUDA {torch.version.cuda}"
    )
    console.print(
        f"parent: {shape}, kv heads {kv_heads[0]}; scenario {scenario.model_dump()}; "
        f"stack depth {config.stack_depth}, repeats {config.repeats}"
    )
    ray.init(
        address="local",
        include_dashboard=False,
        object_store_memory=256 * 2**20,
        log_to_driver=False,
        num_gpus=0 if smoke else 1,
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(tmp)
        m = measure_blocks(parent, variants, scenario, config, store)
        if m.failures:
            console.print("[red]failed:[/] " + "; ".join(m.failures))
            return 1
        console.print(
            f"measured {m.num_measured} (unit, batch) entries in {m.num_tasks} tasks, "
            f"{time.perf_counter() - start:.0f} s"
        )

        table = Table(
            title=f"sub-blocks on {m.fingerprint['hardware']} ({scenario.prefill_len} prefill, "
            f"decode at context ~{scenario.decode_context}, bf16)"
        )
        for col in ("unit", "B", "prefill ms", "± IQR", "decode ms/step", "± IQR", "fits"):
            table.add_column(col, justify="left" if col == "unit" else "right")
        for row in m.table():
            fits = row["fits"]
            table.add_row(
                row["unit"],
                str(row["batch"]),
                f"{row['prefill_ms']:.3f}" if fits else "-",
                f"{row['prefill_ms_iqr']:.3f}" if fits else "-",
                f"{row['decode_ms']:.4f}" if fits else "-",
                f"{row['decode_ms_iqr']:.4f}" if fits else "-",
                str(fits),
            )
        console.print(table)

        library = apply_measurements(skeleton_library(parent, variants), parent, m)
        b0 = scenario.batch_sizes[-1]
        title = f"variants (attention x FFN) at batch {b0}: runtime = prefill + {scenario.decode_len} x decode"
        table = variants_table(library, b0, title)
        console.print(table)
        nb = library.meta.non_block
        console.print(
            f"non-block part: prefill {nb['prefill_ms']:.3f} ms, decode {nb['decode_ms']:.4f} ms/step "
            f"at B={scenario.batch_sizes[0]}"
        )

        picks = [
            variants[0],
            BlockConfig(attentions[2 if not smoke else 1], ffns[2 if not smoke else 1]),
            BlockConfig(attentions[-2], ffns[0]),
        ]
        whole = measure_units(parent, [TimedBlock(b) for b in picks], scenario, config, store)
        table = Table(title="whole block vs attention + FFN sub-blocks")
        for col in ("block", "B", "whole prefill", "sum prefill", "diff %", "whole decode", "sum decode", "diff %"):
            table.add_column(col, justify="left" if col == "block" else "right")
        for blk in picks:
            for b in scenario.batch_sizes:
                w, s = whole.entry(TimedBlock(blk), b), m.block_stats(blk)["by_batch"][str(b)]
                if not w["fits"] or "prefill_ms" not in s:
                    continue
                table.add_row(
                    TimedBlock(blk).label(parent),
                    str(b),
                    f"{w['prefill_ms']:.3f}",
                    f"{s['prefill_ms']:.3f}",
                    f"{100 * (s['prefill_ms'] / w['prefill_ms'] - 1):+.1f}",
                    f"{w['decode_ms']:.4f}",
                    f"{s['decode_ms']:.4f}",
                    f"{100 * (s['decode_ms'] / w['decode_ms'] - 1):+.1f}",
                )
        console.print(table)

        if not args.no_e2e:
            _e2e(console, parent, library, scenario, config, device, attentions, ffns, args.quick or smoke)
    console.print(f"total {time.perf_counter() - start:.0f} s")
    return 0


def _e2e(console, parent, library, scenario, config, device, attentions, ffns, quick):
    """Predicted (library sums) vs measured (real 32-layer model, prefill + decode loop) per child."""
    from rich.table import Table

    from puzzle_ray.arch import BlockConfig, PuzzleConfig
    from puzzle_ray.measure import compare_costs, measure_model_costs, predict_model_costs

    n = parent.num_hidden_layers
    kids = {"parent": [BlockConfig(attentions[0], ffns[0])] * n}
    if not quick:
        kids["uniform kv2 ffn 50%"] = [BlockConfig(attentions[2], ffns[2])] * n
    kids["mixed"] = [BlockConfig(attentions[i % len(attentions)], ffns[(i // 2) % len(ffns)]) for i in range(n)]
    e2e_scenario = scenario.model_copy(update={"batch_sizes": scenario.batch_sizes[:2]})
    e2e_config = config.model_copy(update={"repeats": 5, "warmup": 2})
    table = Table(
        title=f"cost model: predicted vs measured end-to-end "
        f"({scenario.prefill_len} prefill + {scenario.decode_len} decode)"
    )
    for col in (
        "child",
        "B",
        "prefill pred",
        "prefill meas",
        "err %",
        "tok/s pred",
        "tok/s meas",
        "err %",
        "memory pred MiB",
        "peak meas MiB",
    ):
        table.add_column(col, justify="left" if col == "child" else "right")
    for name, blocks in kids.items():
        child = PuzzleConfig(**{**parent.to_dict(), "block_configs": [b.to_dict(parent.hidden_size) for b in blocks]})
        child._attn_implementation = "sdpa"
        measured = measure_model_costs(child, e2e_scenario, e2e_config, device=device)
        for row in compare_costs(predict_model_costs(child, library, e2e_scenario), measured):
            table.add_row(
                name,
                str(row["batch"]),
                f"{row['prefill_ms_pred']:.2f}",
                f"{row['prefill_ms_meas']:.2f}",
                f"{row['prefill_err_pct']:+.1f}",
                f"{row['decode_tok_s_pred']:,.0f}",
                f"{row['decode_tok_s_meas']:,.0f}",
                f"{row['decode_err_pct']:+.1f}",
                f"{row['memory_mib_pred']:,.0f}",
                f"{row['memory_mib_meas']:,.0f}",
            )
        if device == "cuda":
            torch.cuda.empty_cache()
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
