"""Realise a child: assemble the chosen variant of every layer from the library's trained weights.

The non-block part (embeddings, final norm, LM head) and every sub-block marked `parent` come from the parent
checkpoint; trained sub-blocks come from the library's safetensors files in the artifact store.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..arch.config import PuzzleConfig
from ..arch.export import export_pretrained
from ..arch.modeling import PuzzleForCausalLM
from ..arch.config import load_puzzle_config
from ..arch.weights import load_tensors, model_from_state
from ..store import ArtifactStore
from .record import Library, LibraryError

PART_PREFIXES = {"attention": ("self_attn.", "input_layernorm."), "ffn": ("mlp.", "post_attention_layernorm."),
                 "block": ("",)}


def child_config(parent: PuzzleConfig, library: Library, chosen: list[str]) -> PuzzleConfig:
    if len(chosen) != library.num_layers:
        raise LibraryError(f"{len(chosen)} choices for a {library.num_layers}-layer library")
    blocks = []
    for i, name in enumerate(chosen):
        if name not in library.layers[i]:
            raise LibraryError(f"layer_{i}: no variant named {name!r}")
        blocks.append(library.layers[i][name].block_config)
    data = parent.to_dict()
    data["block_configs"] = [b.to_dict(parent.hidden_size) for b in blocks]
    return PuzzleConfig(**data)


def entry_weights(library: Library, layer: int, name: str, store: ArtifactStore,
                  parent_dir: str | Path) -> dict[str, torch.Tensor]:
    """Weights of one library entry, named relative to its layer ('self_attn.q_proj.weight', ...)."""
    state = {}
    extra = library.layers[layer][name].extra
    digests = extra.get("weights_sha256", {})  # libraries written before digests were recorded have none
    for part, source in extra.get("weights", {}).items():
        if source == "parent":
            for prefix in PART_PREFIXES[part]:
                tensors = load_tensors(parent_dir, f"model.layers.{layer}.{prefix}")
                state.update({prefix + k: v for k, v in tensors.items()})
        else:
            state.update(store.read_tensors(source, sha256=digests.get(part)))
    return state


def assemble_child(library: Library, chosen: list[str], store: ArtifactStore) -> PuzzleForCausalLM:
    """The child model (weights loaded, eval mode) for the variant names in `chosen`, one per layer."""
    parent_dir = store.get_dir(library.meta.parent_key, prefix="puzzle-parent-")
    parent = load_puzzle_config(parent_dir)
    config = child_config(parent, library, chosen)
    config._attn_implementation = "sdpa"
    state = {k: v for k, v in load_tensors(parent_dir, "", strip=False).items() if not k.startswith("model.layers.")}
    for i, name in enumerate(chosen):
        weights = entry_weights(library, i, name, store, parent_dir)
        state.update({f"model.layers.{i}.{k}": v for k, v in weights.items()})
    try:
        return model_from_state(config, state, "the library's weights")
    except ValueError as e:
        raise LibraryError(str(e)) from None


def realize(library: Library, chosen: list[str], store: ArtifactStore, out_dir: str | Path,
            overwrite: bool = False, search=None, name: str | None = None) -> Path:
    """Assemble the child and export it (nemotron-nas layout, with the parent's tokenizer when it has one, and a
    model card naming the parent, the library's search space, BLD and scoring settings, and the MIP's objective
    and constraints when `search`, the `SearchConfig` that chose it, is given; `name` is the child's name)."""
    from transformers import AutoTokenizer

    from ..arch.card import child_card, library_facts

    model = assemble_child(library, chosen, store)
    parent_dir = store.get_dir(library.meta.parent_key, prefix="puzzle-parent-")
    tokenizer = None
    if (Path(parent_dir) / "tokenizer_config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(parent_dir, trust_remote_code=False)
    card = child_card(model.config, library_facts(library, parent_dir, search=search, name=name))
    export_pretrained(model, out_dir, tokenizer=tokenizer, overwrite=overwrite, card=card)
    return Path(out_dir)
