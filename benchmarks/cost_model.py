"""Cost-model check: predicted (sum of per-variant measurements) vs measured end-to-end, on this machine.

    python benchmarks/cost_model.py            # default scenario, ~3-5 min on 2 idle cores
    python benchmarks/cost_model.py --quick    # smoke test, well under a minute

Parent: the shape of the embedded default parent (8 layers, hidden 256, 8 heads, 2 KV heads, FFN 1024 = 4x,
vocab 4096), random weights. Every block variant is measured by the Ray fleet (sub-blocks, differential
stacks), then several children (uniform and mixed) are predicted from the library stats and measured
end-to-end (prefill + decode loop with the model's own cache) in a Ray task, once before and once after the
library measurement: their mean is the figure, their difference ("drift") shows how much this machine's speed
moved during the run. Also prints sub-block sums vs whole blocks. The CPU clock defaults to the timing
thread's CPU time here (`--clock wall` for perf_counter), which ignores time taken by other processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from rich.console import Console
from rich.table import Table

from puzzle_ray.arch import AttentionConfig, BlockConfig, FFNConfig, PuzzleConfig
from puzzle_ray.measure import (
    MeasureConfig,
    ModelCosts,
    Scenario,
    TimedBlock,
    compare_costs,
    measure_library,
    measure_model_costs,
    measure_units,
    predict_model_costs,
    skeleton_library,
)
from puzzle_ray.measure.cost_model import device_label
from puzzle_ray.measure.timed_block import stack_depth_for, sub_blocks
from puzzle_ray.store import ArtifactStore

console = Console(width=180)


def gqa(n_groups: int) -> AttentionConfig:
    return AttentionConfig(n_heads_in_group=n_groups)


ATT = {
    "kv2": gqa(4),
    "kv1": gqa(8),
    "kv4": gqa(2),
    "linear": AttentionConfig(replace_with_linear=True),
    "no_op": AttentionConfig(no_op=True),
}
FFN = {
    "1024": FFNConfig(intermediate_size=1024),
    "512": FFNConfig(intermediate_size=512),
    "256": FFNConfig(intermediate_size=256),
    "linear": FFNConfig(replace_with_linear=True),
    "no_op": FFNConfig(no_op=True),
}


def block(att: str, ffn: str) -> BlockConfig:
    return BlockConfig(ATT[att], FFN[ffn])


def children(layers: int) -> dict[str, list[BlockConfig]]:
    mixed = ["kv2/1024", "kv1/512", "no_op/1024", "kv2/256", "linear/512", "kv1/linear", "no_op/no_op", "kv4/1024"]
    aggressive = [
        "kv1/512",
        "no_op/256",
        "no_op/512",
        "kv1/256",
        "linear/linear",
        "no_op/256",
        "kv1/no_op",
        "no_op/256",
    ]

    def parse(spec: list[str]) -> list[BlockConfig]:
        return [block(*s.split("/")) for s in spec][:layers]

    return {
        "parent": [block("kv2", "1024")] * layers,
        "uniform kv1 ffn512": [block("kv1", "512")] * layers,
        "uniform ffn256": [block("kv2", "256")] * layers,
        "mixed": parse(mixed),
        "aggressive mixed": parse(aggressive),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny repeats and a short scenario (smoke test)")
    ap.add_argument("--batch-sizes", default="1,4", help="comma-separated batch sizes")
    ap.add_argument("--prefill-len", type=int, default=128)
    ap.add_argument("--decode-len", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--stack-depth", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for every measurement")
    ap.add_argument(
        "--clock",
        choices=["wall", "thread"],
        default="thread",
        help="CPU clock: thread CPU time (robust on a shared machine, the default here) or wall time",
    )
    ap.add_argument("--store", default=None, help="artifact store (default: a fresh temporary folder, no cache)")
    args = ap.parse_args()

    if args.quick:
        args.prefill_len, args.decode_len, args.repeats, args.batch_sizes = 32, 8, 5, "1"
    scenario = Scenario(
        name="default",
        batch_sizes=[int(b) for b in args.batch_sizes.split(",")],
        prefill_len=args.prefill_len,
        decode_len=args.decode_len,
        dtype="fp32",
    )
    config = MeasureConfig(
        stack_depth=args.stack_depth,
        repeats=args.repeats,
        warmup=3,
        threads=args.threads,
        num_cpus=1,
        cpu_clock=args.clock,
    )
    parent = PuzzleConfig(
        vocab_size=4096,
        hidden_size=256,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=2,
        intermediate_size=1024,
        max_position_embeddings=4096,
    )
    parent._attn_implementation = "sdpa"
    kids = children(parent.num_hidden_layers)
    variants = sorted({b for blocks in kids.values() for b in blocks}, key=repr)

    ray.init(address="local", num_cpus=1, include_dashboard=False, object_store_memory=256 * 2**20, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(args.store or tmp)
        console.print(
            f"device: {device_label('cpu')}, torch threads {config.torch_threads}, clock {config.cpu_clock}, "
            f"stack depth {config.stack_depth}, repeats {config.repeats}; scenario {scenario.model_dump()}"
        )
        child_configs = {name: child_config(parent, blocks) for name, blocks in kids.items()}
        # End-to-end runs happen in a Ray task like the block measurements (same kind of process, same
        # resources), once before and once after the library is measured: their difference is the drift of
        # this machine over the run, a floor under the error that the cost model cannot beat.
        e2e = ray.remote(num_cpus=1)(_measure_children)
        start = time.perf_counter()
        before = ray.get(e2e.remote(child_configs, scenario, config))
        library = measure_library(skeleton_library(parent, variants), parent, scenario, config, store)
        console.print(f"measured {len(variants)} variants (as sub-blocks) in {time.perf_counter() - start:.1f} s")
        after = ray.get(e2e.remote(child_configs, scenario, config))
        units = sorted({u for b in variants for u in sub_blocks(b) if not u.is_no_op}, key=lambda u: u.label(parent))
        depths = ", ".join(f"{u.label(parent)}: {stack_depth_for(u, parent, scenario.dtype, config)}" for u in units)
        console.print(f"stack depths (copies per differential stack): {depths}")

        _print_variants(library, scenario)
        if not args.quick:
            _print_whole_vs_sum(parent, library, scenario, config, store)

        table = Table(
            title=f"predicted vs measured end-to-end ({scenario.prefill_len} prefill + {scenario.decode_len} decode, "
            "fp32); measured = mean of a run before and after the library measurement, drift = their difference"
        )
        cols = ["child", "B", "prefill pred ms", "prefill meas ms", "err %", "drift %"]
        cols += ["decode pred tok/s", "decode meas tok/s", "err %", "drift %", "memory MiB"]
        for col in cols:
            table.add_column(col, justify="left" if col == "child" else "right")
        errors = {"prefill": [], "decode": [], "prefill drift": [], "decode drift": []}
        for name, child in child_configs.items():
            predicted = predict_model_costs(child, library)
            measured = {b: _mean_costs(before[name][b], after[name][b]) for b in scenario.batch_sizes}
            for row in compare_costs(predicted, measured):
                b = row["batch"]
                p_drift = _drift(before[name][b].prefill_ms, after[name][b].prefill_ms)
                d_drift = _drift(before[name][b].decode_tokens_per_s, after[name][b].decode_tokens_per_s)
                errors["prefill"].append(abs(row["prefill_err_pct"]))
                errors["decode"].append(abs(row["decode_err_pct"]))
                errors["prefill drift"].append(abs(p_drift))
                errors["decode drift"].append(abs(d_drift))
                table.add_row(
                    name,
                    str(b),
                    f"{row['prefill_ms_pred']:.2f}",
                    f"{row['prefill_ms_meas']:.2f}",
                    f"{row['prefill_err_pct']:+.1f}",
                    f"{p_drift:+.1f}",
                    f"{row['decode_tok_s_pred']:.0f}",
                    f"{row['decode_tok_s_meas']:.0f}",
                    f"{row['decode_err_pct']:+.1f}",
                    f"{d_drift:+.1f}",
                    f"{row['memory_mib_pred']:.2f}",
                )
        console.print(table)
        nb = library.meta.non_block
        console.print(
            f"non-block part (embeddings, norm, LM head, per-call overheads): prefill {nb['prefill_ms']:.2f} ms, "
            f"decode {nb['decode_ms']:.3f} ms/step at B={scenario.batch_sizes[0]}"
        )
        med = {k: statistics.median(v) for k, v in errors.items()}
        console.print(
            f"median |error|: prefill {med['prefill']:.1f} %, decode throughput {med['decode']:.1f} %; "
            f"max: prefill {max(errors['prefill']):.1f} %, decode {max(errors['decode']):.1f} %"
        )
        console.print(
            f"median |drift| of the end-to-end runs: prefill {med['prefill drift']:.1f} %, "
            f"decode {med['decode drift']:.1f} %"
        )


def child_config(parent: PuzzleConfig, blocks: list[BlockConfig]) -> PuzzleConfig:
    child = PuzzleConfig(**{**parent.to_dict(), "block_configs": [b.to_dict(parent.hidden_size) for b in blocks]})
    child._attn_implementation = "sdpa"
    return child


def _measure_children(children: dict[str, PuzzleConfig], scenario, config) -> dict[str, dict[int, ModelCosts]]:
    return {name: measure_model_costs(child, scenario, config, device="cpu") for name, child in children.items()}


def _mean_costs(a: ModelCosts, b: ModelCosts) -> ModelCosts:
    return replace(a, prefill_ms=(a.prefill_ms + b.prefill_ms) / 2, decode_ms=(a.decode_ms + b.decode_ms) / 2)


def _drift(first: float, second: float) -> float:
    return 200.0 * (second - first) / (first + second)


def _print_variants(library, scenario) -> None:
    table = Table(title="per-variant stats (layer 0)")
    for col in ("variant", "B", "prefill ms", "± IQR", "decode ms", "± IQR", "runtime ms", "memory MiB", "params"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for v in library.layers[0].values():
        for b in scenario.batch_sizes:
            s = v.stats_for_batch(b)
            table.add_row(
                v.name,
                str(b),
                f"{s['prefill_ms']:.3f}",
                f"{s['prefill_ms_iqr']:.3f}",
                f"{s['decode_ms']:.4f}",
                f"{s['decode_ms_iqr']:.4f}",
                f"{s['runtime_ms']:.2f}",
                f"{s['memory_mib']:.3f}",
                f"{s['num_params']:,}",
            )
    console.print(table)


def _print_whole_vs_sum(parent, library, scenario, config, store) -> None:
    """Is measuring sub-blocks and summing them as good as measuring whole (attention, FFN) blocks?"""
    picks = [block("kv2", "1024"), block("kv1", "512"), block("linear", "512"), block("kv1", "linear")]
    whole = measure_units(parent, [TimedBlock(b) for b in picks], scenario, config, store)
    table = Table(title="whole block vs attention + FFN sub-blocks (first batch size)")
    for col in ("block", "whole prefill", "sum prefill", "diff %", "whole decode", "sum decode", "diff %"):
        table.add_column(col, justify="left" if col == "block" else "right")
    b = scenario.batch_sizes[0]
    for blk in picks:
        w = whole.entry(TimedBlock(blk), b)
        s = next(v for v in library.layers[0].values() if v.block_config == blk).stats_for_batch(b)
        table.add_row(
            TimedBlock(blk).label(parent),
            f"{w['prefill_ms']:.3f}",
            f"{s['prefill_ms']:.3f}",
            f"{100 * (s['prefill_ms'] - w['prefill_ms']) / w['prefill_ms']:+.1f}",
            f"{w['decode_ms']:.4f}",
            f"{s['decode_ms']:.4f}",
            f"{100 * (s['decode_ms'] - w['decode_ms']) / w['decode_ms']:+.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
