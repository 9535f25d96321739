"""Sub-block units, exact memory accounting, and composition of unit timings into library stats."""

import math

import pytest
import torch

from puzzle_ray.arch import AttentionConfig, BlockConfig, FFNConfig, PuzzleCache, PuzzleConfig, PuzzleForCausalLM
from puzzle_ray.arch.stats import dtype_bytes, model_stats
from puzzle_ray.library.record import LibraryError
from puzzle_ray.measure import MeasureConfig, Measurements, Scenario, predict_model_costs, skeleton_library
from puzzle_ray.measure.library import apply_measurements
from puzzle_ray.measure.stacks import block_stack, non_block_model
from puzzle_ray.measure.timed_block import MIB, NO_OP_BLOCK, TimedBlock, stack_depth_for, sub_blocks

GQA2 = AttentionConfig(n_heads_in_group=2)
VARIANTS = [
    BlockConfig(GQA2, FFNConfig(intermediate_size=96)),
    BlockConfig(AttentionConfig(n_heads_in_group=4), FFNConfig(intermediate_size=32)),
    BlockConfig(AttentionConfig(replace_with_linear=True), FFNConfig(replace_with_linear=True)),
    BlockConfig(AttentionConfig(no_op=True), FFNConfig(intermediate_size=96)),
    BlockConfig(GQA2, FFNConfig(no_op=True)),
    NO_OP_BLOCK,
]


def parent(**kw) -> PuzzleConfig:
    cfg = dict(
        vocab_size=128,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=96,
        max_position_embeddings=256,
    )
    return PuzzleConfig(**{**cfg, **kw})


@pytest.mark.parametrize("bias", [{}, {"attention_bias": True, "mlp_bias": True}, {"qkv_bias": True}])
def test_unit_params_match_the_parameters_the_stack_allocates(bias):
    p = parent(**bias)
    scenario = Scenario(prefill_len=8, decode_len=4, dtype="fp32")
    for block in VARIANTS:
        for unit in (*sub_blocks(block), TimedBlock(block)):
            stack = block_stack(p, unit.block, 3, scenario, "cpu", 0)
            counted = sum(q.numel() for layer in stack.layers for q in layer.parameters())
            assert counted == 3 * unit.num_params(p), unit.label(p)
        a, f = sub_blocks(block)
        assert a.num_params(p) + f.num_params(p) == TimedBlock(block).num_params(p)


@pytest.mark.parametrize("tie", [False, True])
def test_non_block_params_match_the_model(tie):
    p = parent(tie_word_embeddings=tie)
    model = non_block_model(p, Scenario(prefill_len=8, decode_len=4, dtype="fp32"), "cpu", 0)
    assert sum(q.numel() for q in model.parameters()) == TimedBlock(None).num_params(p)


def test_kv_bytes_per_token_match_the_real_cache_after_a_prefill():
    blocks = [VARIANTS[0], VARIANTS[1], VARIANTS[2], VARIANTS[3]]
    p = parent(num_hidden_layers=4, block_configs=[b.to_dict(64) for b in blocks])
    model = PuzzleForCausalLM(p).eval().to(torch.bfloat16)
    cache = PuzzleCache(p)
    batch, tokens = 3, 11
    with torch.inference_mode():
        model(input_ids=torch.randint(0, 128, (batch, tokens)), cache=cache, use_cache=True)
    cached = sum(
        t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values) if t is not None
    )
    per_token = sum(TimedBlock(b).kv_bytes_per_token(p, "bf16") for b in p.block_configs)
    assert cached == batch * tokens * per_token
    # memory_mib of every layer plus the non-block part is the whole model's parameters + KV cache
    total = sum(TimedBlock(b).memory_mib(p, "bf16", batch, tokens) for b in p.block_configs)
    total += TimedBlock(None).memory_mib(p, "bf16", batch, tokens)
    params = sum(q.numel() for q in model.parameters())
    assert total * MIB == params * 2 + batch * tokens * per_token
    assert model_stats(p, "bf16").num_params == params


def test_equal_sub_blocks_share_a_key_across_blocks_and_differ_otherwise():
    p = parent()
    a1, f1 = sub_blocks(VARIANTS[0])
    a2, f2 = sub_blocks(VARIANTS[4])
    assert a1.key(p) == a2.key(p) and f1.key(p) != f2.key(p)
    assert f2.is_no_op and not a2.is_no_op
    # attention and FFN linear replacements are different units with different labels
    al, fl = sub_blocks(VARIANTS[2])
    assert al.key(p) != fl.key(p) and al.label(p) != fl.label(p)
    # a shape setting that does not touch the unit does not change its key
    assert f1.key(parent(attention_bias=True)) == f1.key(p) and a1.key(parent(attention_bias=True)) != a1.key(p)


def fake_measurements(p: PuzzleConfig, scenario: Scenario, blocks, fits=lambda unit, batch: True) -> Measurements:
    """Deterministic unit timings: prefill = params / 1e4 ms, decode = params / 1e5 ms, scaled by batch."""
    entries = {}
    units = {u.key(p): u for b in blocks for u in sub_blocks(b) if not u.is_no_op}
    units |= {TimedBlock(None).key(p): TimedBlock(None)}
    for key, unit in units.items():
        for batch in scenario.batch_sizes:
            n = unit.num_params(p)
            entries[(key, batch)] = (
                {
                    "fits": True,
                    "prefill_ms": batch * n / 1e4,
                    "decode_ms": batch * n / 1e5,
                    "prefill_ms_iqr": 0.3,
                    "decode_ms_iqr": 0.04,
                }
                if fits(unit, batch)
                else {"fits": False}
            )
    return Measurements(p, scenario, MeasureConfig(), entries, {"hardware": "test", "software": {}})


