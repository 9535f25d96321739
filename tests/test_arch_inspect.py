"""`puzzle-ray inspect`: architecture tables from config alone, fast, exact parameter accounting."""

import json
import subprocess
import sys
import time

import pytest
import torch

from puzzle_ray.arch import PuzzleConfig
from puzzle_ray.arch.stats import kv_bytes_per_token, model_stats
from puzzle_ray.arch.summary import count_params_on_meta, layer_table, totals_table
from puzzle_ray.arch.config import load_puzzle_config

from .tiny_models import tiny_mixed_child, tiny_qwen2

LLAMA_70B = {
    "model_type": "llama", "vocab_size": 128256, "hidden_size": 8192, "intermediate_size": 28672,
    "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "max_position_embeddings": 131072,
    "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}, "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}


def nemotron_51b_like() -> dict:
    """An 80-layer, 8192-hidden nemotron-nas config with the 51B child's kinds of blocks."""
    blocks = []
    for i in range(80):
        att = ({"no_op": True} if i % 3 == 2 else {"replace_with_linear": True} if i % 7 == 5
               else {"n_heads_in_group": 8 if i % 2 else 64})
        ffn = {"ffn_mult": [1.3125, 2.625, 5.25, 3.5][i % 4]} if i % 11 else {"no_op": True}
        blocks.append({"attention": att, "ffn": ffn})
    return {**LLAMA_70B, "model_type": "nemotron-nas", "architectures": ["DeciLMForCausalLM"],
            "intermediate_size": None, "num_key_value_heads": None, "block_configs": blocks}


def test_formulas_match_allocated_parameters():
    for model in (tiny_mixed_child(), tiny_mixed_child(tie_word_embeddings=True, qkv_bias=True, mlp_bias=True)):
        assert model_stats(model.config).num_params == sum(p.numel() for p in model.parameters())


def test_80_layer_config_is_inspected_in_well_under_a_second(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(nemotron_51b_like()))
    # once untimed: a fresh clone's first call compiles and imports modules (the CLI start-up test times that)
    layer_table(load_puzzle_config(path)), count_params_on_meta(load_puzzle_config(path))
    start = time.perf_counter()
    cfg = load_puzzle_config(path)
    n_meta = count_params_on_meta(cfg)
    layer_table(cfg), totals_table({"child": cfg})
    elapsed = time.perf_counter() - start
    assert n_meta == model_stats(cfg).num_params
    assert elapsed < 0.5, elapsed


def test_kv_bytes_per_token():
    cfg = tiny_mixed_child().config
    # head_dim 16, bf16: 2 (K,V) * kv_heads * 16 * 2 bytes, for kv heads [-, 2, -, 1, 4]
    assert [kv_bytes_per_token(cfg, b) for b in cfg.block_configs] == [0, 128, 0, 64, 256]
    assert model_stats(cfg, "float32").kv_bytes_per_token == 2 * 7 * 16 * 4


def test_cli_inspect_with_parent(tmp_path):
    (tmp_path / "child.json").write_text(json.dumps(nemotron_51b_like()))
    (tmp_path / "parent.json").write_text(json.dumps(LLAMA_70B))
    res = subprocess.run([sys.executable, "-m", "puzzle_ray.cli", "inspect", str(tmp_path / "child.json"),
                          "--parent", str(tmp_path / "parent.json")],
                         capture_output=True, text=True, env={"COLUMNS": "200", **__import__("os").environ})
    assert res.returncode == 0, res.stderr
    assert "parameters vs parent" in res.stdout and "70.55B" in res.stdout  # Llama-3.1-70B
    assert "KV cache vs parent" in res.stdout


def test_cli_inspect_bad_input(tmp_path):
    bad = nemotron_51b_like()
    bad["block_configs"][7]["attention"] = {"n_heads_in_group": 5}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    res = subprocess.run([sys.executable, "-m", "puzzle_ray.cli", "inspect", str(tmp_path / "bad.json")],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "block_configs[7].attention.n_heads_in_group=5" in res.stderr
    res = subprocess.run([sys.executable, "-m", "puzzle_ray.cli", "inspect", str(tmp_path / "missing.json")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "no such config file" in res.stderr


def test_unreadable_config_json_is_named(tmp_path):
    file = tmp_path / "config.json"
    file.write_bytes(bytes(range(128, 256)))
    with pytest.raises(ValueError, match=r"config\.json: not a text file \(not UTF-8"):
        load_puzzle_config(tmp_path)
    file.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config\.json: expected a JSON object of config fields, not list"):
        load_puzzle_config(file)


def test_inspect_reads_hf_model_folder(tmp_path):
    tiny_qwen2().save_pretrained(tmp_path)
    cfg = load_puzzle_config(tmp_path)
    assert isinstance(cfg, PuzzleConfig) and cfg.qkv_bias
    with torch.device("meta"):
        assert count_params_on_meta(cfg) == model_stats(cfg).num_params


def test_inspect_names_its_dtype_option(tmp_path):
    from typer.testing import CliRunner

    from puzzle_ray.cli import app

    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    res = CliRunner().invoke(app, ["inspect", str(tmp_path / "config.json"), "--dtype", "fp64"])
    assert res.exit_code == 2 and "--dtype fp64: expected one of" in res.output, res.output
