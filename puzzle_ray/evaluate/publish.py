"""Publishing: the exported child (nemotron-nas model + tokenizer) logged as an MLflow transformers model,
registered under a name, given an alias (e.g. `candidate`), with its evaluation report attached.

What the logged model carries:

- the model card (`arch/card.py`, the same one the folder's README.md gets, now with the evaluation table);
- a LICENSE.txt with the card's license (MLflow's own would point at `https://huggingface.co/<local path>`,
  because it builds a Hub URL from the model's `name_or_path`);
- puzzle-ray's code (`code/puzzle_ray`, `code/puzzle_ray_pyfunc.py`) and requirements that install (torch,
  transformers, ...; no pin of puzzle-ray, which no package index has): its `python_function` loader
  registers the nemotron-nas model itself, so `mlflow.pyfunc.load_model` and `mlflow models serve` work in an
  environment built from requirements.txt alone;
- a signature with an input example and generation parameters (`max_new_tokens`, ...).

The registered version gets a description (the measured headline), `eval.*` tags (speed-ups, quality) and, as
its source, the run the model was logged into: the workflow's parent run when `source_run_id` is given.

Loading it back, with no remote code: `mlflow.pyfunc.load_model("models:/<name>@<alias>")`, or `import puzzle_ray`
then `mlflow.transformers.load_model("models:/<name>@<alias>")` for the pipeline.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .report import JSON_FILE, MARKDOWN_FILE, EvalReport

MODEL_NAME = "model"
"""The model's name inside its MLflow run."""
LICENSE_FILE = "LICENSE.txt"
LOADER_MODULE = "puzzle_ray_pyfunc"
"""The logged model's `python_function` loader (`puzzle_ray/evaluate/puzzle_ray_pyfunc.py`, logged as code)."""
EXAMPLE_PROMPT = "The capital of France is"
GENERATION_PARAMS: dict[str, Any] = {"max_new_tokens": 32, "min_new_tokens": 0, "do_sample": False, "temperature": 1.0,
                                     "top_p": 1.0, "repetition_penalty": 1.0}
"""The signature's generation parameters and their defaults (greedy decoding)."""
SERVING_DISTRIBUTIONS = ("torch", "transformers", "safetensors", "tokenizers", "accelerate")
"""What loading the model needs besides mlflow (which MLflow adds itself) and puzzle-ray (logged as code)."""


class PublishError(ValueError):
    """A model folder that cannot be published; the message names the folder and what is missing."""


def pip_requirements() -> list[str]:
    """What a serving environment needs to load the model, pinned to the versions here (explicit: MLflow's
    inference adds torchvision, which does not install beside the local torch build). puzzle-ray itself is not
    among them: the model carries its code (see `code_paths`)."""
    reqs = []
    for dist in SERVING_DISTRIBUTIONS:
        try:
            version = importlib.metadata.version(dist).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            continue
        reqs.append(f"{dist}=={version}")
    return reqs


def code_paths() -> list[str]:
    """The code logged with the model: the `puzzle_ray` package and its pyfunc loader (as a top-level module)."""
    package = Path(__file__).resolve().parents[1]
    return [str(package), str(Path(__file__).with_name(f"{LOADER_MODULE}.py"))]


@dataclass(frozen=True)
class PublishedModel:
    name: str
    version: str
    alias: str
    run_id: str
    """The run the model was logged into (the registered version's source run)."""
    model_uri: str
    """`models:/<name>@<alias>`."""
    model_id: str | None = None
    """The MLflow 3 LoggedModel's id (`models:/<model_id>`), which the evaluation metrics are linked to."""


def check_publishable(model_dir: str | Path, registered_name: str, alias: str) -> Path:
    """The checks `publish` makes before it touches MLflow (a command calls it before it sets MLflow up)."""
    model_dir = Path(model_dir)
    _check_model_dir(model_dir)
    if not registered_name.strip() or not alias.strip():
        raise PublishError(f"registered_name {registered_name!r} and alias {alias!r} must be non-empty")
    return model_dir


def _check_model_dir(model_dir: Path) -> None:
    if not (model_dir / "config.json").is_file():
        raise PublishError(f"{model_dir}: not a model folder (no config.json)")
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PublishError(f"{model_dir / 'config.json'}: not a JSON text file ({e})") from None
    if not isinstance(config, dict) or config.get("model_type") != "nemotron-nas":
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


