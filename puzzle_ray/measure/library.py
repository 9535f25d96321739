"""Fill a block library's `stats` with measured costs (the measurement stage's entry point)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace

from ..arch.blocks import BlockConfig
from ..arch.config import PuzzleConfig
from ..library.record import Library, LibraryError, Variant, layer_key, variant_name
from ..store import ArtifactStore
from .config import MeasureConfig, Scenario
from .fleet import measure_blocks
from .results import MeasureError, Measurements


def library_blocks(library: Library, parent: PuzzleConfig) -> list[BlockConfig]:
    """Every variant's block (resolved, validated), or an error naming the layer and variant."""
    if library.num_layers != parent.num_hidden_layers:
        raise LibraryError(f"the library has {library.num_layers} layers but the parent has {parent.num_hidden_layers}")
    blocks = []
    for i, layer in enumerate(library.layers):
        for name, variant in layer.items():
            if variant.block_config is None:
                raise LibraryError(
                    f"{layer_key(i)} / {name!r}: no block_config (nor num_kv_heads / ffn_intermediate_size) to measure"
                )
            block = variant.block_config.resolve(parent.hidden_size)
            try:
                block.validate(i, parent.num_attention_heads)
            except ValueError as e:
                raise LibraryError(f"{layer_key(i)} / {name!r}: {e}") from None
            blocks.append(block)
    return blocks


def apply_measurements(library: Library, parent: PuzzleConfig, measurements: Measurements) -> Library:
    """A copy of `library` whose stats hold the measured costs; its meta records scenario, non-block, hardware."""
    layers = []
    for layer in library.layers:
        new = {}
        for name, v in layer.items():
            block = v.block_config.resolve(parent.hidden_size)
            stats = {**v.stats, **measurements.block_stats(block)}
            new[name] = Variant(v.name, stats, dict(v.metrics), v.block_config, copy.deepcopy(v.extra))
        layers.append(new)
    meta = replace(
        copy.deepcopy(library.meta),
        num_attention_heads=parent.num_attention_heads,
        hidden_size=parent.hidden_size,
        scenario=measurements.scenario.model_dump(mode="json"),
        non_block=measurements.non_block_stats(),
        measurement=measurements.summary(),
    )
    if meta.parent_config is None:
        meta = replace(meta, parent_config=parent.to_dict())
    return Library(layers, meta)


def measure_library(
    library: Library, parent_config: PuzzleConfig, scenario: Scenario, config: MeasureConfig, store: ArtifactStore
) -> Library:
    """Measure every (layer, variant) of `library` for `scenario` on the target described by `config`.

    Equal sub-blocks are measured once across layers (and across runs, through the store's cache). Raises
    `MeasureError` listing the failed units if any task failed; everything measured is cached by then, so a
    rerun only repeats the failures.
    """
    blocks = library_blocks(library, parent_config)
    measurements = measure_blocks(parent_config, set(blocks), scenario, config, store)
    if measurements.failures:
        raise MeasureError("measurement failed for: " + "; ".join(measurements.failures))
    return apply_measurements(library, parent_config, measurements)


def skeleton_library(
    parent: PuzzleConfig, variants: Sequence[BlockConfig] | Sequence[Sequence[BlockConfig]]
) -> Library:
    """A library with no weights or metrics, only blocks: the same variants in every layer (a flat list) or
    per layer (a list of lists). For measuring costs before (or without) building the library."""
    per_layer = (
        variants if variants and isinstance(variants[0], (list, tuple)) else [variants] * parent.num_hidden_layers
    )
    if len(per_layer) != parent.num_hidden_layers:
        raise LibraryError(f"variants for {len(per_layer)} layers, but the parent has {parent.num_hidden_layers}")
    layers = []
    for blocks in per_layer:
        resolved = [b.resolve(parent.hidden_size) for b in blocks]
        layers.append(
            {
                variant_name(b, parent.num_attention_heads): Variant(
                    variant_name(b, parent.num_attention_heads), {}, {}, b
                )
                for b in resolved
            }
        )
    meta = {
        "num_attention_heads": parent.num_attention_heads,
        "hidden_size": parent.hidden_size,
        "parent_config": parent.to_dict(),
    }
    return Library(layers, meta)
