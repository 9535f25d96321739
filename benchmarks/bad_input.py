"""Bad input to the `puzzle-ray` CLI: one clear error naming the field or file, a non-zero exit, no traceback,
nothing left behind (issue #21).

    nice -n 19 python benchmarks/bad_input.py                 # every case, about 5 minutes on 2 cores
    python benchmarks/bad_input.py -k pcw --timeout 60        # the cases whose name holds "pcw"

Each case runs the real `puzzle-ray` console script as a subprocess in a fresh empty folder (its working
directory) holding only the input files the case writes; MLflow, Ray and the artifact store are left at their
defaults (no MLFLOW_TRACKING_URI, RAY_ADDRESS or PUZZLE_RAY_STORE) and the cache lies inside that folder, so
anything a command writes before it refuses its input shows. A case is ok when the exit code is non-zero, the
first meaningful line of stderr + stdout (box drawing of typer's usage errors stripped; "Usage:", "Try ..."
and "Error" lines skipped) holds the expected field, option or file name, no "Traceback" appears, and the
folder holds nothing but the case's inputs. Shared inputs (a tiny nemotron-nas child with a tokenizer, a tiny
Llama folder, one whose .bin checkpoint would run code, a synthetic block library, a token file) are built
once, outside the case folders, with the project's own helpers and the tests' tiny models. Prints a Markdown
table and "N/M ok"; exits 1 if any case fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINARY = bytes(range(128, 256)) * 4  # not UTF-8
BOX = "─╭╮╰╯│ \t"
ENV = dict(os.environ)  # the cases' environment, as the user's (building the shared inputs quiets libraries)


@dataclass
class Case:
    name: str
    args: list[str]  # after `puzzle-ray`; {model} {llama} {pickled} {lib} {tokens} name the shared inputs
    expect: str | tuple[str, ...]  # the first meaningful output line must hold this (each of these)
    files: dict[str, str | bytes] = field(default_factory=dict)  # inputs; a name ending in "/" is a folder


def puzzle_config(**attention) -> str:
    """A one-layer nemotron-nas config.json whose attention sub-block has `attention`'s extra fields."""
    block = {"attention": {"n_heads_in_group": 2, **attention}, "ffn": {"intermediate_size": 128}}
    return json.dumps({"model_type": "nemotron-nas", "hidden_size": 64, "num_attention_heads": 4,
                       "num_hidden_layers": 1, "vocab_size": 128, "block_configs": [block]})


def sparse_ffn_config() -> str:
    data = json.loads(puzzle_config())
    data["block_configs"][0]["ffn"]["sparsify"] = {"kind": "2:4"}
    return json.dumps(data)


def plan(body: str) -> dict[str, str]:
    return {"plan.yaml": "name: bad\n" + body}


def run_case(*extra: str) -> list[str]:
    return ["run", "plan.yaml", *extra]


