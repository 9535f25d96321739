"""Export in the published `nemotron-nas` layout, readable by us and by the serving engines (which engine reads
which sub-block combination is `serving/matrix.py`'s; the export warns from it).

`config.json` carries `architectures: ["DeciLMForCausalLM"]`, `model_type: "nemotron-nas"` and one
`block_configs` entry per layer; `ffn_mult` is written so that the engines' rounding gives back the same
width, and the exact `intermediate_size` is written beside it only where `ffn_mult` cannot express the width (our
loader reads either; MLX refuses the extra key). Weights are safetensors (sharded for large models) with the
DeciLM names. `README.md` is the model card (`arch/card.py`): the one the caller gives (a Puzzle child's), else
one that says where the model comes from and how to load it. The directory appears atomically, with normal file
modes: a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import PreTrainedModel

from ..serving.check import engine_list, layer_ranges, unserved_cases
from ..serving.matrix import CASES, ENGINE_IDS, ENGINE_NAMES, MATRIX
from ..store import staged_folder
from .blocks import engine_intermediate_size
from .config import PuzzleConfig
from .families import FEATURES, families_used_by

log = logging.getLogger(__name__)

ENGINES = engine_list(ENGINE_IDS)


def engine_warnings(config: PuzzleConfig) -> list[str]:
    """What inference engines reading the exported `nemotron-nas` checkpoint would get wrong: per engine, the
    layers the compatibility table (`serving/matrix.py`) says it misreads, then what no DeciLM engine reads."""
    out = []
    found: dict[str, dict[str, list[str]]] = {}  # case -> verdict -> engine ids
    layers: dict[str, list[int]] = {}
    for engine in ENGINE_IDS:
        for case, at in unserved_cases(config.block_configs, engine).items():
            found.setdefault(case, {}).setdefault(MATRIX[engine][case].verdict, []).append(engine)
            layers[case] = at
    for case, verdicts in sorted(found.items(), key=lambda item: layers[item[0]][0]):
        parts = [f"{verdict} in {engine_list(engines)}" + (f" ({MATRIX[engines[0]][case].detail})"
                                                            if verdict == "silently wrong" else "")
                 for verdict, engines in verdicts.items()]
        out.append(f"{layer_ranges(layers[case])} ({CASES[case]}): " + "; ".join(parts))
    if config.qkv_bias or config.attention_bias:
        out.append(f"attention biases (Qwen2-style parents) are not part of the DeciLM layout: {ENGINES} ignore them")
    if config.head_dim != config.hidden_size // config.num_attention_heads:
        out.append(f"head_dim={config.head_dim} differs from hidden_size / heads: DeciLM engines assume the latter")
    out.extend(family_warnings(config))
    return out


def family_warnings(config: PuzzleConfig) -> list[str]:
    """One line per parent family whose own block features `config` has and some engines' loaders lack."""
    out = []
    for family in families_used_by(config):
        lacking = [ENGINE_NAMES[e] for e in ENGINE_IDS if e not in family.engines]
        if lacking:
            features = ", ".join(FEATURES[f] for f, on in family.puzzle_fields().items() if on)
            out.append(
                f"{family.name} blocks ({features}) are not part of the DeciLM layout: the nemotron-nas loaders of "
                f"{', '.join(lacking)} cannot read this checkpoint (only puzzle-ray's loader can)"
            )
    return out


def published_config_dict(config: PuzzleConfig) -> dict:
    """`config.to_dict()` rewritten into the published layout (plus the legacy RoPE keys engines read)."""
    data = config.to_dict()
    data["architectures"] = ["DeciLMForCausalLM"]
    data["model_type"] = PuzzleConfig.model_type
    data["intermediate_size"] = None
    data["num_key_value_heads"] = None
    for block in data.get("block_configs") or []:
        ffn = block["ffn"]
        # The exact width is written only where ffn_mult cannot express it: MLX's FFN config refuses unknown keys
        # (serving/matrix.py), and our loader derives the same width from ffn_mult with the engines' rounding.
        if ffn.get("ffn_mult") is not None and ffn.get("intermediate_size") == engine_intermediate_size(
                ffn["ffn_mult"], config.hidden_size):
            del ffn["intermediate_size"]
    rope = dict(data.get("rope_parameters") or {})
    data["rope_theta"] = rope.pop("rope_theta", 10000.0)
    data["rope_scaling"] = rope if rope.get("rope_type", "default") != "default" else None
    # Generic PreTrainedConfig bookkeeping that the published files do not carry.
    for key in ("_name_or_path", "auto_map", "id2label", "label2id", "problem_type", "chunk_size_feed_forward",
                "output_hidden_states", "return_dict", "is_encoder_decoder", "output_attentions"):
        data.pop(key, None)
    return data


def check_out_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """`out_dir` as a Path, or FileExistsError when it is a non-empty folder (or a file) and `overwrite` is off:
    exporters and the commands that call them check it before any loading, so a refusal costs nothing."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite and (not out_dir.is_dir() or any(out_dir.iterdir())):
        what = "is not empty" if out_dir.is_dir() else "is a file"
        raise FileExistsError(f"{out_dir}: already exists and {what} (to replace it pass --overwrite, or "
                              "overwrite=True)")
    return out_dir


def export_pretrained(
    model: PreTrainedModel,
    out_dir: str | Path,
    tokenizer=None,
    max_shard_size: str | int = "5GB",
    overwrite: bool = False,
    card=None,
) -> list[str]:
    """Write `model` (a `PuzzleForCausalLM`) to `out_dir`; returns the engine warnings it also logged.

    `card` (a huggingface_hub `ModelCard`, e.g. `arch.card.child_card(...)`) becomes `README.md`; without one
    the folder gets `arch.card.export_card`'s (origin, how to load, layers)."""
    from .card import CARD_FILE, export_card
    from .convert import convert_from_hf

    source = getattr(model.config, "_name_or_path", None) or None  # the folder a converted parent came from
    model = convert_from_hf(model)  # a plain Llama/Qwen2/Mistral parent is exported as its own child
    out_dir = check_out_dir(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    warnings = engine_warnings(model.config)
    for w in warnings:
        log.warning(w)
    with staged_folder(out_dir) as tmp:
        model.save_pretrained(tmp, max_shard_size=max_shard_size)
        config_json = json.dumps(published_config_dict(model.config), indent=2, sort_keys=True)
        (tmp / "config.json").write_text(config_json + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        card = card if card is not None else export_card(model.config, source)
        (tmp / CARD_FILE).write_text(str(card), encoding="utf-8")
    return warnings
