"""Content-addressed results of the benchmark in the artifact store, so that a rerun skips finished work.

    headline/children/<key>/model/       a baseline child before GKD (`.complete` written last)
    headline/eval/<key>/eval_report.json an evaluation of a distilled child against the parent
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from ..evaluate.report import EvalReport
from ..store import ArtifactStore


def stored_model(store: ArtifactStore, key: str, build: Callable[[Path], None]) -> Path:
    """The model folder `headline/children/<key>/model`, built by `build(folder)` unless it is complete already."""
    model_key = f"headline/children/{key}/model"
    if store.dir_complete(model_key):
        return store.get_dir(model_key, prefix="headline-child-")
    if store.is_local:
        target = Path(store.path(model_key))
        build(target)
        store.mark_dir_complete(model_key, target)
    else:
        target = Path(tempfile.mkdtemp(prefix="headline-child-")) / "model"
        build(target)
        store.put_dir(target, model_key)
    return target


def stored_report(store: ArtifactStore, key: str, run: Callable[[], EvalReport]) -> tuple[EvalReport, bool]:
    """(the evaluation `headline/eval/<key>`, whether it was reused), running `run()` when it is missing."""
    file = f"headline/eval/{key}/eval_report.json"
    if store.exists(file):
        return EvalReport.from_json(store.read_json(file)), True
    report = run()
    store.write_bytes(f"headline/eval/{key}/eval_report.md", report.to_markdown().encode())
    store.write_json(file, report.to_json())
    return report, False
