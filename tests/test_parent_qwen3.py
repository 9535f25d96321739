"""Qwen3 (dense) parents, added through the parent-family registry: per-head q/k RMSNorm, head_dim independent of
hidden / heads. The converted model computes what `Qwen3ForCausalLM` computes (logits, cached greedy decoding),
counts its parameters exactly, initialises, exports and reloads children, warns that engines cannot read them,
and runs parallel context windows."""

import logging

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen3Config, Qwen3ForCausalLM

from puzzle_ray.arch import BlockConfigError, PuzzleCache, PuzzleConfig, PuzzleForCausalLM
from puzzle_ray.arch.convert import convert_from_hf, puzzle_config_from_hf
from puzzle_ray.arch.export import export_pretrained
from puzzle_ray.arch.families import family_of
from puzzle_ray.arch.stats import model_stats
from puzzle_ray.arch.summary import count_params_on_meta
from puzzle_ray.arch.config import load_puzzle_config
from puzzle_ray.library.init import init_attention, init_ffn
from puzzle_ray.pcw import ParallelContextWindows, oracle_logits

from .test_pcw_tiny import BOS, random_tokens, random_windows

VOCAB = 256
QWEN3 = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=2, head_dim=32, max_position_embeddings=256, initializer_range=0.3, bos_token_id=None)


def tiny_qwen3(attn: str = "sdpa", **kw) -> Qwen3ForCausalLM:
    """A random 3-layer Qwen3 (head_dim 32 != 64 / 4) whose norms are random too, so that a norm left out shows."""
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(**{**QWEN3, **kw}, attn_implementation=attn)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model


