"""DeepSpeed engine: ZeRO stages 0-3, optional CPU offload of optimizer states and parameters, bf16.

On CPU (tests, laptops) DeepSpeed runs on the gloo process group that Ray Train created; two of its defaults
must be avoided there: the shared-memory communication op, which takes over a minute to
compile on first use, and its compiled CPU-Adam (torch's AdamW is used instead).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from ..optim.adamw import adamw_options
from .config import DistillConfig
from .engine_ddp import student_state_dict
from .objective import GKDStudent

TAG = "deepspeed"
STUDENT_PREFIX = "student."


def deepspeed_config(config: DistillConfig, world_size: int, on_gpu: bool) -> dict:
    """The DeepSpeed JSON config for this run (batch sizes, ZeRO, offload, precision, optimizer)."""
    zero: dict = {"stage": config.zero_stage}
    if config.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if config.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    return {
        "train_micro_batch_size_per_gpu": config.micro_batch_size,
        "gradient_accumulation_steps": config.grad_accum_steps,
        "train_batch_size": config.micro_batch_size * config.grad_accum_steps * world_size,
        "zero_optimization": zero,
        "optimizer": {
            "type": "AdamW",
            # torch_adam: torch's AdamW. DeepSpeed's CPU-Adam and fused Adam are JIT-compiled on first use
            # (minutes, and a CUDA toolchain on GPU nodes); torch's multi-tensor AdamW needs neither.
            "params": {**adamw_options(config), "betas": list(config.betas), "torch_adam": True},  # JSON: a list
        },
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "gradient_clipping": config.grad_clip,
        "bf16": {"enabled": config.bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _skip_shm_op_build() -> None:
    # `import deepspeed.comm.torch as m` would bind the `torch` attribute of deepspeed.comm (the torch package),
    # not the module, and silently patch nothing: go through importlib.
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None


def _weights_only_checkpoint_engine():
    """DeepSpeed's torch checkpoint engine, but loading with `torch.load(weights_only=True)`.

    DeepSpeed loads its checkpoints with weights_only=False (arbitrary unpickling); ours hold only tensors,
    containers, numbers and a few DeepSpeed enums and config classes, which are allow-listed by name.
    """
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    from .safe_load import deepspeed_safe_globals

    class WeightsOnlyCheckpointEngine(TorchCheckpointEngine):
        def load(self, path: str, map_location=None):
            with torch.serialization.safe_globals(deepspeed_safe_globals()):
                return torch.load(path, map_location=map_location, weights_only=True)

    return WeightsOnlyCheckpointEngine()


class DeepSpeedEngine:
    def __init__(self, gkd: GKDStudent, config: DistillConfig, device: torch.device, world_size: int):
        on_gpu = device.type == "cuda"
        if not on_gpu:
            _skip_shm_op_build()
        import deepspeed

        self.device = device
        self.zero_stage = config.zero_stage
        params = [p for p in gkd.parameters() if p.requires_grad]
        self.engine, *_ = deepspeed.initialize(
            model=gkd.to(device), model_parameters=params, config=deepspeed_config(config, world_size, on_gpu)
        )
        self.engine.checkpoint_engine = _weights_only_checkpoint_engine()

    @property
    def gkd(self) -> GKDStudent:
        return self.engine.module

    def train_step(self, micro_batches, teacher, lr):
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr
        terms = torch.zeros(3)
        for ids in micro_batches:
            ids = ids.to(self.device)
            loss, parts = self.engine(ids, teacher(ids))
            self.engine.backward(loss)  # scaled by 1 / gradient_accumulation_steps inside
            self.engine.step()  # the optimizer steps on the last micro-batch of the accumulation window
            terms += parts.float().cpu() / len(micro_batches)
        norm = self.engine.get_global_grad_norm()
        return terms, float("nan") if norm is None else float(norm)

    def save(self, folder: Path, rank: int) -> None:
        # Every rank writes its own ZeRO partition (distinct file names), Ray Train merges the folders.
        self.engine.save_checkpoint(str(folder), tag=TAG)

    def load(self, folder: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(folder), tag=TAG, load_lr_scheduler_states=False)
        if path is None:
            raise RuntimeError(f"{folder}: no DeepSpeed checkpoint with tag {TAG!r}")

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        if self.zero_stage == 3:
            state = self.engine._zero3_consolidated_16bit_state_dict() or {}  # gathered on rank 0 only
            tied = self.gkd.student.config.tie_word_embeddings
            return {
                k[len(STUDENT_PREFIX) :]: v.detach().contiguous().cpu()
                for k, v in state.items()
                if k.startswith(STUDENT_PREFIX) and not (tied and k == STUDENT_PREFIX + "lm_head.weight")
            }
        return student_state_dict(self.gkd)
