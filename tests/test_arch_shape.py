"""`ModelShape` (the torch-free reading `inspect` uses) reads every config exactly as `PuzzleConfig` does."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

from puzzle_ray.arch import BlockConfigError, PuzzleConfig
from puzzle_ray.arch.config import load_puzzle_config
from puzzle_ray.arch.shape import ModelShape, load_model_shape
from puzzle_ray.arch.stats import model_stats

from .test_arch_inspect import nemotron_51b_like
from .tiny_models import COMMON, MIXED_BLOCKS

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "nemotron-configs"

FAMILIES = {
    "llama": LlamaConfig(**COMMON, attention_bias=True),
    "qwen2": Qwen2Config(**COMMON, tie_word_embeddings=True),
    "qwen3": Qwen3Config(**COMMON, head_dim=24),
    "mistral": MistralConfig(**COMMON, sliding_window=None, mlp_bias=False),
}


def saved_configs(tmp_path: Path) -> list[Path]:
    """Family configs as `save_pretrained` writes them, a mixed child and an 80-layer nemotron-nas config."""
    paths = []
    for name, config in FAMILIES.items():
        config.save_pretrained(tmp_path / name)
        paths.append(tmp_path / name / "config.json")
    PuzzleConfig(**{**COMMON, "num_hidden_layers": len(MIXED_BLOCKS)}, block_configs=MIXED_BLOCKS,
                 qkv_bias=True).save_pretrained(tmp_path / "child")
    paths.append(tmp_path / "child" / "config.json")
    (tmp_path / "51b.json").write_text(json.dumps(nemotron_51b_like()))
    return [*paths, tmp_path / "51b.json", *sorted(REFERENCE.glob("*.config.json"))]


def test_every_config_reads_to_the_shape_of_its_puzzle_config(tmp_path):
    paths = saved_configs(tmp_path)
    assert len(paths) >= 6
    for path in paths:
        shape, full = load_model_shape(path), load_puzzle_config(path)
        assert shape == ModelShape.of(full), path
        assert model_stats(shape) == model_stats(full), path


def test_the_shapes_defaults_are_puzzle_configs():
    defaults = {f.name: f.default for f in dataclasses.fields(PuzzleConfig)}
    for f in dataclasses.fields(ModelShape):
        if f.name != "block_configs":
            assert f.default == defaults[f.name], f.name


def test_a_family_field_left_to_its_class_default_is_read_through_transformers(tmp_path):
    # a hand-written file (no transformers_version). Qwen3Config's head_dim defaults to 128, not hidden_size //
    # heads: a reading that guessed would be wrong
    data = {k: v for k, v in Qwen3Config(**COMMON).to_dict().items() if k not in ("head_dim", "transformers_version")}
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert load_model_shape(tmp_path).head_dim == Qwen3Config().head_dim == 128


def test_bad_fields_are_named(tmp_path):
    path = tmp_path / "config.json"
    for change, message in (
        ({"hidden_size": "big"}, "hidden_size='big' must be a positive integer"),
        ({"hidden_act": "gelu"}, "hidden_act='gelu'"),
        ({"block_configs": [{"attention": {"no_op": True}}]}, "block_configs[0] must be an object"),
        ({"num_hidden_layers": 3}, "block_configs has 80 entries but num_hidden_layers=3"),
    ):
        path.write_text(json.dumps({**nemotron_51b_like(), **change}))
        with pytest.raises(BlockConfigError, match=message.replace("[", r"\[").replace("(", r"\(")) as info:
            load_model_shape(path)
        assert str(info.value).startswith(str(path))


INSPECT_IMPORTS = """
import json, sys
from typer.testing import CliRunner
from puzzle_ray.cli import app
for path in sys.argv[1:]:
    result = CliRunner().invoke(app, ["inspect", path])
    assert result.exit_code == 0, (path, result.output)
print(json.dumps(sorted(m for m in ("torch", "transformers") if m in sys.modules)))
"""


def test_inspect_of_saved_configs_imports_neither_torch_nor_transformers(tmp_path):
    paths = saved_configs(tmp_path)
    result = subprocess.run([sys.executable, "-c", INSPECT_IMPORTS, *map(str, paths)], capture_output=True,
                            text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