GEN = ["pcw-generate", "--model", "{model}", "--prompt", "p"]
EVAL = ["pcw-eval", "--model", "{model}", "--episodes", "2"]
DISTILL = ["distill", "{model}", "{model}", "--tokens", "{tokens}", "--no-mlflow"]
EVALUATE = ["evaluate", "{model}", "{model}", "--tokens", "{tokens}", "--no-mlflow"]
WINDOW = {"w.txt": "some context\n"}
C = Case
CASES = [
    # -- run: the workflow config --------------------------------------------------------------------------
    C("run/missing-file", ["run", "nosuch.yaml"], "nosuch.yaml"),
    C("run/binary-yaml", run_case(), "plan.yaml", {"plan.yaml": BINARY}),
    C("run/yaml-syntax", run_case(), "plan.yaml", {"plan.yaml": "name: bad\nbld: [1, 2\n"}),
    C("run/not-a-mapping", run_case(), "plan.yaml", {"plan.yaml": "- 1\n- 2\n"}),
    C("run/unknown-top-field", run_case(), "bogus", plan("bogus: 1\n")),
    C("run/unknown-nested-field", run_case(), "tokens_budget", plan("bld:\n  tokens_budget: 5\n")),
    C("run/sweep-points-negative", run_case(), "sweep_points", plan("sweep_points: -3\n")),
    C("run/objective-unknown", run_case(), "objective", plan("search:\n  objective: bogus\n")),
    C("run/constraint-unknown-stat", run_case(), "stats.bogus",
      plan("search:\n  constraints: ['stats.bogus<=5']\n")),
    C("run/enum-dtype", run_case(), "fp64", plan("measure:\n  scenario:\n    dtype: fp64\n")),
    C("run/enum-engine", run_case(), "distill.engine", plan("distill:\n  engine: horovod\n")),
    C("run/ffn-ratio-range", run_case(), "ffn: width ratio 1.5", plan("search_space:\n  ffn: [1.5]\n")),
    C("run/data-source-kind", run_case(), "data.sources", plan("data:\n  sources: [{kind: csv, path: x}]\n")),
    C("run/parent-path-missing", run_case(), "nosuch-parent", plan("parent:\n  path: nosuch-parent\n")),
    C("run/override-unknown-field", run_case("bld.nope=3"), "bld.nope", plan("")),
    C("run/override-bad-value", run_case("bld.token_budget=abc"), "bld.token_budget", plan("")),
    C("run/from-unknown-stage", run_case("--from", "bogus"), "--from", plan("")),
    # -- solve ------------------------------------------------------------------------------------------------
    C("solve/missing-library", ["solve", "--library", "nosuch.json"], "nosuch.json"),
    C("solve/folder-without-library", ["solve", "--library", "lib"], "block_library.json", {"lib/": ""}),
    C("solve/library-not-json", ["solve", "--library", "block_library.json"], "block_library.json",
      {"block_library.json": "{not json"}),
    C("solve/library-binary", ["solve", "--library", "block_library.json"], "block_library.json",
      {"block_library.json": BINARY}),
    C("solve/library-bad-layer", ["solve", "--library", "block_library.json"], "block_library.json",
      {"block_library.json": '{"layer_0": 5}'}),
    C("solve/constraint-syntax", ["solve", "--library", "{lib}", "-c", "memory<5"], "memory<5"),
    C("solve/constraint-unknown-stat", ["solve", "--library", "{lib}", "-c", "stats.bogus<=5"], "stats.bogus"),
    C("solve/objective-unknown", ["solve", "--library", "{lib}", "--objective", "metrics.bogus"], "metrics.bogus"),
    C("solve/min-diversity-text", ["solve", "--library", "{lib}", "--min-diversity", "abc"], "--min-diversity"),
    C("solve/sweep-syntax", ["solve", "--library", "{lib}", "--sweep", "bogus"], "bogus"),
    C("solve/serving-engine", ["solve", "--library", "{lib}", "--serving-engine", "bogus"], "bogus"),
    # -- inspect ----------------------------------------------------------------------------------------------
    C("inspect/missing-file", ["inspect", "nosuch.json"], "nosuch.json"),
    C("inspect/not-json", ["inspect", "config.json"], "config.json", {"config.json": "not json"}),
    C("inspect/binary-json", ["inspect", "config.json"], "config.json", {"config.json": BINARY}),
    C("inspect/not-an-object", ["inspect", "config.json"], "config.json", {"config.json": "[1, 2]"}),
    C("inspect/unknown-model-type", ["inspect", "config.json"], "model_type",
      {"config.json": '{"model_type": "gpt2"}'}),
    C("inspect/unknown-block-field", ["inspect", "config.json"], "bogus", {"config.json": puzzle_config(bogus=3)}),
    C("inspect/unimplemented-feature", ["inspect", "config.json"], "sparsify", {"config.json": sparse_ffn_config()}),
    C("inspect/dtype-unknown", ["inspect", "config.json", "--dtype", "bogus"], "--dtype",
      {"config.json": puzzle_config()}),
    C("inspect/bad-gguf", ["inspect", "model.gguf"], "model.gguf", {"model.gguf": b"not a gguf file"}),
    # -- convert ----------------------------------------------------------------------------------------------
    C("convert/no-such-folder", ["convert", "nosuch", "out"], "nosuch"),
    C("convert/no-config-json", ["convert", "model", "out"], "config.json", {"model/": ""}),
    C("convert/unsupported-family", ["convert", "model", "out"], "config.json",
      {"model/config.json": '{"model_type": "gpt2", "n_layer": 1}'}),
    C("convert/existing-out-dir", ["convert", "{llama}", "existing"], ("existing", "--overwrite"),
      {"existing/keep.txt": "x"}),
    C("convert/pickle-checkpoint", ["convert", "{pickled}", "out"], ("pickled-llama", "pickle checkpoint")),
    C("convert/bad-gguf", ["convert", "model.gguf", "out"], "model.gguf", {"model.gguf": b"GGUF but not really"}),
    # -- tokenize ---------------------------------------------------------------------------------------------
    C("tokenize/no-sources", ["tokenize", "data.yaml"], "sources", {"data.yaml": "sources: []\n"}),
    C("tokenize/unknown-field", ["tokenize", "data.yaml"], "bogus",
      {"data.yaml": "sources: [{kind: embedded}]\nbogus: 1\n"}),
    C("tokenize/missing-source", ["tokenize", "data.yaml", "--tokenizer", "{model}"], "nosuch-dir",
      {"data.yaml": "sources: [{kind: text, path: nosuch-dir}]\n"}),
    C("tokenize/missing-tokenizer", ["tokenize", "data.yaml", "--tokenizer", "nosuch-tok"], "nosuch-tok",
      {"data.yaml": "sources: [{kind: text, path: docs}]\n", "docs/a.txt": "hello world\n"}),
    # -- pcw-eval ---------------------------------------------------------------------------------------------
    C("pcw-eval/windows-empty", [*EVAL, "--windows", ""], "--windows"),
    C("pcw-eval/windows-negative", [*EVAL, "--windows=1,-2"], "--windows"),
    C("pcw-eval/config-unknown-field", ["pcw-eval", "--config", "pcw.yaml"], "bogus", {"pcw.yaml": "bogus: 1\n"}),
    C("pcw-eval/config-binary", ["pcw-eval", "--config", "pcw.yaml"], "pcw.yaml", {"pcw.yaml": BINARY}),
    C("pcw-eval/missing-model", ["pcw-eval", "--model", "nosuch-model", "--episodes", "2"], "nosuch-model"),
    C("pcw-eval/method-unknown", [*EVAL, "--method", "bogus"], "method"),
    C("pcw-eval/missing-train-file", ["pcw-eval", "--model", "{model}", "--train", "nosuch.jsonl", "--test",
                                      "nosuch.jsonl"], "nosuch.jsonl"),
    # -- pcw-generate -----------------------------------------------------------------------------------------
    C("pcw-generate/empty-window", [*GEN, "--window", "w.txt"], "w.txt", {"w.txt": ""}),
    C("pcw-generate/binary-window", [*GEN, "--window", "w.txt"], "w.txt", {"w.txt": BINARY}),
    C("pcw-generate/missing-window", [*GEN, "--window", "nosuch.txt"], "nosuch.txt"),
    C("pcw-generate/attn-implementation", [*GEN, "--window", "w.txt", "--attn-implementation", "flash"],
      "--attn-implementation", WINDOW),
    C("pcw-generate/dtype-unknown", [*GEN, "--window", "w.txt", "--dtype", "float8"], "float8", WINDOW),
    C("pcw-generate/device-unknown", [*GEN, "--window", "w.txt", "--device", "tpu"], "--device", WINDOW),
    C("pcw-generate/missing-model", ["pcw-generate", "--model", "nosuch-model", "--prompt", "p", "--window", "w.txt"],
      "nosuch-model", WINDOW),
    # -- distill ----------------------------------------------------------------------------------------------
    C("distill/missing-parent", ["distill", "nosuch-parent", "{model}", "--tokens", "{tokens}", "--no-mlflow"],
      "nosuch-parent"),
    C("distill/missing-tokens", ["distill", "{model}", "{model}", "--tokens", "nosuch.npy", "--no-mlflow"],
      "nosuch.npy"),
    C("distill/corrupt-tokens", ["distill", "{model}", "{model}", "--tokens", "t.npy", "--no-mlflow"], "t.npy",
      {"t.npy": BINARY}),
    C("distill/config-unknown-field", [*DISTILL, "--config", "d.yaml"], "bogus", {"d.yaml": "bogus: 1\n"}),
    C("distill/engine-unknown", [*DISTILL, "--engine", "horovod"], "engine"),
    # -- evaluate ---------------------------------------------------------------------------------------------
    C("evaluate/missing-child", ["evaluate", "{model}", "nosuch-child", "--tokens", "{tokens}", "--no-mlflow"],
      "nosuch-child"),
    C("evaluate/unknown-section", [*EVALUATE, "--config", "e.yaml"], "bogus", {"e.yaml": "bogus: {}\n"}),
    C("evaluate/dtype-unknown", [*EVALUATE, "--dtype", "fp64"], "--dtype 'fp64'"),
    # -- publish ----------------------------------------------------------------------------------------------
    C("publish/missing-model", ["publish", "nosuch-model", "--name", "x"], "nosuch-model"),
    C("publish/empty-name", ["publish", "{model}", "--name", ""], "--name"),
    C("publish/not-nemotron", ["publish", "{llama}", "--name", "x"], "llama"),
    C("publish/binary-config", ["publish", "model", "--name", "x"], "config.json", {"model/config.json": BINARY}),
    C("publish/missing-report", ["publish", "{model}", "--name", "x", "--report", "nosuch.json"], "nosuch.json"),
    # -- measure-model ----------------------------------------------------------------------------------------
    C("measure-model/missing-model", ["measure-model", "nosuch-model"], "nosuch-model"),
    C("measure-model/device", ["measure-model", "{model}", "--device", "tpu"], "--device"),
    C("measure-model/cpu-clock", ["measure-model", "{model}", "--cpu-clock", "bogus"], "--cpu-clock"),
    # -- measure ----------------------------------------------------------------------------------------------
    C("measure/missing-library", ["measure", "nosuch-lib"], "nosuch-lib"),
    C("measure/corrupt-library", ["measure", "lib"], "block_library.json", {"lib/block_library.json": "{"}),
    C("measure/num-gpus", ["measure", "{lib}", "--num-gpus", "3"], "--num-gpus"),
]


