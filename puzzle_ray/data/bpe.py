"""Training a byte-level BPE tokenizer with the `tokenizers` library, saved as a normal Hugging Face folder.

The result loads with `AutoTokenizer.from_pretrained(folder)` like any hub tokenizer: `tokenizer.json`
(byte-level BPE, so every string round-trips and nothing is ever unknown), BOS added by its post-processor as
Llama's does, EOS / PAD tokens, and a small chat template so chat JSONL sources work with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..store import staged_folder

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (BOS, EOS, PAD, *ROLE_TOKENS)

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    out_dir: str | Path,
    min_frequency: int = 2,
    model_max_length: int = 2048,
):
    """Train on `texts`, write the folder atomically to `out_dir` and return the loaded tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size}: a byte-level BPE needs at least {256 + len(SPECIAL_TOKENS)}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATE,
    )
    with staged_folder(out_dir) as tmp:
        hf.save_pretrained(tmp)
    from .tokenizer import load_tokenizer

    return load_tokenizer(out_dir)
