"""Bad GKD input is refused with one clear error before any worker starts; the token budget becomes steps;
the in-memory batch source shards and cycles like a data-layer split; the DDP engine's checkpoint round-trips."""

import pytest
import torch
from pydantic import ValidationError

from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM
from puzzle_ray.arch.export import export_pretrained
from puzzle_ray.distill import DistillConfig, DistillInputError, TensorBatchSource, check_pair, distill, step_budget
from puzzle_ray.distill.engine_ddp import DDPEngine
from puzzle_ray.distill.objective import GKDStudent, LossWeights, teacher_targets
from puzzle_ray.store import ArtifactStore

TINY = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=48, max_position_embeddings=64, initializer_range=0.3)


def _model(**kw) -> PuzzleForCausalLM:
    return PuzzleForCausalLM(PuzzleConfig(**{**TINY, **kw})).eval()


def _tokens(n=16, t=12, vocab=64):
    return TensorBatchSource(torch.randint(0, vocab, (n, t), generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"zero_stage": 4}, "zero_stage=4: DeepSpeed ZeRO stages are 0, 1, 2 or 3"),
        ({"zero_stage": -1}, "zero_stage=-1"),
        ({"token_budget": 0}, "token_budget=0: GKD needs a positive number of training tokens"),
        ({"cosine_weight": 0, "kl_weight": 0}, "nothing to train on"),
        ({"engine": "ddp", "offload_optimizer": True}, "need engine='deepspeed'"),
        ({"engine": "deepspeed", "zero_stage": 0, "offload_optimizer": True}, "offload_optimizer needs zero_stage >="),
        ({"engine": "deepspeed", "zero_stage": 2, "offload_params": True}, "offload_params needs zero_stage=3"),
        ({"engine": "fsdp"}, "engine"),
        ({"warmup_fraction": 1.0}, "warmup_fraction"),
        ({"learning_rate": 1e-3}, "learning_rate"),  # unknown field: extra="forbid"
    ],
)
def test_bad_configs_name_the_field(fields, message):
    with pytest.raises(ValidationError, match=message):
        DistillConfig(**fields)


def test_a_child_of_another_width_is_rejected_before_training(tmp_path, monkeypatch):
    export_pretrained(_model(), tmp_path / "parent")
    export_pretrained(_model(hidden_size=48), tmp_path / "child")
    with pytest.raises(DistillInputError, match="hidden_size=48 but the parent's is 32"):
        check_pair(tmp_path / "parent", tmp_path / "child")
    # Through the entry point: refused before Ray is touched or anything is written to the store.
    monkeypatch.setattr("ray.train.torch.TorchTrainer", None)  # calling it would raise TypeError
    store = tmp_path / "store"
    with pytest.raises(DistillInputError, match="hidden_size"):
        distill(tmp_path / "parent", tmp_path / "child", _tokens(), DistillConfig(), ArtifactStore(store))
    assert not store.exists()


def test_other_mismatches_and_missing_folders(tmp_path):
    export_pretrained(_model(), tmp_path / "parent")
    export_pretrained(_model(num_hidden_layers=3), tmp_path / "deeper")
    export_pretrained(_model(vocab_size=80), tmp_path / "vocab")
    with pytest.raises(DistillInputError, match="num_hidden_layers=3 .* aligned 1:1 by index"):
        check_pair(tmp_path / "parent", tmp_path / "deeper")
    with pytest.raises(DistillInputError, match="vocab_size=80"):
        check_pair(tmp_path / "parent", tmp_path / "vocab")
    with pytest.raises(DistillInputError, match="child .*nowhere: not a model folder"):
        check_pair(tmp_path / "parent", tmp_path / "nowhere")


def test_token_budget_becomes_whole_optimizer_steps():
    cfg = DistillConfig(micro_batch_size=2, grad_accum_steps=3, num_workers=2, token_budget=12 * 12 * 5 + 7)
    p = step_budget(cfg, _tokens(t=12), vocab_size=64)
    assert (p.seq_len, p.tokens_per_step, p.total_steps) == (12, 144, 5)
    with pytest.raises(DistillInputError, match="token_budget=100 is less than one optimizer step .*= 144"):
        step_budget(cfg.model_copy(update={"token_budget": 100}), _tokens(t=12), vocab_size=64)


def test_data_outside_the_vocabulary_or_without_batches_is_refused():
    with pytest.raises(DistillInputError, match=r"token ids span \[.*\], outside the models' vocabulary of 32"):
        step_budget(DistillConfig(), _tokens(vocab=64), vocab_size=32)
    with pytest.raises(DistillInputError, match="has no batches"):
        step_budget(DistillConfig(), [torch.zeros(2, 4)], vocab_size=32)
    with pytest.raises(ValueError, match="non-empty \\(N, T\\) integer tensor"):
        TensorBatchSource(torch.zeros(4, 5))


