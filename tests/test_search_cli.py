"""`puzzle-ray solve`: the --json shape, tables, infeasible and bad-input exits, sweep mode files."""

import json

from typer.testing import CliRunner

from puzzle_ray.cli import app
from puzzle_ray.solve.synthetic import random_library, synthetic_library


def saved(tmp_path, library):
    library.write(tmp_path / "lib")
    return str(tmp_path / "lib" / "block_library.json")


def solve(*args):
    return CliRunner().invoke(app, ["solve", *args])


def test_json_output_shape(tmp_path):
    lib = synthetic_library(num_layers=8, attention=(8, 2, "no_op"), ffn=(1.0, 0.5, "no_op"), batch_sizes=(64,))
    path = saved(tmp_path, lib)
    result = solve("--library", path, "--objective", "metrics.kl_div", "--constraint", "stats.memory_mib<=0.8*parent",
                   "--constraint", "throughput>=1.2*parent", "--num-solutions", "2", "--min-diversity", "3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # one JSON object on stdout, nothing else
    assert data["feasible"] is True and data["batch_size"] == 64
    assert len(data["solutions"]) == 2
    for s in data["solutions"]:
        assert isinstance(s["objective"], float)
        assert set(s["costs"]) >= {"stats.memory_mib<=0.8*parent", "throughput>=1.2*parent"}
        assert list(s["chosen"]) == [f"layer_{i}" for i in range(8)]
        assert all(name in lib.layers[int(k.split("_")[1])] for k, name in s["chosen"].items())
        assert s["status"] == "optimal" and s["verified"] is True
        assert len(s["block_configs"]) == 8 and "ffn_mult" in s["block_configs"][0]["ffn"]
    a, b = (s["chosen"] for s in data["solutions"])
    assert sum(a[k] != b[k] for k in a) >= 3


def test_human_output_and_out_file(tmp_path):
    path = saved(tmp_path, random_library(num_layers=4, max_variants=3, seed=2))
    result = solve("--library", path, "-c", "stats.runtime_ms<=1.2*parent", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "solution 0" in result.stdout and "layers changed" in result.stdout and "metrics.kl_div" in result.stdout
    written = json.loads((tmp_path / "out" / "solution.json").read_text())
    assert written["solutions"][0]["chosen"]["layer_0"] in ("parent", "v1", "v2")


def test_infeasible_exits_1_with_the_explanation(tmp_path):
    path = saved(tmp_path, random_library(num_layers=4, max_variants=3, seed=2))
    result = solve("--library", path, "-c", "stats.memory_mib<=1", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["feasible"] is False and data["solutions"] == []
    reach = data["per_batch"][0]["infeasibility"]["constraints"][0]
    assert reach["constraint"] == "stats.memory_mib<=1" and reach["feasible_alone"] is False
    assert "stats.memory_mib<=1 cannot be met by any architecture on its own" in result.stderr


def test_bad_input_exits_2_naming_layer_and_variant(tmp_path):
    lib = random_library(num_layers=3, max_variants=3, seed=2)
    lib.layers[1]["parent"].metrics["kl_div"] = float("nan")
    path = saved(tmp_path, lib)
    result = solve("--library", path)
    assert result.exit_code == 2
    assert "layer_1 / 'parent': metrics.kl_div = nan is not finite" in result.stderr
    result = solve("--library", path, "-c", "stats.memory_mib<8")
    assert result.exit_code == 2 and result.stderr.startswith("error: --constraint: ")
    assert "use '<=' or '>='" in result.stderr
    result = solve("--library", path, "--num-solutions", "0")  # named by the option the user gave
    assert result.exit_code == 2 and result.stderr.startswith("error: --num-solutions 0: "), result.stderr
    result = solve("--library", str(tmp_path / "missing.json"))
    assert result.exit_code == 2 and "no such library file" in result.stderr


def test_sweep_mode_writes_the_frontier(tmp_path):
    lib = synthetic_library(num_layers=6, attention=(8, 1, "no_op"), ffn=(1.0, 0.5, "no_op"), batch_sizes=(64,))
    path = saved(tmp_path, lib)
    result = solve("--library", path, "--sweep", "stats.memory_mib<=30%:100%", "--points", "4", "--json",
                   "--out", str(tmp_path / "frontier"))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["frontier"]
    assert len(rows) == 4 and rows[-1]["feasible"] and rows[-1]["objective"] == 0.0  # the parent fits at 100%
    objectives = [r["objective"] for r in rows if r["feasible"]]
    assert objectives == sorted(objectives, reverse=True)  # a looser budget never costs quality
    assert {p.name for p in (tmp_path / "frontier").iterdir()} == {"frontier.csv", "frontier.json", "frontier.png"}


def test_engine_option_keeps_only_what_the_engines_serve(tmp_path):
    """`--serving-engine vllm`: no linear sub-block; `--serving-engine llama.cpp`: no attention kept beside a
    no-op FFN; an unknown engine is one clear line."""
    from puzzle_ray.serving.check import unserved

    lib = synthetic_library(num_layers=8, attention=(8, 2, "linear", "no_op"), ffn=(1.0, 0.5, "linear", "no_op"))
    path = saved(tmp_path, lib)
    base = ["--library", path, "--constraint", "stats.runtime_ms<=0.5*parent", "--json"]

    def blocks(result):
        chosen = json.loads(result.stdout)["solutions"][0]["chosen"]
        return [lib.layers[int(k.split("_")[1])][name].block_config for k, name in chosen.items()]

    free = solve(*base)
    assert free.exit_code == 0, free.output
    assert unserved(blocks(free), "vllm") and unserved(blocks(free), "llama.cpp")  # the options have work to do
    for engine in ("vllm", "llama.cpp"):
        result = solve(*base, "--serving-engine", engine)
        assert result.exit_code == 0, result.output
        assert not unserved(blocks(result), engine), engine
    bad = solve(*base, "--serving-engine", "tgi")
    assert bad.exit_code == 2 and "error: --serving-engine 'tgi': Input should be 'vllm'" in bad.output
