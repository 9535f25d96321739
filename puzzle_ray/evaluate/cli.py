"""`puzzle-ray evaluate` (a child against its parent) and `puzzle-ray publish` (to the MLflow registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import (
    BatchSizes,
    DecodeLen,
    Mlflow,
    PrefillLen,
    ScenarioDtype,
    TrackingUri,
    batch_sizes as parse_batch_sizes,
    config_option,
    experiment_option,
    out_option,
    use_tracking_uri,
)


def evaluate_command(
    parent: Annotated[Path, typer.Argument(help="the parent model folder")],
    child: Annotated[Path, typer.Argument(help="the child model folder (e.g. the output of `distill`)")],
    tokens: Annotated[Path, typer.Option("--tokens", help="held-out (N, T) token ids: .npy, .safetensors or .pt")],
    config: Annotated[
        Optional[Path], config_option("YAML/JSON with `evaluate:` and `scenario:` sections")
    ] = None,
    batch_sizes: BatchSizes = None,
    prefill_len: PrefillLen = None,
    decode_len: DecodeLen = None,
    dtype: ScenarioDtype = None,
    speed: Annotated[bool, typer.Option("--speed/--no-speed", help="time prefill and decode end-to-end")] = True,
    out: Annotated[Path, out_option("folder for eval_report.json and eval_report.md")] = Path("eval-report"),
    register_as: Annotated[
        Optional[str], typer.Option("--register", help="publish the child under this registered model name")
    ] = None,
    alias: Annotated[str, typer.Option(help="registry alias of the published version")] = "candidate",
    mlflow: Mlflow = True,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str, experiment_option(None)] = "puzzle-ray",
) -> None:
    """Quality (LM loss, top-1, KL, episodes), speed and memory of CHILD against PARENT, as one report."""
    from pydantic import ValidationError

    from ..ui import console, fail

    from ..distill.batch_source import TensorBatchSource
    from ..configs import given_options, option_problems
    from ..distill.cli import read_mapping
    from ..measure.config import Scenario
    from .config import EvalConfig
    from .publish import publish
    from .run import evaluate

    try:
        sections = read_mapping(config)
        unknown = set(sections) - {"scenario", "evaluate"}
        if unknown:
            raise ValueError(f"{config}: unknown sections {sorted(unknown)} (expected scenario:, evaluate:)")
        given = {"prefill_len": prefill_len, "decode_len": decode_len, "dtype": dtype,
                 "batch_sizes": parse_batch_sizes(batch_sizes)}
        try:
            scenario = Scenario(**{**sections.get("scenario", {}), **{k: v for k, v in given.items() if v is not None}})
        except ValidationError as e:  # a bad value is named by the option that gave it, or the file
            where = f"{config or 'evaluate'}: scenario"
            raise ValueError(option_problems(e, given_options(given), rest=where)) from None
        try:
            cfg = EvalConfig(**{**sections.get("evaluate", {}), **({} if speed else {"measure_speed": False})})
        except ValidationError as e:
            raise ValueError(option_problems(e, {} if speed else {"measure_speed": "--no-speed"},
                                             rest=f"{config or 'evaluate'}: evaluate")) from None
        data = TensorBatchSource.from_file(tokens)
        run = None
        if mlflow:
            import mlflow as mlf

            use_tracking_uri(tracking_uri)
            mlf.set_experiment(experiment)
            run = mlf.start_run(run_name="evaluate")
        try:
            report = evaluate(parent, child, data, scenario, cfg, mlflow_run_id=run.info.run_id if run else None,
                              out_dir=out)
            console.print(report.to_markdown())
            if register_as:
                published = publish(child, register_as, alias, report, run_id=run.info.run_id if run else None)
                console.print(f"registered {published.name} version {published.version} as @{published.alias}")
        finally:
            if run is not None:
                mlf.end_run()
    except (OSError, ValueError, RuntimeError) as e:
        fail(str(e))
    console.print(f"wrote {out}/eval_report.json and {out}/eval_report.md")


def publish_command(
    model: Annotated[Path, typer.Argument(help="an exported child folder (nemotron-nas layout, with its tokenizer)")],
    name: Annotated[str, typer.Option(help="registered model name")],
    alias: Annotated[str, typer.Option(help="registry alias of the new version")] = "candidate",
    report: Annotated[Optional[Path], typer.Option(help="eval_report.json to attach")] = None,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str, experiment_option(None)] = "puzzle-ray",
) -> None:
    """Log MODEL to MLflow as a transformers model, register it as NAME and point ALIAS at it."""
    from ..ui import console, fail
    from .publish import check_publishable, publish

    try:  # every input is checked before MLflow is set up (a SQLite store would be created)
        for option, value in (("--name", name), ("--alias", alias)):
            if not value.strip():
                raise ValueError(f"{option} {value!r}: give a non-empty {option[2:]}")
        check_publishable(model, name, alias)
        attached = _read_report(report) if report else None
        import mlflow as mlf

        use_tracking_uri(tracking_uri)
        mlf.set_experiment(experiment)
        published = publish(model, name, alias, attached)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        fail(str(e))
    console.print(f"registered {published.name} version {published.version} as @{published.alias}: "
                  f"{published.model_uri}")


def _read_report(path: Path):
    """The `--report` file as an EvalReport; errors name the file."""
    import json

    from .report import EvalReport

    if not path.is_file():
        raise FileNotFoundError(f"--report {path}: no such file")
    try:
        return EvalReport.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as e:  # JSON, UTF-8 or the report's fields
        raise ValueError(f"--report {path}: not an eval_report.json ({type(e).__name__}: {e})") from None


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
    app.command("publish")(publish_command)
