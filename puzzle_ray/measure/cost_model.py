"""The cost model and its check: a child's costs predicted from per-variant stats vs measured end-to-end.

    predicted prefill = non-block prefill + sum over layers of the chosen variant's prefill_ms
    predicted decode  = non-block decode  + sum over layers of decode_ms     (one step of B tokens)
    decode tokens/s   = B / decode step;   memory = parameters + B x (P + D) tokens of KV cache

`measure_model_costs` runs the real model the way a server does the work: one prefill forward of B x P
tokens into a fresh `PuzzleCache`, then D single-token forwards with that cache, each feeding the greedy token
back (last-position logits only). It deliberately does not call `generate()`: generate adds per-step
logits processing, stopping criteria and bookkeeping that no engine pays and that would swamp small models.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..arch.cache import PuzzleCache
from ..arch.config import PuzzleConfig
from ..arch.modeling import PuzzleForCausalLM
from ..arch.stats import dtype_bytes, model_stats
from ..library.record import Library, LibraryError, layer_key, variant_name
from .config import MeasureConfig, Scenario
from .device import torch_threads
from .hardware import device_memory_bytes, hardware_name
from .stacks import random_model
from .timing import DeviceTimer, quiet_gc, summarize
from .timed_block import MIB

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCosts:
    """A whole model's costs at one batch size of a scenario (predicted or measured)."""

    batch_size: int
    decode_len: int
    prefill_ms: float
    """One prefill of batch_size x prefill_len tokens."""
    decode_ms: float
    """One decode step of batch_size tokens (average over the scenario's decode)."""
    memory_mib: float
    """Parameters + batch_size x (prefill_len + decode_len) tokens of KV cache."""
    prefill_ms_iqr: float = 0.0
    decode_ms_iqr: float = 0.0
    peak_memory_mib: float | None = None
    """Measured peak of allocated device memory (CUDA only)."""
    fits: bool = True
    """False when the batch would not fit the device's memory (no timings then)."""

    @property
    def decode_tokens_per_s(self) -> float:
        return self.batch_size * 1e3 / self.decode_ms if self.decode_ms > 0 else math.inf

    @property
    def runtime_ms(self) -> float:
        return self.prefill_ms + self.decode_len * self.decode_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decode_tokens_per_s": self.decode_tokens_per_s, "runtime_ms": self.runtime_ms}


def _scenario_of(library: Library, scenario: Scenario | None) -> Scenario:
    recorded = library.meta.scenario
    if recorded is None:
        raise LibraryError("the library has no measured stats (meta['scenario'] is missing): run the measure stage")
    recorded = Scenario(**recorded)
    if scenario is not None:
        for batch in scenario.batch_sizes:
            if scenario.workload(batch) != recorded.workload(batch) or batch not in recorded.batch_sizes:
                raise LibraryError(
                    f"the library was measured for {recorded.model_dump()}, not for {scenario.model_dump()}"
                )
        return scenario
    return recorded


def predict_model_costs(
    config: PuzzleConfig, library: Library, scenario: Scenario | None = None
) -> dict[int, ModelCosts]:
    """Predicted costs of the model `config` (parent or child) per batch size, from the library's stats."""
    scenario = _scenario_of(library, scenario)
    if config.num_hidden_layers != library.num_layers:
        raise LibraryError(f"the model has {config.num_hidden_layers} layers, the library {library.num_layers}")
    chosen = []
    for i, block in enumerate(config.block_configs):
        block = block.resolve(config.hidden_size)
        match = [
            v
            for v in library.layers[i].values()
            if v.block_config is not None and v.block_config.resolve(config.hidden_size) == block
        ]
        if not match:
            raise LibraryError(
                f"{layer_key(i)}: variant {variant_name(block, config.num_attention_heads)!r} is not in the library"
            )
        chosen.append(match[0])
    non_block = library.meta.non_block
    if non_block is None:
        raise LibraryError("the library has no non-block stats (meta['non_block']): run the measure stage")
    out = {}
    for batch in scenario.batch_sizes:
        parts = [v.stats_for_batch(batch) for v in chosen] + [_for_batch(non_block, batch)]
        memory = sum(p["memory_mib"] for p in parts)
        if any(p.get("fits", True) is False or "prefill_ms" not in p for p in parts):
            out[batch] = ModelCosts(batch, scenario.decode_len, math.nan, math.nan, memory, fits=False)
            continue
        out[batch] = ModelCosts(
            batch_size=batch,
            decode_len=scenario.decode_len,
            prefill_ms=sum(p["prefill_ms"] for p in parts),
            decode_ms=sum(p["decode_ms"] for p in parts),
            memory_mib=memory,
            prefill_ms_iqr=math.sqrt(sum(p.get("prefill_ms_iqr", 0.0) ** 2 for p in parts)),
            decode_ms_iqr=math.sqrt(sum(p.get("decode_ms_iqr", 0.0) ** 2 for p in parts)),
        )
    return out


