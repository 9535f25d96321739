"""`puzzle-ray solve`: the architecture search on a library file (and its sweep mode)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import JsonOutput, TrackingUri, experiment_option, out_option

CONSTRAINT_HELP = (
    "KEY<=LIMIT, KEY>=LIMIT or LOW<=KEY<=HIGH; KEY is stats.<name>, metrics.<name> or throughput (tokens/s); "
    "LIMIT is a number or a fraction of the parent: 0.85*parent or 85%. Repeat for several."
)


def solve(
    library: Annotated[Path, typer.Option("--library", help="block_library.json, or the folder holding it")],
    objective: Annotated[str, typer.Option(help="per-variant quantity summed and minimised")] = "metrics.kl_div",
    maximize: Annotated[bool, typer.Option("--maximize/--minimize", help="maximise the objective instead")] = False,
    constraint: Annotated[Optional[list[str]], typer.Option("--constraint", "-c", help=CONSTRAINT_HELP)] = None,
    num_solutions: Annotated[int, typer.Option(help="diverse solutions to return, best first")] = 1,
    min_diversity: Annotated[
        str, typer.Option(help="layers (int) or fraction of layers (0-1) each solution must change")
    ] = "1",
    batch_size: Annotated[
        Optional[list[int]], typer.Option("--batch-size", help="batch sizes to try (default: all measured)")
    ] = None,
    tokens_per_sequence: Annotated[
        Optional[int], typer.Option(help="tokens per sequence for throughput (default: the scenario's)")
    ] = None,
    parent_batch_size: Annotated[
        Optional[int], typer.Option(help="batch size of the parent's figures (default: the scenario's first)")
    ] = None,
    num_attention_heads: Annotated[
        Optional[int], typer.Option(help="maps published variants to block configs (64 for Llama-3.3-70B)")
    ] = None,
    parent_stats: Annotated[
        Optional[Path], typer.Option(help="parent_block_stats.json giving the parent's figures")
    ] = None,
    time_limit: Annotated[float, typer.Option(help="HiGHS time limit per MIP, seconds")] = 60.0,
    gap: Annotated[float, typer.Option(help="relative MIP gap at which HiGHS stops")] = 1e-6,
    sweep: Annotated[
        Optional[str], typer.Option(help="sweep mode: 'throughput>=1000:8000' or 'stats.memory_mib<=40000,60000,80000'")
    ] = None,
    points: Annotated[int, typer.Option(help="targets of a START:STOP sweep")] = 8,
    serving_engine: Annotated[
        Optional[list[str]],
        typer.Option("--serving-engine", help="serving engine the child must run on, repeatable: vllm, sglang, "
                                              "tensorrt-llm, llama.cpp, mlx (search.engines)"),
    ] = None,
    out: Annotated[
        Optional[Path], out_option("folder for solution.json (or frontier.csv/json/png in sweep mode)")
    ] = None,
    mlflow: Annotated[
        Optional[bool], typer.Option("--mlflow/--no-mlflow", help="log the result to MLflow (default: when "
                                                                  "--tracking-uri is given)")
    ] = None,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[Optional[str], experiment_option("puzzle-ray-search")] = None,
    json_output: JsonOutput = False,
) -> None:
    """Pick one variant per layer: the best objective under the constraints (Puzzle's MIP, cvxpy + HiGHS).
    With --json: one JSON object (per solution: objective, costs, chosen)."""
    import json

    from pydantic import ValidationError

    from ..configs import option_problems
    from ..ui import fail

    from .config import SearchConfig
    from .inputs import load_library
    from .run import InfeasibleError, search
    from .sweep import parse_sweep
    from .sweep import sweep as run_sweep
    from .tracking import log_frontier, log_search
    from .verify import SolutionError

    try:
        config = SearchConfig(
            objective=objective,
            maximize=maximize,
            constraints=constraint or [],
            num_solutions=num_solutions,
            min_diversity=_diversity(min_diversity),
            batch_sizes=batch_size or None,
            tokens_per_sequence=tokens_per_sequence,
            parent_batch_size=parent_batch_size,
            mip_rel_gap=gap,
            time_limit_s=time_limit,
            engines=serving_engine or [],
        )
        spec = parse_sweep(sweep, points) if sweep else None
        if mlflow and not tracking_uri:  # --mlflow alone: where MLflow points by default ($MLFLOW_TRACKING_URI)
            import mlflow as mlf

            tracking_uri = mlf.get_tracking_uri()
        lib = load_library(library, num_attention_heads, parent_stats)
        hidden = lib.meta.hidden_size
        if spec is not None:
            frontier = run_sweep(lib, config, spec, show_progress=not json_output)
            if out:
                frontier.save(out)
            if mlflow is not False:
                log_frontier(frontier, tracking_uri, experiment)
            if json_output:
                print(json.dumps({"sweep": f"{spec.key}{spec.op}", "frontier": frontier.rows}, default=str))
            else:
                _print_frontier(frontier)
            return
        result = search(lib, config, show_progress=not json_output)
    except InfeasibleError as e:
        if json_output:
            print(json.dumps({"feasible": False, "solutions": [], "per_batch": [o.to_json() for o in e.outcomes]}))
        fail(str(e), code=1)
    except ValidationError as e:
        fail(option_problems(e, SEARCH_OPTIONS, rest="solve"))
    except SolutionError as e:
        fail(f"a solution failed its independent verification: {e}", code=3)
    except (OSError, ValueError) as e:
        fail(str(e))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        partial = out / "solution.json.partial"  # renamed into place: never a half-written solution.json
        partial.write_text(json.dumps(result.to_json(hidden), indent=1) + "\n")
        partial.replace(out / "solution.json")
    if mlflow is not False:
        log_search(result, tracking_uri, experiment, hidden)
    if json_output:
        print(json.dumps({"feasible": True, **result.to_json(hidden)}))
    else:
        _print_result(result, lib)


SEARCH_OPTIONS = {
    "objective": "--objective", "maximize": "--maximize", "constraints": "--constraint",
    "num_solutions": "--num-solutions", "min_diversity": "--min-diversity", "batch_sizes": "--batch-size",
    "tokens_per_sequence": "--tokens-per-sequence", "parent_batch_size": "--parent-batch-size", "mip_rel_gap": "--gap",
    "time_limit_s": "--time-limit", "engines": "--serving-engine",
}
"""The option that sets each `SearchConfig` field, for messages."""


def _diversity(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"--min-diversity {text!r}: give a number of layers or a fraction in (0, 1]") from None


def _print_result(result, library) -> None:
    from rich.table import Table

    from ..ui import console

    best = result.best
    title = f"Solutions (batch size {result.batch_size})" if result.batch_size else "Solutions"
    summary = Table(title=title)
    summary.add_column("")
    for s in result.solutions:
        summary.add_column(f"solution {s.rank}", justify="right")

    def row(label, fmt):
        summary.add_row(label, *(fmt(s) for s in result.solutions))

    row(best.objective_key + (" (max)" if best.maximize else ""), lambda s: f"{s.objective:.6g}")
    row("status", lambda s: s.status)
    row("MIP gap", lambda s: "-" if s.mip_gap is None else f"{s.mip_gap:.1e}")
    row("solve / build s", lambda s: f"{s.solve_time_s:.2f} / {s.build_time_s:.2f}")
    row("layers changed", lambda s: "-" if s.layers_changed is None else str(s.layers_changed))
    for key in best.costs:
        row(key, lambda s, key=key: f"{s.costs[key]:,.6g}" + _bounds(s.limits.get(key)))
    heads = library.meta.num_attention_heads
    layers = Table(title="Chosen variant per layer (attention / FFN)")
    layers.add_column("layer", justify="right")
    for s in result.solutions:
        layers.add_column(f"solution {s.rank}")
    for i in range(len(best.chosen)):
        layers.add_row(str(i), *(_label(s, i, heads) for s in result.solutions))
    console.print(layers)
    console.print(summary)
    for o in result.per_batch:
        if o.batch_size != result.batch_size:
            status = f"objective {o.solutions[0].objective:.6g}" if o.feasible else "infeasible"
            console.print(f"[dim]batch size {o.batch_size}: {status}[/]")
    if result.note:
        console.print(f"[yellow]note:[/] {result.note}")


def _bounds(limits) -> str:
    if not limits:
        return ""
    lower, upper = limits
    parts = ([f">= {lower:,.6g}"] if lower is not None else []) + ([f"<= {upper:,.6g}"] if upper is not None else [])
    return f" ({', '.join(parts)})"


def _label(solution, layer: int, heads: int | None) -> str:
    """'kv8 / 14336', 'no_op / linear', or the library's name when the block is unknown."""
    from ..arch.kinds import block_labels

    block = solution.blocks[layer]
    if block is None or (block.attention.kind.needs_heads and not heads):
        return " ".join(solution.chosen[layer].split())
    return " / ".join(block_labels(block, heads))


def _print_frontier(frontier) -> None:
    from rich.table import Table

    from ..ui import console

    table = Table(title=f"Frontier: {frontier.objective_key} vs {frontier.spec.key} {frontier.spec.op} target")
    cols = ["target", "feasible", "objective", "achieved", "batch_size", "layers_changed", "status"]
    for col in cols:
        table.add_column(col, justify="right")
    for row in frontier.rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    console.print(table)


def _cell(value) -> str:
    return "-" if value is None else f"{value:,.6g}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    app.command("solve")(solve)
