"""The data layer: token sources, tokenizers, the content-addressed token cache, and the embedded corpus.

    from puzzle_ray.data import DataConfig, JsonlSource, prepare_tokens
    data = prepare_tokens(DataConfig(sources=[JsonlSource(path="chats.jsonl", field="messages")]), "parent/")
    for batch in data.train.batches(batch_size=8, token_budget=1_000_000, rank=r, world_size=w):
        ...  # (8, seq_len) int64

Every stage and every Ray worker reads the same tokens: `TokenData` / `TokenSplit` pickle as their folder's
path and memory-map the shards where they are opened.
"""

from .cache import TokenPlan, build_tokens, plan_tokens, prepare_tokens
from .config import (
    DataConfig,
    EmbeddedSource,
    HFDiskSource,
    JsonlSource,
    ParquetSource,
    PythonDocsSource,
    Source,
    TextSource,
    default_cache_dir,
)
from .errors import DataError
from .split import TokenData, TokenSplit, open_token_cache
from .tokenizer import load_tokenizer, tokenizer_fingerprint

__all__ = [
    "DataConfig",
    "DataError",
    "EmbeddedSource",
    "HFDiskSource",
    "JsonlSource",
    "ParquetSource",
    "PythonDocsSource",
    "Source",
    "TextSource",
    "TokenData",
    "TokenPlan",
    "TokenSplit",
    "build_tokens",
    "default_cache_dir",
    "load_tokenizer",
    "open_token_cache",
    "plan_tokens",
    "prepare_tokens",
    "tokenizer_fingerprint",
]
