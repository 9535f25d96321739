"""Read any supported `config.json` and summarise its architecture, layer by layer, without weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from rich.table import Table
from transformers import AutoConfig

from .blocks import BlockConfigError
from .config import PuzzleConfig
from .convert import SUPPORTED_PARENTS, puzzle_config_from_hf
from .modeling import PuzzleForCausalLM
from .stats import attention_params, ffn_params, kv_bytes_per_token, model_stats


def load_puzzle_config(path: str | Path) -> PuzzleConfig:
    """A `PuzzleConfig` from a `nemotron-nas`, Llama, Qwen2 or Mistral `config.json` (file or model folder)."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such config file")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from None
    model_type = data.get("model_type")
    if model_type not in SUPPORTED_PARENTS:
        raise BlockConfigError(f"{file}: model_type={model_type!r} is not one of {', '.join(SUPPORTED_PARENTS)}")
    try:
        if model_type == PuzzleConfig.model_type:
            return PuzzleConfig(**data)
        return puzzle_config_from_hf(AutoConfig.for_model(**data))
    except BlockConfigError as e:
        raise BlockConfigError(f"{file}: {e}") from None


def count_params_on_meta(config: PuzzleConfig) -> int:
    """Parameters of the real model class, instantiated on the meta device (no memory is allocated)."""
    with torch.device("meta"):
        model = PuzzleForCausalLM(config)
    return sum(p.numel() for p in model.parameters())


def _fmt_count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def layer_table(config: PuzzleConfig, dtype: str = "bfloat16") -> Table:
    table = Table(title=f"{config.num_hidden_layers} layers, hidden {config.hidden_size}, {config.num_attention_heads} heads")
    for col in ("layer", "attention", "kv heads", "ffn", "ffn width", "params", f"KV bytes/token ({dtype})"):
        table.add_column(col, justify="right" if col not in ("attention", "ffn") else "left")
    for i, b in enumerate(config.block_configs):
        kv = b.attention.num_kv_heads(config.num_attention_heads)
        table.add_row(
            str(i),
            b.attention.kind,
            str(kv) if b.attention.kind == "gqa" else "-",
            b.ffn.kind,
            str(b.ffn.intermediate_size) if b.ffn.kind == "swiglu" else "-",
            _fmt_count(attention_params(config, b) + ffn_params(config, b)),
            str(kv_bytes_per_token(config, b, dtype)),
        )
    return table


def totals_table(configs: dict[str, PuzzleConfig], dtype: str = "bfloat16") -> Table:
    """Totals for one or more architectures side by side (the first column is the reference)."""
    table = Table(title="totals")
    table.add_column("figure")
    names = list(configs)
    for name in names:
        table.add_column(name, justify="right")
    stats = {n: model_stats(c, dtype) for n, c in configs.items()}
    rows = [
        ("parameters", lambda s: _fmt_count(s.num_params)),
        ("block parameters", lambda s: _fmt_count(s.block_params)),
        (f"KV cache bytes/token ({dtype})", lambda s: f"{s.kv_bytes_per_token:,}"),
        ("GQA layers", lambda s: str(s.num_gqa_layers)),
    ]
    for label, fmt in rows:
        table.add_row(label, *[fmt(stats[n]) for n in names])
    if len(names) > 1:
        ref = stats[names[0]]
        table.add_row("parameters vs " + names[0], *[f"{stats[n].num_params / ref.num_params:.3f}x" for n in names])
        if ref.kv_bytes_per_token:
            table.add_row("KV cache vs " + names[0], *[f"{stats[n].kv_bytes_per_token / ref.kv_bytes_per_token:.3f}x" for n in names])
    return table
