"""Asking the compatibility table (`serving/matrix.py`) about a child or a block (any object with the
`BlockConfig` fields and kinds; nothing of `arch` is imported, so `arch` can ask this module).

    layer_cases(block)                -> the table's cases of one layer ('gqa', 'gqa+no_op_ffn', ...)
    unserved(block_configs, engine)   -> the layers an engine gets wrong, with the table's entries
    serving_engines(block_configs)    -> the engines that serve every layer
    engine_report(block_configs)      -> per engine, why it does not serve a whole child
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .matrix import CASES, ENGINE_IDS, ENGINE_NAMES, MATRIX, Entry

if TYPE_CHECKING:
    from ..arch.blocks import BlockConfig

ROUNDING = 256
"""Every engine derives the FFN width as `int(2 * ffn_mult * hidden / 3)` rounded up to a multiple of this, so
exactly the multiples of it are expressible."""


def layer_cases(block: BlockConfig, layer: int | None = None) -> list[str]:
    """The table's cases of one layer: its attention case, its FFN case, for attention kept beside a no-op FFN
    that pair, and for no-op attention in layer 0 (`layer` given) that position."""
    att = {"gqa": "gqa", "linear": "linear_attention", "no_op": "no_op_attention"}[block.attention.kind.name]
    ffn_kind = block.ffn.kind.name
    if ffn_kind == "swiglu":
        size = block.ffn.kind.size(block.ffn)
        ffn = "swiglu" if size is None or size % ROUNDING == 0 else "swiglu_inexact"
    else:
        ffn = {"linear": "linear_ffn", "no_op": "no_op_ffn"}[ffn_kind]
    cases = [att, ffn]
    if ffn == "no_op_ffn" and att != "no_op_attention":
        cases.append(f"{att}+no_op_ffn")
    if att == "no_op_attention" and layer == 0:
        cases.append("no_op_attention_first")
    return cases


def _groups(block_configs) -> list[tuple[int, int]]:
    """(layer, n_heads_in_group) of every GQA layer."""
    return [(i, b.attention.n_heads_in_group) for i, b in enumerate(block_configs) if b.attention.kind == "gqa"]


@dataclass(frozen=True)
class Unserved:
    """One layer that one engine does not serve."""

    layer: int
    case: str
    entry: Entry


def unserved(block_configs, engine: str) -> list[Unserved]:
    """Every (layer, case) of a child's `block_configs` that `engine` does not serve, in layer order (a child
    whose GQA layers differ in KV heads, where that is not served, is reported at the first differing layer)."""
    table = MATRIX[engine]
    out = [Unserved(i, case, table[case]) for i, b in enumerate(block_configs) for case in layer_cases(b, i)
           if not table[case].served]
    groups = _groups(block_configs)
    if not table["mixed_kv_heads"].served:
        first = next((i for i, g in groups if g != groups[0][1]), None)
        if first is not None:
            out.append(Unserved(first, "mixed_kv_heads", table["mixed_kv_heads"]))
    return sorted(out, key=lambda u: u.layer)


def unserved_cases(block_configs, engine: str) -> dict[str, list[int]]:
    """Case -> the layers in it, for every case of a child that `engine` does not serve."""
    out: dict[str, list[int]] = {}
    for u in unserved(block_configs, engine):
        out.setdefault(u.case, []).append(u.layer)
    return out


def serving_engines(block_configs) -> list[str]:
    """The engine ids that serve every layer of a child."""
    return [e for e in ENGINE_IDS if not unserved(block_configs, e)]


def engine_report(block_configs) -> dict[str, list[str]]:
    """Engine id -> why it does not serve a child with these `block_configs`: its layers' cases the table marks
    (parent-family blocks are `arch.families`'s to add). An empty list: the engine serves every layer."""
    return {engine: [f"{CASES[case]} in {layer_ranges(layers)}: {MATRIX[engine][case].verdict}"
                     for case, layers in unserved_cases(block_configs, engine).items()]
            for engine in ENGINE_IDS}


def layer_ranges(layers: list[int]) -> str:
    """[1, 2, 3, 7] -> 'layers 1-3, 7'; [4] -> 'layer 4'."""
    out, start = [], None
    for i, layer in enumerate(layers):
        if start is None:
            start = layer
        if i + 1 == len(layers) or layers[i + 1] != layer + 1:
            out.append(str(start) if start == layer else f"{start}-{layer}")
            start = None
    return ("layer " if len(layers) == 1 else "layers ") + ", ".join(out)


def block_served(block: BlockConfig, engines, layer: int | None = None) -> bool:
    """Whether every engine of `engines` serves this layer configuration (at `layer`, when given)."""
    return all(MATRIX[e][case].served for e in engines for case in layer_cases(block, layer))


def engine_list(engines) -> str:
    """'vLLM and llama.cpp', for messages."""
    names = [ENGINE_NAMES[e] for e in engines]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
