"""Conversion of Hugging Face parents: the converted model must compute exactly what the parent computes."""

import pytest
import torch

from puzzle_ray.arch import BlockConfigError, PuzzleForCausalLM
from puzzle_ray.arch.convert import convert_from_hf, puzzle_config_from_hf

from .tiny_models import tiny_llama, tiny_mistral, tiny_qwen2

PARENTS = {"llama-gqa": tiny_llama, "qwen2-bias-tied": tiny_qwen2, "mistral": tiny_mistral}


@pytest.fixture(params=list(PARENTS))
def parent(request):
    return PARENTS[request.param]()


def test_logits_equal_parent(parent):
    child = convert_from_hf(parent)
    assert isinstance(child, PuzzleForCausalLM)
    ids = torch.randint(0, 128, (2, 23))
    with torch.no_grad():
        diff = (parent(ids).logits - child(ids).logits).abs().max().item()
    assert diff <= 1e-5


def test_padded_batch_logits_equal_parent(parent):
    child = convert_from_hf(parent)
    ids = torch.randint(0, 128, (2, 10))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding
    with torch.no_grad():
        a = parent(ids, attention_mask=mask).logits
        b = child(ids, attention_mask=mask).logits
    assert (a[mask.bool()] - b[mask.bool()]).abs().max().item() <= 1e-5


def test_greedy_generation_equal_parent(parent):
    child = convert_from_hf(parent)
    ids = torch.randint(0, 128, (2, 6))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    kw = dict(attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(parent.generate(ids, **kw), child.generate(ids, **kw))


def test_parent_features_are_carried():
    qwen = puzzle_config_from_hf(tiny_qwen2().config)
    assert qwen.qkv_bias and not qwen.attention_bias and qwen.tie_word_embeddings
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    llama = puzzle_config_from_hf(tiny_llama(rope_parameters=rope).config)
    assert llama.rope_parameters["rope_type"] == "llama3"
    assert [b.attention.num_kv_heads(4) for b in llama.block_configs] == [2, 2, 2]


def test_llama3_rope_scaling_parent_is_exact():
    parent = tiny_llama(rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 64})
    child = convert_from_hf(parent)
    ids = torch.randint(0, 128, (1, 150))  # past original_max_position_embeddings
    with torch.no_grad():
        assert (parent(ids).logits - child(ids).logits).abs().max().item() <= 1e-5


def test_sliding_window_parent_is_rejected():
    with pytest.raises(BlockConfigError, match="sliding_window=16"):
        convert_from_hf(tiny_mistral(sliding_window=16))


def test_missing_parent_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        convert_from_hf(tmp_path / "nope")


class _RunsCode:
    """Pickles as a call of os.system: what a malicious .bin checkpoint carries."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_checkpoint_with_code_is_refused_in_one_line(tmp_path):
    import subprocess
    import sys

    model = tiny_llama()
    model.config.save_pretrained(tmp_path / "evil")
    marker = tmp_path / "code-ran"
    torch.save({**model.state_dict(), "extra": _RunsCode(marker)}, tmp_path / "evil" / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"refused its pickle checkpoint.*GLOBAL posix\.system"):
        convert_from_hf(tmp_path / "evil")
    res = subprocess.run([sys.executable, "-m", "puzzle_ray.cli", "convert", str(tmp_path / "evil"),
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "refused its pickle checkpoint" in res.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()