def build_shared(folder: Path) -> dict[str, str]:
    """The inputs several cases read: tiny, random, built in seconds (never written by a case)."""
    import numpy as np
    import torch

    from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM
    from puzzle_ray.arch.export import export_pretrained
    from puzzle_ray.data.bpe import train_bpe_tokenizer
    from puzzle_ray.solve.synthetic import random_library

    from puzzle_ray.ui import quiet_third_party

    sys.path.insert(0, str(ROOT))  # the tests' tiny models
    from tests.tiny_models import tiny_llama

    quiet_third_party()  # DeepSpeed's accelerator notice would land in the table
    logging.getLogger("puzzle_ray.arch.export").setLevel(logging.ERROR)  # the tiny child's engine warnings
    torch.manual_seed(0)
    tokenizer = train_bpe_tokenizer(["some context for a tiny tokenizer"] * 4, 300, folder / "tokenizer")
    config = PuzzleConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, intermediate_size=128, max_position_embeddings=128)
    export_pretrained(PuzzleForCausalLM(config).eval(), folder / "model", tokenizer=tokenizer)
    tiny_llama().save_pretrained(folder / "llama")
    tiny_llama().config.save_pretrained(folder / "pickled-llama")  # a .bin checkpoint that would run code
    torch.save({**tiny_llama().state_dict(), "extra": RunsCode()}, folder / "pickled-llama" / "pytorch_model.bin")
    random_library(num_layers=4, max_variants=3, seed=2).write(folder / "lib")
    np.save(folder / "tokens.npy", np.random.default_rng(0).integers(0, len(tokenizer), (8, 16)))
    return {"{model}": str(folder / "model"), "{llama}": str(folder / "llama"), "{lib}": str(folder / "lib"),
            "{tokens}": str(folder / "tokens.npy"), "{pickled}": str(folder / "pickled-llama")}


