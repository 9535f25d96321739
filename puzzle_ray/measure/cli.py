"""`puzzle-ray measure` (every variant of a library, on the Ray fleet) and `puzzle-ray measure-model`
(one model end-to-end, optionally against the library's prediction)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..cli_options import (
    BatchSizes,
    DecodeLen,
    JsonOutput,
    PrefillLen,
    ScenarioDtype,
    config_option,
    out_option,
    store_option,
)
from ..cli_options import batch_sizes as _batches

ConfigOpt = Annotated[Optional[Path], config_option("YAML/JSON with `scenario:` and `measure:` sections")]
RepeatsOpt = Annotated[Optional[int], typer.Option("--repeats", help="timed samples per measurement")]
GpusOpt = Annotated[Optional[int], typer.Option("--num-gpus", help="0: measure on CPU, 1: on one GPU")]
AccelOpt = Annotated[
    Optional[str], typer.Option("--accelerator-type", help="Ray accelerator type of the target, e.g. H100")
]
ClockOpt = Annotated[
    Optional[str], typer.Option("--cpu-clock", help="wall (default) or thread (CPU time; for shared machines)")
]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="torch threads while timing on CPU")]


def stage_config(config_file: Path | None, scenario: dict[str, Any], measure: dict[str, Any]):
    """The stage config from an optional file, with the command-line values laid over it."""
    from pydantic import ValidationError

    from ..configs import given_options, option_problems, read_yaml_mapping
    from .config import MeasureStageConfig

    data: dict[str, Any] = {}
    if config_file is not None:
        data = read_yaml_mapping(config_file)  # `scenario:` and `measure:` sections
    for section, values in (("scenario", scenario), ("measure", measure)):
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            data[section] = {**(data.get(section) or {}), **given}
    try:
        return MeasureStageConfig(**data)
    except ValidationError as e:  # a bad value is named by the option that gave it, or the file
        options = {**given_options(scenario, "scenario"), **given_options(measure, "measure")}
        raise ValueError(option_problems(e, options, rest=str(config_file or "measure"))) from None


def measure(
    library: Annotated[Path, typer.Argument(help="block library folder (block_library.json + library_meta.json)")],
    store: Annotated[
        str, store_option("artifact store (folder or fsspec URL) holding the measurement cache")
    ] = "artifacts",
    out: Annotated[
        Optional[Path], out_option("folder for the measured library (default: update LIBRARY in place)")
    ] = None,
    parent: Annotated[
        Optional[Path], typer.Option(help="the parent's config.json (default: library_meta.json's parent_config)")
    ] = None,
    config: ConfigOpt = None,
    batch_sizes: BatchSizes = None,
    prefill_len: PrefillLen = None,
    decode_len: DecodeLen = None,
    dtype: ScenarioDtype = None,
    repeats: RepeatsOpt = None,
    num_gpus: GpusOpt = None,
    accelerator_type: AccelOpt = None,
    threads: ThreadsOpt = None,
    cpu_clock: ClockOpt = None,
    cache: Annotated[
        Optional[bool], typer.Option("--cache/--no-cache", help="reuse cached measurements (--no-cache: measure "
                                                               "again; default: the config's measure.cache)")
    ] = None,
) -> None:
    """Measure prefill, decode and memory of every (layer, variant) of a library on the target hardware."""
    from pydantic import ValidationError

    from ..arch.config import PuzzleConfig
    from ..arch.config import load_puzzle_config
    from ..configs import validation_problems
    from ..library.record import Library
    from ..store import ArtifactStore
    from ..ui import console, fail
    from .library import measure_library

    try:
        cfg = stage_config(
            config,
            {
                "batch_sizes": _batches(batch_sizes),
                "prefill_len": prefill_len,
                "decode_len": decode_len,
                "dtype": dtype,
            },
            {
                "repeats": repeats,
                "num_gpus": num_gpus,
                "accelerator_type": accelerator_type,
                "threads": threads,
                "cpu_clock": cpu_clock,
                "cache": cache,
            },
        )
        lib = Library.read(library)
        if parent is not None:
            parent_config = load_puzzle_config(parent)
        elif lib.meta.parent_config is not None:
            parent_config = PuzzleConfig(**{k: v for k, v in lib.meta.parent_config.items() if k != "auto_map"})
        else:
            raise ValueError(f"{library}: library_meta.json has no parent_config; pass --parent config.json")
        artifacts = ArtifactStore(store)
        measured = measure_library(lib, parent_config, cfg.scenario, cfg.measure, artifacts)
        target = out or (library if library.is_dir() else library.parent)
        measured.write(target)  # both files replaced atomically
    except ValidationError as e:
        fail(validation_problems(e))
    except (OSError, ValueError, RuntimeError) as e:
        fail(str(e))
    _print_library(measured, cfg.scenario)
    console.print(f"wrote {target / 'block_library.json'}")


def _print_library(library, scenario) -> None:
    from ..ui import console
    from .tables import variants_table

    b = scenario.batch_sizes[0]
    title = (f"measured variants (layer 0, batch {b}, {scenario.prefill_len}+{scenario.decode_len} tokens, "
             f"{scenario.dtype})")
    console.print(variants_table(library, b, title))
    m = library.meta.measurement or {}
    console.print(
        f"[dim]hardware: {m.get('hardware')}; "
        f"non-block prefill {library.meta.non_block.get('prefill_ms', float('nan')):.3f} ms[/]"
    )


def measure_model(
    model: Annotated[
        Path,
        typer.Argument(
            help="model folder (weights optional: a config alone is timed with random weights) or config.json"
        ),
    ],
    library: Annotated[
        Optional[Path], typer.Option(help="measured library: also print its prediction and the error")
    ] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda (default: cuda when available)")] = None,
    config: ConfigOpt = None,
    batch_sizes: BatchSizes = None,
    prefill_len: PrefillLen = None,
    decode_len: DecodeLen = None,
    dtype: ScenarioDtype = None,
    repeats: RepeatsOpt = None,
    threads: ThreadsOpt = None,
    cpu_clock: ClockOpt = None,
    json_output: JsonOutput = False,
) -> None:
    """Measure a model end-to-end (prefill + decode loop with its own KV cache); compare with the cost model."""
    import json

    from pydantic import ValidationError

    from ..arch.config import load_puzzle_config
    from ..configs import validation_problems
    from ..library.record import Library
    from ..ui import fail
    from .config import Scenario
    from .cost_model import compare_costs, measure_model_costs, predict_model_costs

    try:
        lib = Library.read(library) if library else None
        scenario_values = {
            "batch_sizes": _batches(batch_sizes),
            "prefill_len": prefill_len,
            "decode_len": decode_len,
            "dtype": dtype,
        }
        if lib is not None and config is None and lib.meta.scenario is not None:
            # default to the scenario the library was measured for, so the two are comparable
            scenario_values = {**lib.meta.scenario, **{k: v for k, v in scenario_values.items() if v is not None}}
            scenario_values = {k: v for k, v in scenario_values.items() if k in Scenario.model_fields}
        cfg = stage_config(config, scenario_values, {"repeats": repeats, "threads": threads, "cpu_clock": cpu_clock})
        if device not in (None, "cpu", "cuda"):
            raise ValueError(f"--device {device!r}: expected cpu or cuda")
        predicted = predict_model_costs(load_puzzle_config(model), lib, cfg.scenario) if lib else None
        measured = measure_model_costs(model, cfg.scenario, cfg.measure, device)
    except ValidationError as e:
        fail(validation_problems(e))
    except (OSError, ValueError, RuntimeError) as e:
        fail(str(e))
    if json_output:
        out: dict[str, Any] = {"measured": {str(b): c.to_dict() for b, c in measured.items()}}
        if predicted:
            out["predicted"] = {str(b): c.to_dict() for b, c in predicted.items()}
            out["comparison"] = compare_costs(predicted, measured)
        print(json.dumps(out, default=str))
        return
    _print_costs(measured, predicted, cfg.scenario)


def _print_costs(measured, predicted, scenario) -> None:
    from rich.table import Table

    from ..ui import console
    from .cost_model import compare_costs

    table = Table(
        title=f"end-to-end costs ({scenario.prefill_len} prefill + {scenario.decode_len} decode tokens, "
        f"{scenario.dtype})"
    )
    cols = ["batch", "prefill ms", "± IQR", "decode ms/step", "± IQR", "decode tok/s", "memory MiB"]
    if predicted:
        cols += ["pred prefill ms", "err %", "pred tok/s", "err %"]
    for col in cols:
        table.add_column(col, justify="right")
    rows = {r["batch"]: r for r in compare_costs(predicted, measured)} if predicted else {}
    for b, m in measured.items():
        if not m.fits:
            table.add_row(str(b), "does not fit", "", "", "", "", f"{m.memory_mib:.1f}", *([""] * (len(cols) - 7)))
            continue
        row = [
            str(b),
            f"{m.prefill_ms:.3f}",
            f"{m.prefill_ms_iqr:.3f}",
            f"{m.decode_ms:.4f}",
            f"{m.decode_ms_iqr:.4f}",
            f"{m.decode_tokens_per_s:,.1f}",
            f"{m.memory_mib:.1f}",
        ]
        if predicted:
            r = rows[b]
            row += [
                f"{r['prefill_ms_pred']:.3f}",
                f"{r['prefill_err_pct']:+.1f}",
                f"{r['decode_tok_s_pred']:,.1f}",
                f"{r['decode_err_pct']:+.1f}",
            ]
        table.add_row(*row)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("measure")(measure)
    app.command("measure-model")(measure_model)
