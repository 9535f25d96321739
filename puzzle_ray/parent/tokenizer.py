"""The embedded parent's tokenizer: a byte-level BPE trained on the training pieces of the embedded corpus."""

from __future__ import annotations

from pathlib import Path

from ..configs import content_hash
from ..data.bpe import train_bpe_tokenizer
from ..data.cache import document_pieces
from ..data.sources import ResolvedSource, embedded_documents, source_fingerprint
from ..data.tokenizer import load_tokenizer
from .config import EmbeddedParentConfig

TOKENIZER_VERSION = 1
CORPUS_SOURCE_INDEX = 0  # the corpus is the only source of the parent's DataConfig (see build.data_config)


def tokenizer_key(config: EmbeddedParentConfig) -> str:
    corpus = source_fingerprint(ResolvedSource(CORPUS_SOURCE_INDEX, config.corpus))
    return content_hash(
        {
            "version": TOKENIZER_VERSION,
            "corpus": corpus,
            "tokenizer": config.tokenizer.model_dump(mode="json"),
            # Trained on the training pieces only: the held-out text stays unseen by the tokenizer too.
            "validation_fraction": config.validation_fraction,
            "seed": config.train.seed,
        },
        length=24,
    )


def training_texts(config: EmbeddedParentConfig):
    for doc in embedded_documents(config.corpus):
        for split, text in document_pieces(doc, CORPUS_SOURCE_INDEX, config.train.seed, config.validation_fraction):
            if split == "train":
                yield text


def ensure_embedded_tokenizer(config: EmbeddedParentConfig, cache_dir: str | Path) -> Path:
    """The trained tokenizer's folder under `<cache_dir>/tokenizers/<key>`, training it first if needed."""
    folder = Path(cache_dir) / "tokenizers" / tokenizer_key(config)
    if not (folder / "tokenizer.json").is_file():
        train_bpe_tokenizer(
            training_texts(config),
            config.tokenizer.vocab_size,
            folder,
            min_frequency=config.tokenizer.min_frequency,
            model_max_length=config.model.max_position_embeddings,
        )
    load_tokenizer(folder)  # fail here, not in training, if the folder is unusable
    return folder
