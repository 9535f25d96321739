"""Tokenizers: any local Hugging Face tokenizer folder, their fingerprints, and how documents become token ids."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..configs import content_hash
from .errors import DataError

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "spiece.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
)


def load_tokenizer(path: str | Path):
    """`AutoTokenizer.from_pretrained(path)` from a local folder (never the hub, never remote code)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"tokenizer {path}: no such folder")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise DataError(f"tokenizer {path}: not a Hugging Face tokenizer folder (none of {', '.join(TOKENIZER_FILES)})")
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False, local_files_only=True)
    except Exception as e:  # transformers raises many types here (OSError, ValueError, KeyError, JSON errors)
        raise DataError(f"tokenizer {path}: cannot be loaded ({type(e).__name__}: {e})") from None
    if not getattr(tok, "is_fast", False) and not callable(getattr(tok, "encode", None)):
        raise DataError(f"tokenizer {path}: loaded {type(tok).__name__}, which cannot encode text")
    return tok


def resolve_tokenizer(tokenizer):
    """A tokenizer object from an object or a folder."""
    if tokenizer is None:
        raise DataError("tokenizer: none given (set data.tokenizer, or pass the parent's tokenizer)")
    if isinstance(tokenizer, (str, Path)):
        return load_tokenizer(tokenizer)
    return tokenizer


def tokenizer_fingerprint(tokenizer) -> str:
    """A digest of everything that decides token ids: the full backend definition, special tokens, template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = hashlib.sha256(backend.to_str().encode()).hexdigest()
    else:  # slow (e.g. SentencePiece) tokenizers: the files they were loaded from
        folder = Path(getattr(tokenizer, "name_or_path", ""))
        digest = hashlib.sha256()
        for name in TOKENIZER_FILES:
            if (folder / name).is_file():
                digest.update(name.encode() + (folder / name).read_bytes())
        definition = digest.hexdigest()
    return content_hash(
        {
            "class": type(tokenizer).__name__,
            "definition": definition,
            "vocab_size": len(tokenizer),
            "bos": tokenizer.bos_token_id,
            "eos": tokenizer.eos_token_id,
            "chat_template": getattr(tokenizer, "chat_template", None),
        }
    )


def separator_ids(tokenizer) -> tuple[list[int], list[int]]:
    """(ids before, ids after) every document: BOS and EOS where the tokenizer has them (BOS only if != EOS)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return ([bos] if bos is not None and bos != eos else []), ([eos] if eos is not None else [])


def encode_batch(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens; fast tokenizers encode the batch in parallel (Rust)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [enc.ids for enc in backend.encode_batch(texts, add_special_tokens=False)]
    return [list(tokenizer.encode(t, add_special_tokens=False)) for t in texts]


def render_chat(tokenizer, messages: list[dict], where: str) -> str:
    """A chat as text through the tokenizer's chat template (its leading BOS text dropped: packing adds BOS)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{where}: chat messages need a tokenizer with a chat template")
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception as e:
        raise DataError(f"{where}: the chat template cannot render these messages ({e})") from None
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        text = text[len(bos) :]
    return text


def check_messages(value, where: str) -> list[dict]:
    """A chat value must be a non-empty list of {"role": str, "content": str} dicts."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: expected a non-empty list of chat messages")
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: each chat message needs string 'role' and 'content' (got {str(m)[:80]})")
    return value
