"""A fast CLI: `puzzle-ray --help` (and every subcommand's) imports no heavy library, `import puzzle_ray` defers
the transformers registration without losing it, and `inspect` reports its time from process start."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "ray", "mlflow", "deepspeed", "cvxpy", "numpy")  # (typer itself imports pydantic)

HELP_SCRIPT = """
import json, sys
import puzzle_ray.cli as cli
import typer.main
from typer.testing import CliRunner

names = sorted(typer.main.get_command(cli.app).commands)
for args in [["--help"]] + [[name, "--help"] for name in names]:
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, (args, result.output)
print(json.dumps({"commands": names, "heavy": sorted(m for m in sys.argv[1:] if m in sys.modules)}))
"""


# Runs the command as its only child and writes that child's CPU seconds (user + system) to a file.
TIMER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[2:]); "
         "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "open(sys.argv[1], 'w').write(repr(u.ru_utime + u.ru_stime)); sys.exit(r.returncode)")


def timed(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`python ARGS` in a fresh process: (its result, the CPU seconds it used, start-up included)."""
    cpu_file = tmp_path / "cpu.txt"
    result = subprocess.run([sys.executable, "-c", TIMER, str(cpu_file), sys.executable, *args], capture_output=True,
                            text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"}, timeout=300)
    return result, float(cpu_file.read_text())


def test_help_of_every_command_imports_no_heavy_library():
    result = subprocess.run([sys.executable, "-c", HELP_SCRIPT, *HEAVY], capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"run", "inspect", "solve", "measure", "distill", "evaluate", "pcw-eval", "library"} <= set(
        report["commands"])
    assert report["heavy"] == [], f"--help imported {report['heavy']}"


def test_help_starts_in_well_under_two_cpu_seconds(tmp_path):
    result, cpu = timed(tmp_path, "-m", "puzzle_ray.cli", "--help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "inspect" in result.stdout and "run" in result.stdout
    assert cpu < 2.0, f"puzzle-ray --help took {cpu:.2f} s of CPU"


REGISTRATION = """
import importlib.util, json, sys
import puzzle_ray
lazy = not any(m in sys.modules for m in ("torch", "transformers"))
assert importlib.util.find_spec("transformers") is not None  # another library's availability check: no import
assert lazy == ("transformers" not in sys.modules)
import transformers as held  # mlflow.transformers holds the module, imports AutoConfig, then looks the exported
from transformers import AutoConfig  # class up on the module it holds
decilm = getattr(held, "DeciLMForCausalLM", None) is puzzle_ray.PuzzleForCausalLM
from transformers import AutoModelForCausalLM
config = AutoConfig.for_model("nemotron-nas", vocab_size=64, hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, intermediate_size=64)
model = AutoModelForCausalLM.from_config(config)
print(json.dumps({"lazy": lazy, "config": type(config).__name__, "model": type(model).__name__,
                  "decilm": decilm}))
"""


def test_import_puzzle_ray_is_light_and_still_registers_the_model_type():
    # transformers imported after puzzle_ray; before it, without and with its Auto classes
    for prelude in ("", "import transformers\n", "from transformers import AutoModelForCausalLM\n"):
        result = subprocess.run([sys.executable, "-c", prelude + REGISTRATION], capture_output=True, text=True,
                                cwd=ROOT, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report == {"lazy": not prelude, "config": "PuzzleConfig", "model": "PuzzleForCausalLM",
                          "decilm": True}


def test_exported_child_loads_without_remote_code_in_a_fresh_process(tmp_path):
    from puzzle_ray.arch.export import export_pretrained

    from .tiny_models import tiny_mixed_child

    export_pretrained(tiny_mixed_child(), tmp_path / "child")
    script = ("import sys, puzzle_ray\nassert 'torch' not in sys.modules\n"
              "from transformers import AutoModelForCausalLM\n"
              "m = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=False)\n"
              "print(type(m).__name__)")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "child")], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "PuzzleForCausalLM"


LLAMA_8B = {
    "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
}


def test_inspect_reports_its_time_from_process_start(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_8B))
    for verify in ([], ["--verify"]):
        result, cpu = timed(tmp_path, "-m", "puzzle_ray.cli", "inspect", str(tmp_path / "config.json"), *verify)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "8.03B" in result.stdout  # Llama-3.1-8B's parameters
        m = re.search(r"inspected in ([\d.]+) s \(([\d.]+) s CPU\) since the process started", result.stdout)
        assert m, result.stdout[-500:]
        wall, reported_cpu = float(m.group(1)), float(m.group(2))
        # what it prints is most of the CPU the process used: start-up and imports included (not the
        # interpreter's teardown after it, which is a fraction of a second with torch loaded)
        assert 0.5 * cpu <= reported_cpu <= cpu + 0.05, (reported_cpu, cpu)
        assert wall > 0
        assert ("verified on the meta device" in result.stdout) == bool(verify)
