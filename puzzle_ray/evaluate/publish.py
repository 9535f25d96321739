"""Publishing: the exported child (nemotron-nas model + tokenizer) logged as an MLflow transformers model,
registered under a name, given an alias (e.g. `candidate`), with its evaluation report attached.

Loading it back, with no remote code: `import puzzle_ray` (it registers the nemotron-nas model type and the
class names mlflow looks up on `transformers`), then `mlflow.transformers.load_model("models:/<name>@<alias>")`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path


from .report import EvalReport

MODEL_NAME = "model"
"""The model's name inside its MLflow run."""


class PublishError(ValueError):
    """A model folder that cannot be published; the message names the folder and what is missing."""


def pip_requirements() -> list[str]:
    """What a serving environment needs to load the model (explicit: MLflow's inference adds torchvision,
    which does not install beside the local torch build)."""
    reqs = []
    for dist in ("torch", "transformers", "safetensors", "tokenizers", "accelerate"):
        try:
            version = importlib.metadata.version(dist).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            continue
        reqs.append(f"{dist}=={version}")
    from .. import __version__

    reqs.append(f"puzzle-ray=={__version__}")  # registers the nemotron-nas model type (no remote code)
    return reqs


@dataclass(frozen=True)
class PublishedModel:
    name: str
    version: str
    alias: str
    run_id: str
    model_uri: str
    """`models:/<name>@<alias>`."""


def _check_model_dir(model_dir: Path) -> None:
    if not (model_dir / "config.json").is_file():
        raise PublishError(f"{model_dir}: not a model folder (no config.json)")
    if json.loads((model_dir / "config.json").read_text()).get("model_type") != "nemotron-nas":
        raise PublishError(f"{model_dir}: not in the nemotron-nas export layout (see puzzle_ray.arch.export)")
    if not ((model_dir / "tokenizer.json").exists() or (model_dir / "tokenizer_config.json").exists()):
        raise PublishError(f"{model_dir}: no tokenizer (mlflow.transformers needs one to build a text-generation "
                           "pipeline; export the child with tokenizer=...)")


def _components(model_dir: Path) -> dict:
    """The model and tokenizer, loaded from the export.

    MLflow 3.17 cannot log a local checkpoint folder with transformers 5 (`check_task` now returns the pipeline
    class as a string: AttributeError in `build_flavor_config_from_local_checkpoint`), so the model is logged
    from memory: the same weights and names, and a config.json of model_type `nemotron-nas` with the same
    `block_configs`, but `architectures: ["PuzzleForCausalLM"]` (the engines' exact layout stays in the store).
    """
    from transformers import AutoTokenizer

    from ..arch.convert import convert_from_hf

    return {"model": convert_from_hf(model_dir).eval(),
            "tokenizer": AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)}


def model_card(name: str, report: EvalReport | None):
    from huggingface_hub import ModelCard

    body = f"---\nlibrary_name: transformers\ntags: [puzzle, nemotron-nas]\n---\n# {name}\n\n"
    body += "A Puzzle child (heterogeneous `nemotron-nas` architecture) produced by puzzle-ray.\n"
    if report is not None:
        body += "\n" + report.to_markdown()
    return ModelCard(body)


def publish(
    model_dir: str | Path,
    registered_name: str,
    alias: str = "candidate",
    report: EvalReport | None = None,
    run_id: str | None = None,
) -> PublishedModel:
    """Log `model_dir` to the MLflow run `run_id` (default: the active run, else a new one), register it as
    `registered_name`, point `alias` at the new version and attach `report` (JSON + Markdown)."""
    import mlflow
    from mlflow import MlflowClient

    model_dir = Path(model_dir)
    _check_model_dir(model_dir)
    if not registered_name or not alias:
        raise PublishError("registered_name and alias must be non-empty")
    active = mlflow.active_run()
    if active is not None and (run_id is None or active.info.run_id == run_id):
        run_ctx = contextlib.nullcontext(active)
    else:
        run_ctx = mlflow.start_run(run_id=run_id, run_name=None if run_id else f"publish-{registered_name}",
                                   nested=active is not None)
    with run_ctx as run:
        info = mlflow.transformers.log_model(
            _components(model_dir),
            name=MODEL_NAME,
            task="text-generation",
            registered_model_name=registered_name,
            pip_requirements=pip_requirements(),
            model_card=model_card(registered_name, report),
        )
        if report is not None:
            report.log_to_mlflow(run.info.run_id)
        version = str(info.registered_model_version)
        client = MlflowClient()
        client.set_registered_model_alias(registered_name, alias, version)
        if report is not None:
            for key in ("kl_from_parent", "top1_accuracy", "lm_loss"):
                try:
                    row = report.row(key, "quality")
                except KeyError:
                    continue
                client.set_model_version_tag(registered_name, version, f"eval.{key}", f"{row.child:.6g}")
                client.set_model_version_tag(registered_name, version, f"eval.{key}.{row.ratio_name}",
                                             f"{row.ratio:.6g}")
        return PublishedModel(registered_name, version, alias, run.info.run_id, f"models:/{registered_name}@{alias}")
