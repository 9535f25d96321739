"""The embedded default parent, end to end and cached: corpus -> tokenizer -> token cache -> pretraining ->
export (nemotron-nas layout, tokenizer included) -> quality report.

    <cache_dir>/tokenizers/<key>/      the corpus-trained byte-level BPE
    <cache_dir>/tokens/<key>/          the packed token cache (see puzzle_ray.data.cache)
    <cache_dir>/parents/<key>/         the model folder: config.json, model.safetensors, tokenizer files,
                                       quality_report.json, pretrain.json (config, timings, loss history)
    <cache_dir>/parents/.work-<key>/   checkpoints while training (resumed after a crash; removed at the end)
    <cache_dir>/parents/.lock-<key>    serialises concurrent builders of the same parent

The parent's key hashes the corpus (standard-library file list and digests, episode settings), the tokenizer,
model and training configs, and the resolved precision: a second call with the same config returns the folder
at once. The folder appears by one rename when everything in it is written.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..configs import content_hash
from ..data.cache import prepare_tokens
from ..data.config import DataConfig, default_cache_dir
from ..data.errors import DataError
from ..data.split import TokenData
from ..data.tokenizer import load_tokenizer
from ..store import exclusive_lock
from .config import EmbeddedParentConfig
from .model import build_parent_model
from .quality import quality_report
from .tokenizer import ensure_embedded_tokenizer, tokenizer_key
from .train import pretrain_model, resolve_precision

PARENT_VERSION = 1
REPORT_FILE = "quality_report.json"
RECORD_FILE = "pretrain.json"


@dataclass
class PretrainResult:
    path: Path | None
    """The model folder (None if training stopped early at `max_steps`)."""
    report: dict | None
    """The quality report (also in `<path>/quality_report.json`)."""
    reused: bool
    """True when the cached parent was returned without training."""
    seconds: float
    """Wall time of this call."""
    summary: dict | None = None
    """Training summary of this call (steps, tokens, tokens/s, history); None when reused."""


def data_config(config: EmbeddedParentConfig, cache_dir: str | Path) -> DataConfig:
    """The parent's token data: the embedded corpus alone, so the validation split is held-out text only."""
    return DataConfig(
        sources=[config.corpus],
        seq_len=config.seq_len,
        validation_fraction=config.validation_fraction,
        seed=config.train.seed,
        cache_dir=Path(cache_dir),
    )


def parent_key(config: EmbeddedParentConfig) -> str:
    train = config.train.model_dump(mode="json")
    train["precision"] = resolve_precision(config.train.precision)
    return content_hash(
        {
            "version": PARENT_VERSION,
            "tokenizer": tokenizer_key(config),  # covers the corpus and the tokenizer settings
            "corpus": config.corpus.model_dump(mode="json"),
            "seq_len": config.seq_len,
            "validation_fraction": config.validation_fraction,
            "model": config.model.model_dump(mode="json"),
            "train": train,
        },
        length=24,
    )


def parent_dir(config: EmbeddedParentConfig, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "parents" / parent_key(config)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _refresh_report(folder: Path, config: EmbeddedParentConfig, cache_dir: Path) -> dict:
    """The saved report, recomputed only if the report settings changed since it was written."""
    report = json.loads((folder / REPORT_FILE).read_text())
    if report.get("config") == config.report.model_dump(mode="json"):
        return report
    from transformers import AutoModelForCausalLM

    record = json.loads((folder / RECORD_FILE).read_text())
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=False)
    data = TokenData(Path(cache_dir) / "tokens" / record["token_cache"])
    report = quality_report(model, load_tokenizer(folder), data, config.report, record["summary"]["precision"])
    _write_json(folder / REPORT_FILE, report)
    return report


def pretrain(
    config: EmbeddedParentConfig | None = None,
    cache_dir: str | Path | None = None,
    *,
    force: bool = False,
    show_progress: bool = True,
    on_metrics: Callable[[dict, int], None] | None = None,
    max_steps: int | None = None,
) -> PretrainResult:
    """Build (or reuse) the embedded parent. `force` retrains even if cached; `max_steps` stops early with a
    checkpoint (the next call resumes from it); `on_metrics(metrics, step)` receives training metrics.

    Concurrent callers (a driver and its Ray workers, two CLI runs) serialise on a lock file: one trains, the
    others wait and then reuse its result.
    """
    start = time.perf_counter()
    config = config or EmbeddedParentConfig()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = parent_dir(config, cache_dir)
    if not force and (final / REPORT_FILE).is_file():  # the fast path takes no lock
        return PretrainResult(final, _refresh_report(final, config, cache_dir), True, time.perf_counter() - start)
    final.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(final.parent / f".lock-{final.name}"):
        work = final.parent / f".work-{final.name}"
        if force:
            shutil.rmtree(final, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
        if (final / REPORT_FILE).is_file():  # built by the caller we waited for
            return PretrainResult(final, _refresh_report(final, config, cache_dir), True, time.perf_counter() - start)
        result = _build(config, cache_dir, final, work, show_progress, on_metrics, max_steps)
    result.seconds = time.perf_counter() - start
    return result


def _build(config, cache_dir, final, work, show_progress, on_metrics, max_steps) -> PretrainResult:
    from ..arch.export import export_pretrained

    tokenizer = load_tokenizer(ensure_embedded_tokenizer(config, cache_dir))
    data = prepare_tokens(data_config(config, cache_dir), tokenizer, show_progress=show_progress)
    if data.train.num_tokens < config.train.token_budget:
        raise DataError(
            f"train.token_budget={config.train.token_budget:,} exceeds the corpus's {data.train.num_tokens:,} "
            "training tokens: lower the budget or enlarge the corpus (max_files, episodes)"
        )
    model = build_parent_model(config.model, tokenizer, config.train.seed)
    summary = pretrain_model(model, data, config.train, work, on_metrics, show_progress, max_steps)
    if not summary["complete"]:
        return PretrainResult(None, None, False, 0.0, summary)

    report = quality_report(model, tokenizer, data, config.report, summary["precision"])
    staging = work / "model"
    export_pretrained(model.float(), staging, tokenizer=tokenizer, overwrite=True)
    _write_json(staging / REPORT_FILE, report)
    record = {
        "config": config.model_dump(mode="json"),
        "key": final.name,
        "tokenizer": tokenizer_key(config),
        "token_cache": data.key,
        "corpus_files": data.meta["fingerprint"]["sources"][0]["stdlib"]["files"],
        "summary": summary,
    }
    _write_json(staging / RECORD_FILE, record)
    os.replace(staging, final)  # the folder appears complete, in one step
    shutil.rmtree(work, ignore_errors=True)
    return PretrainResult(final, report, False, 0.0, summary)


def ensure_embedded_parent(config: EmbeddedParentConfig | None = None, cache_dir: str | Path | None = None) -> Path:
    """The embedded default parent's model folder (tokenizer files and quality_report.json inside), trained
    on first use (about three minutes on two CPU cores) and returned at once afterwards."""
    return pretrain(config, cache_dir).path
