"""GKD training throughput (tokens/s) per engine on this machine.

    python benchmarks/gkd_throughput.py            # ~4-6 min on 2 idle cores
    python benchmarks/gkd_throughput.py --quick    # smoke test, ~2-3 min (mostly Ray worker start-up)

Parent: the shape of the embedded default parent (8 layers, hidden 256, 8 heads, 2 KV heads, FFN 1024, vocab
4096; --quick: 2 layers, hidden 64, vocab 512), random weights; the child keeps half the FFN width and one KV
head in every other layer. Rows:

    in-process    the DDP engine's train_step in this process (1 worker, no Ray): the compute-only reference
    ddp / deepspeed zero-N   `distill()` through Ray Train with 2 CPU workers on gloo (cpus_per_worker=1)

tokens/s is the median over logging windows after the first (warm-up), as logged to MLflow by rank 0; wall
is the whole `distill()` call (worker start-up, checkpoints and export included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import mlflow  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM  # noqa: E402
from puzzle_ray.arch.export import export_pretrained  # noqa: E402
from puzzle_ray.distill import DistillConfig, TensorBatchSource, distill  # noqa: E402
from puzzle_ray.distill.engine_ddp import DDPEngine  # noqa: E402
from puzzle_ray.distill.objective import GKDStudent, LossWeights, teacher_targets  # noqa: E402
from puzzle_ray.store import ArtifactStore  # noqa: E402

console = Console(width=140)

FULL = dict(vocab_size=4096, hidden_size=256, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
            intermediate_size=1024, max_position_embeddings=512)
QUICK = dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=128, max_position_embeddings=256)


def make_pair(root: Path, shape: dict) -> tuple[Path, Path]:
    torch.manual_seed(0)
    parent = PuzzleForCausalLM(PuzzleConfig(**shape)).eval()
    h, heads = shape["hidden_size"], shape["num_attention_heads"]
    blocks = [b.to_dict(h) for b in parent.config.block_configs]
    for i in range(1, len(blocks), 2):
        half = shape["intermediate_size"] // 2
        blocks[i] = {"attention": {"n_heads_in_group": heads}, "ffn": {"intermediate_size": half}}
    child = PuzzleForCausalLM(PuzzleConfig(**{**shape, "block_configs": blocks})).eval()
    src = parent.state_dict()
    child.load_state_dict({k: src[k][tuple(slice(0, n) for n in v.shape)] for k, v in child.state_dict().items()})
    export_pretrained(parent, root / "parent")
    export_pretrained(child, root / "child")
    return root / "parent", root / "child"


def in_process_tokens_per_s(parent_dir: Path, child_dir: Path, data: TensorBatchSource, cfg: DistillConfig,
                            steps: int) -> float:
    from puzzle_ray.distill.models import load_student, load_teacher

    torch.set_num_threads(1)
    teacher = load_teacher(parent_dir, torch.float32)
    engine = DDPEngine(GKDStudent(load_student(child_dir), LossWeights(), cfg.kl_chunk_tokens), cfg,
                       torch.device("cpu"), world_size=1)
    batches = data.batches(cfg.micro_batch_size, cycle=True)
    rates = []
    for step in range(steps):
        ids = next(batches)
        start = time.perf_counter()
        engine.train_step([ids], lambda x: teacher_targets(teacher, x), cfg.lr)
        if step >= 2:
            rates.append(ids.numel() / (time.perf_counter() - start))
    return statistics.median(rates)


def run_engine(parent_dir, child_dir, data, cfg: DistillConfig, root: Path, label: str) -> tuple[float, float, int]:
    exp = mlflow.create_experiment(f"gkd-{label}-{time.time_ns()}", artifact_location=(root / "mlruns").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        start = time.perf_counter()
        distill(parent_dir, child_dir, data, cfg, ArtifactStore(root / f"store-{label}"), run.info.run_id,
                show_progress=False)
        wall = time.perf_counter() - start
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "gkd/tokens_per_s")
    rates = [m.value for m in sorted(history, key=lambda m: m.step)][1:] or [history[-1].value]
    return statistics.median(rates), wall, len(history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model and few steps (smoke test)")
    parser.add_argument("--engines", default="ddp,zero2,zero3", help="comma-separated: ddp, zero0..zero3")
    args = parser.parse_args()

    shape, seq, steps = (QUICK, 64, 12) if args.quick else (FULL, 256, 40)
    micro = 4
    root = Path(tempfile.mkdtemp(prefix="gkd-bench-"))
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    parent_dir, child_dir = make_pair(root, shape)
    data = TensorBatchSource(torch.randint(0, shape["vocab_size"], (micro * 2 * steps, seq),
                                           generator=torch.Generator().manual_seed(0)))
    base = dict(num_workers=2, cpus_per_worker=1.0, torch_threads=1, micro_batch_size=micro, lr=1e-3,
                token_budget=micro * 2 * seq * steps, log_every=max(1, steps // 6), checkpoint_every=steps,
                kl_chunk_tokens=512, max_failures=0)
    ray.init(address="local", num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False,
             object_store_memory=256 * 2**20, log_to_driver=False)

    local = in_process_tokens_per_s(parent_dir, child_dir, data, DistillConfig(**base), min(steps, 10))
    rows = [("in-process (1 worker, no Ray)", 1, local, None, None)]
    for name in args.engines.split(","):
        if name == "ddp":
            cfg = DistillConfig(engine="ddp", **base)
        else:
            cfg = DistillConfig(engine="deepspeed", zero_stage=int(name.removeprefix("zero")), **base)
        console.print(f"running {name} ...")
        rate, wall, windows = run_engine(parent_dir, child_dir, data, cfg, root, name)
        rows.append((name, 2, rate, wall, windows))

    model = f"{shape['num_hidden_layers']} layers, hidden {shape['hidden_size']}, vocab {shape['vocab_size']}"
    table = Table(title=f"GKD throughput, seq {seq}, micro-batch {micro}/worker, {steps} steps ({model})")
    for col in ("engine", "workers", "tokens/s (median)", "vs ddp", "wall s (whole distill)", "windows"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    ddp = next((r[2] for r in rows if r[0] == "ddp"), None)
    for name, workers, rate, wall, windows in rows:
        table.add_row(name, str(workers), f"{rate:,.0f}", f"{rate / ddp:.2f}" if ddp else "-",
                      "-" if wall is None else f"{wall:.1f}", "-" if windows is None else str(windows))
    console.print(table)
    ray.shutdown()


if __name__ == "__main__":
    main()
