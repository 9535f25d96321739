"""End-to-end cost measurement, the prediction against it, and the two CLI commands."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from puzzle_ray.arch import PuzzleConfig
from puzzle_ray.arch.export import export_pretrained
from puzzle_ray.arch.stats import model_stats
from puzzle_ray.cli import app
from puzzle_ray.library.record import Library
from puzzle_ray.measure import (
    MeasureConfig,
    Scenario,
    compare_costs,
    measure_library,
    measure_model_costs,
    predict_model_costs,
    skeleton_library,
)
from puzzle_ray.measure.timed_block import MIB
from puzzle_ray.store import ArtifactStore
from tests.tiny_models import tiny_llama, tiny_mixed_child

SCENARIO = Scenario(batch_sizes=[1, 2], prefill_len=16, decode_len=4, dtype="fp32")
# The thread clock ignores the time other work on a shared CI machine takes from us (see DeviceTimer).
FAST = MeasureConfig(stack_depth=2, min_stack_mib=None, warmup=1, repeats=3, threads=1, cpu_clock="thread")


def test_measured_model_costs_are_positive_and_memory_is_exact():
    model = tiny_mixed_child()
    costs = measure_model_costs(model, SCENARIO, FAST, device="cpu")
    stats = model_stats(model.config, "fp32")
    for b, c in costs.items():
        assert c.fits and c.batch_size == b and c.decode_len == 4
        assert math.isfinite(c.prefill_ms) and c.prefill_ms > 0 and c.decode_ms > 0
        assert c.decode_tokens_per_s == pytest.approx(b * 1e3 / c.decode_ms)
        assert c.memory_mib * MIB == stats.num_params * 4 + b * 20 * stats.kv_bytes_per_token
        assert c.peak_memory_mib is None  # measured only on CUDA


def test_model_costs_from_a_folder_a_config_and_a_llama_parent(tmp_path):
    export_pretrained(tiny_mixed_child(), tmp_path / "child")
    scenario = SCENARIO.model_copy(update={"batch_sizes": [1]})
    from_dir = measure_model_costs(tmp_path / "child", scenario, FAST, device="cpu")
    from_config = measure_model_costs(tmp_path / "child" / "config.json", scenario, FAST, device="cpu")
    assert from_dir[1].memory_mib == from_config[1].memory_mib and from_config[1].prefill_ms > 0
    llama = tiny_llama()
    llama.save_pretrained(tmp_path / "llama")
    assert measure_model_costs(tmp_path / "llama", scenario, FAST, device="cpu")[1].decode_ms > 0
    with pytest.raises(FileNotFoundError, match="nowhere"):
        measure_model_costs(tmp_path / "nowhere", scenario, FAST, device="cpu")


def test_a_model_too_big_for_the_device_is_reported():
    scenario = SCENARIO.model_copy(update={"batch_sizes": [1, 1_000_000]})
    costs = measure_model_costs(
        tiny_mixed_child(), scenario, FAST.model_copy(update={"device_memory_mib": 16.0}), device="cpu"
    )
    assert costs[1].fits and not costs[1_000_000].fits and math.isnan(costs[1_000_000].prefill_ms)


def _measured_library(tmp_path, parent: PuzzleConfig) -> Library:
    variants = sorted({b for b in tiny_mixed_child().config.block_configs} | set(parent.block_configs), key=repr)
    return measure_library(
        skeleton_library(parent, variants), parent, SCENARIO, FAST, ArtifactStore(tmp_path / "store")
    )


def _parent() -> PuzzleConfig:
    child = tiny_mixed_child().config
    return PuzzleConfig(**{**child.to_dict(), "block_configs": None, "num_key_value_heads": 2, "intermediate_size": 64})


@pytest.mark.integration
def test_prediction_is_in_the_right_range_of_the_measurement(ray_cluster, tmp_path):
    """Loose bounds: this checks the plumbing; benchmarks/cost_model.py measures the accuracy."""
    library = _measured_library(tmp_path, _parent())
    child = tiny_mixed_child()
    predicted = predict_model_costs(child.config, library)
    measured = measure_model_costs(child, SCENARIO, FAST.model_copy(update={"repeats": 7}), device="cpu")
    for row in compare_costs(predicted, measured):
        assert 0.3 < row["prefill_ms_pred"] / row["prefill_ms_meas"] < 3, row
        assert 0.3 < row["decode_tok_s_pred"] / row["decode_tok_s_meas"] < 3, row
        assert row["memory_mib_pred"] == pytest.approx(row["memory_mib_meas"])


@pytest.mark.integration
def test_cli_measure_and_measure_model(ray_cluster, tmp_path):
    parent = _parent()
    lib_dir = tmp_path / "lib"
    variants = sorted(set(tiny_mixed_child().config.block_configs), key=repr)
    skeleton_library(parent, variants).write(lib_dir)
    runner = CliRunner()
    args = [
        "measure",
        str(lib_dir),
        "--store",
        str(tmp_path / "store"),
        "--batch-sizes",
        "1",
        "--prefill-len",
        "16",
        "--decode-len",
        "4",
        "--dtype",
        "fp32",
        "--repeats",
        "3",
        "--threads",
        "1",
        "--cpu-clock",
        "thread",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    measured = Library.read(lib_dir)
    assert measured.meta["scenario"]["prefill_len"] == 16
    assert all(v.stats["prefill_ms"] >= 0 for layer in measured.layers for v in layer.values())

    export_pretrained(tiny_mixed_child(), tmp_path / "child")
    result = runner.invoke(
        app,
        [
            "measure-model",
            str(tmp_path / "child"),
            "--library",
            str(lib_dir),
            "--repeats",
            "3",
            "--threads",
            "1",
            "--cpu-clock",
            "thread",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])  # progress bars go to stderr
    assert out["measured"]["1"]["prefill_ms"] > 0 and out["predicted"]["1"]["prefill_ms"] > 0
    assert out["comparison"][0]["batch"] == 1


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--prefill-len", "0"], "--prefill-len 0: "),
        (["--decode-len", "-3"], "--decode-len -3: "),
        (["--dtype", "int3"], "--dtype 'int3': expected"),
        (["--batch-sizes", "1,x"], "--batch-sizes"),
    ],
)
def test_cli_rejects_bad_scenarios_with_one_line(tmp_path, extra, words):
    skeleton_library(_parent(), [_parent().block_configs[0]]).write(tmp_path / "lib")
    result = CliRunner().invoke(app, ["measure", str(tmp_path / "lib"), "--store", str(tmp_path / "store"), *extra])
    assert result.exit_code == 2 and words in result.output, result.output
    assert not (tmp_path / "store").exists()  # rejected before any work


def test_cli_measure_model_rejects_a_missing_model(tmp_path):
    result = CliRunner().invoke(app, ["measure-model", str(tmp_path / "none"), "--device", "cpu"])
    assert result.exit_code == 2 and "no such config file" in result.output


def test_greedy_decode_loop_uses_the_models_own_cache():
    """The measured loop is a real generation: same tokens as generate() with the Puzzle cache."""
    from puzzle_ray.measure.cost_model import _request
    from puzzle_ray.measure.timing import DeviceTimer

    model = tiny_mixed_child()
    prompt = torch.randint(0, 128, (2, 8))
    captured = []
    original = model.forward

    def spy(*args, **kw):
        out = original(*args, **kw)
        captured.append(out.logits[:, -1].argmax(-1))
        return out

    model.forward = spy
    _request(model, prompt, 5, DeviceTimer("cpu"))
    model.forward = original
    reference = model.generate(prompt, max_new_tokens=6, do_sample=False, attention_mask=torch.ones_like(prompt))
    assert torch.equal(torch.stack(captured, 1), reference[:, 8:])


def test_models_timed_in_shared_rounds_see_the_same_machine(monkeypatch):
    """A slowdown halfway through moves both models alike: two copies of one model keep a ratio near 1."""
    import puzzle_ray.measure.cost_model as cost_model
    from puzzle_ray.measure.cost_model import measure_models_costs
    from puzzle_ray.measure.timing import DeviceTimer

    class SlowingTimer(DeviceTimer):
        calls = 0

        def __call__(self, fn):
            SlowingTimer.calls += 1
            return super().__call__(fn) * (3.0 if SlowingTimer.calls > 2 * 2 * 8 // 2 else 1.0)

    monkeypatch.setattr(cost_model, "DeviceTimer", SlowingTimer)
    model = tiny_mixed_child()
    config = FAST.model_copy(update={"warmup": 0, "repeats": 8})
    scenario = Scenario(batch_sizes=[2], prefill_len=32, decode_len=4, dtype="fp32")
    costs = measure_models_costs({"a": model, "b": model}, scenario, config, device="cpu")
    assert set(costs) == {"a", "b"} and SlowingTimer.calls == 2 * 2 * 8  # models x (prefill, decode) x repeats
    a, b = costs["a"][2], costs["b"][2]
    assert 0.6 < b.prefill_ms / a.prefill_ms < 1.6 and 0.6 < b.decode_ms / a.decode_ms < 1.6, (a, b)
