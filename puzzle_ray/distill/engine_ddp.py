"""Plain PyTorch engine: DistributedDataParallel (gloo on CPU, NCCL on GPU), AdamW, optional bf16 autocast."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel

from ..optim.adamw import build_adamw
from .config import DistillConfig
from .objective import GKDStudent

STUDENT_FILE = "student.safetensors"
OPTIMIZER_FILE = "optimizer.pt"


def student_state_dict(gkd: GKDStudent) -> dict[str, torch.Tensor]:
    """Weights of the child, tied LM head left out (safetensors refuses shared storage)."""
    state = gkd.student.state_dict()
    if gkd.student.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


class DDPEngine:
    def __init__(self, gkd: GKDStudent, config: DistillConfig, device: torch.device, world_size: int):
        self.gkd = gkd.to(device)
        self.device = device
        distributed = world_size > 1 and dist.is_available() and dist.is_initialized()
        ids = [device.index] if device.type == "cuda" else None
        self.model = DistributedDataParallel(self.gkd, device_ids=ids) if distributed else self.gkd
        params = [p for p in self.gkd.parameters() if p.requires_grad]
        self.optimizer = build_adamw(config, params)
        self.params = params
        self.grad_clip = config.grad_clip
        self.bf16 = config.bf16

    def train_step(self, micro_batches, teacher, lr):
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        terms = torch.zeros(3)
        for i, ids in enumerate(micro_batches):
            ids = ids.to(self.device)
            targets = teacher(ids)
            last = i == len(micro_batches) - 1
            # Gradients are all-reduced once per optimizer step, on the last micro-batch.
            sync = contextlib.nullcontext() if last or self.model is self.gkd else self.model.no_sync()
            amp = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)
            with sync:
                with amp:
                    loss, parts = self.model(ids, targets)
                (loss / len(micro_batches)).backward()
            terms += parts.float().cpu() / len(micro_batches)
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return terms, float(norm)

    def save(self, folder: Path, rank: int) -> None:
        if rank == 0:  # DDP keeps identical replicas: one copy is the whole state
            save_file(student_state_dict(self.gkd), folder / STUDENT_FILE)
            torch.save(self.optimizer.state_dict(), folder / OPTIMIZER_FILE)

    def load(self, folder: Path) -> None:
        state = load_file(folder / STUDENT_FILE, device=str(self.device))
        missing, unexpected = self.gkd.student.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (k == "lm_head.weight" and self.gkd.student.config.tie_word_embeddings)]
        if missing or unexpected:
            raise RuntimeError(f"{folder / STUDENT_FILE}: missing={missing} unexpected={unexpected}")
        optim = torch.load(folder / OPTIMIZER_FILE, map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(optim)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        return student_state_dict(self.gkd)
