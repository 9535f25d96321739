"""Building the content-addressed token cache: tokenise once, pack into fixed-length sequences, shard, publish.

    <cache_dir>/tokens/<key>/meta.json                 the build record (sources' file lists, tokenizer, counts)
    <cache_dir>/tokens/<key>/train/split.json          shard list of the split
    <cache_dir>/tokens/<key>/train/00000.bin ...       (sequences, seq_len) uint16/uint32, raw (np.memmap)
    <cache_dir>/tokens/<key>/validation/...

The key hashes the content of every input (source settings and file digests, the tokenizer's full definition,
seq_len, validation fraction, seed, format version), so any change makes a new entry and an unchanged input
re-opens the old one without tokenising. The entry is written in a temporary folder and renamed into place:
a crash or a bad record deep in a file leaves no entry behind, and readers never see a partial one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..configs import content_hash
from .config import DataConfig
from .errors import DataError
from .sources import Document, ResolvedSource, iter_documents, resolve_source, source_fingerprint
from .split import TokenData
from .tokenizer import encode_batch, resolve_tokenizer, separator_ids, tokenizer_fingerprint

FORMAT_VERSION = 1
PIECE_CHARS = 16_384
"""Documents are cut at a line break every ~16 KiB; each piece goes to train or validation on its own."""
ENCODE_BATCH_CHARS = 4 << 20  # characters per encode_batch call: big enough for Rust's parallelism


@dataclass
class TokenPlan:
    """A checked data config: resolved sources, tokenizer and the cache entry they address."""

    config: DataConfig
    tokenizer: Any
    sources: list[ResolvedSource]
    fingerprint: dict
    key: str
    path: Path

    @property
    def exists(self) -> bool:
        return (self.path / "meta.json").is_file()


def plan_tokens(config: DataConfig, tokenizer=None) -> TokenPlan:
    """Check every source and the tokenizer (cheap: first records, schemas, file sizes) and compute the key.

    `tokenizer` (an object or a folder) overrides `config.tokenizer`. Raises `DataError` naming the problem.
    """
    tok = resolve_tokenizer(tokenizer if tokenizer is not None else config.tokenizer)
    sources = [resolve_source(i, s) for i, s in enumerate(config.sources)]
    for src in sources:
        if src.chat and not getattr(tok, "chat_template", None):
            raise DataError(f"{src.name}: holds chat messages but the tokenizer has no chat template")
    memo = Path(config.cache_dir) / "digests"
    fingerprint = {
        "format_version": FORMAT_VERSION,
        "piece_chars": PIECE_CHARS,
        "tokenizer": tokenizer_fingerprint(tok),
        "sources": [source_fingerprint(s, memo) for s in sources],
        "seq_len": config.seq_len,
        "validation_fraction": config.validation_fraction,
        "seed": config.seed,
    }
    key = content_hash(fingerprint, length=24)
    return TokenPlan(config, tok, sources, fingerprint, key, Path(config.cache_dir) / "tokens" / key)


def prepare_tokens(config: DataConfig, tokenizer=None, show_progress: bool = True) -> TokenData:
    """Open the cache entry of `config`, tokenising first only if it does not exist yet."""
    plan = plan_tokens(config, tokenizer)
    if not plan.exists:
        build_tokens(plan, show_progress=show_progress)
    return TokenData(plan.path)


# -- split assignment -------------------------------------------------------------------------------------
def is_validation(seed: int, key: str, fraction: float) -> bool:
    """A seeded hash of the piece's name, below `fraction`: deterministic and order independent."""
    if fraction <= 0:
        return False
    h = int.from_bytes(hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest(), "big")
    return h < fraction * 2**64


def cut_pieces(text: str, max_chars: int = PIECE_CHARS) -> list[str]:
    """`text` cut after a line break at most every `max_chars` characters (hard cut if a line is longer)."""
    out, start = [], 0
    while len(text) - start > max_chars:
        end = text.rfind("\n", start, start + max_chars) + 1
        if end <= start:
            end = start + max_chars
        out.append(text[start:end])
        start = end
    out.append(text[start:])
    return out


def document_pieces(doc: Document, source_index: int, seed: int, fraction: float) -> list[tuple[str, str]]:
    """(split, text) of each piece of a document, in order."""
    out = []
    for j, piece in enumerate(cut_pieces(doc.text)):
        held = not doc.train_only and is_validation(seed, f"{source_index}/{doc.key}#{j}", fraction)
        out.append(("validation" if held else "train", piece))
    return out