def ids(batch: int = 2, length: int = 19, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_logits_equal_qwen3(attn):
    parent = tiny_qwen3(attn)
    child = convert_from_hf(parent)
    assert isinstance(child, PuzzleForCausalLM) and child.config.qk_norm and child.config.head_dim == 32
    assert not child.config.qkv_bias and not child.config.attention_bias
    x = ids()
    mask = torch.ones_like(x)
    mask[0, :5] = 0  # left padding
    with torch.no_grad():
        want, got = parent(x, attention_mask=mask).logits, child(x, attention_mask=mask).logits
    assert (want[mask.bool()] - got[mask.bool()]).abs().max().item() <= 1e-5


def test_attention_bias_parent_is_exact():
    parent = tiny_qwen3(attention_bias=True)
    child = convert_from_hf(parent)
    assert child.config.attention_bias and not child.config.qkv_bias
    with torch.no_grad():
        assert (parent(ids()).logits - child(ids()).logits).abs().max().item() <= 1e-5


def test_greedy_generation_with_the_puzzle_cache_equals_qwen3():
    parent = tiny_qwen3()
    child = convert_from_hf(parent)
    x = ids(2, 6, seed=1)
    mask = torch.ones_like(x)
    mask[1, :2] = 0
    kw = dict(attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(parent.generate(x, **kw), child.generate(x, **kw))
    with torch.no_grad():
        out = child(x[:1], use_cache=True)
    assert isinstance(out.cache, PuzzleCache) and out.cache.layers[0].keys.shape == (1, 2, 6, 32)


def test_parameter_count_is_exact():
    for tied in (False, True):
        child = convert_from_hf(tiny_qwen3(tie_word_embeddings=tied))
        allocated = sum(p.numel() for p in child.parameters())
        assert model_stats(child.config).num_params == allocated == count_params_on_meta(child.config)
    config = child_config(child.config)
    assert model_stats(config).num_params == sum(p.numel() for p in PuzzleForCausalLM(config).parameters())


def test_config_round_trips_and_other_configs_do_not_carry_the_flag(tmp_path):
    parent = tiny_qwen3()
    parent.config.save_pretrained(tmp_path / "qwen3")
    loaded = load_puzzle_config(tmp_path / "qwen3")
    assert loaded.qk_norm and loaded.head_dim == 32
    assert PuzzleConfig(**loaded.to_dict()).qk_norm
    plain = PuzzleConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4)
    assert "qk_norm" not in plain.to_dict() and "qk_norm" not in plain.to_diff_dict()


def test_real_sliding_windows_are_rejected():
    assert puzzle_config_from_hf(Qwen3Config(**QWEN3, sliding_window=16)).qk_norm  # no use_sliding_window: unused
    with pytest.raises(BlockConfigError, match="sliding_window=16"):
        puzzle_config_from_hf(Qwen3Config(**QWEN3, sliding_window=16, use_sliding_window=True, max_window_layers=1))


def test_family_descriptor():
    qwen3 = family_of("qwen3")
    assert qwen3.qk_norm and not qwen3.qkv_bias and qwen3.gguf_architecture == "qwen3" and qwen3.engines == ()
    with pytest.raises(BlockConfigError, match="supported parents are llama, qwen2, mistral, qwen3"):
        family_of("gpt2")


def test_gguf_header_of_a_qwen3_file_is_accepted(tmp_path):
    from puzzle_ray.parent.gguf import gguf_puzzle_config, read_gguf_header

    from .test_parent_gguf import write_gguf

    path = write_gguf(tmp_path / "tiny-qwen3.gguf", arch="qwen3")
    assert read_gguf_header(path).architecture == "qwen3"
    config = gguf_puzzle_config(path)  # from the metadata alone, as `inspect` and dry runs read it
    assert config.qk_norm and config.num_hidden_layers == 2 and config.hidden_size == 32


# -- children ----------------------------------------------------------------------------------------------
def child_config(parent: PuzzleConfig) -> PuzzleConfig:
    """Layer 0: one KV head instead of two; layer 1: no-op attention, linear FFN; layer 2: the parent's block."""
    data = parent.to_dict()
    data["block_configs"] = [
        {"attention": {"n_heads_in_group": 4}, "ffn": {"intermediate_size": 96}},
        {"attention": {"no_op": True}, "ffn": {"replace_with_linear": True}},
        data["block_configs"][2],
    ]
    return PuzzleConfig(**data)


def initialised_child(parent: PuzzleForCausalLM) -> PuzzleForCausalLM:
    child = PuzzleForCausalLM(child_config(parent.config)).eval()
    child.model.embed_tokens.load_state_dict(parent.model.embed_tokens.state_dict())
    child.model.norm.load_state_dict(parent.model.norm.state_dict())
    child.lm_head.load_state_dict(parent.lm_head.state_dict())
    for new, old in zip(child.model.layers, parent.model.layers):
        init_attention(new, old, None, "product")
        init_ffn(new, old, None, "product")
    return child


def test_exported_child_reloads_warns_and_kept_the_qk_norms(tmp_path, caplog):
    parent = convert_from_hf(tiny_qwen3())
    child = initialised_child(parent)
    with caplog.at_level(logging.WARNING, logger="puzzle_ray.arch.export"):
        warnings = export_pretrained(child, tmp_path / "child")
    qwen3 = [w for w in warnings if w.startswith("Qwen3 blocks")]
    assert len(qwen3) == 1 and "per-head q/k RMSNorm" in qwen3[0] and "vLLM" in qwen3[0]
    assert sum("Qwen3 blocks" in r.getMessage() for r in caplog.records) == 1
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "child").eval()
    assert isinstance(reloaded, PuzzleForCausalLM) and reloaded.config.qk_norm
    assert reloaded.model.layers[0].self_attn.num_kv_heads == 1
    assert reloaded.model.layers[1].self_attn is None and hasattr(reloaded.model.layers[1].mlp, "linear_mlp")
    for layer in (0, 2):
        for norm in ("q_norm", "k_norm"):
            want = getattr(parent.model.layers[layer].self_attn, norm).weight
            assert torch.equal(getattr(reloaded.model.layers[layer].self_attn, norm).weight, want)
    x = ids()
    with torch.no_grad():
        assert torch.equal(reloaded(x).logits, child(x).logits)
        kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert torch.equal(reloaded.generate(x, **kw), child.generate(x, **kw))


