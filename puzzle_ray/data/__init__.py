"""The data layer: token sources, tokenizers, the content-addressed token cache, and the embedded corpus.

    from puzzle_ray.data import DataConfig, JsonlSource, prepare_tokens
    data = prepare_tokens(DataConfig(sources=[JsonlSource(path="chats.jsonl", field="messages")]), "parent/")
    for batch in data.train.batches(batch_size=8, token_budget=1_000_000, rank=r, world_size=w):
        ...  # (8, seq_len) int64

Every stage and every Ray worker reads the same tokens: `TokenData` / `TokenSplit` pickle as their folder's
path and memory-map the shards where they are opened.
"""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): importing one light module of this
# package (its cli.py, its config.py) does not import the heavy ones.
lazy_package(__name__, {
    ".cache": ["TokenPlan", "build_tokens", "plan_tokens", "prepare_tokens"],
    ".config": [
        "DataConfig",
        "EmbeddedSource",
        "HFDiskSource",
        "JsonlSource",
        "ParquetSource",
        "PythonDocsSource",
        "Source",
        "TextSource",
        "default_cache_dir",
    ],
    ".errors": ["DataError"],
    ".split": ["TokenData", "TokenSplit", "open_token_cache"],
    ".tokenizer": ["load_tokenizer", "tokenizer_fingerprint"],
})

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
