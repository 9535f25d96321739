"""What a workflow will do, before it does it: cheap pre-flight checks and a work estimate (no weights loaded)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from ..arch.blocks import BlockConfig
from ..arch.config import PuzzleConfig
from ..arch.stats import block_params, model_stats
from ..arch.config import load_puzzle_config
from ..library.space import expand, trained_units
from ..parent.gguf import GGUFError, gguf_puzzle_config, read_gguf_header, resolve_gguf
from ..parent.model import embedded_puzzle_config
from ..store import ArtifactStore
from .config import WorkflowConfig

# Estimate of accelerator time: bf16 dense peak of an H100 SXM at a typical 40% utilisation.
PEAK_FLOPS, MFU = 989e12, 0.4


class PreflightError(ValueError):
    """A problem found before any expensive work; the message names the field or file."""


def parent_architecture(cfg: WorkflowConfig) -> PuzzleConfig:
    """The parent's config from its folder (or `parent.architecture`), its GGUF metadata, or the embedded
    default's, without weights."""
    if cfg.parent.gguf is not None:
        if cfg.parent.architecture is not None and not _gguf_here(cfg):
            return load_puzzle_config(cfg.parent.architecture)
        return gguf_puzzle_config(resolve_gguf(cfg.parent.gguf))  # header and metadata only: no dequantising
    if cfg.parent.path is not None:
        keep_path = cfg.parent.path.exists() or cfg.parent.architecture is None
        source = cfg.parent.path if keep_path else cfg.parent.architecture
        if not Path(source).exists():
            raise PreflightError(f"parent.path: {cfg.parent.path} does not exist")
        return load_puzzle_config(source)
    return embedded_puzzle_config(cfg.parent.embedded.model, cfg.parent.embedded.tokenizer.vocab_size)


def _gguf_here(cfg: WorkflowConfig) -> bool:
    try:
        resolve_gguf(cfg.parent.gguf)
    except GGUFError:
        return False
    return True


def preflight(cfg: WorkflowConfig, store: ArtifactStore) -> None:
    """Everything that can be checked cheaply: store, parent folder, data sources, search space vs parent."""
    from ..arch.weights import checkpoint_files
    from ..data.sources import resolve_source

    if cfg.parent.gguf is not None:
        read_gguf_header(resolve_gguf(cfg.parent.gguf))  # missing package or file, truncated, unsupported
    if cfg.parent.path is not None:
        if not cfg.parent.path.is_dir():
            raise PreflightError(f"parent.path: {cfg.parent.path} is not a model folder")
        checkpoint_files(cfg.parent.path)  # safetensors only
    parent = parent_architecture(cfg)
    try:
        expand(cfg.search_space, parent)
    except ValueError as e:
        raise PreflightError(str(e)) from None
    if cfg.data is not None:
        for i, source in enumerate(cfg.data.sources):
            resolve_source(i, source)  # missing path, empty source, wrong field: DataError
    check_search_keys(cfg)
    store.check_writable()  # last: it creates the store's folder, which a failed check should not leave behind


def check_search_keys(cfg: WorkflowConfig) -> None:
    """The objective and every constraint name a quantity the workflow's library will hold (the score stage's
    metrics, the measure stage's stats), so a typo stops the run before BLD and scoring, not in `solve`."""
    from ..measure.results import BLOCK_STATS
    from ..solve.constraints import THROUGHPUT, parse_constraint

    where = [("search.objective", cfg.search.objective)]
    where += [(f"search.constraints[{i}]", parse_constraint(c).key) for i, c in enumerate(cfg.search.constraints)]
    for field, key in where:
        if key == THROUGHPUT:
            continue
        source, name = key.split(".", 1)
        known = sorted(cfg.score.metrics) if source == "metrics" else sorted(BLOCK_STATS)
        if name not in known:
            raise PreflightError(f"{field}: {key!r} is not in the library this workflow builds; "
                                 f"{source}.* has {', '.join(known)}")


def work_estimate(cfg: WorkflowConfig) -> Table:
    """Variants, tokens and FLOPs per stage (training: 6 x params x tokens; forward: 2 x params x tokens)."""
    parent = parent_architecture(cfg)
    spaces = expand(cfg.search_space, parent)
    stats = model_stats(parent)
    trained = trained_units(spaces)
    entries = sum(len(s.attention) * len(s.ffn) for s in spaces)
    unit_params = sum(block_params(parent, BlockConfig(v.config if v.role == "attention" else b.attention,
                                                       v.config if v.role == "ffn" else b.ffn))
                      for s, b in zip(spaces, parent.block_configs) for v in s.attention + s.ffn if v.trainable)
    bld = cfg.bld.token_budget * (2 * stats.block_params + 6 * unit_params)
    seq = parent.max_position_embeddings if cfg.data is None else cfg.data.seq_len
    seq = min(seq, cfg.parent.embedded.seq_len if cfg.parent.is_embedded else seq)
    score_tokens = cfg.score.eval_batches * cfg.score.batch_size * seq
    per_layer = stats.block_params / parent.num_hidden_layers
    score = sum(2 * score_tokens * (len(s.attention) * len(s.ffn)) * per_layer * (parent.num_hidden_layers - i)
                for i, s in enumerate(spaces))
    gkd = cfg.distill.token_budget * (6 * stats.num_params + 2 * stats.num_params)
    table = Table(title=f"work estimate (parent: {stats.num_params / 1e9:.2f}B parameters, "
                        f"{parent.num_hidden_layers} layers)")
    for col in ("stage", "work", "FLOPs", "accelerator-hours*"):
        table.add_column(col, justify="right" if col != "work" else "left")
    rows = [
        ("library", f"{trained} variants trained by BLD ({entries} library entries), "
                    f"{cfg.bld.token_budget:,} tokens each", bld),
        ("score", f"{entries} entries x {score_tokens:,} validation tokens (layers i..L each)", score),
        ("measure", f"{len({(v.config) for s in spaces for v in s.attention + s.ffn})} distinct sub-blocks x "
                    f"{len(cfg.measure.scenario.batch_sizes)} batch sizes", None),
        ("distill", f"GKD, {cfg.distill.token_budget:,} tokens", gkd),
    ]
    for name, work, flops in rows:
        table.add_row(name, work, f"{flops:.2e}" if flops else "-",
                      f"{flops / (PEAK_FLOPS * MFU) / 3600:.2f}" if flops else "-")
    table.caption = "* at 40% of an H100's 989 TFLOP/s (bf16 dense)"
    return table
