"""BLD throughput on this machine.

1. Trained variant-tokens per second (variants trained x training tokens / wall time of the training stream) of a
   whole library build with 1 and 2 actors, on a parent shaped like the embedded default (random weights and
   tokens: runtime depends on shapes, not values).
2. The shared parent forward: training k variants of one layer on ONE parent forward of the prefix (what a BLD
   actor does), against k separate runs that each recompute the parent's prefix for their own variant.

    python benchmarks/bld_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import ray
import torch
from rich.console import Console
from rich.table import Table

from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM
from puzzle_ray.arch.export import export_pretrained
from puzzle_ray.arch.modeling import prepare_block_inputs
from puzzle_ray.library.build import BLDData, build_library
from puzzle_ray.library.config import BLDConfig
from puzzle_ray.library.init import build_variant_layer, init_ffn
from puzzle_ray.library.space import VariantSpace, expand
from puzzle_ray.library.units import normalised_mse
from puzzle_ray.store import ArtifactStore

SEQ, VOCAB = 256, 4096
PARENT = dict(vocab_size=VOCAB, hidden_size=256, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
              intermediate_size=768, max_position_embeddings=512)
SPACE = VariantSpace(attention=[1, "linear", "no_op"], ffn=[0.5, 0.25, "linear", "no_op"], round_to=128)


def batches(seed: int, n: int, batch: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (batch, SEQ), generator=g) for _ in range(n)]


def library_throughput(parent_dir: Path, actors: int, steps: int, batch: int) -> tuple[float, int, float]:
    train = batches(1, steps, batch)
    data = BLDData(train=lambda s: iter(train[s:]), calibration=lambda: batches(2, 1, batch),
                   validation=lambda: batches(3, 1, batch), seq_len=SEQ, fingerprint=f"bench-{actors}")
    bld = BLDConfig(num_actors=actors, micro_batch_size=batch, token_budget=steps * batch * SEQ, calibration_batches=1,
                    eval_batches=1, checkpoint_every=max(3, steps), threads_per_actor=max(1, 2 // actors))
    store = ArtifactStore(tempfile.mkdtemp(prefix="bld-bench-"))
    result = build_library(parent_dir, SPACE, bld, data, store, show_progress=False)
    tokens = steps * batch * SEQ
    return result.trained_units * tokens / result.train_seconds, result.trained_units, result.train_seconds


def shared_vs_separate(k_values: list[int], steps: int, batch: int, layer: int = 4) -> list[tuple[int, float, float]]:
    """Seconds per step of training k FFN variants of `layer`: shared prefix forward vs one prefix per variant."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = PuzzleForCausalLM(PuzzleConfig(**PARENT)).eval().requires_grad_(False)
    parent = model.model.layers[layer]
    widths = [0.75, 0.5, 0.375, 0.25, 0.125, "linear"]
    space = expand(VariantSpace(attention=[2], ffn=widths, round_to=32), model.config)[layer]
    variants = [v for v in space.ffn if v.trainable]
    ids = batches(5, 1, batch)[0]

    def prefix():
        with torch.no_grad():
            h = model.model.embed_tokens(ids)
            pos, mask = prepare_block_inputs(model.config, model.model.rotary_emb, h)
            for i in range(layer):
                h = model.model.layers[i](h, pos, mask, None)
            return h, pos, mask, parent(h, pos, mask, None)

    out = []
    for k in k_values:
        layers = []
        for v in variants[:k]:
            lyr = build_variant_layer(model.config, layer, parent, v)
            init_ffn(lyr, parent, None, "product") if v.config.kind.linear_map else None
            layers.append(lyr)
        opt = torch.optim.AdamW([p for lyr in layers for p in lyr.mlp.parameters()], lr=1e-4)

        def train(lyr, h, pos, mask, target):
            loss = normalised_mse(lyr(h, pos, mask, None), target)
            loss.backward()

        def shared():
            h, pos, mask, target = prefix()
            for lyr in layers:
                train(lyr, h, pos, mask, target)
            opt.step()
            opt.zero_grad()

        def separate():
            for lyr in layers:
                h, pos, mask, target = prefix()
                train(lyr, h, pos, mask, target)
            opt.step()
            opt.zero_grad()

        times = {"shared": [], "separate": []}
        for _ in range(steps):  # interleaved, so machine noise hits both alike
            for name, fn in (("shared", shared), ("separate", separate)):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        out.append((k, statistics.median(times["shared"]), statistics.median(times["separate"])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (few steps; numbers not meaningful)")
    args = ap.parse_args()
    steps, batch = (3, 2) if args.quick else (12, 8)
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        parent_dir = Path(tmp) / "parent"
        export_pretrained(PuzzleForCausalLM(PuzzleConfig(**PARENT)), parent_dir)
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20,
                 log_to_driver=False)
        table = Table(title=f"BLD: trained variant-tokens/s ({steps} steps of {batch} x {SEQ} tokens, "
                            "8-layer hidden-256 parent)")
        for col in ("actors", "variants trained", "train wall s", "variant-tokens/s", "vs 1 actor"):
            table.add_column(col, justify="right")
        base = None
        for actors in (1, 2):
            rate, units, secs = library_throughput(parent_dir, actors, steps, batch)
            base = base or rate
            table.add_row(str(actors), str(units), f"{secs:.1f}", f"{rate:,.0f}", f"{rate / base:.2f}x")
        console.print(table)
        ray.shutdown()
    table = Table(title="k FFN variants of layer 4: one shared parent forward vs k separate runs (median s/step)")
    for col in ("k", "shared", "separate", "separate / shared"):
        table.add_column(col, justify="right")
    for k, shared, separate in shared_vs_separate([1, 2, 4, 6], max(3, steps), batch):
        table.add_row(str(k), f"{shared:.3f}", f"{separate:.3f}", f"{separate / shared:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
