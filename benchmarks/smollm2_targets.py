"""The full CPU plan for SmolLM2-135M at several decode-speed targets: one table, parent beside each child.

Everything up to `score` is shared between the targets (same stage keys, run once); each target re-runs
solve -> realize -> distill -> evaluate -> publish. Figures are the evaluation's measurements (decode throughput
and prefill time timed end to end at the plan's scenario; quality on held-out Python documentation and the
shipped in-context tasks), not the cost model's predictions.

    python benchmarks/smollm2_targets.py                       # targets 0.77 and 0.68 of the parent's decode time
    python benchmarks/smollm2_targets.py --plan workflows/smollm2-135m-quick.yaml --targets 0.68
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from puzzle_ray.evaluate.report import EvalReport, _fmt
from puzzle_ray.measure.hardware import hardware_name
from puzzle_ray.workflows import load_config
from puzzle_ray.workflows.driver import run_workflow

RESULTS = Path(__file__).parent / "results"


def run_target(plan: Path, target: float) -> EvalReport:
    cfg = load_config(plan)
    cfg = cfg.model_copy(update={
        "name": f"{cfg.name}-decode{target:g}",
        "search": cfg.search.model_copy(update={"constraints": [f"stats.decode_ms<={target}*parent"]}),
    })
    status = run_workflow(cfg)
    return EvalReport.from_json(status["evaluate"].outputs["report"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", type=Path, default=Path("workflows/smollm2-135m-cpu.yaml"))
    ap.add_argument("--targets", type=float, nargs="+", default=[0.77, 0.68],
                    help="child decode time as a fraction of the parent's (0.68: >= 1.47x throughput)")
    args = ap.parse_args()
    reports = {t: run_target(args.plan, t) for t in args.targets}
    first = next(iter(reports.values()))
    table = Table(title=f"{args.plan.stem}: parent vs child at each target ({hardware_name('cpu')})")
    table.add_column("metric")
    table.add_column("parent", justify="right")
    for t in reports:
        table.add_column(f"child, decode <= {t:g} x parent", justify="right")
    md = [f"# {args.plan.stem}: parent vs child at {len(reports)} targets", "",
          f"Measured on {hardware_name('cpu')}.", "",
          "| metric | parent | " + " | ".join(f"child, decode <= {t:g} x parent" for t in reports) + " |",
          "|---|---:|" + "---:|" * len(reports)]
    for i, row in enumerate(first.rows):
        cells = []
        for rep in reports.values():
            r = rep.rows[i]
            ratio = f" ({r.ratio_name} {r.ratio:.3f})" if math.isfinite(r.ratio) else ""
            cells.append(f"{_fmt(r.child)}{ratio}")
        table.add_row(row.metric, _fmt(row.parent), *cells)
        md.append(f"| {row.metric} | {_fmt(row.parent)} | " + " | ".join(cells) + " |")
    Console().print(table)
    out = RESULTS / f"{args.plan.stem}-targets.md"
    out.write_text("\n".join(md) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