# -- writing ----------------------------------------------------------------------------------------------
class SplitWriter:
    """Appends token ids, writes full shards as they fill, and the last whole sequences at `close()`."""

    def __init__(self, folder: Path, name: str, seq_len: int, dtype: np.dtype, shard_sequences: int):
        self.folder, self.name, self.seq_len, self.dtype = folder, name, seq_len, dtype
        self.shard_tokens = shard_sequences * seq_len
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.shards: list[dict] = []
        self.input_tokens = 0
        self.pieces = 0
        folder.mkdir(parents=True)

    def add(self, ids: list[int]) -> None:
        self.buffer.append(np.asarray(ids, dtype=self.dtype))
        self.buffered += len(ids)
        self.input_tokens += len(ids)
        self.pieces += 1
        if self.buffered >= self.shard_tokens:
            data = np.concatenate(self.buffer)
            while len(data) >= self.shard_tokens:
                self._write(data[: self.shard_tokens])
                data = data[self.shard_tokens :]
            self.buffer, self.buffered = [data], len(data)

    def _write(self, data: np.ndarray) -> None:
        name = f"{len(self.shards):05d}.bin"
        data.tofile(self.folder / name)
        self.shards.append({"file": name, "sequences": len(data) // self.seq_len})

    def close(self) -> dict:
        data = np.concatenate(self.buffer) if self.buffer else np.zeros(0, self.dtype)
        whole = len(data) // self.seq_len * self.seq_len
        if whole:
            self._write(data[:whole])
        meta = {
            "name": self.name,
            "seq_len": self.seq_len,
            "dtype": self.dtype.name,
            "shards": self.shards,
            "num_sequences": sum(s["sequences"] for s in self.shards),
            "input_tokens": self.input_tokens,
            "dropped_tokens": len(data) - whole,  # the tail that does not fill a last sequence
            "pieces": self.pieces,
        }
        (self.folder / "split.json").write_text(json.dumps(meta, indent=1) + "\n")
        return meta


def _progress(show: bool):
    if show:
        from ..ui import progress

        return progress("tok")
    return None


def build_tokens(plan: TokenPlan, show_progress: bool = True) -> Path:
    """Tokenise every source of `plan` into a new cache entry; returns its folder."""
    cfg, tok = plan.config, plan.tokenizer
    vocab = len(tok)
    dtype = np.dtype(np.uint16 if vocab <= 2**16 else np.uint32)
    before, after = separator_ids(tok)
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan.path.parent / f".tmp-{plan.key}-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    bar = _progress(show_progress)
    try:
        writers = {
            name: SplitWriter(tmp / name, name, cfg.seq_len, dtype, cfg.shard_sequences)
            for name in ("train", "validation")
        }
        documents = []
        if bar is not None:
            bar.start()
            task = bar.add_task("tokenising", total=None)
        for src in plan.sources:
            pending: list[tuple[str, str, list[int], list[int]]] = []  # (split, text, ids before, ids after)
            pending_chars = 0
            count = 0

            def flush():
                nonlocal pending, pending_chars
                if not pending:
                    return
                encoded = encode_batch(tok, [p[1] for p in pending])
                for (split, _, pre, post), ids in zip(pending, encoded):
                    writers[split].add(pre + ids + post)
                    if bar is not None:
                        bar.advance(task, len(pre) + len(ids) + len(post))
                pending, pending_chars = [], 0

            for doc in iter_documents(src, tok):
                count += 1
                pieces = document_pieces(doc, src.index, cfg.seed, cfg.validation_fraction)
                for j, (split, piece) in enumerate(pieces):
                    pre = before if j == 0 else []
                    post = after if j == len(pieces) - 1 else []
                    pending.append((split, piece, pre, post))
                    pending_chars += len(piece)
                if pending_chars >= ENCODE_BATCH_CHARS:
                    flush()
            flush()
            if count == 0:
                raise DataError(f"{src.name}: no text (every document is empty or whitespace)")
            documents.append({"source": src.name, "documents": count})
        splits = {name: w.close() for name, w in writers.items()}
        if splits["train"]["num_sequences"] == 0:
            raise DataError(
                f"the training split has {splits['train']['input_tokens']} tokens, fewer than one sequence of "
                f"seq_len={cfg.seq_len}: add data or lower seq_len"
            )
        if cfg.validation_fraction > 0 and splits["validation"]["num_sequences"] == 0:
            raise DataError(
                f"the validation split has {splits['validation']['input_tokens']} tokens, fewer than one sequence "
                f"of seq_len={cfg.seq_len}: add data, raise validation_fraction or set it to 0"
            )
        meta = {
            "key": plan.key,
            "format_version": FORMAT_VERSION,
            "seq_len": cfg.seq_len,
            "dtype": dtype.name,
            "vocab_size": vocab,
            "tokenizer": {
                "name_or_path": str(getattr(tok, "name_or_path", "")),
                "bos_token_id": tok.bos_token_id,
                "eos_token_id": tok.eos_token_id,
                "pad_token_id": tok.pad_token_id,
            },
            "splits": {n: {k: v for k, v in s.items() if k != "shards"} for n, s in splits.items()},
            "documents": documents,
            "fingerprint": plan.fingerprint,
            "build_seconds": round(time.perf_counter() - start, 3),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        try:
            os.replace(tmp, plan.path)
        except OSError:
            if not plan.exists:  # a concurrent builder of the same key won the race: keep theirs
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.stop()
    return plan.path
