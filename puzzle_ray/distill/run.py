"""`distill()`: validate, budget the steps, train the child against the parent on Ray Train, export the result.

Layout in the artifact store, under `distill/<hash of config, parent, child, data>/`:

    ray/gkd/...            Ray Train's run folder: checkpoints and its own state (a re-submitted run resumes)
    model/                 the distilled child, nemotron-nas export layout (+ tokenizer), `.complete` last
    complete.json          written last: a finished stage is returned at once when asked again
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..configs import content_hash
from ..store import ArtifactStore
from .batch_source import BatchSource
from .config import DistillConfig
from .models import DistillInputError, check_pair
from .worker import FINAL_WEIGHTS, STATE_FILE, WorkerArgs, gkd_worker

log = logging.getLogger(__name__)

RUN_NAME = "gkd"


@dataclass(frozen=True)
class StepBudget:
    seq_len: int
    total_steps: int
    tokens_per_step: int

    @property
    def tokens(self) -> int:
        return self.total_steps * self.tokens_per_step


def step_budget(config: DistillConfig, data: BatchSource, vocab_size: int) -> StepBudget:
    """Peek at one batch (sequence length, token ids in range) and turn the token budget into optimizer steps."""
    if not callable(getattr(data, "batches", None)):
        raise DistillInputError(f"data: {type(data).__name__} has no batches(...) method (see distill.batch_source)")
    try:
        first = next(iter(data.batches(1, rank=0, world_size=1, seed=config.seed)))
    except StopIteration:
        raise DistillInputError("data: the source yields no batches") from None
    if first.ndim != 2 or first.shape[1] < 2:
        raise DistillInputError(f"data: batches must be (B, T) token ids with T >= 2, got {tuple(first.shape)}")
    if int(first.min()) < 0 or int(first.max()) >= vocab_size:
        raise DistillInputError(f"data: token ids span [{int(first.min())}, {int(first.max())}], outside the "
                                f"models' vocabulary of {vocab_size}")
    seq_len = first.shape[1]
    tokens_per_step = config.sequences_per_step * seq_len
    steps = config.token_budget // tokens_per_step
    if steps == 0:
        raise DistillInputError(f"token_budget={config.token_budget} is less than one optimizer step "
                                f"({config.sequences_per_step} sequences x {seq_len} tokens = {tokens_per_step})")
    return StepBudget(seq_len, steps, tokens_per_step)


def data_identity(data: BatchSource) -> str:
    """What names the data in the cache key: the source's own content hash when it has one, else its size and
    first batch (sources are deterministic given the seed; the data layer's caches are content-addressed)."""
    for attr in ("content_hash", "cache_key", "fingerprint"):
        value = getattr(data, attr, None)
        if value is not None:
            return str(value() if callable(value) else value)
    first = next(iter(data.batches(8, rank=0, world_size=1, seed=0)))
    size = len(data) if hasattr(data, "__len__") else None
    return f"{type(data).__qualname__}:{size}:{content_hash(first.tolist())}"


def _tracking_uri() -> str:
    """The driver's MLflow URI, with a relative SQLite path made absolute (workers run in other folders)."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        uri = prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def _drain_progress(queue, total_tokens: int, done: threading.Event) -> None:
    """The driver's progress bar, fed by rank 0 through a Ray queue while `fit()` blocks the main thread."""
    from ray.util.queue import Empty

    from ..ui import progress

    with progress("tok") as bar:
        task = bar.add_task("GKD", total=total_tokens)
        while not done.is_set() or not queue.empty():
            try:
                update = queue.get(timeout=0.5)
            except Empty:
                continue
            bar.update(task, completed=update["tokens"],
                       description=f"GKD step {update['step']} loss {update['loss']:.4f}")


def distill(
    parent_dir: str | Path,
    child_dir: str | Path,
    data: BatchSource,
    config: DistillConfig,
    store: ArtifactStore,
    mlflow_run_id: str | None = None,
    tokenizer_dir: str | Path | None = None,
    show_progress: bool = True,
) -> Path:
    """Distil `child_dir` from `parent_dir` on `data`; return the folder of the exported distilled child.

    Every input is checked before Ray starts any worker. Metrics go to the MLflow run `mlflow_run_id` (from rank
    0 only). The tokenizer is taken from `tokenizer_dir`, else from the child's or the parent's folder.
    """
    import ray

    parent_dir, child_dir = Path(parent_dir), Path(child_dir)
    parent_cfg, _ = check_pair(parent_dir, child_dir)
    steps = step_budget(config, data, parent_cfg.vocab_size)
    store.check_writable()
    from ..arch.weights import fingerprint

    key = "distill/" + content_hash({
        "config": config.result_hash_fields(),
        "parent": fingerprint(parent_dir),
        "child": fingerprint(child_dir),
        "data": data_identity(data),
    })
    if store.exists(f"{key}/complete.json"):
        log.info("GKD %s is complete: reusing it", key)
        return store.get_dir(f"{key}/model", prefix="gkd-child-")

    parent_ref, child_ref, store_url = str(parent_dir.resolve()), str(child_dir.resolve()), None
    if not store.is_local:  # workers on other machines read the models through the store
        parent_ref, child_ref, store_url = f"{key}/inputs/parent", f"{key}/inputs/child", store.url
        for ref, folder in ((parent_ref, parent_dir), (child_ref, child_dir)):
            if not store.dir_complete(ref):
                store.put_dir(folder, ref)

    from ..cluster import connect

    connect()
    queue = None
    if show_progress:
        from ray.util.queue import Queue

        queue = Queue(actor_options={"num_cpus": 0})
    args = WorkerArgs(config, parent_ref, child_ref, data, steps.total_steps, steps.seq_len, store_url,
                      _tracking_uri() if mlflow_run_id else None, mlflow_run_id, queue)
    storage = store.path(f"{key}/ray") if store.is_local else store.uri(f"{key}/ray")
    trainer = _trainer(config, args, storage)
    _log_params(mlflow_run_id, config, steps, key)
    done = threading.Event()
    drain = threading.Thread(target=_drain_progress, args=(queue, steps.tokens, done), daemon=True)
    if queue is not None:
        drain.start()
    start = time.perf_counter()
    try:
        result = trainer.fit()
    finally:
        done.set()
        if queue is not None:
            drain.join(timeout=10)
            ray.kill(queue.actor)
    wall = time.perf_counter() - start
    if result.checkpoint is None:
        raise RuntimeError(f"GKD run {storage}/{RUN_NAME} finished without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        state = _read_state(Path(folder))
        if state["step"] != steps.total_steps:
            raise RuntimeError(f"GKD stopped at step {state['step']} of {steps.total_steps}")
        out = _export(Path(folder) / FINAL_WEIGHTS, child_dir, tokenizer_dir or _tokenizer_dir(child_dir, parent_dir),
                      _card_facts(parent_dir, child_dir, config, steps))
    model_key = f"{key}/model"
    store.put_dir(out, model_key)
    store.write_json(f"{key}/complete.json", {"time": time.time(), **state, "wall_s": wall, "plan": steps.__dict__})
    _log_result(mlflow_run_id, state, wall, store.uri(model_key))
    if not store.is_local:
        return out  # the same files as in the store
    shutil.rmtree(out.parent, ignore_errors=True)
    return store.get_dir(model_key, out)


def _trainer(config: DistillConfig, args: WorkerArgs, storage: str):
    """The Ray Train run: workers and their resources, where checkpoints go, how many failures to survive."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": config.cpus_per_worker}  # use_gpu adds one GPU per worker
    # DeepSpeed picks its accelerator from the environment; CPU workers must not probe for CUDA/XPU/...
    env = {} if config.use_gpu else {"DS_ACCELERATOR": "cpu"}
    return TorchTrainer(
        gkd_worker,
        train_loop_config=args,
        scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=config.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=RUN_NAME,  # the same name and storage path: a re-submitted run resumes from its checkpoint
            storage_path=storage,
            failure_config=FailureConfig(max_failures=config.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.checkpoints_to_keep),
            worker_runtime_env={"env_vars": env},
        ),
    )


def _read_state(folder: Path) -> dict:
    return json.loads((folder / STATE_FILE).read_text())


def _tokenizer_dir(*candidates: Path) -> Path | None:
    for folder in candidates:
        if any((folder / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
            return folder
    return None


def _card_facts(parent_dir: Path, child_dir: Path, config: DistillConfig, steps: StepBudget):
    """The distilled child's model-card facts: the undistilled child's (its card), plus how GKD ran."""
    from ..arch.card import CardFacts, card_facts, distill_facts, parent_info

    facts = card_facts(child_dir) or CardFacts(parent=parent_info(parent_dir))
    facts.distill = distill_facts(config, tokens=steps.tokens, steps=steps.total_steps)
    return facts


def _export(weights_file: Path, child_dir: Path, tokenizer_dir: Path | None, facts=None) -> Path:
    """The child's architecture with the distilled weights, written in the nemotron-nas layout (with the model
    card of `facts`, an `arch.card.CardFacts`, when given)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from ..arch import PuzzleForCausalLM
    from ..arch.export import export_pretrained
    from ..arch.config import load_puzzle_config

    config = load_puzzle_config(child_dir)
    state = load_file(weights_file)
    dtype = next(iter(state.values())).dtype
    with torch.device("meta"):
        model = PuzzleForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"{weights_file}: missing={missing} unexpected={unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)  # buffers were built on meta
    model = model.to(dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=False) if tokenizer_dir else None
    out = Path(tempfile.mkdtemp(prefix="gkd-export-")) / "model"
    card = None
    if facts is not None:
        from ..arch.card import child_card

        card = child_card(config, facts)
    export_pretrained(model, out, tokenizer=tokenizer, card=card)
    return out


def _log_params(run_id: str | None, config: DistillConfig, steps: StepBudget, key: str) -> None:
    if not run_id:
        return
    from mlflow import MlflowClient

    client = MlflowClient()
    params = {f"gkd.{k}": str(v) for k, v in config.model_dump(mode="json").items()}
    params.update({"gkd.total_steps": str(steps.total_steps), "gkd.seq_len": str(steps.seq_len)})
    from mlflow.entities import Param

    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    client.set_tag(run_id, "gkd.key", key)


def _log_result(run_id: str | None, state: dict, wall: float, model_uri: str) -> None:
    if not run_id:
        return
    from mlflow import MlflowClient

    client = MlflowClient()
    client.log_metric(run_id, "gkd/wall_s", wall)
    client.log_metric(run_id, "gkd/restarts", state.get("restarts", 0))
    client.set_tag(run_id, "gkd.model", model_uri)
