"""The fast GGUF metadata reader (`parent/gguf_reader.py`) and what is built on it must agree with the libraries
they stand in for: the tensor table with `gguf.GGUFReader`, the config fields with transformers'
`load_gguf_checkpoint`, and the torch-free `ModelShape` with the one read through transformers."""

import subprocess
import sys

import numpy as np
import pytest

from puzzle_ray.arch.families import FAMILIES
from puzzle_ray.arch.shape import ModelShape
from puzzle_ray.parent.gguf import (
    GGUF_SHAPE_KEYS,
    GGUFError,
    gguf_config_fields,
    gguf_model_shape,
    gguf_puzzle_config,
)
from puzzle_ray.parent.gguf_reader import GGUFLayoutError, read_gguf_metadata

from .conftest import smollm2_file

ARCHS = [f.gguf_architecture for f in FAMILIES]


def write_gguf(path, arch="llama", name="tiny test model", head_dim=True, output=False, vocab=300):
    """A small GGUF file of `arch`: shape metadata, a tokenizer of `vocab` strings (longer than the arrays the
    reader keeps), a float32 and a Q8_0 tensor, and optionally an untied `output.weight`."""
    import gguf

    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_block_count(3)
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_feed_forward_length(96)
    w.add_head_count(8)
    w.add_head_count_kv(2)
    if head_dim:
        w.add_rope_dimension_count(8)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(vocab)])
    w.add_token_types([1] * vocab)
    w.add_bos_token_id(1)
    w.add_tensor("token_embd.weight", rng.random((vocab, 64), dtype=np.float32))
    q8 = gguf.quants.quantize(rng.random((64, 64), dtype=np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    if output:
        w.add_tensor("output.weight", rng.random((vocab, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def files(tmp_path):
    """Every supported architecture, with and without head_dim and an untied head, and the real SmolLM2 file
    when its wheel is installed."""
    out = [write_gguf(tmp_path / f"{a}.gguf", a) for a in ARCHS]
    out.append(write_gguf(tmp_path / "llama-untied.gguf", head_dim=False, output=True))
    out.append(write_gguf(tmp_path / "named-mistral.gguf", name="mistral"))  # read as Mistral by transformers
    return out


def test_tensor_table_matches_gguf_reader(tmp_path):
    from gguf import GGUFReader

    for path in files(tmp_path):
        meta, reader = read_gguf_metadata(path), GGUFReader(path)
        assert [t.name for t in meta.tensors] == [t.name for t in reader.tensors]
        assert [meta.data_start + t.offset for t in meta.tensors] == [t.data_offset for t in reader.tensors]
        assert meta.tensor_end() == max(t.data_offset + int(t.n_bytes) for t in reader.tensors)
        assert meta.array_lengths["tokenizer.ggml.tokens"] == 300 and "tokenizer.ggml.tokens" not in meta.fields
        assert meta.fields["general.architecture"] == reader.fields["general.architecture"].contents()


@pytest.mark.parametrize("cut", [10, 30, 200])
def test_a_cut_header_is_a_layout_error(tmp_path, cut):
    path = write_gguf(tmp_path / "x.gguf")
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(GGUFLayoutError, match="truncated|runs past"):
        read_gguf_metadata(path)


def test_config_fields_match_transformers(tmp_path):
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    for path in files(tmp_path):
        assert gguf_config_fields(read_gguf_metadata(path)) == load_gguf_checkpoint(str(path))["config"], path.name


def test_config_fields_match_transformers_on_smollm2():
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    path = smollm2_file()
    assert gguf_config_fields(read_gguf_metadata(path)) == load_gguf_checkpoint(str(path))["config"]


def test_shape_without_transformers_matches_the_one_through_it(tmp_path):
    paths = files(tmp_path)
    try:
        paths.append(smollm2_file())
    except pytest.skip.Exception:
        pass
    for path in paths:
        assert gguf_model_shape(path) == ModelShape.of(gguf_puzzle_config(path)), path.name


def test_mistral_window_is_refused_on_both_paths(tmp_path):
    import gguf

    path = tmp_path / "long-mistral.gguf"
    w = gguf.GGUFWriter(str(path), "mistral")
    for add, value in [(w.add_block_count, 1), (w.add_context_length, 8192), (w.add_embedding_length, 64),
                       (w.add_feed_forward_length, 96), (w.add_head_count, 8), (w.add_head_count_kv, 2),
                       (w.add_vocab_size, 16)]:
        add(value)
    w.add_tensor("token_embd.weight", np.zeros((16, 64), dtype=np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    for read in (gguf_model_shape, gguf_puzzle_config):  # MistralConfig's 4096-token window < 8192 positions
        with pytest.raises(GGUFError, match=r"long-mistral.gguf: sliding_window=4096"):
            read(path)


def test_copied_tables_are_transformers_own():
    from transformers import AutoConfig
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    for family in FAMILIES:
        table = GGUF_CONFIG_MAPPING[family.gguf_architecture]
        assert {k: table[k] for k in GGUF_SHAPE_KEYS} == GGUF_SHAPE_KEYS, family.name
        assert (table["rope.dimension_count"] == "head_dim") == family.gguf_head_dim, family.name
        instance = AutoConfig.for_model(family.model_type)
        for name, value in family.class_defaults:
            assert getattr(instance, name) == value, (family.name, name)
        for name in ("attention_bias", "mlp_bias", "use_sliding_window", "sliding_window"):  # read by getattr
            if name not in dict(family.class_defaults):
                assert not hasattr(instance, name), (family.name, name)


def test_gguf_inspect_imports_neither_torch_nor_transformers(tmp_path):
    path = write_gguf(tmp_path / "m.gguf")
    code = ("import sys; from typer.testing import CliRunner; from puzzle_ray.cli import app; "
            f"r = CliRunner().invoke(app, ['inspect', {str(path)!r}]); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
