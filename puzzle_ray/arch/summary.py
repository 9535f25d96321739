"""Summarise an architecture, layer by layer, without weights (rich tables; `load_puzzle_config` reads one)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from .stats import attention_params, ffn_params, kv_bytes_per_token, model_stats

if TYPE_CHECKING:
    from .config import PuzzleConfig
    from .stats import Shaped


def count_params_on_meta(config: PuzzleConfig) -> int:
    """Parameters of the real model class, instantiated on the meta device (no memory is allocated)."""
    import torch  # here: the tables need neither torch nor the model code (`puzzle-ray inspect` starts faster)

    from .modeling import PuzzleForCausalLM

    with torch.device("meta"):
        model = PuzzleForCausalLM(config)
    return sum(p.numel() for p in model.parameters())


def _fmt_count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def layer_table(config: Shaped, dtype: str = "bfloat16") -> Table:
    table = Table(title=f"{config.num_hidden_layers} layers, hidden {config.hidden_size}, "
                        f"{config.num_attention_heads} heads")
    for col in ("layer", "attention", "kv heads", "ffn", "ffn width", "params", f"KV bytes/token ({dtype})"):
        table.add_column(col, justify="right" if col not in ("attention", "ffn") else "left")
    for i, b in enumerate(config.block_configs):
        heads, a, f = config.num_attention_heads, b.attention, b.ffn
        kv, width = a.kind.size(a, heads), f.kind.size(f, heads)
        table.add_row(
            str(i),
            str(a.kind),
            "-" if kv is None else str(kv),
            str(f.kind),
            "-" if width is None else str(width),
            _fmt_count(attention_params(config, b) + ffn_params(config, b)),
            str(kv_bytes_per_token(config, b, dtype)),
        )
    return table


def totals_table(configs: dict[str, Shaped], dtype: str = "bfloat16") -> Table:
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
            table.add_row("KV cache vs " + names[0],
                          *[f"{stats[n].kv_bytes_per_token / ref.kv_bytes_per_token:.3f}x" for n in names])
    return table


def engines_table(config: Shaped) -> Table:
    """Which inference engines serve this architecture as an exported `nemotron-nas` checkpoint, and why not
    (the compatibility table of `serving/matrix.py`)."""
    from ..serving.check import engine_report
    from ..serving.matrix import ENGINE_NAMES
    from .families import families_used_by

    table = Table(title="serving engines (nemotron-nas export)")
    table.add_column("engine")
    table.add_column("serves it")
    table.add_column("why not", overflow="fold")
    for engine, reasons in engine_report(config.block_configs).items():
        reasons += [f"{f.name} blocks" for f in families_used_by(config) if engine not in f.engines]
        table.add_row(ENGINE_NAMES[engine], "yes" if not reasons else "[red]no[/]", "; ".join(reasons))
    return table
