"""Initialisation of child sub-blocks from the parent (no Ray, no training)."""

import pytest
import torch

from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM
from puzzle_ray.arch.modeling import prepare_block_inputs
from puzzle_ray.library.init import LayerCalibration, build_variant_layer, init_attention, init_ffn, keep_channels
from puzzle_ray.library.space import VariantSpace, expand
from puzzle_ray.library.units import normalised_mse


@pytest.fixture
def parent():
    cfg = PuzzleConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4,
                       intermediate_size=96, initializer_range=0.2, qkv_bias=True)
    model = PuzzleForCausalLM(cfg).eval()
    with torch.no_grad():  # non-zero biases so that pooling them is exercised
        for layer in model.model.layers:
            for p in (layer.self_attn.k_proj.bias, layer.self_attn.v_proj.bias, layer.self_attn.q_proj.bias):
                p.normal_(0, 0.2)
    return model


def calibrate(model, layer_idx=0, lstsq=True):
    m = model.model
    h = m.embed_tokens(torch.randint(0, 64, (4, 24)))
    pos, mask = prepare_block_inputs(model.config, m.rotary_emb, h)
    for i in range(layer_idx):
        h = m.layers[i](h, pos, mask, None)
    calib = LayerCalibration(m.layers[layer_idx], lstsq, lstsq)
    calib.update(h, pos, mask)
    return calib, h, pos, mask


def variant(model, att, ffn, round_to=16):
    space = expand(VariantSpace(attention=att, ffn=ffn, round_to=round_to), model.config)[0]
    return space


@torch.no_grad()
def test_full_width_pruning_and_same_kv_pooling_reproduce_the_parent(parent):
    calib, h, pos, mask = calibrate(parent)
    layer = parent.model.layers[0]
    target = layer(h, pos, mask, None)
    # the parent's own sub-variants, built as *new* modules and initialised like any other variant
    from puzzle_ray.library.space import SubVariant

    for v in (SubVariant("attention", "kv4", layer.block.attention, False),
              SubVariant("ffn", "96", layer.block.ffn, False)):
        new = build_variant_layer(parent.config, 0, layer, v)
        (init_attention if v.role == "attention" else init_ffn)(new, layer, calib, "lstsq")
        assert (new(h, pos, mask, None) - target).abs().max().item() <= 1e-5


@torch.no_grad()
def test_kv_pooling_is_the_mean_over_merged_heads(parent):
    layer = parent.model.layers[0]
    space = variant(parent, [2], [1.0])
    v = next(x for x in space.attention if x.name == "kv2")
    new = build_variant_layer(parent.config, 0, layer, v)
    init_attention(new, layer, None, "product")
    k_old = layer.self_attn.k_proj.weight.view(4, 8, 64)  # (KV, D, H)
    assert torch.allclose(new.self_attn.k_proj.weight.view(2, 8, 64), (k_old[0::2] + k_old[1::2]) / 2)
    b_old = layer.self_attn.v_proj.bias.view(4, 8)
    assert torch.allclose(new.self_attn.v_proj.bias.view(2, 8), (b_old[0::2] + b_old[1::2]) / 2)


@torch.no_grad()
def test_channel_ranking_matches_direct_computation(parent):
    calib, h, pos, mask = calibrate(parent)
    layer = parent.model.layers[0]
    x = layer.post_attention_layernorm(h + layer.self_attn(layer.input_layernorm(h), pos, mask, None))
    act = torch.nn.functional.silu(layer.mlp.gate_proj(x)) * layer.mlp.up_proj(x)
    direct = act.abs().mean((0, 1)).double() * layer.mlp.down_proj.weight.double().norm(dim=0)
    assert torch.allclose(calib.channel_scores(), direct, rtol=1e-5)
    assert torch.equal(keep_channels(calib, layer.mlp, 32), direct.topk(32).indices.sort().values)


@torch.no_grad()
def test_pruned_ffn_keeps_the_strongest_channels_consistently(parent):
    calib, h, pos, mask = calibrate(parent)
    layer = parent.model.layers[0]
    v = next(x for x in variant(parent, [4], [32]).ffn if x.name == "32")
    new = build_variant_layer(parent.config, 0, layer, v)
    init_ffn(new, layer, calib, "lstsq")
    keep = keep_channels(calib, layer.mlp, 32)
    assert torch.equal(new.mlp.gate_proj.weight, layer.mlp.gate_proj.weight[keep])
    assert torch.equal(new.mlp.up_proj.weight, layer.mlp.up_proj.weight[keep])
    assert torch.equal(new.mlp.down_proj.weight, layer.mlp.down_proj.weight[:, keep])


@torch.no_grad()
def test_linear_replacements_least_squares_beats_weight_product(parent):
    calib, h, pos, mask = calibrate(parent)
    layer = parent.model.layers[0]
    target = layer(h, pos, mask, None)
    space = variant(parent, ["linear"], ["linear"])
    for v in (space.attention[-1], space.ffn[-1]):
        errors = {}
        for how in ("product", "lstsq"):
            new = build_variant_layer(parent.config, 0, layer, v)
            (init_attention if v.role == "attention" else init_ffn)(new, layer, calib, how)
            errors[how] = normalised_mse(new(h, pos, mask, None), target).item()
        assert errors["lstsq"] < errors["product"], (v.name, errors)


@torch.no_grad()
def test_linear_attention_product_is_wo_wv_with_repeated_kv_heads(parent):
    layer = parent.model.layers[0]
    v = variant(parent, ["linear"], [1.0]).attention[-1]
    new = build_variant_layer(parent.config, 0, layer, v)
    init_attention(new, layer, None, "product")
    x = torch.randn(3, 64)
    a = layer.self_attn
    vv = (a.v_proj(x).view(3, 4, 8).repeat_interleave(2, 1).reshape(3, 64)
          - a.v_proj.bias.view(4, 8).repeat_interleave(2, 0).reshape(64))
    assert torch.allclose(new.self_attn.linear_attn(x), vv @ a.o_proj.weight.T, atol=1e-5)


@pytest.mark.parametrize(
    "space, message",
    [
        (dict(attention=[3]), r"^search_space.attention: 3 KV heads does not divide the parent's 8 query heads"),
        (dict(ffn=[128]), "FFN width 128 is larger than the parent's 96"),
        (dict(ffn=[1.5]), r"^search_space.ffn: width ratio 1.5 must be in"),  # global: not "layer 0"
        (dict(ffn=[48], overrides={1: {"ffn": [1.5]}}),
         r"^search_space.overrides\[1\].ffn: width ratio 1.5 must be in"),
        (dict(overrides={9: {"ffn": ["no_op"]}}), "layer 9 does not exist"),
    ],
)
def test_bad_search_spaces_name_the_value(parent, space, message):
    with pytest.raises(ValueError, match=message):
        expand(VariantSpace(**space), parent.config)


def test_empty_variant_list_is_rejected():
    with pytest.raises(ValueError, match="ffn: the variant list is empty"):
        VariantSpace(ffn=[])


def test_parent_variants_are_always_included_first(parent):
    space = expand(VariantSpace(attention=["no_op"], ffn=[0.5], round_to=16), parent.config)[1]
    assert [v.name for v in space.attention] == ["kv4", "no_op"] and space.attention[0].is_parent
    assert [v.name for v in space.ffn] == ["96", "48"] and not space.ffn[1].is_parent
