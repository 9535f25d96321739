"""Typed configuration of the data layer: where text comes from and how it becomes packed token sequences.

A workflow names its sources by kind:

    data:
      sources:
        - {kind: text, path: corpus/}                        # .txt files of a folder (or one file)
        - {kind: jsonl, path: chats.jsonl, field: messages}  # chat messages, rendered with the chat template
        - {kind: parquet, path: shards/, field: text}
        - {kind: hf_disk, path: saved_dataset, split: train} # a `datasets` folder from save_to_disk
        - {kind: embedded}                                   # stdlib sources + synthetic ICL episodes
        - {kind: python_docs, code_fraction: 0.1}            # Python's reference topics, docstrings, some code
      seq_len: 256
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator

from ..configs import StrictConfig


def default_cache_dir() -> Path:
    """`$PUZZLE_RAY_CACHE`, else `~/.cache/puzzle-ray`."""
    env = os.environ.get("PUZZLE_RAY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "puzzle-ray"


class TextSource(StrictConfig):
    kind: Literal["text"] = "text"
    """Source type: plain text files."""
    path: Path
    """A UTF-8 text file, or a folder searched with `glob`; each file is one document."""
    glob: str = "**/*.txt"
    """Files of a folder to read (sorted by path)."""


class JsonlSource(StrictConfig):
    kind: Literal["jsonl"] = "jsonl"
    """Source type: JSON-lines files."""
    path: Path
    """A JSON-lines file, or a folder searched with `glob`; each line is one document."""
    field: str = "text"
    """Field holding a string, or a chat: a list of {"role", "content"} messages rendered with the tokenizer's
    chat template (e.g. `field: messages`)."""
    glob: str = "**/*.jsonl"
    """Files of a folder to read (sorted by path)."""


class ParquetSource(StrictConfig):
    kind: Literal["parquet"] = "parquet"
    """Source type: Parquet files."""
    path: Path
    """A Parquet file, or a folder searched with `glob`; each row is one document."""
    field: str = "text"
    """String column (or chat-message column) to read."""
    glob: str = "**/*.parquet"
    """Files of a folder to read (sorted by path)."""


class HFDiskSource(StrictConfig):
    kind: Literal["hf_disk"] = "hf_disk"
    """Source type: a `datasets` folder saved to disk."""
    path: Path
    """A folder written by `datasets`' `save_to_disk` (read with `load_from_disk`; no hub access)."""
    field: str = "text"
    """String column (or chat-message column) to read."""
    split: str | None = None
    """Split of a saved `DatasetDict` (required then); leave empty for a single `Dataset`."""


class EmbeddedSource(StrictConfig):
    kind: Literal["embedded"] = "embedded"
    """Source type: the embedded corpus (no path needed)."""
    max_files: PositiveInt | None = None
    """Standard-library `.py` files to use (an evenly spread subset, in path order); None: all of them."""
    classification_episodes: NonNegativeInt = 12_000
    """Synthetic many-class classification episodes mixed into the training split."""
    recall_episodes: NonNegativeInt = 6_000
    """Synthetic key-value recall episodes mixed into the training split."""
    max_demos: PositiveInt = 64
    """Longest training episode, in demonstrations (keep one episode within `seq_len`)."""
    seed: int = 0
    """Seed of the training episodes (held-out evaluation episodes come from a separate stream)."""


class PythonDocsSource(StrictConfig):
    kind: Literal["python_docs"] = "python_docs"
    """Source type: English prose and code from this Python itself (no path; see `puzzle_ray.data.pydocs`)."""
    topics: bool = True
    """The language reference's topics (`pydoc_data.topics`, what `help("assert")` shows): ~80 documents."""
    docstrings: bool = True
    """Per standard-library module, its docstrings and public signatures in `help(module)` layout (via `ast`)."""
    code_fraction: float = 0.1
    """Share of the standard-library source files also included as code (chosen by a seeded hash of the path);
    0: prose only."""
    max_files: PositiveInt | None = None
    """Standard-library `.py` files read for docstrings and code (an evenly spread subset); None: all of them."""
    min_docstring_chars: NonNegativeInt = 40
    """Shorter docstrings are left out (one-liners like "Return self." are noise)."""
    seed: int = 0
    """Seed of the code-file selection."""

    @field_validator("code_fraction")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0 <= v <= 1:
            raise ValueError(f"code_fraction={v} must be in [0, 1]")
        return v


Source = Annotated[
    Union[TextSource, JsonlSource, ParquetSource, HFDiskSource, EmbeddedSource, PythonDocsSource],
    Field(discriminator="kind"),
]


class DataConfig(StrictConfig):
    sources: list[Source] = Field(min_length=1)
    """Where the text comes from; documents of all sources are tokenised into one cache."""
    tokenizer: Path | None = None
    """A local Hugging Face tokenizer folder; None: the caller passes one (usually the parent's)."""
    seq_len: PositiveInt = 256
    """Tokens per packed sequence (documents are joined with BOS/EOS and cut into sequences of this length)."""
    validation_fraction: float = 0.05
    """Share of document pieces (documents cut at line breaks every ~16 KiB) held out for validation, chosen
    by a seeded hash of each piece's name (source index, document, piece): independent of the tokenizer, so
    models with different tokenizers are validated on the same text. Synthetic episodes
    are always training data (held-out episodes are generated separately)."""
    seed: int = 0
    """Seed of the train / validation assignment."""
    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Root of the caches; token data lives under `<cache_dir>/tokens/<key>`."""
    shard_sequences: PositiveInt = 16_384
    """Sequences per shard file (layout only; not part of the cache key)."""

    @field_validator("validation_fraction")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0 <= v < 1:
            raise ValueError(f"validation_fraction={v} must be in [0, 1)")
        return v
