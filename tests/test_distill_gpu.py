"""GKD on a GPU through Ray Train (NCCL, bf16): DDP and DeepSpeed ZeRO-3. Skipped without CUDA."""

import pytest
import torch

from puzzle_ray.distill import DistillConfig, distill
from puzzle_ray.store import ArtifactStore
from tests.test_distill_fit import SEQ, kl_from_parent, make_pair, tokens

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.integration,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("engine, stage", [("ddp", 0), ("deepspeed", 3)])
def test_bf16_gkd_on_one_gpu_lowers_kl(engine, stage, ray_cluster, tmp_path):
    parent_dir, child_dir = make_pair(tmp_path)
    before = kl_from_parent(parent_dir, child_dir)
    config = DistillConfig(engine=engine, zero_stage=stage, bf16=True, use_gpu=True, num_workers=1,
                           micro_batch_size=8, token_budget=8 * SEQ * 40, lr=3e-3, warmup_fraction=0.1,
                           checkpoint_every=20, log_every=10)
    out = distill(parent_dir, child_dir, tokens(320, seed=1), config, ArtifactStore(tmp_path / "store"),
                  show_progress=False)
    assert kl_from_parent(parent_dir, out) < 0.85 * before
