"""The Ray measurement fleet on a real local cluster: library stats, the cache, failures that do not sink it."""

import math

import pytest

from puzzle_ray.arch import AttentionConfig, BlockConfig, FFNConfig, PuzzleConfig
from puzzle_ray.library.record import Library, LibraryError, Variant
from puzzle_ray.measure import (
    MeasureConfig,
    MeasureError,
    Scenario,
    TimedBlock,
    measure_blocks,
    measure_library,
    measure_units,
    skeleton_library,
)
from puzzle_ray.measure.fleet import CACHE_PREFIX
from puzzle_ray.store import ArtifactStore

PARENT = PuzzleConfig(
    vocab_size=256,
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=192,
    max_position_embeddings=256,
)
VARIANTS = [
    BlockConfig(AttentionConfig(n_heads_in_group=2), FFNConfig(intermediate_size=192)),  # the parent's block
    BlockConfig(AttentionConfig(n_heads_in_group=4), FFNConfig(intermediate_size=64)),
    BlockConfig(AttentionConfig(replace_with_linear=True), FFNConfig(no_op=True)),
    BlockConfig(AttentionConfig(no_op=True), FFNConfig(replace_with_linear=True)),
]
SCENARIO = Scenario(name="tiny", batch_sizes=[1, 2], prefill_len=16, decode_len=4, dtype="fp32")
# The thread clock ignores the time other work on a shared CI machine takes from us (see DeviceTimer).
FAST = MeasureConfig(
    stack_depth=2, min_stack_mib=None, warmup=1, repeats=3, threads=1, units_per_task=3, cpu_clock="thread"
)


def cached_files(store: ArtifactStore) -> dict[str, float]:
    return {k: store.fs.info(store.path(f"{CACHE_PREFIX}/{k}"))["mtime"] for k in store.list(CACHE_PREFIX)}


@pytest.mark.integration
def test_library_gets_stats_and_a_rerun_comes_from_the_cache(ray_cluster, tmp_path):
    store = ArtifactStore(tmp_path / "store")
    library = skeleton_library(PARENT, VARIANTS)
    measured = measure_library(library, PARENT, SCENARIO, FAST, store)

    # every (layer, variant) has the contract's stats, at every batch size
    for layer in measured.layers:
        for v in layer.values():
            for b in SCENARIO.batch_sizes:
                s = v.stats_for_batch(b)
                for key in ("prefill_ms", "decode_ms", "runtime_ms"):
                    # >= 0: a tiny sub-block's cost may be below the noise here (device tests check > 0)
                    assert math.isfinite(s[key]) and s[key] >= 0, (v.name, key, s)
                assert s["memory_mib"] > 0
                assert s["runtime_ms"] == pytest.approx(s["prefill_ms"] + SCENARIO.decode_len * s["decode_ms"])
    # identical blocks in different layers were measured once: the same numbers everywhere
    assert measured.layers[0]["attention=kv1 ffn=64"].stats == measured.layers[2]["attention=kv1 ffn=64"].stats
    assert measured.layers[0]["attention=kv2 ffn=192"].stats["prefill_ms"] > 0
    meta = measured.meta
    assert meta["scenario"]["name"] == "tiny" and meta["non_block"]["prefill_ms"] > 0
    assert meta["non_block"]["num_params"] == 2 * 256 * 64 + 64
    assert meta["measurement"]["hardware"].startswith("cpu")
    # the input library is not modified
    assert all(not v.stats for layer in library.layers for v in layer.values())
    # 6 distinct non-no-op sub-blocks + the non-block part, each at 2 batch sizes, one file each
    files = cached_files(store)
    assert len(files) == 7 * 2

    # the record survives a save / load round trip, and search-facing helpers read it
    measured.write(tmp_path / "lib")
    again = Library.read(tmp_path / "lib")
    assert again.layers[1]["attention=linear ffn=no_op"].stats_for_batch(2)["prefill_ms"] > 0

    # second call: everything from the cache, no task launched, nothing timed or rewritten
    result = measure_blocks(PARENT, VARIANTS, SCENARIO, FAST, store)
    assert result.num_measured == 0 and result.num_tasks == 0 and result.num_cached == 14
    assert cached_files(store) == files
    rerun = measure_library(library, PARENT, SCENARIO, FAST, store)
    assert rerun.to_json() == measured.to_json()

    # a new batch size measures only the missing entries
    more = measure_blocks(PARENT, VARIANTS, SCENARIO.model_copy(update={"batch_sizes": [1, 3]}), FAST, store)
    assert more.num_cached == 7 and more.num_measured == 7


