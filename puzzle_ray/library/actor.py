"""The BLD actor: owns a contiguous range of parent layers and every variant of those layers.

Per micro-batch it runs its parent layers once (no grad), trains *all* variants of each layer on that same
activation (one shared parent forward per layer), and hands the parent's output hidden states to the next
actor through the object store. It checkpoints every variant's weights and optimiser state to the artifact
store, and a restarted actor resumes from its last checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..arch.modeling import PuzzleDecoderLayer, prepare_block_inputs
from ..arch.config import load_puzzle_config
from ..arch.weights import load_tensors
from ..optim.adamw import build_adamw
from ..optim.schedule import warmup_cosine_scheduler
from ..store import ArtifactStore
from ..ui import quiet_third_party
from .config import BLDConfig
from .init import LayerCalibration
from .space import LayerSpace
from .units import LayerEntries, BLDUnit, build_units, normalised_mse, pair_names

CKPT_KEEP = 2


@dataclass
class ActorSpec:
    store_url: str
    parent_key: str
    """Store key of the parent checkpoint folder (nemotron-nas export)."""
    run_key: str
    """Store prefix of this library build."""
    layers: tuple[int, int]
    """[first, last) parent layers owned."""
    spaces: list[LayerSpace]
    """Search space of each owned layer."""
    bld: BLDConfig
    total_steps: int
    threads: int | None
    num_layers: int

    @property
    def name(self) -> str:
        return f"layers_{self.layers[0]:03d}-{self.layers[1]:03d}"


class BLDWorker:
    """The actor's logic as a plain class (Ray wraps it in `ray.remote`), so it also runs in-process."""

    def __init__(self, spec: ActorSpec):
        quiet_third_party()  # a cluster's job environment may lack the variables that keep libraries quiet
        self.spec = spec
        if spec.threads:
            torch.set_num_threads(spec.threads)
        torch.manual_seed(0)
        self.store = ArtifactStore(spec.store_url)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        parent_dir = self.store.get_dir(spec.parent_key, prefix="puzzle-parent-")
        self.config = load_puzzle_config(parent_dir)
        self.config._attn_implementation = "sdpa"
        lo, hi = spec.layers
        self.first, self.last = lo == 0, hi == spec.num_layers
        self.parent_layers: dict[int, PuzzleDecoderLayer] = {}
        for i in range(lo, hi):
            layer = PuzzleDecoderLayer(self.config, i)
            layer.load_state_dict(load_tensors(parent_dir, f"model.layers.{i}."))
            self.parent_layers[i] = layer.to(self.device).eval().requires_grad_(False)
        if self.first:
            emb = load_tensors(parent_dir, "model.embed_tokens.")["weight"]
            self.embed = torch.nn.Embedding.from_pretrained(emb, freeze=True).to(self.device)
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        self.rotary = LlamaRotaryEmbedding(self.config).to(self.device)
        self.calib: dict[int, LayerCalibration] = {}
        self.units: dict[str, BLDUnit] = {}
        self.entries: dict[int, LayerEntries] = {}
        self.optimizer = self.scheduler = None
        self.step = -1  # -1: not initialised; 0: initialised (init checkpoint); n: trained n steps
        self.eval_sums: dict[str, dict[str, float]] = {}
        self.results: dict[str, dict] = {}
        self.compute_seconds = 0.0
        self.restored_from: list[int] = []  # checkpoints loaded after a failure (or by a restarted actor)
        self.restore(self.latest_step())

    # -- plumbing ------------------------------------------------------------------------------------------
    def _inputs(self, x: torch.Tensor):
        x = x.to(self.device)
        h = self.embed(x) if self.first else x  # (B, T, H)
        pos, mask = prepare_block_inputs(self.config, self.rotary, h)
        return h, pos, mask

    def _out(self, h: torch.Tensor):
        return {"tokens": h.shape[0] * h.shape[1]} if self.last else h.cpu()

    def ready(self) -> str:
        return self.spec.name

    def owned_layers(self) -> list[int]:
        return sorted(self.parent_layers)

    # -- phase 1: calibration and initialisation ------------------------------------------------------------
    def begin_calibration(self) -> None:
        linear_att = any(v.config.kind.linear_map for s in self.spec.spaces for v in s.attention)
        linear_ffn = any(v.config.kind.linear_map for s in self.spec.spaces for v in s.ffn)
        lstsq = self.spec.bld.linear_init == "lstsq"
        self.calib = {i: LayerCalibration(layer, lstsq and linear_att, lstsq and linear_ffn)
                      for i, layer in self.parent_layers.items()}
        self.units, self.entries = {}, {}

    @torch.no_grad()
    def calibrate(self, k: int, x: torch.Tensor):
        h, pos, mask = self._inputs(x)
        for i in sorted(self.parent_layers):
            h = self.calib[i].update(h, pos, mask)
        return self._out(h)

    def initialise_layer(self, i: int) -> int:
        """Build and initialise layer i's variants from its calibration (after `calibrate`); returns how many
        trainable units it has. The driver calls it per layer to show progress; `initialise` does the rest."""
        return len(self._build_layer(i, calibrated=True))

    def initialise(self) -> None:
        """Initialise the layers `initialise_layer` has not, then the optimiser: step 0."""
        for i in self.parent_layers:
            if i not in self.entries:
                self._build_layer(i, calibrated=True)
        self.calib = {}
        self._make_optimizer()
        self.step = 0

    def _build_units(self, calibrated: bool) -> None:
        self.units, self.entries = {}, {}
        for i in self.parent_layers:
            self._build_layer(i, calibrated)

    def _build_layer(self, i: int, calibrated: bool) -> dict[str, BLDUnit]:
        layer, space = self.parent_layers[i], self.spec.spaces[i - self.spec.layers[0]]
        calib = self.calib.get(i) if calibrated else None
        units = build_units(self.config, self.spec.bld, i, layer, space, calib, initialise=calibrated)
        for u in units.values():
            u.layer.to(self.device).train()
        for uid in [uid for uid, u in self.units.items() if u.layer_idx == i]:
            del self.units[uid]
        self.units.update(units)
        self.entries[i] = LayerEntries(i, layer, space, units, self.spec.bld.mode)
        return units

    def _make_optimizer(self) -> None:
        b = self.spec.bld
        params = [p for uid in sorted(self.units) for p in self.units[uid].parameters()]
        if not params:
            self.optimizer = self.scheduler = None
            return
        self.optimizer = build_adamw(b, params)
        total = self.spec.total_steps
        self.scheduler = warmup_cosine_scheduler(self.optimizer, total, b.warmup_steps_for(total), b.min_lr_ratio)

    # -- evaluation: normalised MSE of every unit and every library entry -----------------------------------
    def begin_eval(self) -> None:
        self.eval_sums = {}

    def _acc(self, key: str, value: float) -> None:
        s = self.eval_sums.setdefault(key, {"sum": 0.0, "n": 0})
        s["sum"] += value
        s["n"] += 1

    @torch.no_grad()
    def evaluate(self, k: int, x: torch.Tensor):
        h, pos, mask = self._inputs(x)
        for i in sorted(self.parent_layers):
            target = self.parent_layers[i](h, pos, mask, None)
            for uid, u in self.units.items():
                if u.layer_idx == i:
                    self._acc(uid, normalised_mse(u.layer(h, pos, mask, None), target).item())
            entries = self.entries[i]
            for a, f in pair_names(entries.space):
                out = entries.forward(a, f, h, pos, mask)
                self._acc(f"L{i}/entry/{a.name}/{f.name}", normalised_mse(out, target).item())
            h = target
        return self._out(h)

    def end_eval(self, tag: str) -> dict[str, float]:
        values = {key: s["sum"] / s["n"] for key, s in self.eval_sums.items()}
        for key, v in values.items():
            self.results.setdefault(key, {})[f"nmse_{tag}"] = v
        return values

    # -- phase 2: training ----------------------------------------------------------------------------------
    def train_step(self, k: int, x: torch.Tensor):
        """Step k (1-based): one parent forward per layer, one optimiser step for every variant."""
        start = time.perf_counter()
        h, pos, mask = self._inputs(x)
        losses = []
        for i in sorted(self.parent_layers):
            with torch.no_grad():
                target = self.parent_layers[i](h, pos, mask, None)  # (B, T, H) shared by all variants
            for uid in sorted(self.units):
                u = self.units[uid]
                if u.layer_idx == i:
                    loss = normalised_mse(u.layer(h, pos, mask, None), target)
                    losses.append(loss)
                    u.losses.append((k, loss.item()))
            h = target
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()  # units share no parameters: each gets its own gradient
            for uid in sorted(self.units):
                torch.nn.utils.clip_grad_norm_(self.units[uid].parameters(), self.spec.bld.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
        self.step = k
        self.compute_seconds += time.perf_counter() - start
        if k % self.spec.bld.checkpoint_every == 0 or k == self.spec.total_steps:
            self.checkpoint()
        return self._out(h)

    # -- checkpoints ----------------------------------------------------------------------------------------
    def _ckpt_prefix(self) -> str:
        return f"{self.spec.run_key}/ckpt/{self.spec.name}"

    def checkpoint(self) -> None:
        """Weights + optimiser state + loss history at `self.step`; `state.json` is written last (completion)."""
        key = f"{self._ckpt_prefix()}/step_{self.step:08d}"
        tensors = {f"{uid}::{name}": t for uid, u in self.units.items() for name, t in u.weights().items()}
        self.store.write_tensors(f"{key}/units.safetensors", tensors)
        if self.optimizer is not None:
            self.store.write_torch(f"{key}/optim.pt", {"optimizer": self.optimizer.state_dict(),
                                                       "scheduler": self.scheduler.state_dict()})
        losses = {uid: u.losses for uid, u in self.units.items()}
        self.store.write_json(f"{key}/state.json", {"step": self.step, "results": self.results, "losses": losses})
        for old in self._ckpt_steps()[:-CKPT_KEEP]:
            if old > 0:  # step 0 (the initialisation) is kept: regressed variants revert to it
                self.store.delete(f"{self._ckpt_prefix()}/step_{old:08d}")

    def _ckpt_steps(self) -> list[int]:
        steps = []
        for name in self.store.list(self._ckpt_prefix()):
            if name.startswith("step_") and self.store.exists(f"{self._ckpt_prefix()}/{name}/state.json"):
                steps.append(int(name[5:]))
        return sorted(steps)

    def latest_step(self) -> int:
        steps = self._ckpt_steps()
        return steps[-1] if steps else -1

    def checkpoint_steps(self) -> list[int]:
        """Steps of every complete checkpoint this actor has kept (the initialisation's 0 and the latest ones)."""
        return self._ckpt_steps()

    def held_step(self) -> int:
        """The step whose weights the actor holds now (-1: uninitialised)."""
        return self.step

    def restore(self, step: int) -> int:
        """Load the checkpoint of `step` (-1: back to uninitialised). Returns the step now held."""
        if step < 0:
            self.units, self.entries, self.step = {}, {}, -1
            return -1
        key = f"{self._ckpt_prefix()}/step_{step:08d}"
        state = self.store.read_json(f"{key}/state.json")
        if not self.units:  # build the modules; their weights come from the checkpoint below
            self._build_units(calibrated=False)
        tensors = self.store.read_tensors(f"{key}/units.safetensors")
        for uid, u in self.units.items():
            own = {name: tensors[f"{uid}::{name}"] for name in u.weights()}
            with torch.no_grad():
                for name, p in u.layer.named_parameters():
                    if name in own:
                        p.copy_(own[name])
            u.losses = [tuple(x) for x in state["losses"].get(uid, [])]
        self._make_optimizer()
        if self.optimizer is not None and step > 0:
            opt = self.store.read_torch(f"{key}/optim.pt")
            self.optimizer.load_state_dict(opt["optimizer"])
            self.scheduler.load_state_dict(opt["scheduler"])
        self.results = state["results"]
        self.step = state["step"]
        self.restored_from.append(self.step)
        return self.step

    def revert_regressed(self) -> list[str]:
        """Units whose held-out NMSE got worse than at initialisation go back to their initial weights.

        (Adam at a fixed learning rate can walk away from an initialisation that is already near-optimal, such
        as the least-squares linear maps.) Returns the reverted unit ids; the caller re-evaluates.
        """
        regressed = [uid for uid in self.units if self.results[uid]["nmse_final"] > self.results[uid]["nmse_init"]]
        if not regressed:
            return []
        tensors = self.store.read_tensors(f"{self._ckpt_prefix()}/step_{0:08d}/units.safetensors")
        for uid in regressed:
            with torch.no_grad():
                for name, p in self.units[uid].layer.named_parameters():
                    if f"{uid}::{name}" in tensors:
                        p.copy_(tensors[f"{uid}::{name}"])
            self.results[uid]["reverted"] = True
        return regressed

    # -- results --------------------------------------------------------------------------------------------
    def save_weights(self, prefix: str) -> dict[str, tuple[str, str]]:
        """Final weights of every unit to `prefix/<uid>.safetensors`; returns uid -> (store key, SHA-256)."""
        saved = {}
        for uid, u in self.units.items():
            key = f"{prefix}/{uid}.safetensors"
            saved[uid] = (key, self.store.write_tensors(key, u.weights()))
        return saved

    def report(self) -> dict:
        return {
            "results": self.results,
            "losses": {uid: u.losses for uid, u in self.units.items()},
            "sources": {
                f"L{i}/entry/{a.name}/{f.name}": e.weight_sources(a, f)
                for i, e in self.entries.items()
                for a, f in pair_names(e.space)
            },
            "compute_seconds": self.compute_seconds,
            "restored_from": self.restored_from,
            "layers": self.spec.name,
        }