def test_other_parents_export_without_the_family_warning(tmp_path):
    from .tiny_models import tiny_llama, tiny_qwen2

    for make in (tiny_llama, tiny_qwen2):
        warnings = export_pretrained(make(), tmp_path / make.__name__)
        assert not any("blocks (" in w for w in warnings)


# -- parallel context windows ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def converted():
    return convert_from_hf(tiny_qwen3()).to(torch.float64)


def test_one_window_is_plain_in_context_learning(converted):
    (window,) = random_windows([11], bos=False, vocab=VOCAB)  # Qwen tokenizers add no BOS
    task = random_tokens(5, vocab=VOCAB)
    pcw = ParallelContextWindows(converted, bos_token_id=BOS)
    got = pcw.logits(pcw.encode([window]), task)
    with torch.no_grad():
        plain = converted(torch.tensor([window + task])).logits[0, len(window):]
    assert (got - plain).abs().max().item() < 1e-5


def test_parallel_windows_match_the_one_pass_oracle(converted):
    windows = random_windows([7, 12, 5], bos=False, vocab=VOCAB)
    task = random_tokens(6, vocab=VOCAB)
    pcw = ParallelContextWindows(converted, bos_token_id=BOS)
    got = pcw.logits(pcw.encode(windows), task)
    want = oracle_logits(converted, windows, task, BOS, "left")
    assert got.shape == (6, VOCAB) and (got - want).abs().max().item() < 1e-5


# -- the library, score and realize stages on a Qwen3 parent folder ----------------------------------------
def test_library_score_and_realize_on_a_qwen3_parent(ray_cluster, tmp_path):
    from puzzle_ray.library.build import build_library
    from puzzle_ray.library.config import BLDConfig
    from puzzle_ray.library.realize import assemble_child, realize
    from puzzle_ray.library.space import VariantSpace
    from puzzle_ray.score import ScoreConfig, score_library
    from puzzle_ray.store import ArtifactStore

    from .library_fixtures import SEQ, batches, random_data
    from .test_score import naive_metrics

    parent_dir = tmp_path / "parent"
    export_pretrained(tiny_qwen3(), parent_dir)
    store = ArtifactStore(tmp_path / "store")
    space = VariantSpace(attention=[1, "no_op"], ffn=["linear"], round_to=32)
    bld = BLDConfig(token_budget=4 * SEQ * 6, checkpoint_every=3, calibration_batches=2, eval_batches=2,
                    linear_init="product")
    library = build_library(parent_dir, space, bld, random_data(), store, show_progress=False).library
    val = batches(9, 2)
    scored = score_library(library, val, ScoreConfig(), store)
    assert scored.layers[0]["attention=kv2 ffn=96"].metrics["kl_div"] == 0.0
    chosen = ["attention=kv1 ffn=96", "attention=no_op ffn=linear", "attention=kv2 ffn=96"]
    parent = AutoModelForCausalLM.from_pretrained(parent_dir).eval()
    kl, loss = naive_metrics(parent, assemble_child(library, [chosen[0]] + ["attention=kv2 ffn=96"] * 2, store), val)
    m = scored.layers[0][chosen[0]].metrics
    assert m["kl_div"] == pytest.approx(kl, abs=1e-5) and m["lm_loss"] == pytest.approx(loss, abs=1e-5)
    child = AutoModelForCausalLM.from_pretrained(realize(library, chosen, store, tmp_path / "child")).eval()
    assert child.config.qk_norm and child.model.layers[0].self_attn.num_kv_heads == 1
    assert torch.equal(child.model.layers[2].self_attn.q_norm.weight, parent.model.layers[2].self_attn.q_norm.weight)
    with torch.no_grad():
        assert torch.isfinite(child(val[0]).logits).all()


