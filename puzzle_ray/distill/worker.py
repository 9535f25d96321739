"""The training function every Ray Train worker runs: resume, train, log (rank 0), checkpoint, report.

Checkpoints hold the engine's state (DDP: weights + AdamW; DeepSpeed: its ZeRO partitions, one file set per
rank), `trainer_state.json` (optimizer steps and tokens done), and at the end the child's full weights. The data
order depends only on the step, so a resumed run skips the batches it already trained on and continues exactly
where the checkpoint left off.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .batch_source import BatchSource
from .config import DistillConfig
from .engine import build_engine
from .objective import TERMS, GKDStudent, LossWeights, teacher_targets

STATE_FILE = "trainer_state.json"
FINAL_WEIGHTS = "student.safetensors"


@dataclass
class WorkerArgs:
    config: DistillConfig
    parent: str
    """Parent model folder, or an artifact-store key (see `store_url`)."""
    child: str
    """Child model folder, or an artifact-store key."""
    data: BatchSource
    total_steps: int
    seq_len: int
    store_url: str | None = None
    """When set, `parent` and `child` are keys in this artifact store (remote stores: workers download them)."""
    mlflow_uri: str | None = None
    mlflow_run_id: str | None = None
    progress: Any = None
    """A `ray.util.queue.Queue` the driver drains for its progress bar (rank 0 puts updates)."""


def _model_dir(ref: str, store_url: str | None) -> Path:
    if store_url is None:
        return Path(ref)
    from ..store import ArtifactStore

    return ArtifactStore(store_url).get_dir(ref, prefix="gkd-model-")


class RankZeroLogger:
    """MLflow metrics of the driver's run, written by rank 0 only (one run however many workers, and the
    same run again after a restart)."""

    def __init__(self, uri: str | None, run_id: str | None, rank: int):
        self.client = None
        if rank == 0 and run_id:
            from mlflow import MlflowClient

            self.client, self.run_id = MlflowClient(uri), run_id

    def log(self, step: int, values: dict[str, float]) -> None:
        if self.client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(f"gkd/{k}", float(v), now, step) for k, v in values.items()])


def resume_batches(data: BatchSource, batch_size: int, rank: int, world: int, seed: int, skip: int):
    """This rank's endless batch stream, from its `skip`-th batch on (the ones before were trained on).

    Sources that can start mid-stream (the data layer's `TokenSplit.batches(start_batch=...)`) do so without
    reading what they skip; others are read and dropped.
    """
    if skip and "start_batch" in inspect.signature(data.batches).parameters:
        return data.batches(batch_size, rank=rank, world_size=world, seed=seed, cycle=True, start_batch=skip)
    batches = data.batches(batch_size, rank=rank, world_size=world, seed=seed, cycle=True)
    return itertools.islice(batches, skip, None)


def _save_checkpoint(engine, rank: int, state: dict, metrics: dict, final: bool) -> None:
    import ray.train
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory(prefix="gkd-ckpt-") as tmp:
        folder = Path(tmp)
        engine.save(folder, rank)
        if final:
            weights = engine.full_state_dict()  # collective under ZeRO-3
            if rank == 0:
                save_file(weights, folder / FINAL_WEIGHTS)
        if rank == 0:
            (folder / STATE_FILE).write_text(json.dumps(state, indent=1))
        has_files = any(folder.iterdir())
        checkpoint = ray.train.Checkpoint.from_directory(tmp) if has_files else None
        ray.train.report(metrics, checkpoint=checkpoint)


def gkd_worker(args: WorkerArgs) -> None:
    """`train_loop_per_worker` of the GKD `TorchTrainer`."""
    from ..ui import quiet_third_party

    quiet_third_party()  # before DeepSpeed and the models load (a cluster's job env may lack the variables)
    import ray.train
    import ray.train.torch

    cfg = args.config
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        torch.set_num_threads(cfg.torch_threads or max(1, math.ceil(cfg.cpus_per_worker)))
    torch.manual_seed(cfg.seed)

    from .models import load_student, load_teacher

    teacher = load_teacher(_model_dir(args.parent, args.store_url), torch.bfloat16 if cfg.bf16 else torch.float32)
    teacher = teacher.to(device)
    student = load_student(_model_dir(args.child, args.store_url))
    weights = LossWeights(cfg.cosine_weight, cfg.kl_weight, cfg.lm_weight)
    engine = build_engine(GKDStudent(student, weights, cfg.kl_chunk_tokens), cfg, device, world)

    state = {"step": 0, "tokens": 0, "total_steps": args.total_steps, "restarts": 0}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            engine.load(Path(folder))
            state = json.loads((Path(folder) / STATE_FILE).read_text())
        state["restarts"] = state.get("restarts", 0) + 1

    logger = RankZeroLogger(args.mlflow_uri, args.mlflow_run_id, rank)
    tokens_per_step = cfg.sequences_per_step * args.seq_len
    done_batches = state["step"] * cfg.grad_accum_steps
    batches = resume_batches(args.data, cfg.micro_batch_size, rank, world, cfg.seed, done_batches)
    teacher_fn = lambda ids: teacher_targets(teacher, ids)  # noqa: E731

    window_terms, window_steps, window_start = torch.zeros(3), 0, time.perf_counter()
    for step in range(state["step"], args.total_steps):
        micro = list(itertools.islice(batches, cfg.grad_accum_steps))
        if len(micro) < cfg.grad_accum_steps:
            raise RuntimeError(f"rank {rank}: the data source ran out of batches at step {step}")
        lr = cfg.lr_at(step, args.total_steps)
        terms, grad_norm = engine.train_step(micro, teacher_fn, lr)
        window_terms += terms
        window_steps += 1
        state["step"], state["tokens"] = step + 1, state["tokens"] + tokens_per_step
        last = step + 1 == args.total_steps
        log_now = (step + 1) % cfg.log_every == 0 or last
        checkpoint_now = (step + 1) % cfg.checkpoint_every == 0 or last
        metrics = {}
        if log_now or checkpoint_now:
            mean = window_terms / window_steps
            if world > 1 and dist.is_initialized():
                dist.all_reduce(mean, op=dist.ReduceOp.SUM)  # every rank reaches this step: safe collective
                mean /= world
            elapsed = time.perf_counter() - window_start
            weighted = weights.cosine * mean[0] + weights.kl * mean[1] + weights.lm * mean[2]
            metrics = {
                "loss": float(weighted),
                **{f"loss_{name}": float(v) for name, v in zip(TERMS, mean)},
                "lr": lr,
                "grad_norm": grad_norm,
                "tokens_per_s": window_steps * tokens_per_step / max(elapsed, 1e-9),
                "tokens": state["tokens"],
                "step": state["step"],
            }
            state["loss"] = metrics["loss"]
        if log_now:
            logger.log(state["step"], metrics)
            if rank == 0 and args.progress is not None:
                args.progress.put_nowait(dict(metrics))
            window_terms, window_steps, window_start = torch.zeros(3), 0, time.perf_counter()
        if checkpoint_now:
            _save_checkpoint(engine, rank, state, metrics, final=last)