def _for_batch(stats: dict[str, Any], batch: int) -> dict[str, Any]:
    flat = {k: v for k, v in stats.items() if k != "by_batch"}
    return {**flat, **stats.get("by_batch", {}).get(str(batch), {})}


def load_model_for_timing(
    model: PuzzleForCausalLM | PuzzleConfig | str | Path, scenario: Scenario, device: str, seed: int = 0
) -> PuzzleForCausalLM:
    """The model to time, on `device` in the scenario's dtype. A folder with safetensors weights is loaded
    (parent families are converted); a config alone gets random weights (same runtime)."""
    from ..arch.convert import convert_from_hf
    from ..arch.config import load_puzzle_config

    dtype = scenario.torch_dtype
    if isinstance(model, PuzzleForCausalLM):
        return model.to(device, dtype).eval()
    if isinstance(model, PuzzleConfig):
        return random_model(PuzzleForCausalLM, model, dtype, device, seed)
    path = Path(model)
    if path.is_dir() and any(path.glob("*.safetensors")):
        return convert_from_hf(path, dtype=dtype).to(device).eval()
    config = load_puzzle_config(path)  # raises naming the file when it is missing or malformed
    log.info("%s: no weights, timing the architecture with random weights", path)
    return random_model(PuzzleForCausalLM, config, dtype, device, seed)


def _estimate_bytes(config: PuzzleConfig, scenario: Scenario, batch: int) -> int:
    stats = model_stats(config, scenario.dtype)
    b = dtype_bytes(scenario.dtype)
    widest = max(
        [config.hidden_size]
        + [blk.ffn.kind.activation_width(config, blk.ffn) for blk in config.block_configs]
    )
    activations = batch * scenario.prefill_len * (4 * config.hidden_size + widest) * b
    return stats.num_params * b + 2 * batch * scenario.total_len * stats.kv_bytes_per_token + activations


def measure_model_costs(
    model: PuzzleForCausalLM | PuzzleConfig | str | Path,
    scenario: Scenario,
    config: MeasureConfig | None = None,
    device: str | None = None,
) -> dict[int, ModelCosts]:
    """Measured end-to-end costs per batch size: prefill and per-step decode time (median and IQR over
    `config.repeats` requests, after `config.warmup`), and memory from the formula (plus the CUDA peak)."""
    return measure_models_costs({"model": model}, scenario, config, device)["model"]


