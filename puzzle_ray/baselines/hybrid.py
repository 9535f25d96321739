"""Puzzle's hybrid BLD: decoupled BLD over the whole space, then coupled BLD on the variants the decoupled MIP chose.

Decoupled BLD trains each attention and each FFN variant beside the parent's frozen other half, and the library
composes them, so interactions inside a block go unlearnt; coupled BLD trains every (attention, FFN) pair as one
block, which is affordable only on a reduced space. The hybrid splits one BLD token total between the two:

    decoupled: (1 - f) x T tokens for each of U_d units       (T: the decoupled-only budget per unit)
    coupled:   f x T x U_d / U_c tokens for each of U_c units  (the pairs of the variants the MIP chose)

so that  (1 - f) T U_d + f T U_d = T U_d,  Puzzle's own total (both rounded down to whole BLD steps).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..arch.blocks import AttentionConfig, FFNConfig
from ..arch.config import PuzzleConfig
from ..library.record import Library
from ..library.space import LayerOverride, VariantSpace, expand, trained_units


def _choice(sub: AttentionConfig | FFNConfig, heads: int) -> int | str:
    """The search-space entry that names this sub-block: a KV-head count or an FFN width, or its kind."""
    if sub.no_op:
        return "no_op"
    if sub.replace_with_linear:
        return "linear"
    return sub.num_kv_heads(heads) if isinstance(sub, AttentionConfig) else sub.intermediate_size


def coupled_space(library: Library, solutions: Iterable[Sequence[str]], parent: PuzzleConfig,
                  round_to: int) -> VariantSpace:
    """Per layer, the attention and FFN variants used by any of `solutions` (variant names of `library`); the
    parent's own sub-blocks are always in a space, so a layer where only they were chosen trains nothing."""
    heads = parent.num_attention_heads
    attention: list[list] = [[] for _ in range(library.num_layers)]
    ffn: list[list] = [[] for _ in range(library.num_layers)]
    for chosen in solutions:
        for i, name in enumerate(chosen):
            block = library.layers[i][name].block_config
            for out, sub in ((attention[i], block.attention), (ffn[i], block.ffn.resolve(parent.hidden_size))):
                c = _choice(sub, heads)
                if c not in out:
                    out.append(c)
    overrides = {i: LayerOverride(attention=a, ffn=f) for i, (a, f) in enumerate(zip(attention, ffn))}
    return VariantSpace(attention=attention[0], ffn=ffn[0], round_to=round_to, overrides=overrides)


def split_budget(token_budget: int, step_tokens: int, coupled_fraction: float, decoupled_units: int,
                 coupled_units: int) -> tuple[int, int]:
    """(decoupled, coupled) tokens per unit, each a whole number of BLD steps of `step_tokens`."""
    if not 0 < coupled_fraction < 1:
        raise ValueError(f"coupled_fraction={coupled_fraction} must be in (0, 1)")
    decoupled = int((1 - coupled_fraction) * token_budget) // step_tokens * step_tokens
    if decoupled < step_tokens:
        raise ValueError(f"{token_budget} BLD tokens leave less than one step ({step_tokens} tokens) for the "
                         f"decoupled half at coupled_fraction={coupled_fraction}")
    if coupled_units == 0:
        return decoupled, 0
    coupled = int(coupled_fraction * token_budget * decoupled_units / coupled_units) // step_tokens * step_tokens
    if coupled < step_tokens:
        raise ValueError(f"the coupled half's {coupled_fraction * token_budget * decoupled_units:.0f} tokens are "
                         f"less than one step ({step_tokens} tokens) for each of {coupled_units} coupled units")
    return decoupled, coupled


def space_units(space: VariantSpace, parent: PuzzleConfig, mode: str) -> int:
    return trained_units(expand(space, parent), mode)
