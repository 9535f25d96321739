"""Scenario and MeasureConfig validation: bad input is one clear error naming the field."""

import pytest
import torch
from pydantic import ValidationError

from puzzle_ray.measure import MeasureConfig, MeasureStageConfig, Scenario


def _error(cls, **kw) -> str:
    with pytest.raises(ValidationError) as e:
        cls(**kw)
    return str(e.value)


@pytest.mark.parametrize("field", ["prefill_len", "decode_len"])
@pytest.mark.parametrize("value", [0, -5])
def test_zero_or_negative_lengths_are_rejected_naming_the_field(field, value):
    msg = _error(Scenario, **{field: value})
    assert f"{field}={value}" in msg and "positive" in msg


@pytest.mark.parametrize(
    "batch_sizes, words", [([], "at least one"), ([0], "positive"), ([4, -1], "positive"), ([2, 2], "repeated")]
)
def test_bad_batch_sizes_are_rejected(batch_sizes, words):
    assert words in _error(Scenario, batch_sizes=batch_sizes)


def test_unknown_dtype_is_rejected_and_aliases_are_accepted():
    assert "dtype='int4'" in _error(Scenario, dtype="int4")
    assert Scenario(dtype="bfloat16").dtype == "bf16"
    assert Scenario(dtype="float32").torch_dtype == torch.float32


def test_unknown_field_is_rejected():
    assert "prefil_len" in _error(Scenario, prefil_len=3)


def test_scenario_derived_values():
    s = Scenario(batch_sizes=[8, 1], prefill_len=100, decode_len=20)
    assert s.decode_context == 110 and s.total_len == 120
    assert s.workload(8) == {"batch_size": 8, "prefill_len": 100, "decode_len": 20, "dtype": "bf16"}
    assert "name" not in s.workload(8)  # the label never changes a measurement's cache key


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"stack_depth": 0}, "stack_depth=0"),
        ({"repeats": -1}, "repeats=-1"),
        ({"warmup": -1}, "warmup=-1"),
        ({"memory_headroom": 1.5}, "memory_headroom"),
        ({"device_memory_mib": 0}, "device_memory_mib"),
        ({"accelerator_type": "H100"}, "num_gpus=1"),
        ({"num_gpus": 2}, "num_gpus"),
        ({"cpu_clock": "thread", "threads": 2}, "needs threads=1"),
        ({"cpu_clock": "cpu"}, "cpu_clock"),
    ],
)
def test_bad_measure_config_is_rejected(kw, words):
    assert words in _error(MeasureConfig, **kw)


def test_measure_config_resources_and_method():
    gpu = MeasureConfig(num_gpus=1, accelerator_type="H100")
    assert gpu.ray_options()["accelerator_type"] == "H100" and gpu.ray_options()["num_gpus"] == 1
    assert gpu.device == "cuda" and gpu.method()["threads"] is None
    cpu = MeasureConfig(num_cpus=2)
    assert cpu.device == "cpu" and cpu.torch_threads == 2 and cpu.method()["threads"] == 2
    # where and how wide the fleet runs does not change a measured value
    assert MeasureConfig(units_per_task=1).method() == MeasureConfig(units_per_task=9).method()
    # ... but the clock does (thread CPU time and wall time are different figures)
    assert MeasureConfig(cpu_clock="thread").method() != MeasureConfig().method()


def test_stage_config_composes_both():
    cfg = MeasureStageConfig(scenario={"batch_sizes": [1, 4]}, measure={"repeats": 3})
    assert cfg.scenario.batch_sizes == [1, 4] and cfg.measure.repeats == 3


def test_stage_config_from_a_file_with_command_line_overrides(tmp_path):
    from puzzle_ray.measure.cli import stage_config

    file = tmp_path / "measure.yaml"
    file.write_text(
        "scenario: {batch_sizes: [1, 8], prefill_len: 512, dtype: fp16}\nmeasure: {repeats: 9, num_gpus: 1}\n"
    )
    cfg = stage_config(file, {"prefill_len": 64, "decode_len": None}, {"repeats": None, "threads": 2})
    assert cfg.scenario.batch_sizes == [1, 8] and cfg.scenario.prefill_len == 64 and cfg.scenario.dtype == "fp16"
    assert cfg.measure.repeats == 9 and cfg.measure.num_gpus == 1 and cfg.measure.threads == 2
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        stage_config(tmp_path / "nope.yaml", {}, {})
    # a bad value is named where it came from: the file's field, or the option that gave it (one line each)
    file.write_text("scenario: {prefill_len: 0}\n")
    with pytest.raises(ValueError, match=r"^\S*measure.yaml: scenario.prefill_len: .*prefill_len=0"):
        stage_config(file, {}, {})
    with pytest.raises(ValueError, match=r"^--cpu-clock 'cpu': Input should be 'wall' or 'thread'$"):
        stage_config(None, {}, {"cpu_clock": "cpu"})
    with pytest.raises(ValueError, match=r"^--prefill-len 0: "):
        stage_config(file, {"prefill_len": 0}, {})
