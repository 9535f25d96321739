"""Timing on this process's device (CPU here; the same code runs inside each Ray task of the fleet)."""

import math

import pytest
import torch

from puzzle_ray.arch import AttentionConfig, BlockConfig, FFNConfig, PuzzleConfig
from puzzle_ray.measure import MeasureConfig, Scenario, TimedBlock
from puzzle_ray.measure.device import measure_units_on_device, torch_threads
from puzzle_ray.measure.stacks import DecodeWorkload, PrefillWorkload, block_stack, decode_steps
from puzzle_ray.measure.timing import DeviceTimer, paired_differences, summarize

PARENT = PuzzleConfig(
    vocab_size=512,
    hidden_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=2048,
    max_position_embeddings=512,
)
FAST = MeasureConfig(stack_depth=2, min_stack_mib=None, warmup=1, repeats=7, threads=1)
# The thread clock ignores the time other work on a shared CI machine takes from us (see DeviceTimer).
STEADY = FAST.model_copy(update={"cpu_clock": "thread"})


def ffn(width: int) -> TimedBlock:
    return TimedBlock(BlockConfig(AttentionConfig(no_op=True), FFNConfig(intermediate_size=width)))


ATTENTION = TimedBlock(BlockConfig(AttentionConfig(n_heads_in_group=2), FFNConfig(no_op=True)))


def test_measured_times_are_positive_and_finite():
    scenario = Scenario(batch_sizes=[1, 2], prefill_len=16, decode_len=8, dtype="fp32")
    units = [
        ATTENTION,
        ffn(256),
        TimedBlock(BlockConfig(AttentionConfig(replace_with_linear=True), FFNConfig(no_op=True))),
        TimedBlock(None),
    ]
    entries = measure_units_on_device(PARENT, units, scenario, STEADY, "cpu")
    assert [e["batch_size"] for e in entries] == [1, 2] * 4
    for e in entries:
        assert e["fits"] and e["hardware"].startswith("cpu")
        for key in ("prefill_ms", "decode_ms"):
            assert math.isfinite(e[key]) and e[key] > 0, (key, e)
            assert math.isfinite(e[f"{key}_iqr"]) and e[f"{key}_iqr"] >= 0
    # the decode context is the scenario's average: prefill + decode / 2
    assert entries[0]["decode_context"] == pytest.approx(scenario.decode_context, abs=1)


def test_the_wall_clock_measures_positive_times_too():
    scenario = Scenario(batch_sizes=[1], prefill_len=32, decode_len=4, dtype="fp32")
    (entry,) = measure_units_on_device(PARENT, [ffn(1024)], scenario, FAST, "cpu")
    assert entry["prefill_ms"] > 0 and entry["decode_ms"] > 0


def test_a_narrower_ffn_is_not_slower_than_a_wider_one_beyond_the_noise():
    scenario = Scenario(batch_sizes=[2], prefill_len=64, decode_len=8, dtype="fp32")
    narrow, wide = measure_units_on_device(PARENT, [ffn(128), ffn(2048)], scenario, FAST, "cpu")
    for key in ("prefill_ms", "decode_ms"):
        noise = 3 * (narrow[f"{key}_iqr"] + wide[f"{key}_iqr"])
        assert narrow[key] <= wide[key] + noise, (key, narrow, wide)
    # 16x the FLOPs: on any device the wide prefill costs clearly more
    assert wide["prefill_ms"] > narrow["prefill_ms"]


def test_a_batch_too_big_for_the_device_memory_is_reported_not_run():
    scenario = Scenario(batch_sizes=[1, 4096], prefill_len=64, decode_len=8, dtype="fp32")
    config = FAST.model_copy(update={"device_memory_mib": 64.0, "repeats": 3})
    small, big = measure_units_on_device(PARENT, [ffn(2048)], scenario, config, "cpu")
    assert small["fits"] and small["prefill_ms"] > 0
    assert not big["fits"] and "prefill_ms" not in big
    assert big["estimated_peak_mib"] > big["device_memory_mib"] == pytest.approx(64 * 0.9)
    assert "exceeds" in big["reason"]


def test_no_op_units_are_never_timed():
    with pytest.raises(ValueError, match="no-op"):
        measure_units_on_device(
            PARENT, [TimedBlock(BlockConfig(AttentionConfig(no_op=True), FFNConfig(no_op=True)))], Scenario(), FAST,
            "cpu",
        )


