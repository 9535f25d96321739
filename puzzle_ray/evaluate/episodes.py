"""In-context episode accuracy of parent and child on the embedded corpus's held-out episodes.

The episodes and their scoring belong to the data layer (`puzzle_ray.data.episodes`: `classification_episodes`
and `episode_accuracy`); this module only calls them for both models at each demonstration count.
"""

from __future__ import annotations

import importlib

from .config import EvalConfig


def episodes_module():
    """`puzzle_ray.data.episodes`, or None where the data layer is not installed."""
    try:
        return importlib.import_module("puzzle_ray.data.episodes")
    except ModuleNotFoundError as e:
        if e.name in ("puzzle_ray.data", "puzzle_ray.data.episodes"):
            return None
        raise


def episode_accuracies(models: dict, tokenizer, config: EvalConfig) -> dict[int, dict[str, float]] | None:
    """{num_demos: {model name: accuracy}} on the same held-out episodes, or None without the data layer."""
    module = episodes_module()
    if module is None or not config.episode_demos:
        return None
    out = {}
    for demos in config.episode_demos:
        episodes = module.classification_episodes(
            count=config.episode_count, num_classes=config.episode_classes, num_demos=demos, seed=config.episode_seed
        )
        scores: dict[int, float] = {}  # by model identity: the parent against itself is scored once
        for m in models.values():
            if id(m) not in scores:
                scores[id(m)] = float(module.episode_accuracy(m, tokenizer, episodes, demos))
        out[demos] = {name: scores[id(m)] for name, m in models.items()}
    return out