class RunsCode:
    """Unpickled, it would leave `code-ran` in the working directory (the case's folder: a leftover)."""

    def __reduce__(self):
        return os.system, ("touch code-ran",)


def first_line(output: str) -> str:
    """The first line that says something: box drawing stripped, click's usage preamble and titles skipped."""
    for line in output.splitlines():
        text = line.strip(BOX)
        if text and text != "Error" and not text.startswith(("Usage:", "Try '")):
            return text
    return ""


def leftovers(folder: Path, inputs: dict[str, str | bytes]) -> list[str]:
    """Paths under `folder` that are neither an input nor a folder holding one."""
    kept = set()
    for name in inputs:
        parts = Path(name.rstrip("/")).parts
        kept.update(str(Path(*parts[: i + 1])) for i in range(len(parts)))
    return sorted(str(p.relative_to(folder)) + ("/" if p.is_dir() else "") for p in folder.rglob("*")
                  if str(p.relative_to(folder)) not in kept)


def run(case: Case, folder: Path, shared: dict[str, str], exe: list[str], timeout: float) -> dict:
    folder.mkdir()
    for name, content in case.files.items():
        path = folder / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    args = [shared.get(a, a) for a in case.args]
    env = {k: v for k, v in ENV.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "PUZZLE_RAY_STORE")}
    env.update(PUZZLE_RAY_CACHE=str(folder / "cache"), COLUMNS="200")
    start = time.perf_counter()
    try:
        p = subprocess.run([*exe, *args], cwd=folder, env=env, capture_output=True, text=True, errors="replace",
                           timeout=timeout)
        code, output = p.returncode, p.stderr + "\n" + p.stdout
    except subprocess.TimeoutExpired as e:
        code = "timeout"
        output = "".join(s.decode(errors="replace") if isinstance(s, bytes) else s or "" for s in (e.stderr, e.stdout))
    line = first_line(output)
    left = leftovers(folder, case.files)
    problems = []
    if code == 0 or code == "timeout":
        problems.append(f"exit {code}")
    expected = (case.expect,) if isinstance(case.expect, str) else case.expect
    if missing := [e for e in expected if e not in line]:
        problems.append(f"first line lacks {' and '.join(map(repr, missing))}")
    if "Traceback" in output:
        problems.append("traceback")
    if left:
        problems.append("left " + ", ".join(left[:4]))
    return {"case": case, "args": args, "exit": code, "line": line, "problems": problems, "output": output,
            "seconds": time.perf_counter() - start}


