"""The serving-engine compatibility table and what asks it: layer cases, export warnings, inspect, engine-aware
search (`search.engines`)."""

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from puzzle_ray.arch.blocks import AttentionConfig, BlockConfig, FFNConfig
from puzzle_ray.library.record import Library, LibraryError, Variant, variant_name
from puzzle_ray.serving.check import engine_report, layer_cases, serving_engines, unserved
from puzzle_ray.serving.matrix import CASES, ENGINE_IDS, ENGINE_NAMES, MATRIX
from puzzle_ray.solve import SearchConfig, search
from puzzle_ray.solve.engines import served_variants

GQA = AttentionConfig(n_heads_in_group=2)
LIN_ATT = AttentionConfig(replace_with_linear=True)
NO_ATT = AttentionConfig(no_op=True)
FULL = FFNConfig(intermediate_size=512)
LIN_FFN = FFNConfig(replace_with_linear=True)
NO_FFN = FFNConfig(no_op=True)


def test_every_engine_has_every_case_with_its_source():
    assert set(MATRIX) == set(ENGINE_IDS) == set(ENGINE_NAMES)
    for engine, table in MATRIX.items():
        assert set(table) == set(CASES), engine
        for case, entry in table.items():
            assert entry.source.strip(), (engine, case)
            assert entry.verdict in ("served", "load error", "silently wrong")
            if not entry.served:
                assert entry.detail, (engine, case)  # what goes wrong is said


def test_the_cases_of_a_layer():
    assert layer_cases(BlockConfig(GQA, FULL)) == ["gqa", "swiglu"]
    assert layer_cases(BlockConfig(GQA, FFNConfig(intermediate_size=700))) == ["gqa", "swiglu_inexact"]
    assert layer_cases(BlockConfig(LIN_ATT, LIN_FFN)) == ["linear_attention", "linear_ffn"]
    assert layer_cases(BlockConfig(NO_ATT, NO_FFN)) == ["no_op_attention", "no_op_ffn"]
    assert layer_cases(BlockConfig(GQA, NO_FFN)) == ["gqa", "no_op_ffn", "gqa+no_op_ffn"]
    assert layer_cases(BlockConfig(LIN_ATT, NO_FFN)) == ["linear_attention", "no_op_ffn", "linear_attention+no_op_ffn"]


def test_llama_cpp_drops_attention_beside_a_no_op_ffn_and_vllm_has_no_linear_path():
    blocks = [BlockConfig(GQA, FULL), BlockConfig(GQA, NO_FFN), BlockConfig(NO_ATT, NO_FFN), BlockConfig(LIN_ATT, FULL)]
    assert [(u.layer, u.case) for u in unserved(blocks, "llama.cpp")] == [(1, "gqa+no_op_ffn")]
    assert MATRIX["llama.cpp"]["gqa+no_op_ffn"].verdict == "silently wrong"
    assert [(u.layer, u.case) for u in unserved(blocks, "vllm")] == [(3, "linear_attention")]
    assert "llama.cpp" not in serving_engines(blocks) and "vllm" not in serving_engines(blocks)
    assert set(serving_engines([BlockConfig(GQA, FULL), BlockConfig(NO_ATT, NO_FFN)])) == set(ENGINE_IDS)


def test_engine_report_of_a_child_with_every_kind():
    from .tiny_models import tiny_mixed_child

    report = engine_report(tiny_mixed_child().config.block_configs)  # widths 64 and 32 are not multiples of 256
    assert report["tensorrt-llm"] == [
        "SwiGLU FFN of a width ffn_mult cannot express in layers 0, 3: load error"]
    assert "GQA attention kept beside a no-op FFN in layer 4: silently wrong" in report["llama.cpp"]
    assert "linear attention (one H x H matrix) in layer 2: load error" in report["vllm"]
    assert any(r.startswith("GQA layers with different KV-head counts") for r in report["sglang"])


def test_search_engines_is_validated():
    with pytest.raises(ValidationError, match="engines"):
        SearchConfig(engines=["vlm"])
    assert SearchConfig(engines=["vllm", "vllm", "llama.cpp"]).engines == ["vllm", "llama.cpp"]


def _library() -> Library:
    """3 layers; the cheapest good variants are linear attention (layer 0) and attention kept beside a no-op FFN
    (layer 1), so the unrestricted optimum uses both."""
    heads = 4
    layers = []
    for i in range(3):
        options = [  # (block, runtime_ms, kl_div)
            (BlockConfig(GQA, FULL), 10.0, 0.0),
            (BlockConfig(LIN_ATT, FULL), 6.0, 0.01 if i == 0 else 0.5),
            (BlockConfig(GQA, NO_FFN), 5.0, 0.01 if i == 1 else 0.5),
            (BlockConfig(NO_ATT, FULL), 6.0, 0.30),
            (BlockConfig(NO_ATT, NO_FFN), 1.0, 0.90),
        ]
        layer = {}
        for j, (block, ms, kl) in enumerate(options):
            name = variant_name(block, heads)
            layer[name] = Variant(name, {"runtime_ms": ms, "memory_mib": ms}, {"kl_div": kl}, block,
                                  {"is_parent": j == 0})
        layers.append(layer)
    return Library(layers, meta={"num_attention_heads": heads, "hidden_size": 64,
                                 "scenario": {"sequence_length": 100}})


