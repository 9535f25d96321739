"""Per-stage wall time of whole workflow runs, as a table (Markdown too), for the shipped SmolLM2 plans.

Each stage's record in the artifact store keeps the seconds it took when it ran, so the table can be read from
finished runs (`--read`) or produced by running the plans here, one after the other (never two at once: on a
2-core machine they would share the cores and both timings would be wrong).

    python benchmarks/stage_times.py workflows/smollm2-135m-quick.yaml workflows/smollm2-135m-cpu.yaml
    python benchmarks/stage_times.py --read workflows/smollm2-135m-quick.yaml     # tabulate finished runs only
    python benchmarks/stage_times.py --read PLAN@STORE ...     # a run whose store is not the plan's own
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from puzzle_ray.measure.hardware import hardware_name
from puzzle_ray.store import ArtifactStore
from puzzle_ray.workflows import load_config
from puzzle_ray.workflows.engine import Runner
from puzzle_ray.workflows.stages import STAGES

RESULTS = Path(__file__).parent / "results" / "stage-times-smollm2.md"


def stage_seconds(plan: Path, store: str | None = None, latest: bool = False) -> dict[str, float | None]:
    """Seconds each stage of `plan` took when it ran to completion (None: not finished in the store). `latest`:
    the newest finished record of each stage in the store, whatever its key (a run made by other code or with
    another parent path)."""
    cfg = load_config(plan)
    runner = Runner(STAGES, cfg, ArtifactStore(store or cfg.store_url))
    out = {}
    for st in runner.status.values():
        name = st.stage.name
        if latest:
            keys = [f"stages/{name}/{k}/record.json" for k in runner.store.list(f"stages/{name}")]
            records = [runner.store.read_json(k) for k in keys if runner.store.exists(k)]
            out[name] = max(records, key=lambda r: r.get("started", 0)).get("seconds") if records else None
        else:
            out[name] = runner.store.read_json(f"stages/{name}/{st.key}/record.json").get("seconds") \
                if st.state == "cached" else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plans", nargs="+", help="workflow YAMLs, each optionally PLAN@STORE")
    ap.add_argument("--read", action="store_true", help="only tabulate runs that already finished")
    ap.add_argument("--latest", action="store_true", help="with --read: the newest record of each stage, any key")
    args = ap.parse_args()
    plans = [(Path(p.split("@", 1)[0]), p.split("@", 1)[1] if "@" in p else None) for p in args.plans]
    if not args.read:
        from puzzle_ray.workflows.driver import run_workflow

        for plan, store in plans:
            if store:
                raise SystemExit(f"{plan}@{store}: a store can only be given with --read")
            run_workflow(plan)
    columns = {plan.stem: stage_seconds(plan, store, args.latest) for plan, store in plans}
    table = Table(title=f"stage wall time, seconds ({hardware_name('cpu')}, {os.cpu_count()} cores)")
    table.add_column("stage")
    for name in columns:
        table.add_column(name, justify="right")
    stages = [s.name for s in STAGES]
    rows = [[s] + [f"{c[s]:.1f}" if c.get(s) is not None else "-" for c in columns.values()] for s in stages]
    totals = ["total"] + [f"{sum(v for v in c.values() if v):.1f}" for c in columns.values()]
    for row in rows + [totals]:
        table.add_row(*row)
    Console().print(table)
    md = [f"# Stage wall time (seconds), {hardware_name('cpu')}", "", "| stage | " + " | ".join(columns) + " |",
          "|---|" + "---:|" * len(columns)]
    md += ["| " + " | ".join(r) + " |" for r in rows + [totals]]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(md) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
