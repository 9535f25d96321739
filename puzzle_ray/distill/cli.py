"""`puzzle-ray distill`: global knowledge distillation of a child from its parent on Ray Train."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..configs import read_yaml_mapping, validation_problems
from ..ui import console, fail

TokensOpt = Annotated[Path, typer.Option("--tokens", help="(N, T) token ids: .npy, .safetensors or .pt")]


def read_mapping(path: Path | None) -> dict[str, Any]:
    """A YAML/JSON file holding one mapping ({} without a file)."""
    return {} if path is None else read_yaml_mapping(path)


def load_config_file(path: Path | None, section: str) -> dict[str, Any]:
    """Config fields from a file, either under `section:` or at its top level."""
    data = read_mapping(path)
    return dict(data.get(section, data))


def distill_command(
    parent: Annotated[Path, typer.Argument(help="the parent (teacher) model folder")],
    child: Annotated[Path, typer.Argument(help="the child (student) model folder, e.g. from `realize`")],
    tokens: TokensOpt,
    config: Annotated[
        Optional[Path], typer.Option("--config", help="YAML/JSON of DistillConfig fields (or a `distill:` section)")
    ] = None,
    engine: Annotated[Optional[str], typer.Option(help="ddp or deepspeed")] = None,
    zero_stage: Annotated[Optional[int], typer.Option(help="DeepSpeed ZeRO stage 0-3")] = None,
    num_workers: Annotated[Optional[int], typer.Option(help="Ray Train workers")] = None,
    use_gpu: Annotated[Optional[bool], typer.Option("--gpu/--cpu", help="one GPU per worker, or CPU workers")] = None,
    token_budget: Annotated[Optional[int], typer.Option(help="training tokens over all workers")] = None,
    lr: Annotated[Optional[float], typer.Option(help="peak learning rate")] = None,
    store: Annotated[str, typer.Option(help="artifact store (folder or fsspec URL)")] = "artifacts",
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "puzzle-ray",
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="log to MLflow (MLFLOW_TRACKING_URI)")] = True,
) -> None:
    """Distil CHILD from PARENT (cosine of hidden states + KL of next-token distributions) and export it."""
    from pydantic import ValidationError

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
        fail(validation_problems(e))
    except (OSError, ValueError, RuntimeError) as e:
        fail(str(e))
    console.print(f"distilled child: {out}")


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_command)
