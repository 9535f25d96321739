"""`puzzle-ray distill`: global knowledge distillation of a child from its parent on Ray Train."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..cli_options import (
    Mlflow,
    TokenBudget,
    TokensFile,
    TrackingUri,
    config_option,
    experiment_option,
    store_option,
    use_tracking_uri,
)


def read_mapping(path: Path | None) -> dict[str, Any]:
    """A YAML/JSON file holding one mapping ({} without a file)."""
    from ..configs import read_yaml_mapping

    return {} if path is None else read_yaml_mapping(path)


def load_config_file(path: Path | None, section: str) -> dict[str, Any]:
    """Config fields from a file, either under `section:` or at its top level."""
    data = read_mapping(path)
    return dict(data.get(section, data))


def distill_command(
    parent: Annotated[Path, typer.Argument(help="the parent (teacher) model folder")],
    child: Annotated[Path, typer.Argument(help="the child (student) model folder, e.g. from `realize`")],
    tokens: TokensFile,
    config: Annotated[
        Optional[Path], config_option("YAML/JSON of DistillConfig fields (or a `distill:` section)")
    ] = None,
    engine: Annotated[Optional[str], typer.Option(help="ddp or deepspeed")] = None,
    zero_stage: Annotated[Optional[int], typer.Option(help="DeepSpeed ZeRO stage 0-3")] = None,
    num_workers: Annotated[Optional[int], typer.Option(help="Ray Train workers")] = None,
    use_gpu: Annotated[Optional[bool], typer.Option("--gpu/--cpu", help="one GPU per worker, or CPU workers")] = None,
    token_budget: TokenBudget = None,
    lr: Annotated[Optional[float], typer.Option(help="peak learning rate")] = None,
    store: Annotated[str, store_option()] = "artifacts",
    mlflow: Mlflow = True,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str, experiment_option(None)] = "puzzle-ray",
) -> None:
    """Distil CHILD from PARENT (cosine of hidden states + KL of next-token distributions) and export it."""
    from pydantic import ValidationError

    from ..configs import option_problems
    from ..ui import console, fail

    from ..store import ArtifactStore
    from .batch_source import TensorBatchSource
    from .config import DistillConfig
    from .models import check_pair
    from ..cluster import connect
    from .run import distill, step_budget

    overrides = {"engine": engine, "zero_stage": zero_stage, "num_workers": num_workers, "use_gpu": use_gpu,
                 "token_budget": token_budget, "lr": lr}
    try:
        given = {k: v for k, v in overrides.items() if v is not None}
        cfg = DistillConfig(**{**load_config_file(config, "distill"), **given})
        data = TensorBatchSource.from_file(tokens)
        parent_cfg, _ = check_pair(parent, child)  # fail before Ray or MLflow start
        step_budget(cfg, data, parent_cfg.vocab_size)
        artifacts = ArtifactStore(store)
        if mlflow:
            use_tracking_uri(tracking_uri)  # before Ray starts: its workers log to the same place
        connect()
        run_id = None
        if mlflow:
            import mlflow as mlf

            mlf.set_experiment(experiment)
            run_id = mlf.start_run(run_name="distill").info.run_id
        try:
            out = distill(parent, child, data, cfg, artifacts, mlflow_run_id=run_id)
        finally:
            if mlflow:
                mlf.end_run()
    except ValidationError as e:
        named = {"use_gpu": "--gpu/--cpu"}
        options = {k: named.get(k, "--" + k.replace("_", "-")) for k in given}
        fail(option_problems(e, options, rest=str(config) if config else "distill"))
    except (OSError, ValueError, RuntimeError) as e:
        fail(str(e))
    console.print(f"distilled child: {out}")


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_command)