def test_block_stats_compose_sub_blocks_and_follow_the_contract():
    p = parent()
    scenario = Scenario(batch_sizes=[2, 5], prefill_len=10, decode_len=6, dtype="fp32")
    m = fake_measurements(p, scenario, VARIANTS)
    block = VARIANTS[0]
    stats = m.block_stats(block)
    a, f = (u.num_params(p) for u in sub_blocks(block))
    assert stats["prefill_ms"] == pytest.approx(2 * (a + f) / 1e4)
    assert stats["runtime_ms"] == pytest.approx(stats["prefill_ms"] + 6 * stats["decode_ms"])
    assert stats["attention_prefill_ms"] == pytest.approx(2 * a / 1e4)
    assert stats["prefill_ms_iqr"] == pytest.approx(math.sqrt(2) * 0.3)
    assert stats["num_params"] == a + f and stats["attention_num_params"] == a and stats["ffn_num_params"] == f
    assert stats["num_kv_heads"] == 2 and stats["ffn_intermediate_size"] == 96
    assert stats["kv_bytes_per_token"] == 2 * 2 * 16 * 4  # K and V, 2 KV heads, head_dim 16, fp32
    assert set(stats["by_batch"]) == {"2", "5"}
    assert stats["by_batch"]["5"]["prefill_ms"] == pytest.approx(5 * (a + f) / 1e4)
    assert stats["by_batch"]["5"]["memory_mib"] == pytest.approx(
        ((a + f) * 4 + 5 * 16 * stats["kv_bytes_per_token"]) / MIB
    )
    assert stats["memory_mib"] == stats["by_batch"]["2"]["memory_mib"]  # flat keys = first batch size
    from puzzle_ray.measure.results import BLOCK_STATS

    assert set(stats) - {"by_batch", "fits"} == BLOCK_STATS  # what the pre-flight lets a search name
    nothing = m.block_stats(NO_OP_BLOCK)
    assert nothing["runtime_ms"] == 0 and nothing["memory_mib"] == 0 and nothing["num_params"] == 0


def test_a_batch_that_does_not_fit_is_marked_not_timed():
    p = parent()
    scenario = Scenario(batch_sizes=[1, 64], prefill_len=10, decode_len=6, dtype="fp32")
    m = fake_measurements(p, scenario, VARIANTS, fits=lambda unit, batch: batch == 1)
    stats = m.block_stats(VARIANTS[0])
    assert "prefill_ms" in stats and stats["by_batch"]["64"]["fits"] is False
    assert "runtime_ms" not in stats["by_batch"]["64"] and stats["by_batch"]["64"]["memory_mib"] > 0


def test_prediction_sums_the_chosen_variants_and_the_non_block_part():
    p = parent()
    scenario = Scenario(batch_sizes=[1, 4], prefill_len=10, decode_len=6, dtype="fp32")
    lib = apply_measurements(skeleton_library(p, VARIANTS), p, fake_measurements(p, scenario, VARIANTS))
    child = parent(block_configs=[VARIANTS[1].to_dict(64), NO_OP_BLOCK.to_dict(64), VARIANTS[3].to_dict(64)])
    costs = predict_model_costs(child, lib)
    n = model_stats(child, "fp32").num_params
    assert costs[4].prefill_ms == pytest.approx(4 * n / 1e4)  # every unit costs params / 1e4 per sequence
    assert costs[4].decode_tokens_per_s == pytest.approx(4 * 1e3 / (4 * n / 1e5))
    kv = model_stats(child, "fp32").kv_bytes_per_token
    assert costs[1].memory_mib == pytest.approx((n * dtype_bytes("fp32") + 16 * kv) / MIB)
    assert costs[1].runtime_ms == pytest.approx(costs[1].prefill_ms + 6 * costs[1].decode_ms)


def test_prediction_names_a_variant_missing_from_the_library():
    p = parent()
    scenario = Scenario(prefill_len=10, decode_len=6)
    lib = apply_measurements(skeleton_library(p, VARIANTS[:2]), p, fake_measurements(p, scenario, VARIANTS[:2]))
    child = parent(block_configs=[VARIANTS[0].to_dict(64), VARIANTS[2].to_dict(64), VARIANTS[0].to_dict(64)])
    with pytest.raises(LibraryError, match="layer_1: variant 'attention=linear ffn=linear'"):
        predict_model_costs(child, lib)
    with pytest.raises(LibraryError, match="measure stage"):
        predict_model_costs(child, skeleton_library(p, VARIANTS))


def test_stacks_are_deepened_until_their_weights_leave_the_cache():
    p = parent(num_hidden_layers=8, hidden_size=256, num_attention_heads=8, intermediate_size=1024)
    att, ffn = sub_blocks(p.block_configs[0])
    config = MeasureConfig(stack_depth=4, max_stack_depth=32)  # min_stack_mib=256 > the parent's 30 MB of blocks
    parent_bytes = 8 * TimedBlock(p.block_configs[0]).num_params(p) * 4
    assert stack_depth_for(ffn, p, "fp32", config) == math.ceil(parent_bytes / (ffn.num_params(p) * 4)) == 10
    assert stack_depth_for(att, p, "fp32", config) == 32  # would be 50: capped
    assert (
        stack_depth_for(att, p, "fp32", config.model_copy(update={"min_stack_mib": 1.0})) == 4
    )  # at least stack_depth
    assert stack_depth_for(att, p, "fp32", config.model_copy(update={"min_stack_mib": None})) == 4
    assert stack_depth_for(TimedBlock(None), p, "fp32", config) == 4