def test_batch_source_shards_cover_every_sequence_once_and_respect_budget_and_cycle():
    src = _tokens(n=10, t=4)
    seen = torch.cat([b for r in range(3) for b in src.batches(2, rank=r, world_size=3, seed=5)])
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, src.tokens.tolist()))
    assert sum(b.numel() for b in src.batches(2, token_budget=16)) == 16
    cycled = src.batches(4, cycle=True)
    assert len([next(cycled) for _ in range(10)]) == 10  # more than one pass


def test_token_files_load_and_bad_ones_name_the_file(tmp_path):
    import numpy as np
    from safetensors.torch import save_file

    ids = torch.randint(0, 64, (6, 8))
    np.save(tmp_path / "t.npy", ids.numpy())
    save_file({"tokens": ids}, tmp_path / "t.safetensors")
    for name in ("t.npy", "t.safetensors"):
        assert torch.equal(TensorBatchSource.from_file(tmp_path / name).tokens, ids)
    np.save(tmp_path / "bad.npy", np.zeros(5))
    with pytest.raises(ValueError, match="bad.npy: tokens: expected"):
        TensorBatchSource.from_file(tmp_path / "bad.npy")
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        TensorBatchSource.from_file(tmp_path / "missing.npy")
    for name in ("corrupt.npy", "corrupt.safetensors", "corrupt.pt"):  # each loader's own error, named
        (tmp_path / name).write_bytes(bytes(range(128, 256)))
        with pytest.raises(ValueError, match=rf"{name}: not a readable \.\w+ token file \("):
            TensorBatchSource.from_file(tmp_path / name)


def test_ddp_engine_trains_and_its_checkpoint_resumes_exactly(tmp_path):
    parent = _model()
    child = _model()
    child.load_state_dict({k: v + 0.1 * torch.randn_like(v) for k, v in parent.state_dict().items()})
    cfg = DistillConfig(lr=3e-3)
    batches = [b for b in _tokens(n=32).batches(4, seed=1)]  # 8 micro-batches
    teacher = lambda ids: teacher_targets(parent, ids)  # noqa: E731

    def engine_for(state):
        student = _model().train()
        student.load_state_dict(state)
        return DDPEngine(GKDStudent(student, LossWeights(), 16), cfg, torch.device("cpu"), world_size=1)

    engine = engine_for(child.state_dict())
    losses = [engine.train_step([b], teacher, 3e-3)[0][1].item() for b in batches[:4]]
    assert losses[-1] < losses[0]
    engine.save(tmp_path, rank=0)
    uninterrupted = [engine.train_step([b], teacher, 3e-3)[0] for b in batches[4:]]

    resumed = engine_for(_model().state_dict())  # different weights, fresh optimizer
    resumed.load(tmp_path)
    again = [resumed.train_step([b], teacher, 3e-3)[0] for b in batches[4:]]
    for a, b in zip(uninterrupted, again):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_data_layers_token_split_is_a_batch_source_that_resumes_without_rereading(tmp_path):
    import itertools

    import numpy as np

    from puzzle_ray.data.cache import SplitWriter
    from puzzle_ray.data.split import TokenSplit
    from puzzle_ray.distill.run import data_identity
    from puzzle_ray.distill.worker import resume_batches

    writer = SplitWriter(tmp_path / "train", "train", seq_len=12, dtype=np.dtype("uint16"), shard_sequences=8)
    writer.add(torch.randint(0, 64, (40 * 12,), generator=torch.Generator().manual_seed(0)).tolist())
    writer.close()
    split = TokenSplit(tmp_path / "train")
    assert step_budget(DistillConfig(micro_batch_size=2, token_budget=24 * 10), split, vocab_size=64).total_steps == 10
    for rank in range(2):
        skipped = itertools.islice(split.batches(2, rank=rank, world_size=2, seed=3, cycle=True), 7, 12)
        resumed = itertools.islice(resume_batches(split, 2, rank, 2, 3, skip=7), 5)
        for a, b in zip(skipped, resumed, strict=True):
            assert torch.equal(a, b)
    assert data_identity(split) == data_identity(TokenSplit(tmp_path / "train"))


def test_the_cli_names_the_bad_field_and_exits_2(tmp_path):
    from typer.testing import CliRunner

    from puzzle_ray.cli import app

    export_pretrained(_model(), tmp_path / "parent")
    torch.save(torch.randint(0, 64, (8, 12)), tmp_path / "tokens.pt")
    args = ["distill", str(tmp_path / "parent"), str(tmp_path / "parent"), "--tokens", str(tmp_path / "tokens.pt"),
            "--no-mlflow", "--store", str(tmp_path / "store")]
    result = CliRunner().invoke(app, args + ["--engine", "deepspeed", "--zero-stage", "5"])
    assert result.exit_code == 2 and "--zero-stage 5: DeepSpeed ZeRO stages are 0, 1, 2 or 3" in result.output
    result = CliRunner().invoke(app, args + ["--token-budget", "0"])
    assert result.exit_code == 2 and "--token-budget 0: GKD needs a positive number" in result.output
    assert not (tmp_path / "store").exists()