# -- the measure, distill, evaluate and publish stages on a Qwen3 parent and child ---------------------------
@pytest.fixture(scope="module")
def qwen3_pair(tmp_path_factory):
    """The tiny Qwen3 as Hugging Face saves it, its nemotron-nas export, and an initialised child exported with
    a word-level tokenizer (publishing needs one)."""
    from .test_evaluate_publish import tiny_tokenizer

    root = tmp_path_factory.mktemp("qwen3-pair")
    hf = tiny_qwen3()
    hf.save_pretrained(root / "hf")
    parent = convert_from_hf(hf)
    export_pretrained(parent, root / "parent")
    export_pretrained(initialised_child(parent), root / "child", tokenizer=tiny_tokenizer())
    return root / "hf", root / "parent", root / "child"


def test_measured_library_times_qk_norm_units_and_counts_their_norms(ray_cluster, tmp_path):
    from puzzle_ray.library.record import variant_name
    from puzzle_ray.measure import MeasureConfig, Scenario, measure_library, predict_model_costs, skeleton_library
    from puzzle_ray.measure.stacks import block_stack
    from puzzle_ray.measure.timed_block import MIB, sub_blocks
    from puzzle_ray.store import ArtifactStore

    parent = puzzle_config_from_hf(Qwen3Config(**QWEN3))
    child = child_config(parent)
    attention, ffn = sub_blocks(parent.block_configs[0])
    plain = PuzzleConfig(**{**parent.to_dict(), "qk_norm": False})
    assert attention.shape(parent)["qk_norm"] and attention.key(parent) != attention.key(plain)
    assert ffn.key(parent) == ffn.key(plain)  # the norms are the attention's: FFN timings are shared
    assert attention.num_params(parent) == attention.num_params(plain) + 2 * 32
    scenario = Scenario(batch_sizes=[1], prefill_len=16, decode_len=4, dtype="fp32")
    stack = block_stack(parent, attention.block, 2, scenario, "cpu", 0)
    assert all(layer.self_attn.q_norm.weight.shape == (32,) for layer in stack.layers)
    assert sum(p.numel() for layer in stack.layers for p in layer.parameters()) == 2 * attention.num_params(parent)

    variants = sorted(set(parent.block_configs) | set(child.block_configs), key=repr)
    fast = MeasureConfig(stack_depth=2, min_stack_mib=None, warmup=1, repeats=3, threads=1, units_per_task=4,
                         cpu_clock="thread")
    library = measure_library(skeleton_library(parent, variants), parent, scenario, fast, ArtifactStore(tmp_path))
    assert library.meta["parent_config"]["qk_norm"]
    model = PuzzleForCausalLM(child)
    for i, (block, layer) in enumerate(zip(child.block_configs, model.model.layers)):
        stats = library.layers[i][variant_name(block, 4)].stats
        assert stats["num_params"] == sum(p.numel() for p in layer.parameters()), i
        assert stats["runtime_ms"] >= 0 and stats["memory_mib"] > 0
    assert library.layers[0]["attention=kv2 ffn=96"].stats["attention_prefill_ms"] > 0
    cost = predict_model_costs(child, library)[1]
    stats = model_stats(child, "fp32")
    assert stats.num_params == sum(p.numel() for p in model.parameters())
    assert cost.memory_mib == pytest.approx((stats.num_params * 4 + 20 * stats.kv_bytes_per_token) / MIB)