@pytest.mark.integration
def test_a_batch_too_big_is_reported_and_the_fleet_completes(ray_cluster, tmp_path):
    store = ArtifactStore(tmp_path / "store")
    scenario = SCENARIO.model_copy(update={"batch_sizes": [1, 100_000]})
    config = FAST.model_copy(update={"device_memory_mib": 32.0})
    library = measure_library(skeleton_library(PARENT, VARIANTS[:2]), PARENT, scenario, config, store)
    stats = library.layers[0]["attention=kv2 ffn=192"].stats
    assert stats["prefill_ms"] > 0  # batch 1 fits
    big = stats["by_batch"]["100000"]
    assert big["fits"] is False and "prefill_ms" not in big and big["memory_mib"] > 32
    assert library.meta["non_block"]["by_batch"]["100000"]["fits"] is False
    # results that did not fit are not cached (they depend on the memory limit, not on the hardware)
    assert len(store.list(CACHE_PREFIX)) == 5


def test_a_target_the_cluster_cannot_place_fails_before_any_work(ray_cluster, tmp_path):
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(MeasureError, match="GPU=1"):
        measure_blocks(PARENT, VARIANTS, SCENARIO, FAST.model_copy(update={"num_gpus": 1}), store)
    config = MeasureConfig(num_gpus=1, accelerator_type="H100")
    with pytest.raises(MeasureError, match="accelerator_type:H100"):
        measure_blocks(PARENT, VARIANTS, SCENARIO, config, store)
    assert store.list(CACHE_PREFIX) == []


def test_bad_libraries_are_rejected_naming_layer_and_variant(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    lib = skeleton_library(PARENT, VARIANTS[:1])
    lib.layers[1]["mystery"] = Variant("mystery", {}, {}, None)
    with pytest.raises(LibraryError, match="layer_1 / 'mystery'"):
        measure_library(lib, PARENT, SCENARIO, FAST, store)
    bad = skeleton_library(PARENT, [BlockConfig(AttentionConfig(n_heads_in_group=3), FFNConfig(intermediate_size=8))])
    with pytest.raises(LibraryError, match=r"layer_0 / .*n_heads_in_group=3"):
        measure_library(bad, PARENT, SCENARIO, FAST, store)
    short = Library(skeleton_library(PARENT, VARIANTS[:1]).layers[:2], {})
    with pytest.raises(LibraryError, match="2 layers but the parent has 3"):
        measure_library(short, PARENT, SCENARIO, FAST, store)


@pytest.mark.integration
def test_a_failing_task_is_reported_and_the_other_tasks_complete(ray_cluster, tmp_path):
    store = ArtifactStore(tmp_path / "store")
    good = TimedBlock(BlockConfig(AttentionConfig(no_op=True), FFNConfig(intermediate_size=64)))
    # 3 does not divide the 4 heads: measure_units does not validate (measure_blocks does), so the task fails
    broken = TimedBlock(BlockConfig(AttentionConfig(n_heads_in_group=3), FFNConfig(no_op=True)))
    config = FAST.model_copy(update={"units_per_task": 1})
    result = measure_units(PARENT, [broken, good], SCENARIO, config, store)
    assert len(result.failures) == 1 and "attention gqa" in result.failures[0]
    assert result.entry(good, 1)["prefill_ms"] >= 0 and result.num_measured == 2
    assert len(store.list(CACHE_PREFIX)) == 2  # the good unit's results are cached; a rerun repeats only the failure
