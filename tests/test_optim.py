"""One optimiser config, one schedule and one AdamW builder for BLD, GKD and pretraining; one builder of the
toy parent's config for the plan and for pretraining."""

import importlib.util
import inspect

import pytest
import torch
from pydantic import ValidationError

from puzzle_ray.distill.config import DistillConfig
from puzzle_ray.distill.worker import gkd_worker
from puzzle_ray.library.actor import BLDWorker
from puzzle_ray.library.config import BLDConfig
from puzzle_ray.optim.adamw import build_adamw
from puzzle_ray.optim.config import OptimizerConfig
from puzzle_ray.optim.schedule import warmup_cosine, warmup_cosine_scheduler
from puzzle_ray.parent.config import ParentModelConfig, PretrainConfig
from puzzle_ray.parent.model import parent_puzzle_config
from puzzle_ray.parent.train import pretrain_model
from puzzle_ray.workflows.config import WorkflowConfig
from puzzle_ray.workflows.preflight import parent_architecture

CONFIGS = (BLDConfig(), DistillConfig(), PretrainConfig())


def test_the_three_trainers_share_one_schedule():
    assert all(isinstance(c, OptimizerConfig) for c in CONFIGS)
    assert BLDConfig.lr_at is DistillConfig.lr_at is PretrainConfig.lr_at is OptimizerConfig.lr_at
    assert "cfg.lr_at(" in inspect.getsource(pretrain_model) and "cfg.lr_at(" in inspect.getsource(gkd_worker)
    assert "warmup_cosine_scheduler(" in inspect.getsource(BLDWorker._make_optimizer)
    for gone in ("puzzle_ray.parent.schedule", "puzzle_ray.distill.schedule"):
        assert importlib.util.find_spec(gone) is None


def test_bld_scheduler_steps_the_same_learning_rates():
    cfg, total = BLDConfig(lr=2e-3, warmup_fraction=0.1), 50
    opt = build_adamw(cfg, [torch.nn.Parameter(torch.zeros(2))])
    sched = warmup_cosine_scheduler(opt, total, cfg.warmup_steps_for(total), cfg.min_lr_ratio)
    for step in range(total + 1):
        assert opt.param_groups[0]["lr"] == pytest.approx(cfg.lr_at(step, total), rel=1e-12)
        opt.step()
        sched.step()


def test_schedule_shape():
    lrs = [warmup_cosine(s, 100, 1.0, 10, 0.1) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == lrs[10] == 1.0  # warm-up from lr / steps to the peak
    assert all(a > b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(0.1) and warmup_cosine(500, 100, 1.0, 10, 0.1) == pytest.approx(0.1)


def test_warmup_length_per_trainer():
    assert PretrainConfig(warmup_steps=7).warmup_steps_for(1000) == 7
    assert DistillConfig(warmup_fraction=0.05).warmup_steps_for(10) == 0  # rounds down: no warm-up
    assert BLDConfig(warmup_fraction=0.05).warmup_steps_for(10) == 1  # BLD always warms up one step
    assert BLDConfig(warmup_fraction=0.05).warmup_steps_for(100) == 5


def test_defaults_stay_per_trainer():
    b, d, p = CONFIGS
    assert (b.lr, d.lr, p.lr) == (1e-3, 1e-4, 3e-3)
    assert (b.weight_decay, d.weight_decay, p.weight_decay) == (0.0, 0.0, 0.1)
    assert b.betas == d.betas == (0.9, 0.999) and p.betas == (0.9, 0.95)
    assert b.min_lr_ratio == d.min_lr_ratio == p.min_lr_ratio == 0.1 and b.grad_clip == d.grad_clip == p.grad_clip
    for cls in (BLDConfig, DistillConfig, PretrainConfig):
        with pytest.raises(ValidationError, match="min_lr_ratio"):
            cls(min_lr_ratio=1.5)


def test_adamw_groups():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    single = build_adamw(BLDConfig(weight_decay=0.2), model.parameters())
    assert len(single.param_groups) == 1 and single.param_groups[0]["weight_decay"] == 0.2
    split = build_adamw(PretrainConfig(), model.parameters(), decay_matrices_only=True, fused=False)
    assert [g["weight_decay"] for g in split.param_groups] == [0.1, 0.0]
    assert [len(g["params"]) for g in split.param_groups] == [1, 3]  # the Linear's matrix; biases and norms
    assert split.param_groups[0]["betas"] == (0.9, 0.95) and split.param_groups[0]["fused"] is False


def test_plan_sees_the_toy_parent_that_is_trained():
    cfg = WorkflowConfig(name="t", parent={"embedded": {"model": {"num_layers": 3, "rope_theta": 5e5}}})
    no_special_tokens = type("Tok", (), {"__len__": lambda self: cfg.parent.embedded.tokenizer.vocab_size,
                                         "bos_token_id": None, "eos_token_id": None, "pad_token_id": None})()
    trained = parent_puzzle_config(cfg.parent.embedded.model, no_special_tokens)
    planned = parent_architecture(cfg)
    assert planned.to_dict() == trained.to_dict()
    assert planned.rope_parameters["rope_theta"] == 5e5 and planned.num_hidden_layers == 3
    assert parent_puzzle_config(ParentModelConfig(), no_special_tokens).rope_parameters["rope_theta"] == 1e4