def model_card(model_dir: str | Path, name: str, report: EvalReport | None, model_uri: str | None = None,
               write: bool = True):
    """The child's card (`arch.card.child_card`, from the facts its folder's card carries) named `name`, with
    `report`'s evaluation table; also rewritten into the folder's README.md when `write`."""
    from ..arch.card import refresh_card

    return refresh_card(model_dir, report=report, name=name, model_uri=model_uri, write=write)


def _flavor(license_text: str):
    """mlflow.transformers as `mlflow.models.Model.log` uses it, with two changes made before the files are
    uploaded: our LICENSE.txt, and the `python_function` flavor loaded through `puzzle_ray_pyfunc`."""
    import mlflow.transformers
    from mlflow.models.model import MLMODEL_FILE_NAME

    def save_model(path, mlflow_model=None, **kwargs):
        mlflow.transformers.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
        (Path(path) / LICENSE_FILE).write_text(license_text, encoding="utf-8")
        pyfunc = mlflow_model.flavors.get("python_function") if mlflow_model is not None else None
        if pyfunc is not None:
            pyfunc["loader_module"] = LOADER_MODULE
            mlflow_model.save(str(Path(path) / MLMODEL_FILE_NAME))

    return types.SimpleNamespace(__name__=mlflow.transformers.__name__, save_model=save_model)


def _log_model(model_dir: Path, card, run_id: str, prompt: str):
    from mlflow.models import Model, infer_signature

    from ..arch.card import license_text

    signature = infer_signature([prompt], ["generated text"], params=GENERATION_PARAMS)
    return Model.log(
        artifact_path=None,  # (deprecated, but positional in Model.log's signature)
        name=MODEL_NAME,
        flavor=_flavor(license_text(card)),
        run_id=run_id,
        transformers_model=_components(model_dir),
        task="text-generation",
        model_card=card,
        code_paths=code_paths(),
        signature=signature,
        input_example=([prompt], dict(GENERATION_PARAMS)),
        validate_serving_input=True,  # loads the logged files through the pyfunc loader and generates once
        pip_requirements=pip_requirements(),
    )


def _register(client, name: str, info, run_id: str) -> str:
    """A new version of `name` from the logged model (through the client, which prints nothing; the fluent
    registration prints its own "Successfully registered ..." lines). Returns the version."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    try:
        client.create_registered_model(name)
    except MlflowException as e:
        if e.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    return str(client.create_model_version(name, info.model_uri, run_id=run_id, model_id=info.model_id).version)


def _log_report(run_id: str, report: EvalReport, model_id: str | None) -> None:
    """The report's figures as metrics of `run_id`, linked to the logged model `model_id` (its MLflow page shows
    them), and the report itself (JSON + Markdown) as artifacts under `eval/`."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0, model_id=model_id) for k, v in report.mlflow_metrics().items()]
    for i in range(0, len(metrics), 1000):  # the store's batch limit
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    client.log_dict(run_id, report.to_json(), f"eval/{JSON_FILE}")
    client.log_text(run_id, report.to_markdown(), f"eval/{MARKDOWN_FILE}")


def version_tags(report: EvalReport | None, card=None) -> dict[str, str]:
    """The registered version's tags: measured speed-ups (`eval.decode_speedup`, at the largest batch size, and
    `eval.decode_speedup_at_<batch>` for each), quality figures and their ratios, the parent and the license."""
    from ..arch.card import FACTS_KEY

    tags: dict[str, str] = {}
    if report is not None:
        for r in report.rows:
            if r.section != "speed" or not _finite(r.ratio):
                continue
            kind, _, batch = r.metric.partition("@")
            name = {"decode_tokens_per_s": "decode_speedup", "prefill_ms": "prefill_speedup"}.get(kind)
            if name and batch.isdigit():
                tags[f"eval.{name}_at_{batch}"] = f"{r.ratio:.4g}"  # ('@' is not allowed in tag keys)
        for name in ("decode_speedup", "prefill_speedup"):  # the headline: the largest batch size measured
            batches = sorted((int(k.rsplit("_at_", 1)[1]), v) for k, v in tags.items()
                             if k.startswith(f"eval.{name}_at_"))
            if batches:
                tags[f"eval.{name}"] = batches[-1][1]
        for key in ("kl_from_parent", "top1_accuracy", "lm_loss"):
            try:
                row = report.row(key, "quality")
            except KeyError:
                continue
            tags[f"eval.{key}"] = f"{row.child:.6g}"
            if row.ratio_name and _finite(row.ratio):  # (KL from the parent has no ratio: see retention.py)
                tags[f"eval.{key}.{row.ratio_name}"] = f"{row.ratio:.6g}"
    if card is not None:
        data = card.data.to_dict()
        parent = (data.get(FACTS_KEY) or {}).get("parent") or {}
        if parent.get("name"):
            tags["puzzle_ray.parent"] = parent["name"]
        if data.get("base_model"):
            tags["puzzle_ray.base_model"] = str(data["base_model"])
        if data.get("license"):
            tags["license"] = data["license"]
    return tags