def cell(text: str, width: int = 110) -> str:
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("|", "\\|").replace("`", "'")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="run only the cases whose name holds this substring")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the whole output of failed cases")
    opts = parser.parse_args()
    cases = [c for c in CASES if opts.k in c.name]
    exe_path = Path(sys.executable).with_name("puzzle-ray")
    exe = [str(exe_path)] if exe_path.exists() else [shutil.which("puzzle-ray") or "puzzle-ray"]
    root = Path(tempfile.mkdtemp(prefix="bad-input-"))
    try:
        needs = {a for c in cases for a in c.args if a.startswith("{")}
        shared = build_shared(root / "shared") if needs else {}
        results = []
        for i, case in enumerate(cases):
            results.append(r := run(case, root / f"case{i:03d}", shared, exe, opts.timeout))
            mark = "ok" if not r["problems"] else "FAIL: " + "; ".join(r["problems"])
            print(f"[{i + 1}/{len(cases)}] {case.name} ({r['seconds']:.1f} s) {mark}", file=sys.stderr, flush=True)
            if r["problems"] and opts.verbose:
                print(r["output"], file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| case | command (short) | exit | first line | ok |\n|---|---|---:|---|---|")
    for r in results:
        short = " ".join(Path(a).name if a in shared.values() else (a if a else "''") for a in r["args"])
        ok = "ok" if not r["problems"] else "**FAIL**: " + "; ".join(r["problems"])
        line = r["line"].replace(f"{root / 'shared'}/", "")  # a shared input by its name, as in the command
        print(f"| {r['case'].name} | `{cell(short, 70)}` | {r['exit']} | {cell(line)} | {cell(ok, 80)} |")
    passed = sum(not r["problems"] for r in results)
    print(f"\n{passed}/{len(results)} ok")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
