"""Load a causal LM and its tokenizer from a local folder (no hub, no remote code)."""

from __future__ import annotations

from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def check_model_dir(path: str | Path) -> Path:
    """The folder (or `.gguf` file), or a ValueError naming it (before any loading)."""
    path = Path(path)
    if path.suffix.lower() == ".gguf":
        from ..parent.gguf import read_gguf_header

        return read_gguf_header(path).path  # header and architecture checked; GGUFError (a ValueError) names it
    if not path.is_dir():
        raise ValueError(f"{path}: no such model folder")
    if not (path / "config.json").is_file():
        raise ValueError(f"{path}: not a Hugging Face model folder (no config.json)")
    return path


def load_causal_lm(
    path: str | Path,
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
    device: str = "cpu",
    need_tokenizer: bool = True,
):
    """(model, tokenizer or None). Any Llama / Qwen2 / Qwen3 / Mistral / GPT-2 folder, a nemotron-nas child, or a
    `.gguf` file (converted once into the cache, `$PUZZLE_RAY_CACHE` or ~/.cache/puzzle-ray, then loaded)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import puzzle_ray  # noqa: F401  (registers model_type "nemotron-nas" with the Auto classes)

    path = check_model_dir(path)
    if path.is_file():  # a GGUF file (check_model_dir admits no other file)
        from ..parent.config import GGUFParentConfig
        from ..parent.gguf import ensure_gguf_parent

        path = ensure_gguf_parent(GGUFParentConfig(path=path))
    has_tokenizer = any((path / f).is_file() for f in TOKENIZER_FILES)
    if need_tokenizer and not has_tokenizer:
        raise ValueError(f"{path}: no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    if dtype != "auto" and dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: expected auto or one of {', '.join(DTYPES)}")
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype="auto" if dtype == "auto" else DTYPES[dtype],
        attn_implementation=attn_implementation,
        trust_remote_code=False,
    )
    model = model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False) if has_tokenizer else None
    return model, tokenizer
