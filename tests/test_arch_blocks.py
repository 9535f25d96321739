import json

import pytest

from puzzle_ray.arch import BlockConfig, BlockConfigError, PuzzleConfig
from puzzle_ray.arch.blocks import engine_intermediate_size, ffn_mult_for
from puzzle_ray.arch.config import load_puzzle_config

from .conftest import reference_file


def config(blocks, **kw):
    return PuzzleConfig(
        vocab_size=32, hidden_size=64, num_hidden_layers=len(blocks), num_attention_heads=4, block_configs=blocks, **kw
    )


@pytest.mark.parametrize("hidden", [4096, 8192])
def test_ffn_mult_round_trips_every_multiple_of_256(hidden):
    for size in range(256, 16 * hidden + 1, 256):
        assert engine_intermediate_size(ffn_mult_for(size, hidden), hidden) == size, size


def test_published_ffn_mult_gives_published_width():
    # Nemotron-Super-49B: ffn_mult 5.25 at hidden 8192 is the parent's (Llama-3.3-70B) 28672-wide FFN.
    assert engine_intermediate_size(5.25, 8192) == 28672
    assert engine_intermediate_size(2.625, 8192) == 14336


def test_every_block_kind_is_accepted():
    cfg = config(
        [
            {"attention": {"n_heads_in_group": 2}, "ffn": {"ffn_mult": 1.5}},
            {"attention": {"replace_with_linear": True}, "ffn": {"replace_with_linear": True}},
            {"attention": {"no_op": True}, "ffn": {"no_op": True}},
            {"attention": {"n_heads_in_group": 4}, "ffn": {"intermediate_size": 40}},
        ]
    )
    kinds = [(b.attention.kind, b.ffn.kind) for b in cfg.block_configs]
    assert kinds == [("gqa", "swiglu"), ("linear", "linear"), ("no_op", "no_op"), ("gqa", "swiglu")]
    assert cfg.block_configs[0].ffn.intermediate_size == 256  # ffn_mult resolved with the engines' rounding
    assert cfg.block_configs[3].ffn.intermediate_size == 40  # an explicit size wins
    assert [b.attention.num_kv_heads(4) for b in cfg.block_configs] == [2, 0, 0, 1]


@pytest.mark.parametrize(
    "block, message",
    [
        ({"attention": {"n_heads_in_group": 3}, "ffn": {"ffn_mult": 1.0}},
         r"block_configs\[1\]\.attention\.n_heads_in_group=3 does not divide"),
        ({"attention": {"no_op": True, "replace_with_linear": True}, "ffn": {"ffn_mult": 1.0}},
         r"block_configs\[1\]\.attention: no_op and replace_with_linear"),
        ({"attention": {"n_heads_in_group": 2}, "ffn": {"no_op": True, "replace_with_linear": True}},
         r"block_configs\[1\]\.ffn: no_op and replace_with_linear"),
        ({"attention": {"n_heads_in_group": 2}, "ffn": {}}, r"block_configs\[1\]\.ffn: a SwiGLU FFN needs"),
        ({"attention": {"n_heads_in_group": 2}, "ffn": {"intermediate_size": -5}},
         r"block_configs\[1\]\.ffn\.intermediate_size=-5"),
        ({"attention": {"n_heads_in_group": 0}, "ffn": {"ffn_mult": 1.0}},
         r"block_configs\[1\]\.attention\.n_heads_in_group=0"),
        ({"attention": {"n_heads_in_group": None}, "ffn": {"ffn_mult": 1.0}},
         r"block_configs\[1\]\.attention\.n_heads_in_group is required"),
        ({"attention": {"n_heads_in_group": 2, "window_length": 128}, "ffn": {"ffn_mult": 1.0}},
         r"block_configs\[1\]\.attention\.window_length=128: this feature is not supported"),
        ({"attention": {"n_heads_in_group": 2}, "ffn": {"ffn_mult": 1.0, "moe": {"num_experts": 8}}},
         r"block_configs\[1\]\.ffn\.moe="),
        ({"attention": {"n_heads_in_group": 2}}, r"block_configs\[1\] must be an object with 'attention' and 'ffn'"),
    ],
)
def test_bad_blocks_are_rejected_naming_layer_and_field(block, message):
    good = {"attention": {"n_heads_in_group": 1}, "ffn": {"ffn_mult": 1.0}}
    with pytest.raises(BlockConfigError, match=message):
        config([good, block])


