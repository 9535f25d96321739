"""Export in the nemotron-nas layout and load back with AutoModelForCausalLM in a fresh process."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from puzzle_ray.arch.export import check_out_dir, export_pretrained

from .tiny_models import tiny_mixed_child, tiny_qwen2

RELOAD = """
import sys, torch, puzzle_ray
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=False)
ids = torch.load(sys.argv[2], weights_only=True)
torch.save({"logits": m(ids).logits.detach(), "cls": type(m).__name__}, sys.argv[3])
"""


def reload_in_subprocess(model_dir, ids, tmp_path):
    torch.save(ids, tmp_path / "ids.pt")
    subprocess.run([sys.executable, "-c", RELOAD, str(model_dir), str(tmp_path / "ids.pt"), str(tmp_path / "out.pt")],
                   check=True)
    return torch.load(tmp_path / "out.pt", weights_only=True)


def test_export_layout(tmp_path):
    model = tiny_mixed_child()
    warnings = export_pretrained(model, tmp_path / "child")
    cfg = json.loads((tmp_path / "child" / "config.json").read_text())
    assert cfg["architectures"] == ["DeciLMForCausalLM"] and cfg["model_type"] == "nemotron-nas"
    assert len(cfg["block_configs"]) == 5
    assert cfg["block_configs"][0]["attention"] == {"n_heads_in_group": None, "no_op": True,
                                                    "replace_with_linear": False}
    assert cfg["block_configs"][1]["attention"]["n_heads_in_group"] == 2
    assert "auto_map" not in cfg and cfg["intermediate_size"] is None and cfg["num_key_value_heads"] is None
    names = set(load_file(tmp_path / "child" / "model.safetensors"))
    assert "model.layers.1.mlp.linear_mlp.weight" in names
    assert "model.layers.2.self_attn.linear_attn.weight" in names
    assert not any(n.startswith("model.layers.0.self_attn") or n.startswith("model.layers.0.input_layernorm")
                   for n in names)
    assert not any(n.startswith("model.layers.2.mlp") or "layers.2.post_attention_layernorm" in n for n in names)
    # widths 64 and 32 are not multiples of 256: the engines could not read them, and we say so.
    assert any(w.startswith("layers 0, 3 (SwiGLU FFN of a width ffn_mult cannot express): load error in vLLM")
               for w in warnings)
    assert any(w.startswith("layer 1 (linear FFN (one H x H matrix)): load error in vLLM, SGLang, llama.cpp and MLX")
               for w in warnings)
    # llama.cpp skips a layer without an FFN as a whole: layer 4 keeps GQA attention beside a no-op FFN
    assert any(w.startswith("layer 4 (GQA attention kept beside a no-op FFN): silently wrong in llama.cpp")
               for w in warnings)
    # the exact width is written where ffn_mult cannot express it, and only there
    assert cfg["block_configs"][0]["ffn"]["intermediate_size"] == 64


def test_reload_in_fresh_process_gives_identical_logits(tmp_path):
    model = tiny_mixed_child()
    export_pretrained(model, tmp_path / "child")
    ids = torch.randint(0, 128, (2, 11))
    out = reload_in_subprocess(tmp_path / "child", ids, tmp_path)
    assert out["cls"] == "PuzzleForCausalLM"
    with torch.no_grad():
        assert torch.equal(out["logits"], model(ids).logits)


def test_sharded_export_of_converted_parent_reloads(tmp_path):
    parent = tiny_qwen2()
    export_pretrained(parent, tmp_path / "parent", max_shard_size="20KB")
    assert len(list((tmp_path / "parent").glob("model-*.safetensors"))) > 1
    ids = torch.randint(0, 128, (1, 9))
    out = reload_in_subprocess(tmp_path / "parent", ids, tmp_path)
    with torch.no_grad():
        assert (out["logits"] - parent(ids).logits).abs().max().item() <= 1e-5


def test_export_refuses_to_overwrite_and_leaves_nothing_on_failure(tmp_path):
    model = tiny_mixed_child()
    target = tmp_path / "child"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"child: already exists and is not empty \(to replace it pass "
                                              r"--overwrite, or overwrite=True\)"):
        export_pretrained(model, target)
    assert (target / "keep.txt").read_text() == "mine"
    assert check_out_dir(tmp_path / "new") == tmp_path / "new" and check_out_dir(target, overwrite=True) == target
    with pytest.raises(FileExistsError, match="keep.txt: already exists and is a file"):
        check_out_dir(target / "keep.txt")

    class Broken(Exception):
        pass

    def boom(*a, **k):
        raise Broken()

    model.save_pretrained = boom
    with pytest.raises(Broken):
        export_pretrained(model, tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["child"]


def test_convert_cli_writes_parent_unchanged(tmp_path):
    parent = tiny_qwen2()
    parent.save_pretrained(tmp_path / "hf")
    subprocess.run([sys.executable, "-m", "puzzle_ray.cli", "convert", str(tmp_path / "hf"), str(tmp_path / "out")],
                   check=True)
    ids = torch.randint(0, 128, (1, 7))
    out = reload_in_subprocess(tmp_path / "out", ids, tmp_path)
    with torch.no_grad():
        assert (out["logits"] - parent(ids).logits).abs().max().item() <= 1e-5
    bad = subprocess.run([sys.executable, "-m", "puzzle_ray.cli", "convert", str(tmp_path / "missing"),
                          str(tmp_path / "o2")], capture_output=True, text=True)
    assert bad.returncode != 0 and "no config.json" in bad.stderr and not (tmp_path / "o2").exists()


def test_convert_cli_refuses_before_loading_weights(tmp_path):
    """An existing output or an unsupported family is refused from the folder and config.json alone."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    (tmp_path / "hf").mkdir()  # weights that would fail to load: never read
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "hf" / "config.json").write_text(json.dumps(tiny_qwen2().config.to_dict()))

    def convert(*args):
        return subprocess.run([sys.executable, "-m", "puzzle_ray.cli", "convert", *map(str, args)],
                              capture_output=True, text=True)

    res = convert(tmp_path / "hf", tmp_path / "out")
    assert res.returncode == 2 and "out: already exists and is not empty" in res.stderr and "--overwrite" in res.stderr
    assert "Traceback" not in res.stderr and (tmp_path / "out" / "keep.txt").read_text() == "mine"
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1}))
    res = convert(tmp_path / "hf", tmp_path / "o2")
    assert res.returncode == 2 and "hf/config.json: model_type='gpt2' is not one of" in res.stderr, res.stderr
    assert not (tmp_path / "o2").exists()