def test_decode_workload_keeps_its_cache_at_the_decode_context():
    scenario = Scenario(batch_sizes=[2], prefill_len=20, decode_len=10, dtype="fp32")
    steps, start = decode_steps(scenario, 4)
    assert steps == 4 and start + (steps - 1) / 2 == pytest.approx(scenario.decode_context, abs=0.5)
    model = block_stack(PARENT, ATTENTION.block, 2, scenario, "cpu", 0)
    work = DecodeWorkload(model, 2, scenario, "cpu", 0, 4)
    assert work.cache.get_seq_length() == start
    for _ in range(3):
        work.setup()
        work.run()
        assert work.cache.get_seq_length() == start + steps
    work.setup()
    assert work.cache.get_seq_length() == start and work.cache.layers[1].keys.shape == (2, 2, start, 32)
    prefill = PrefillWorkload(model, 2, scenario, "cpu", 0)
    prefill.setup()
    prefill.run()
    assert prefill.cache.get_seq_length() == 20


def test_paired_differences_cancel_the_shared_part():
    class MatmulChain:
        def __init__(self, n):
            self.n = n

        def setup(self):
            pass

        def run(self):
            x = torch.ones(64, 64)
            for _ in range(self.n):
                x = x @ x / 64

    timer = DeviceTimer("cpu")
    with torch_threads(1):
        diffs, totals = paired_differences(timer, MatmulChain(10), MatmulChain(30), warmup=1, repeats=9)
    assert len(diffs) == len(totals) == 9
    d, t = summarize(diffs), summarize(totals)
    assert 0 < d.median < t.median  # the candidate's extra work, less than its total


def test_entries_record_the_stack_depth_they_used():
    scenario = Scenario(batch_sizes=[1], prefill_len=8, decode_len=2, dtype="fp32")
    config = STEADY.model_copy(update={"min_stack_mib": 1e-3, "stack_depth": 1, "max_stack_depth": 3})
    (entry,) = measure_units_on_device(PARENT, [ffn(64)], scenario, config, "cpu")
    assert entry["stack_depth"] == 1  # 1 KiB target: one copy is enough
    config = config.model_copy(update={"min_stack_mib": 64.0})
    (entry,) = measure_units_on_device(PARENT, [ffn(64)], scenario, config, "cpu")
    assert entry["stack_depth"] == 3  # capped at max_stack_depth


class SlowingTimer(DeviceTimer):
    """The real clock, but the machine turns 3x slower halfway through the calls (another tenant arrives)."""

    def __init__(self, device, clock="wall", calls: int = 0):
        super().__init__(device, clock)
        self.calls, self.n = calls, 0

    def __call__(self, fn):
        self.n += 1
        return super().__call__(fn) * (3.0 if self.n > self.calls // 2 else 1.0)


@pytest.mark.parametrize("interleave", [True, False])
def test_rounds_make_a_slowdown_hit_every_unit_alike(monkeypatch, interleave):
    import puzzle_ray.measure.device as device_module

    scenario = Scenario(batch_sizes=[1], prefill_len=64, decode_len=4, dtype="fp32")
    config = STEADY.model_copy(update={"warmup": 0, "repeats": 8, "interleave": interleave})
    # 2 units x 8 rounds x (prefill + decode) x (stack + baseline) timed calls
    monkeypatch.setattr(device_module, "DeviceTimer", lambda d, c: SlowingTimer(d, c, calls=2 * 8 * 2 * 2))
    first, second = measure_units_on_device(PARENT, [ffn(1024), ffn(1024)], scenario, config, "cpu")
    ratio = second["prefill_ms"] / first["prefill_ms"]
    if interleave:  # both units saw the same mix of fast and slow rounds
        assert 0.6 < ratio < 1.6, (first, second)
    else:  # one after the other: the second unit was timed on the slow machine only
        assert ratio > 2.0, (first, second)


def test_units_too_big_to_hold_together_are_timed_one_after_the_other(monkeypatch):
    import puzzle_ray.measure.device as device_module

    order = []
    real = device_module._time_group
    monkeypatch.setattr(device_module, "_time_group",
                        lambda parent, units, group, *a: order.append(list(group)) or real(parent, units, group, *a))
    scenario = Scenario(batch_sizes=[1], prefill_len=8, decode_len=2, dtype="fp32")
    units = [ffn(2048), ffn(1024)]
    one = units[0].peak_bytes_estimate(PARENT, "fp32", 1, 8, 10, 2) / 2**20
    for memory, groups in ((100 * one, [[0, 1]]), (1.5 * one / 0.9, [[0], [1]])):
        order.clear()
        config = FAST.model_copy(update={"device_memory_mib": memory, "repeats": 3})
        entries = measure_units_on_device(PARENT, units, scenario, config, "cpu")
        assert order == groups and all(e["fits"] for e in entries)
