"""Every shipped workflow config validates against the code and plans (dry run) without loading weights."""

from pathlib import Path

import pytest

from puzzle_ray.workflows import load_config
from puzzle_ray.workflows.config import WorkflowConfig
from puzzle_ray.workflows.driver import run_workflow

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "workflows").glob("*.yaml")) + [ROOT / "tests" / "assets" / "micro-workflow.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_validates_and_plans(path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # configs name repository files relative to the root (parent architectures)
    config = load_config(path)
    assert isinstance(config, WorkflowConfig)
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("#"), "each config starts with a comment saying what it is"
    assert "puzzle-ray run" in path.read_text() or "python -m puzzle_ray.workflows" in path.read_text()
    status = run_workflow(config, dry_run=True)
    assert len(status) == 10
    out = capsys.readouterr().out
    assert "work estimate" in out and "variants trained by BLD" in out


def test_every_config_field_is_documented():
    """litgpt-style: a docstring under every field of every section."""
    seen = set()

    def models_in(annotation):
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            yield annotation
        for arg in getattr(annotation, "__args__", ()) + tuple(getattr(annotation, "__metadata__", ())):
            yield from models_in(arg)

    def walk(model):
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"
            for sub in models_in(field.annotation):
                walk(sub)

    walk(WorkflowConfig)
    assert len(seen) > 10


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_plans_checkpoint_bld_and_gkd_during_the_run(path, monkeypatch):
    """A kill during BLD or GKD loses at most part of the run: each checkpoints at least twice before its end."""
    import math

    monkeypatch.chdir(ROOT)
    config = load_config(path)
    seq = config.data.seq_len if config.data is not None else config.parent.embedded.seq_len
    bld_steps = math.ceil(config.bld.token_budget / (config.bld.micro_batch_size * seq))
    gkd_steps = config.distill.token_budget // (config.distill.sequences_per_step * seq)
    assert 2 * config.bld.checkpoint_every <= bld_steps, f"BLD: {bld_steps} steps, checkpoint_every too large"
    assert 2 * config.distill.checkpoint_every <= gkd_steps, f"GKD: {gkd_steps} steps, checkpoint_every too large"
