"""The pretraining loop: AdamW, warm-up + cosine, gradient clipping, bf16 autocast or fp32, periodic
validation, checkpoints and resume, and a progress bar with tokens/s and loss.

It trains any causal LM that takes `(input_ids, labels)` on a token-cache split; the embedded parent is one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..data.split import TokenData, TokenSplit
from ..optim.adamw import build_adamw
from .checkpoint import load_checkpoint, save_checkpoint
from .config import PretrainConfig


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_precision(precision: str, device: torch.device | None = None) -> str:
    """'fp32' or 'bf16' for `precision` ('auto' decides by hardware: bf16 where it is fast)."""
    if precision != "auto":
        return precision
    device = device or default_device()
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private but long-standing torch.cpu probes
    fast = any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return "bf16" if fast else "fp32"


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def optimizer_for(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (norm gains and biases are not decayed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return build_adamw(cfg, params, decay_matrices_only=True, fused=False)


@torch.inference_mode()
def evaluate_loss(model, split: TokenSplit, max_tokens: int, batch_size: int, precision: str) -> float:
    """Mean next-token loss over the first `max_tokens` tokens of `split` (a fixed, unshuffled subset)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    budget = min(max_tokens, split.num_tokens)
    for ids in split.batches(batch_size, token_budget=budget, shuffle=False):
        ids = ids.to(device)
        with autocast(device, precision):
            logits = model(input_ids=ids, use_cache=False).logits  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
        )
        total += float(loss)
        count += ids[:, 1:].numel()
    model.train(was_training)
    return total / max(count, 1)


def pretrain_model(
    model: torch.nn.Module,
    data: TokenData,
    cfg: PretrainConfig,
    work_dir: str | Path,
    on_metrics: Callable[[dict, int], None] | None = None,
    show_progress: bool = True,
    max_steps: int | None = None,
) -> dict:
    """Train `model` in place on `data.train` for `cfg.token_budget` tokens, resuming from the checkpoint in
    `work_dir/checkpoint` if one exists. `on_metrics(metrics, step)` receives every logged value (e.g. to
    forward to MLflow). `max_steps` stops early (after a checkpoint), as an interrupted run would.

    Returns {"steps", "tokens", "seconds", "tokens_per_second", "precision", "history": [...]}.
    """
    device = default_device()
    precision = resolve_precision(cfg.precision, device)
    model.to(device).train()
    optimizer = optimizer_for(model, cfg)
    train = data.train
    total_steps = train.num_batches(cfg.batch_size, cfg.token_budget, drop_last=True)
    if not total_steps:
        batch = f"{cfg.batch_size} x {train.seq_len}"
        raise ValueError(f"train.token_budget={cfg.token_budget} is less than one batch ({batch} tokens)")
    checkpoint = Path(work_dir) / "checkpoint"
    state = load_checkpoint(checkpoint, model, optimizer) or {"step": 0, "tokens": 0, "seconds": 0.0, "history": []}
    step, history = state["step"], state["history"]
    tokens_per_step = cfg.batch_size * train.seq_len

    def log(metrics: dict) -> None:
        history.append({"step": step, **metrics})
        if on_metrics is not None:
            on_metrics(metrics, step)

    def save() -> None:
        save_checkpoint(checkpoint, model, optimizer, {**state, "step": step, "tokens": step * tokens_per_step,
                                                       "seconds": elapsed(), "history": history})

    start = time.perf_counter()
    elapsed = lambda: state["seconds"] + time.perf_counter() - start  # noqa: E731 - seconds over all runs
    bar = None
    if show_progress:
        from ..ui import progress

        bar = progress("tok")
        bar.start()
        task = bar.add_task("pretraining", total=total_steps * tokens_per_step, completed=step * tokens_per_step)
    loss_ema = None
    try:
        batches = train.batches(cfg.batch_size, cfg.token_budget, seed=cfg.seed, drop_last=True, start_batch=step)
        for ids in batches:
            if max_steps is not None and step >= max_steps:
                break
            lr = cfg.lr_at(step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            ids = ids.to(device)  # (B, T)
            with autocast(device, precision):
                loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"pretraining diverged at step {step} (loss {value}); lower train.lr")
            loss_ema = value if loss_ema is None else 0.9 * loss_ema + 0.1 * value
            if step % 10 == 0 or step == total_steps:
                log({"train_loss": value, "lr": lr, "grad_norm": float(grad_norm)})
            if step % cfg.eval_every == 0 or step == total_steps:
                log({"val_loss": evaluate_loss(model, data.validation, cfg.eval_tokens, cfg.batch_size, precision)})
            if step % cfg.checkpoint_every == 0 or step == total_steps or step == max_steps:
                save()
            if bar is not None:
                val = next((h["val_loss"] for h in reversed(history) if "val_loss" in h), None)
                desc = f"pretraining loss {loss_ema:.3f}" + (f" val {val:.3f}" if val is not None else "")
                bar.update(task, advance=tokens_per_step, description=desc)
    finally:
        if bar is not None:
            bar.stop()
    seconds = elapsed()
    model.eval()
    return {
        "steps": step,
        "total_steps": total_steps,
        "tokens": step * tokens_per_step,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(step * tokens_per_step / max(seconds, 1e-9), 1),
        "precision": precision,
        "device": device.type,
        "history": history,
        "complete": step >= total_steps,
    }