def test_wrong_number_of_blocks_is_rejected():
    with pytest.raises(BlockConfigError, match="block_configs has 1 entries but num_hidden_layers=2"):
        PuzzleConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=2,
                     block_configs=[{"attention": {"no_op": True}, "ffn": {"no_op": True}}])


def test_null_valued_nvidia_keys_are_accepted():
    block = {
        "attention": {"n_heads_in_group": 2, "no_op": False, "replace_with_linear": False, "sparsify": None,
                      "num_sink_tokens": None, "unshifted_sink": False, "window_length": None,
                      "use_prefill_window_in_sink_attention": False},
        "ffn": {"ffn_mult": 1.0, "no_op": False, "replace_with_linear": False, "sparsify": None},
        "parallel_blocks": None,
    }
    assert config([block]).block_configs[0].attention.n_heads_in_group == 2


# Every key NVIDIA's DeciLM code writes per sub-block of a checkpoint it saves, at the value it writes by default.
NVIDIA_ATTENTION = {"n_heads_in_group": 8, "no_op": False, "replace_with_linear": False, "sparsify": None,
                    "weights_precision": "bf16", "window_length": None, "num_sink_tokens": None,
                    "unshifted_sink": False, "use_prefill_window_in_sink_attention": False, "llama4": None,
                    "mamba": None}
NVIDIA_FFN = {"ffn_mult": 1.3125, "no_op": False, "replace_with_linear": False, "sparsify": None,
              "weights_precision": "bf16", "gated": True, "hidden_act": "silu", "moe": None}


def test_checkpoints_written_by_nvidia_code_are_read():
    blocks = [{"attention": NVIDIA_ATTENTION, "ffn": NVIDIA_FFN, "parallel_blocks": None},
              {"attention": {**NVIDIA_ATTENTION, "n_heads_in_group": None, "no_op": True},
               "ffn": {**NVIDIA_FFN, "ffn_mult": None, "no_op": True}, "parallel_blocks": None}]
    cfg = PuzzleConfig(hidden_size=64, num_attention_heads=8, num_hidden_layers=2, block_configs=blocks)
    assert cfg.block_configs[0].attention.n_heads_in_group == 8 and cfg.block_configs[1].attention.no_op


@pytest.mark.parametrize("part, key, value", [
    ("attention", "window_length", 4096), ("attention", "weights_precision", "fp8"), ("attention", "llama4", {}),
    ("ffn", "moe", {"num_experts": 8}), ("ffn", "hidden_act", "gelu"), ("ffn", "gated", False),
])
def test_nvidia_features_we_do_not_implement_are_refused_by_name(part, key, value):
    block = {"attention": dict(NVIDIA_ATTENTION), "ffn": dict(NVIDIA_FFN)}
    block[part][key] = value
    with pytest.raises(BlockConfigError, match=rf"block_configs\[0\]\.{part}\.{key}=.*not supported"):
        PuzzleConfig(hidden_size=64, num_attention_heads=8, num_hidden_layers=1, block_configs=[block])


def test_to_dict_round_trips():
    cfg = config([{"attention": {"n_heads_in_group": 2}, "ffn": {"intermediate_size": 300}},
                  {"attention": {"no_op": True}, "ffn": {"replace_with_linear": True}}])
    again = PuzzleConfig(**json.loads(cfg.to_json_string()))
    assert again.block_configs == cfg.block_configs
    assert BlockConfig.from_dict(cfg.block_configs[0].to_dict(64), 0).resolve(64) == cfg.block_configs[0]


def test_published_super_49b_config_parses():
    cfg = load_puzzle_config(reference_file("nemotron-configs", "Llama-3_3-Nemotron-Super-49B-v1.config.json"))
    assert cfg.num_hidden_layers == 80
    assert sum(b.attention.kind == "no_op" for b in cfg.block_configs) == 31
    assert cfg.rope_parameters["rope_type"] == "llama3"
    assert {b.ffn.intermediate_size for b in cfg.block_configs} >= {28672, 2816}