def measure_models_costs(
    models: Mapping[str, PuzzleForCausalLM | PuzzleConfig | str | Path],
    scenario: Scenario,
    config: MeasureConfig | None = None,
    device: str | None = None,
) -> dict[str, dict[int, ModelCosts]]:
    """`measure_model_costs` of several models, timed in rounds: per round one request of each model (the
    order rotating), so that the machine's speed changing during the measurement moves every model alike and
    their ratios (a child's speed-up over its parent) stay right. All models are held in memory together."""
    config = config or MeasureConfig()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = {name: load_model_for_timing(m, scenario, device, config.seed) for name, m in models.items()}
    stats = {name: model_stats(model.config, scenario.dtype) for name, model in loaded.items()}
    capacity = device_memory_bytes(config, device)
    timer, cuda = DeviceTimer(device, config.cpu_clock), torch.device(device).type == "cuda"
    out: dict[str, dict[int, ModelCosts]] = {name: {} for name in loaded}
    with torch_threads(None if cuda else config.torch_threads):
        for batch in scenario.batch_sizes:
            runs = {}
            for name, model in loaded.items():
                mconfig, st = model.config, stats[name]
                memory = (st.num_params * dtype_bytes(scenario.dtype)
                          + batch * scenario.total_len * st.kv_bytes_per_token) / MIB
                if _estimate_bytes(mconfig, scenario, batch) > capacity:
                    out[name][batch] = ModelCosts(batch, scenario.decode_len, math.nan, math.nan, memory, fits=False)
                    continue
                gen = torch.Generator().manual_seed(config.seed)
                prompt = torch.randint(0, mconfig.vocab_size, (batch, scenario.prefill_len), generator=gen)  # (B, P)
                runs[name] = (prompt.to(device), memory, [], [])
            names = list(runs)
            if not names:
                continue
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            try:
                for r in range(config.warmup + config.repeats):
                    for name in names[r % len(names):] + names[: r % len(names)]:
                        prompt, _, prefills, decodes = runs[name]
                        with quiet_gc():
                            p, d = _request(loaded[name], prompt, scenario.decode_len, timer)
                        if r >= config.warmup:
                            prefills.append(p)
                            decodes.append(d)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                for name, (_, memory, _, _) in runs.items():
                    out[name][batch] = ModelCosts(batch, scenario.decode_len, math.nan, math.nan, memory, fits=False)
                continue
            peak = torch.cuda.max_memory_allocated(device) / MIB if cuda else None  # of all models together
            for name, (_, memory, prefills, decodes) in runs.items():
                p, d = summarize(prefills), summarize(decodes)
                out[name][batch] = ModelCosts(batch, scenario.decode_len, p.median, d.median, memory, p.iqr, d.iqr,
                                              peak if len(runs) == 1 else None)
    return out


@torch.inference_mode()
def _request(model, prompt, decode_len: int, timer: DeviceTimer) -> tuple[float, float]:
    """One request: (prefill ms, mean decode-step ms), from a fresh cache."""
    state: dict[str, Any] = {"cache": PuzzleCache(model.config)}

    def prefill():
        logits = model(input_ids=prompt, cache=state["cache"], use_cache=True, logits_to_keep=1).logits  # (B, 1, V)
        state["token"] = logits[:, -1:].argmax(-1)  # (B, 1)

    def decode():
        token, cache = state["token"], state["cache"]
        for _ in range(decode_len):
            token = model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1:].argmax(-1)

    return timer(prefill), timer(decode) / decode_len


def compare_costs(predicted: dict[int, ModelCosts], measured: dict[int, ModelCosts]) -> list[dict[str, Any]]:
    """One row per batch size: predicted vs measured prefill, decode throughput and memory, errors in %."""
    rows = []
    for batch, p in predicted.items():
        m = measured[batch]
        rows.append(
            {
                "batch": batch,
                "prefill_ms_pred": p.prefill_ms,
                "prefill_ms_meas": m.prefill_ms,
                "prefill_err_pct": _err(p.prefill_ms, m.prefill_ms),
                "decode_tok_s_pred": p.decode_tokens_per_s,
                "decode_tok_s_meas": m.decode_tokens_per_s,
                "decode_err_pct": _err(p.decode_tokens_per_s, m.decode_tokens_per_s),
                "memory_mib_pred": p.memory_mib,
                "memory_mib_meas": m.memory_mib if m.peak_memory_mib is None else m.peak_memory_mib,
            }
        )
    return rows


def _err(pred: float, meas: float) -> float:
    return 100.0 * (pred - meas) / meas if meas and math.isfinite(meas) else math.nan


def device_label(device: str | None = None) -> str:
    return hardware_name(device or ("cuda" if torch.cuda.is_available() else "cpu"))
