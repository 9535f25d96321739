"""The DeepSpeed classes that its checkpoints pickle besides tensors and containers (measured on 0.19.8).

`torch.load(weights_only=True)` refuses any other global, so a tampered checkpoint cannot run code on load.
"""

from __future__ import annotations


def deepspeed_safe_globals() -> list:
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]
