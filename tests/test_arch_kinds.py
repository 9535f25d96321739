"""The sub-block kind registry: every role covered, JSON round trips, exact parameter counts, and a new kind
picked up by parsing and labels without touching other code."""

import pytest
import torch

from puzzle_ray.arch import BlockConfig, PuzzleConfig
from puzzle_ray.arch.blocks import AttentionConfig, FFNConfig
from puzzle_ray.arch.kinds import ROLES, block_labels, kind_named, kinds, register, unregister
from puzzle_ray.arch.kinds.ffn import SwiGLUKind
from puzzle_ray.arch.modeling import build_attention, build_ffn
from puzzle_ray.library.record import variant_name

SAMPLES = {
    "attention": {"gqa": AttentionConfig(n_heads_in_group=2), "linear": AttentionConfig(replace_with_linear=True),
                  "no_op": AttentionConfig(no_op=True)},
    "ffn": {"swiglu": FFNConfig(intermediate_size=96), "linear": FFNConfig(replace_with_linear=True),
            "no_op": FFNConfig(no_op=True)},
}


def parent(**kw) -> PuzzleConfig:
    return PuzzleConfig(vocab_size=32, hidden_size=64, num_hidden_layers=1, num_attention_heads=8,
                        num_key_value_heads=4, intermediate_size=128, **kw)


def test_every_role_has_its_kinds_and_one_fallback():
    for role in ROLES:
        names = [k.name for k in kinds(role)]
        assert sorted(names) == sorted(SAMPLES[role])
        assert sum(k.fallback for k in kinds(role)) == 1
        for name, cfg in SAMPLES[role].items():
            assert cfg.kind is kind_named(role, name)
            assert cfg.kind == name and hash(cfg.kind) == hash(name) and str(cfg.kind) == name


@pytest.mark.parametrize("role", ROLES)
def test_each_kind_round_trips_its_json(role):
    cls = AttentionConfig if role == "attention" else FFNConfig
    for cfg in SAMPLES[role].values():
        data = cfg.to_dict() if role == "attention" else cfg.to_dict(64)
        again = cls.from_dict(data, "x", 8) if role == "attention" else cls.from_dict(data, "x").resolve(64)
        assert again == cfg
        assert (again.to_dict() if role == "attention" else again.to_dict(64)) == data


@pytest.mark.parametrize("bias", [{}, {"qkv_bias": True}, {"attention_bias": True, "mlp_bias": True}])
def test_parameter_counts_equal_what_the_modules_allocate(bias):
    config = parent(**bias)
    for a in SAMPLES["attention"].values():
        for f in SAMPLES["ffn"].values():
            block = BlockConfig(a, f)
            att, ffn = build_attention(config, block, 0), build_ffn(config, block)
            norm = config.hidden_size
            allocated_att = sum(p.numel() for p in att.parameters()) + norm if att is not None else 0
            allocated_ffn = sum(p.numel() for p in ffn.parameters()) + norm if ffn is not None else 0
            assert a.kind.params(config, a) == allocated_att, a.kind
            assert f.kind.params(config, f) == allocated_ffn, f.kind
            assert (att is not None) == a.kind.has_weights and (ffn is not None) == f.kind.has_weights


def test_kv_bytes_and_cache_follow_the_kind():
    config = parent()
    for a in SAMPLES["attention"].values():
        expected = 2 * a.num_kv_heads(8) * config.head_dim * 2
        assert a.kind.kv_bytes_per_token(config, a, 2) == expected
        assert a.kind.holds_cache == (expected > 0)


class TinySwiGLU(SwiGLUKind):
    """A toy kind: a SwiGLU narrower than 16 channels, with a label of its own."""

    name, fallback = "tiny", False

    def applies(self, cfg) -> bool:
        return cfg.intermediate_size is not None and cfg.intermediate_size < 16

    def claims(self, data) -> bool:
        return (data.get("intermediate_size") or 16) < 16

    def short_label(self, cfg, num_attention_heads) -> str:
        return f"tiny{cfg.intermediate_size}"


@pytest.fixture
def tiny_kind():
    register(TinySwiGLU)
    yield kind_named("ffn", "tiny")
    unregister("ffn", "tiny")


def test_a_new_kind_is_picked_up_by_parsing_and_labels(tiny_kind):
    block = BlockConfig.from_dict({"attention": {"n_heads_in_group": 2}, "ffn": {"intermediate_size": 8}}, 0, 8)
    assert block.ffn.kind is tiny_kind
    assert block_labels(block, 8) == ("kv4", "tiny8")
    assert variant_name(block, 8) == "attention=kv4 ffn=tiny8"
    config = parent(block_configs=[block.to_dict(64)])
    assert config.block_configs[0].ffn.kind == "tiny"
    assert isinstance(build_ffn(config, config.block_configs[0]), torch.nn.Module)


def test_the_registry_is_clean_after_the_toy_kind():
    assert [k.name for k in kinds("ffn")] == ["no_op", "linear", "swiglu"]
