"""Tiny assets for the PCW tests, built in code: a GPT-2, a character tokenizer (with or without BOS), windows."""

from __future__ import annotations

import string

import torch
from tokenizers import Tokenizer, decoders, models, processors
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from .tiny_models import tiny_llama, tiny_mistral, tiny_mixed_child, tiny_qwen2

BOS, EOS = 1, 2


def tiny_gpt2(**kw) -> GPT2LMHeadModel:
    cfg = dict(vocab_size=128, n_embd=64, n_layer=3, n_head=4, n_positions=256, initializer_range=0.3,
               bos_token_id=BOS, eos_token_id=EOS)
    return GPT2LMHeadModel(GPT2Config(**{**cfg, **kw})).eval()


# name -> (builder, does its tokenizer add a BOS). Qwen2's tokenizers add none.
MODELS = {
    "gpt2": (tiny_gpt2, True),
    "llama": (tiny_llama, True),  # 4 heads, 2 KV heads: GQA
    "qwen2": (tiny_qwen2, False),
    "mistral": (tiny_mistral, True),
    "child": (tiny_mixed_child, True),  # no-op / linear / GQA attention with 1, 2, 4 KV heads
}


def build(name: str, attn: str = "sdpa", dtype=torch.float64, **kw):
    torch.manual_seed(0)
    make, _ = MODELS[name]
    return make(attn_implementation=attn, **kw).to(dtype)


def char_tokenizer(bos: bool = True) -> PreTrainedTokenizerFast:
    """One token per printable character (ids 3..98); <pad>=0, <s>=1 (added in front when `bos`), </s>=2."""
    specials = ["<pad>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials + list(string.printable[:95]) + ["\n"])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tok.decoder = decoders.Fuse()
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>" if bos else None, eos_token="</s>", pad_token="<pad>"
    )


def random_windows(lengths, bos: bool, seed: int = 1, vocab: int = 128) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [([BOS] if bos else []) + torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


def random_tokens(n: int, seed: int = 2, vocab: int = 128) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (n,), generator=g).tolist()


def test_char_tokenizer_adds_bos_only_when_asked():
    with_bos, without = char_tokenizer(True), char_tokenizer(False)
    assert with_bos("ab")["input_ids"] == [BOS, 13, 14]
    assert without("ab")["input_ids"] == [13, 14]
    assert with_bos.decode(with_bos("a b\nc")["input_ids"], skip_special_tokens=True) == "a b\nc"
