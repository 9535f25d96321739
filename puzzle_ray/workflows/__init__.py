"""The end-to-end workflow: one resumable job graph from a parent to a published child (see `stages`)."""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): `puzzle-ray --help` imports this package's
# cli.py without the config (every stage's config) or the driver (every stage).
lazy_package(__name__, {
    ".config": ["ConfigError", "WorkflowConfig", "load_config"],
    ".driver": ["run_workflow"],
})

__all__ = ["ConfigError", "WorkflowConfig", "load_config", "run_workflow"]