def version_description(card, report: EvalReport | None, model_uri: str) -> str:
    """The registered version's description: what it is (child of which parent), the measured headline, size,
    and how to load it."""
    from ..arch.card import FACTS_KEY, format_count, headline_text

    data = card.data.to_dict()
    facts = data.get(FACTS_KEY) or {}
    parent = facts.get("parent") or {}
    who = parent.get("name", "its parent")
    if parent.get("base_model") and parent.get("base_model") != who:
        who += f" ({parent['base_model']})"
    text = f"Puzzle child of {who}, made by puzzle-ray"
    headline = headline_text(report) if report is not None else None
    text += f": {headline}." if headline else " (not evaluated)."
    if report is not None:
        try:
            size = report.row("num_params", "memory")
            text += f" {format_count(size.child)} parameters ({size.ratio:.0%} of the parent's)."
        except KeyError:
            pass
    if data.get("license"):
        text += f" License: {data['license']}."
    text += (f" Load with `mlflow.pyfunc.load_model(\"{model_uri}\")` (it carries puzzle-ray's code), or "
             f"`import puzzle_ray` then `mlflow.transformers.load_model(\"{model_uri}\")`.")
    return text


def publish(
    model_dir: str | Path,
    registered_name: str,
    alias: str = "candidate",
    report: EvalReport | None = None,
    run_id: str | None = None,
    source_run_id: str | None = None,
    example_prompt: str = EXAMPLE_PROMPT,
) -> PublishedModel:
    """Log `model_dir` as an MLflow model, register it as `registered_name`, point `alias` at the new version
    and attach `report` (JSON + Markdown, and its figures as metrics linked to the logged model).

    `run_id` is the run the report goes to (default: the active run, else a new one); the model is logged into
    `source_run_id` (the workflow's parent run, so the registered version's source is the run reviewers open),
    else into that same run. The folder's README.md is rewritten with the report's table."""
    import mlflow
    from mlflow import MlflowClient

    model_dir = check_publishable(model_dir, registered_name, alias)
    active = mlflow.active_run()
    if active is not None and (run_id is None or active.info.run_id == run_id):
        run_ctx = contextlib.nullcontext(active)
    else:
        if run_id is not None:  # start_run(run_id=...) refuses a run outside the process's active experiment
            mlflow.set_experiment(experiment_id=MlflowClient().get_run(run_id).info.experiment_id)
        run_ctx = mlflow.start_run(run_id=run_id, run_name=None if run_id else f"publish-{registered_name}",
                                   nested=active is not None)
    uri = f"models:/{registered_name}@{alias}"
    with run_ctx as run:
        report_run = run.info.run_id
        model_run = source_run_id or report_run
        card = model_card(model_dir, registered_name, report, model_uri=uri)
        info = _log_model(model_dir, card, model_run, example_prompt)
        client = MlflowClient()
        version = _register(client, registered_name, info, model_run)
        client.set_registered_model_alias(registered_name, alias, version)
        if report is not None:
            _log_report(report_run, report, info.model_id)
        client.update_model_version(registered_name, version, description=version_description(card, report, uri))
        for key, value in version_tags(report, card).items():
            client.set_model_version_tag(registered_name, version, key, value)
        if not client.get_registered_model(registered_name).description:
            client.update_registered_model(registered_name, description=(
                f"Puzzle children made by puzzle-ray; `@{alias}` is the latest candidate. Each version's "
                "description gives its measured speed-up and quality, its card (model_card.md) the details."))
        return PublishedModel(registered_name, version, alias, model_run, uri, info.model_id)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