def test_engine_aware_search_never_returns_a_child_the_engine_misreads():
    library = _library()
    base = {"constraints": ["stats.runtime_ms<=0.6*parent"]}
    free = search(library, SearchConfig(**base)).best
    blocks = lambda s: [library.layers[i][n].block_config for i, n in enumerate(s.chosen)]  # noqa: E731
    assert unserved(blocks(free), "llama.cpp") and unserved(blocks(free), "vllm")  # the test means something
    for engines in (["llama.cpp"], ["vllm"], ["vllm", "llama.cpp"]):
        best = search(library, SearchConfig(**base, engines=engines)).best
        for engine in engines:
            assert not unserved(blocks(best), engine), (engines, best.chosen)
        assert best.objective >= free.objective - 1e-12
    vllm = search(library, SearchConfig(**base, engines=["vllm"])).best
    assert not any(b.attention.kind.linear_map or b.ffn.kind.linear_map for b in blocks(vllm))


def test_sglang_keeps_the_parents_kv_heads_in_every_gqa_layer():
    library = _library()
    for layer in library.layers:  # a second KV-head count beside the parent's
        block = BlockConfig(AttentionConfig(n_heads_in_group=4), FULL)
        layer[variant_name(block, 4)] = Variant(variant_name(block, 4), {"runtime_ms": 4.0, "memory_mib": 4.0},
                                                {"kl_div": 0.01}, block)
    config = {"constraints": ["stats.runtime_ms<=0.6*parent"]}
    free = search(library, SearchConfig(**config)).best
    groups = lambda s: {library.layers[i][n].block_config.attention.n_heads_in_group  # noqa: E731
                        for i, n in enumerate(s.chosen) if library.layers[i][n].block_config.attention.kind == "gqa"}
    assert len(groups(free)) > 1  # mixed KV-head counts: SGLang refuses the unrestricted optimum
    best = search(library, SearchConfig(**config, engines=["sglang"])).best
    assert groups(best) <= {2}
    blocks = [library.layers[i][n].block_config for i, n in enumerate(best.chosen)]
    assert not unserved(blocks, "sglang")


def test_restricting_to_nothing_names_the_layer():
    library = _library()
    only_linear = Library([{n: v for n, v in layer.items() if v.block_config.attention.kind == "linear"}
                           for layer in library.layers], meta=library.meta)
    with pytest.raises(LibraryError, match="layer_0: no variant that vLLM serve"):
        served_variants(only_linear, ["vllm"])
    with pytest.raises(LibraryError, match="layer_0: no variant that vLLM serve"):
        search(only_linear, SearchConfig(engines=["vllm"]))


def test_inspect_prints_which_engines_serve_a_config(tmp_path):
    from .test_arch_inspect import nemotron_51b_like

    (tmp_path / "child.json").write_text(json.dumps(nemotron_51b_like()))
    res = subprocess.run([sys.executable, "-m", "puzzle_ray.cli", "inspect", str(tmp_path / "child.json")],
                         capture_output=True, text=True, env={"COLUMNS": "250", **__import__("os").environ})
    assert res.returncode == 0, res.stderr
    assert "serving engines" in res.stdout
    # the 51B-like config has linear attention (i % 7 == 5) and attention beside a no-op FFN (layer 22, GQA)
    assert "vLLM" in res.stdout and "linear attention" in res.stdout
    assert "GQA attention kept beside a no-op FFN" in res.stdout


def _engine_check_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "engine_check.py"
    spec = importlib.util.spec_from_file_location("engine_check_script", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_engine_checks_children_cover_the_table_for_llama_cpp():
    """The served rows hold every case the table says llama.cpp serves; each excluded row adds one it does not."""
    script = _engine_check_script()
    parent = [BlockConfig(AttentionConfig(n_heads_in_group=3), FFNConfig(intermediate_size=1536))] * 30
    rows = script.children(parent)
    served = [r for r in rows if r[2] == "served"]
    last = served[-1][1]
    cases = {c for i, b in enumerate(last) for c in layer_cases(b, i)}
    groups = {b.attention.n_heads_in_group for b in last if b.attention.kind == "gqa"}
    if len(groups) > 1:
        cases.add("mixed_kv_heads")
    assert cases == {c for c, e in MATRIX["llama.cpp"].items() if e.served}
    excluded = [r for r in rows if r[2] != "served"]
    assert {u.case for r in excluded for u in unserved(r[1], "llama.cpp")} == {
        c for c, e in MATRIX["llama.cpp"].items() if not e.served}
    for _, blocks, _ in excluded:  # each adds exactly one unserved case to the last served child
        assert len({u.case for u in unserved(blocks, "llama.cpp")}) == 1
