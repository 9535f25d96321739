"""Replace-1-block scoring of every library entry, spread over Ray actors that each hold the parent.

Each entry's metrics (KL from the parent by default, LM loss, top-1 accuracy, cosine distance of the final
hidden states) are merged into the library record under `metrics`, the published layout. The parent's own
entry is the parent: its KL and cosine distance are 0 by definition and its other figures are the parent's.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace

import ray
import torch

from ..cluster import get_with_progress
from ..data import TokenSplit
from ..library.record import Library
from ..store import ArtifactStore
from ..ui import progress
from .config import ScoreConfig
from .worker import ScoreSpec, ScoreWorker

log = logging.getLogger(__name__)


def assign_layers(library: Library, num_actors: int) -> list[list[int]]:
    """Greedy balance of the cost (entries x remaining layers) of scoring each layer over the actors."""
    L = library.num_layers
    cost = {i: len(library.layers[i]) * (L - i) for i in range(L)}
    bins: list[list[int]] = [[] for _ in range(min(num_actors, L))]
    loads = [0] * len(bins)
    for i in sorted(cost, key=cost.get, reverse=True):
        j = loads.index(min(loads))
        bins[j].append(i)
        loads[j] += cost[i]
    return [sorted(b) for b in bins if b]


def validation_batches(validation: TokenSplit, config: ScoreConfig) -> list[torch.Tensor]:
    """The held-out batches every entry is scored on: the first `eval_batches` of `batch_size` sequences, in
    order (cycled when the split is shorter)."""
    return list(itertools.islice(validation.batches(config.batch_size, shuffle=False, cycle=True), config.eval_batches))


def score_library(library: Library, batches: list[torch.Tensor], config: ScoreConfig, store: ArtifactStore,
                  show_progress: bool = True) -> Library:
    """A copy of `library` with `metrics` filled for every (layer, variant) on the given validation batches.

    Progress: the actors' start-up (each loads the parent and runs it once over the batches), then variants
    scored out of all, advancing as actors return a (layer, batch) result (`show_progress` False: erased from
    the terminal when done)."""
    if not batches:
        raise ValueError("scoring needs at least one validation batch")
    resources = ray.cluster_resources()
    groups = assign_layers(library, config.num_actors)
    use_gpu = config.use_gpu if config.use_gpu is not None else resources.get("GPU", 0) >= len(groups)
    threads = config.threads_per_actor or max(1, int(resources.get("CPU", 1)) // len(groups))
    Actor = ray.remote(ScoreWorker).options(num_cpus=1, num_gpus=1 if use_gpu else 0, max_restarts=1,
                                            max_task_retries=1)
    payload = {**library.to_json(), "meta": library.meta.to_json()}
    entries = {i: sum(not v.is_parent for v in library.layers[i].values())
               for i in range(library.num_layers)}
    n = len(batches)
    parts: dict[tuple[int, int], dict[str, dict[str, float]]] = {}
    with progress("variants", transient=not show_progress) as bar:
        actors = [Actor.remote(ScoreSpec(store.url, payload, g, config.metrics, config.variants_per_chunk, threads,
                                         config.chunk_tokens)) for g in groups]
        try:
            batch_ref = ray.put(batches)
            starting = bar.add_task("starting scoring actors", total=len(actors), unit="actors")
            prepared = get_with_progress({a.prepare.remote(batch_ref, parent_metrics=k == 0): 1
                                          for k, a in enumerate(actors)}, lambda w: bar.advance(starting, w))
            tokens, parent = prepared[0]["tokens"], prepared[0]["parent"]
            # One call per (layer, batch): an actor runs its calls in order, keeping a layer's blocks between
            # its batches; each result advances the bar by the layer's variants / batches.
            calls = {a.score_layer.remote(i, batch_ref, b): (i, b) for a, g in zip(actors, groups) for i in g
                     for b in range(n)}
            scoring = bar.add_task("replace-1-block scoring", total=sum(entries.values()))
            results = get_with_progress({ref: entries[i] / n for ref, (i, _) in calls.items()},
                                        lambda w: bar.advance(scoring, w))
            parts = {calls[ref]: out for ref, out in zip(calls, results)}
        finally:
            for a in actors:
                ray.kill(a)
    sums: dict[str, dict[str, float]] = {}
    for i in range(library.num_layers):  # batches summed in order: the same floats as one call per layer
        for b in range(n):
            for name, values in parts.get((i, b), {}).items():
                acc = sums.setdefault(name, dict.fromkeys(values, 0.0))
                for k, v in values.items():
                    acc[k] += v
    layers = []
    for i, layer in enumerate(library.layers):
        scored = {}
        for name, v in layer.items():
            if v.is_parent:
                metrics = {k: (0.0 if k in ("kl_div", "cosine_distance") else parent[k]) for k in config.metrics}
            else:
                metrics = {k: x / tokens for k, x in sums[f"layer_{i}/{name}"].items()}
            scored[name] = replace(v, metrics={**v.metrics, **metrics})
        layers.append(scored)
    scoring = {"metrics": config.metrics, "tokens": tokens, "parent": parent}
    return Library(layers, replace(library.meta, scoring=scoring))

