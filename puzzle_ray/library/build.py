"""Build the block library: initialise every variant from the parent and train them all by BLD on Ray actors.

    tokens ──> actor 0 (layers 0..k) ──hidden──> actor 1 (layers k..L) ──> ...
                 │ every variant of layers 0..k      │ every variant of layers k..L
                 │ trained on the parent's input     │ ...
                 └─ checkpoints to the artifact store └─ ...

The driver streams micro-batches through the actors with bounded in-flight work, so actors overlap like a
pipeline. Phases: calibration (statistics for initialisation) -> initialise -> evaluate (normalised MSE at
init) -> checkpoint 0 -> train with periodic checkpoints -> evaluate (final) -> save weights -> library record.
If an actor dies, Ray restarts it, every actor rolls back to the newest checkpoint they all hold, and the
stream replays from there (the data order is a pure function of the step), so the result is the same.
A finished build is recorded in the store and a re-run returns it without training.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import ray
import torch

from ..arch.stats import attention_params, ffn_params, kv_bytes_per_token
from ..arch.config import load_puzzle_config
from ..arch.weights import fingerprint
from ..cluster import get_with_progress
from ..configs import content_hash
from ..data import TokenData
from ..store import ArtifactStore
from ..ui import progress
from .actor import ActorSpec, BLDWorker
from .bld_record import BLDRecord, SubBlockBLD
from .config import BLDConfig
from .meta import LibraryMeta
from .record import Library, Variant, variant_name
from .space import LayerSpace, VariantSpace, expand

log = logging.getLogger(__name__)

ACTOR_ERRORS = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError, ray.exceptions.ObjectLostError)


@dataclass
class BLDData:
    """Token batches for BLD, each a LongTensor (micro_batch, seq_len); pure functions of their arguments."""

    train: Callable[[int], Iterator[torch.Tensor]]
    """Training micro-batches starting at step index `start` (0-based), so a resumed run replays exactly."""
    calibration: Callable[[], Iterable[torch.Tensor]]
    validation: Callable[[], Iterable[torch.Tensor]]
    seq_len: int
    fingerprint: str
    """Identity of the token data (part of the library's content hash)."""

    @classmethod
    def from_tokens(cls, tokens: TokenData, bld: BLDConfig) -> BLDData:
        """The workflow's batches: `bld.micro_batch_size` sequences each, training batches shuffled by `bld.seed`
        (calibration by `seed + 1`), validation in order; cycled where a split is shorter than asked for."""
        train, val, mb = tokens.train, tokens.validation, bld.micro_batch_size

        def train_batches(start: int):
            return train.batches(mb, token_budget=bld.token_budget, seed=bld.seed, cycle=True, start_batch=start)

        return cls(
            train=train_batches,
            calibration=lambda: list(itertools.islice(train.batches(mb, seed=bld.seed + 1, cycle=True),
                                                      bld.calibration_batches)),
            validation=lambda: list(itertools.islice(val.batches(mb, shuffle=False, cycle=True), bld.eval_batches)),
            seq_len=train.seq_len,
            fingerprint=tokens.path.name,
        )


@dataclass
class BuildResult:
    library: Library
    key: str
    """Store prefix of the library (`<key>/block_library.json`)."""
    reused: bool
    losses: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    restored_from: dict[str, list[int]] = field(default_factory=dict)
    """Per actor (layer range), the checkpoint steps it resumed from after a failure."""
    train_seconds: float = 0.0
    """Wall-clock seconds of the training stream (0 when reused)."""
    trained_units: int = 0
    """Variants trained (each saw every training token)."""


def library_key(parent_fp: str, space: VariantSpace, bld: BLDConfig, data: BLDData) -> str:
    return "library/" + content_hash(
        {"parent": parent_fp, "space": space.model_dump(mode="json"), "bld": bld.result_hash_fields(),
         "data": data.fingerprint}
    )


def partition_layers(spaces: list[LayerSpace], num_actors: int) -> list[tuple[int, int]]:
    """Contiguous layer ranges with about equal numbers of trained variants each."""
    n = len(spaces)
    num_actors = min(num_actors, n)
    weights = [1 + sum(v.trainable for v in s.attention + s.ffn) for s in spaces]
    total, ranges, lo, acc = sum(weights), [], 0, 0
    for i, w in enumerate(weights):
        acc += w
        left = num_actors - len(ranges) - 1
        if left > 0 and (acc >= total * (len(ranges) + 1) / num_actors or n - i - 1 == left):
            ranges.append((lo, i + 1))
            lo = i + 1
    ranges.append((lo, n))
    return ranges


def build_library(
    parent_dir: str | Path,
    space: VariantSpace,
    bld: BLDConfig,
    data: BLDData,
    store: ArtifactStore,
    mlflow_run_id: str | None = None,
    on_step: Callable[[int, list], None] | None = None,
    show_progress: bool = True,
) -> BuildResult:
    """Train the library (or return the finished one). `on_step(k, actors)` is a test hook."""
    parent_dir = Path(parent_dir)
    parent = load_puzzle_config(parent_dir)
    spaces = expand(space, parent)  # validates the space against the parent before any work
    store.check_writable()
    parent_fp = fingerprint(parent_dir)
    key = library_key(parent_fp, space, bld, data)
    if store.exists(f"{key}/complete.json"):
        log.info("library %s is complete: reusing it", key)
        return BuildResult(Library.read(store, key), key, reused=True)
    parent_key = f"parents/{parent_fp}"
    if not store.dir_complete(parent_key):
        store.put_dir(parent_dir, parent_key)

    tokens_per_step = bld.micro_batch_size * data.seq_len
    total_steps = math.ceil(bld.token_budget / tokens_per_step)
    ranges = partition_layers(spaces, bld.num_actors)
    with progress("tok", transient=not show_progress) as bar:
        phases = _Phases(bar)
        actors = _start_actors(store, parent_key, key, ranges, spaces, bld, total_steps, parent.num_hidden_layers,
                               phases)
        try:
            train_seconds = _train(actors, bld, data, total_steps, tokens_per_step, on_step, phases)
            reports = ray.get([a.report.remote() for a in actors])
            weight_keys = {}
            saves = {a.save_weights.remote(f"{key}/weights"): 1 for a in actors}
            for keys in phases.gather("BLD: saving weights", saves, "actors"):
                weight_keys.update(keys)
        finally:
            for a in actors:
                ray.kill(a)
    library = assemble_library(
        parent, spaces, reports, weight_keys, parent_key, total_steps * tokens_per_step, bld, space, store.url
    )
    library.write(store, key)
    losses = {uid: loss for r in reports for uid, loss in r["losses"].items()}
    store.write_json(f"{key}/losses.json", losses)
    restored = {r["layers"]: r["restored_from"] for r in reports if r["restored_from"]}
    store.write_json(f"{key}/complete.json", {"time": time.time(), "steps": total_steps, "restored_from": restored})
    if mlflow_run_id:
        from .tracking import log_library

        log_library(mlflow_run_id, library, losses)
    return BuildResult(library, key, reused=False, losses=losses, restored_from=restored, train_seconds=train_seconds,
                       trained_units=len(losses))


class _Phases:
    """The build's progress display: one row per phase (actors' start-up, calibration, initialisation,
    evaluations, training, saving), each in its own unit, added when the phase starts (a phase run again after
    an actor failure starts its row again)."""

    def __init__(self, bar):
        self.bar, self.rows = bar, {}

    def start(self, name: str, total: float, unit: str):
        if name in self.rows:
            self.bar.reset(self.rows[name], total=total)
        else:
            self.rows[name] = self.bar.add_task(name, total=total, unit=unit)
        return self.rows[name]

    def advance(self, name: str, amount: float = 1) -> None:
        self.bar.advance(self.rows[name], amount)

    def gather(self, name: str, weights: dict, unit: str) -> list:
        """ray.get of the refs in `weights` (in its order); the row advances by a ref's weight as it returns."""
        self.start(name, sum(weights.values()), unit)
        return get_with_progress(weights, lambda w: self.advance(name, w))


def _start_actors(store, parent_key, key, ranges, spaces, bld, total_steps, num_layers, phases: _Phases) -> list:
    resources = ray.cluster_resources()
    use_gpu = bld.use_gpu if bld.use_gpu is not None else resources.get("GPU", 0) >= len(ranges)
    cpus = max(1, int(resources.get("CPU", 1)))
    threads = bld.threads_per_actor or max(1, cpus // len(ranges))
    Actor = ray.remote(BLDWorker).options(
        num_gpus=1 if use_gpu else 0,
        num_cpus=1,
        max_restarts=bld.max_failures,
        max_task_retries=0,
    )
    actors = []
    for lo, hi in ranges:
        spec = ActorSpec(store.url, parent_key, key, (lo, hi), spaces[lo:hi], bld, total_steps, threads, num_layers)
        actors.append(Actor.remote(spec))
    phases.gather(f"BLD: starting actors (layers {', '.join(f'{lo}-{hi - 1}' for lo, hi in ranges)})",
                  {a.ready.remote(): 1 for a in actors}, "actors")
    return actors


def _stream(actors, method: str, batches: Iterable[torch.Tensor], start: int, max_in_flight: int,
            on_done: Callable[[dict], None] | None = None, on_step=None) -> None:
    """Push batches k = start, start+1, ... through `method` of every actor in order, pipelined."""
    pending: deque = deque()
    try:
        for k, x in enumerate(batches, start=start):
            ref = x
            for a in actors:
                ref = getattr(a, method).remote(k, ref)
            pending.append(ref)
            if on_step is not None:
                on_step(k, actors)
            while len(pending) >= max_in_flight:
                out = ray.get(pending.popleft())
                if on_done:
                    on_done(out)
        while pending:
            out = ray.get(pending.popleft())
            if on_done:
                on_done(out)
    except ACTOR_ERRORS + (ray.exceptions.RayTaskError,):
        for ref in pending:  # let the rest settle before anyone rolls back
            try:
                ray.get(ref)
            except Exception:  # noqa: BLE001 - they fail with the same cause
                pass
        raise


def _evaluate(actors, data: BLDData, bld: BLDConfig, tag: str, phases: _Phases) -> None:
    name, batches = f"BLD: evaluation ({tag})", list(data.validation())
    phases.start(name, len(batches), "batch")
    ray.get([a.begin_eval.remote() for a in actors])
    _stream(actors, "evaluate", batches, 0, bld.max_in_flight, on_done=lambda _: phases.advance(name))
    ray.get([a.end_eval.remote(tag) for a in actors])


def _initialise(actors, bld: BLDConfig, data: BLDData, phases: _Phases) -> None:
    """Calibration statistics from the parent, then every variant initialised from them, layer by layer."""
    batches = list(data.calibration())
    phases.start("BLD: calibration", len(batches), "batch")
    ray.get([a.begin_calibration.remote() for a in actors])
    _stream(actors, "calibrate", batches, 0, bld.max_in_flight,
            on_done=lambda _: phases.advance("BLD: calibration"))
    layers = ray.get([a.owned_layers.remote() for a in actors])
    phases.gather("BLD: initialisation", {a.initialise_layer.remote(i): 1 for a, own in zip(actors, layers)
                                          for i in own}, "layers")
    ray.get([a.initialise.remote() for a in actors])


def _train(actors, bld, data, total_steps, tokens_per_step, on_step, phases: _Phases) -> float:
    """Run every phase to the end; returns the wall-clock seconds of the training stream (for throughput)."""
    failures, restore_needed, train_seconds = 0, False, 0.0
    name = f"BLD ({len(actors)} actor{'s' * (len(actors) > 1)})"
    while True:
        try:
            start = common_step(ray.get([a.checkpoint_steps.remote() for a in actors]))
            held = ray.get([a.held_step.remote() for a in actors])
            # Every actor must hold the same step before the stream starts: after a failure, and also on a fresh
            # driver, whose new actors each restored their own latest checkpoint (one may be ahead of another).
            if restore_needed or any(h != start for h in held):
                ray.get([a.restore.remote(start) for a in actors])
            if start < 0:  # phase 1: calibration, initialisation, evaluation at init, checkpoint 0
                _initialise(actors, bld, data, phases)
                _evaluate(actors, data, bld, "init", phases)
                ray.get([a.checkpoint.remote() for a in actors])
                start = 0
            task = phases.start(name, total_steps * tokens_per_step, "tok")
            phases.bar.update(task, completed=start * tokens_per_step)
            if start < total_steps:
                batches = _take(data.train(start), total_steps - start)
                began = time.perf_counter()
                _stream(actors, "train_step", batches, start + 1, bld.max_in_flight,
                        on_done=lambda out: phases.advance(name, out["tokens"]), on_step=on_step)
                train_seconds += time.perf_counter() - began
            _evaluate(actors, data, bld, "final", phases)
            if any(ray.get([a.revert_regressed.remote() for a in actors])):
                _evaluate(actors, data, bld, "final", phases)
            return train_seconds
        except ACTOR_ERRORS + (ray.exceptions.RayTaskError,) as e:
            if isinstance(e, ray.exceptions.RayTaskError) and not isinstance(e.cause, ACTOR_ERRORS):
                raise
            failures += 1
            if failures > bld.max_failures:
                raise RuntimeError(f"BLD: {failures} actor failures (max_failures={bld.max_failures})") from e
            log.warning("BLD actor failed (%s); resuming from the last common checkpoint", type(e).__name__)
            _wait_ready(actors)
            restore_needed = True


def common_step(kept: list[list[int]]) -> int:
    """The latest step that every actor holds a checkpoint of (-1: none, start from the initialisation).

    Actors are at most `max_in_flight` <= `checkpoint_every` steps apart and each keeps its latest checkpoints
    besides step 0, so the slowest actor's latest checkpoint is also kept by the others."""
    common = set.intersection(*(set(k) for k in kept)) if kept else set()
    return max(common) if common else -1


def _take(it: Iterator[torch.Tensor], n: int) -> Iterator[torch.Tensor]:
    for _, x in zip(range(n), it):
        yield x


def _wait_ready(actors, timeout_s: float = 300) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            ray.get([a.ready.remote() for a in actors], timeout=60)
            return
        except ACTOR_ERRORS + (ray.exceptions.GetTimeoutError,):
            if time.time() > deadline:
                raise
            time.sleep(1)


def assemble_library(parent, spaces, reports, weight_keys, parent_key, tokens, bld, space, store_url) -> Library:
    """The library record: one entry per (layer, attention variant, FFN variant)."""
    results, sources = {}, {}
    for r in reports:
        results.update(r["results"])
        sources.update(r["sources"])
    layers = []
    for i, s in enumerate(spaces):
        entries = {}
        for a in s.attention:
            for f in s.ffn:
                from ..arch.blocks import BlockConfig

                block = BlockConfig(a.config, f.config)
                src = sources[f"L{i}/entry/{a.name}/{f.name}"]
                weights = {part: ("parent" if uid == "parent" else weight_keys[uid][0]) for part, uid in src.items()}
                digests = {part: weight_keys[uid][1] for part, uid in src.items() if uid != "parent"}
                res = results.get(f"L{i}/entry/{a.name}/{f.name}", {})
                trained = any(uid != "parent" for uid in src.values())
                parts = {part: _sub_block_bld(results.get(uid, {})) for part, uid in src.items() if uid != "parent"}
                bld_info = BLDRecord(res.get("nmse_init"), res.get("nmse_final"), tokens if trained else 0,
                                     a.is_parent and f.is_parent, parts)
                stats = {
                    "num_params": attention_params(parent, block) + ffn_params(parent, block),
                    "attention_num_params": attention_params(parent, block),
                    "ffn_num_params": ffn_params(parent, block),
                    "num_kv_heads": block.attention.num_kv_heads(parent.num_attention_heads),
                    "ffn_intermediate_size": block.ffn.kind.size(block.ffn) or 0,
                    "kv_bytes_per_token": kv_bytes_per_token(parent, block, "bfloat16"),
                }
                name = variant_name(block, parent.num_attention_heads)
                extra = {"bld": bld_info.to_json(), "weights": weights}
                if digests:  # checked when the child is assembled (`realize.entry_weights`)
                    extra["weights_sha256"] = digests
                entries[name] = Variant(name, stats, {}, block, extra)
        layers.append(entries)
    meta = LibraryMeta(
        num_attention_heads=parent.num_attention_heads,
        hidden_size=parent.hidden_size,
        num_layers=parent.num_hidden_layers,
        parent_key=parent_key,
        store_url=store_url,
        parent_config=parent.to_dict(),
        search_space=space.model_dump(mode="json"),
        bld=bld.model_dump(mode="json"),
    )
    return Library(layers, meta)


def _sub_block_bld(unit: dict) -> SubBlockBLD:
    """A trained sub-block's figures from its actor's report."""
    return SubBlockBLD(unit.get("nmse_init"), unit.get("nmse_final"), unit.get("reverted", False))
