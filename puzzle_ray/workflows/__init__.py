"""The end-to-end workflow: one resumable job graph from a parent to a published child (see `stages`)."""

from .config import ConfigError, WorkflowConfig, load_config

__all__ = ["ConfigError", "WorkflowConfig", "load_config", "run_workflow"]


def __getattr__(name):
    if name == "run_workflow":  # imported lazily: it pulls in every stage
        from .driver import run_workflow

        return run_workflow
    raise AttributeError(name)