def test_gkd_trains_a_qwen3_child_and_exports_its_trained_qk_norms(ray_cluster, qwen3_pair, tmp_path):
    from pathlib import Path

    from safetensors.torch import load_file

    from puzzle_ray.distill import DistillConfig, TensorBatchSource, distill
    from puzzle_ray.distill.worker import FINAL_WEIGHTS
    from puzzle_ray.store import ArtifactStore

    _, parent_dir, child_dir = qwen3_pair
    data = TensorBatchSource(torch.randint(0, VOCAB, (32, 16), generator=torch.Generator().manual_seed(1)))
    config = DistillConfig(engine="ddp", num_workers=1, cpus_per_worker=1, micro_batch_size=4, token_budget=4 * 16 * 4,
                           lr=1e-2, warmup_fraction=0.25, log_every=2, checkpoint_every=4, kl_chunk_tokens=32)
    store = ArtifactStore(tmp_path / "store")
    out = distill(parent_dir, child_dir, data, config, store, show_progress=False)
    (weights,) = Path(store.path("distill")).rglob(FINAL_WEIGHTS)
    state = load_file(weights)
    before = AutoModelForCausalLM.from_pretrained(child_dir).eval()
    distilled = AutoModelForCausalLM.from_pretrained(out).eval()
    assert isinstance(distilled, PuzzleForCausalLM) and distilled.config.qk_norm
    for layer in (0, 2):
        for norm in ("q_norm", "k_norm"):
            got = getattr(distilled.model.layers[layer].self_attn, norm).weight
            assert torch.equal(got, state[f"model.layers.{layer}.self_attn.{norm}.weight"])
            assert not torch.equal(got, getattr(before.model.layers[layer].self_attn, norm).weight)  # trained
    rebuilt = PuzzleForCausalLM(load_puzzle_config(child_dir)).eval()
    rebuilt.load_state_dict(state)  # strict: every distilled tensor, the norms included, has its place
    with torch.no_grad():
        assert torch.equal(distilled(ids()).logits, rebuilt(ids()).logits)


def test_evaluate_reports_a_qwen3_pair_with_exact_parameter_counts(qwen3_pair):
    from puzzle_ray.distill import TensorBatchSource
    from puzzle_ray.evaluate import EvalConfig, evaluate
    from puzzle_ray.measure import Scenario

    hf_dir, parent_dir, child_dir = qwen3_pair
    data = TensorBatchSource(torch.randint(0, VOCAB, (8, 16), generator=torch.Generator().manual_seed(0)))
    scenario = Scenario(batch_sizes=[1], prefill_len=8, decode_len=3, dtype="fp32")
    quick = EvalConfig(batch_size=4, max_batches=2, chunk_tokens=7, measure_speed=False, icl_tasks=[],
                       episode_demos=[], completion_prompts=[])
    same = evaluate(hf_dir, parent_dir, data, scenario, quick)  # Hugging Face's Qwen3 against its conversion
    assert same.row("kl_from_parent").child < 1e-8 and same.row("num_params").ratio == 1.0
    report = evaluate(hf_dir, child_dir, data, scenario, quick)
    params, kl = report.row("num_params"), report.row("kl_from_parent")
    assert params.parent == model_stats(load_puzzle_config(hf_dir)).num_params
    assert params.parent == sum(p.numel() for p in tiny_qwen3().parameters())
    child = AutoModelForCausalLM.from_pretrained(child_dir)
    assert params.child == model_stats(child.config).num_params == sum(p.numel() for p in child.parameters())
    assert kl.parent == 0.0 and kl.child > 0
    assert report.row("kv_bytes_per_token (fp32)").ratio == pytest.approx(0.5)  # 1 + 0 + 2 KV heads, not 2 + 2 + 2


def test_publish_registers_a_qwen3_child_that_loads_back_with_its_qk_norms(qwen3_pair, mlflow_uri, tmp_path):
    import time

    import mlflow

    from puzzle_ray.evaluate import publish

    _, _, child_dir = qwen3_pair
    name = f"tiny-qwen3-child-{time.time_ns()}"
    exp = mlflow.create_experiment(name, artifact_location=(tmp_path / "mlruns").as_uri())
    with mlflow.start_run(experiment_id=exp):
        published = publish(child_dir, name, alias="candidate")
    assert published.model_uri == f"models:/{name}@candidate"
    components = mlflow.transformers.load_model(published.model_uri, return_type="components")
    loaded, want = components["model"].eval(), AutoModelForCausalLM.from_pretrained(child_dir).eval()
    assert isinstance(loaded, PuzzleForCausalLM) and loaded.config.qk_norm
    assert torch.equal(loaded.model.layers[2].self_attn.k_norm.weight, want.model.layers[2].self_attn.k_norm.weight)
    with torch.no_grad():
        assert torch.equal(loaded(ids()).logits, want(ids()).logits)
