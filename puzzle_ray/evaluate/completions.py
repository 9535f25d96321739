"""Greedy completions of a few prompts by parent and child, side by side: what a reader checks first."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .report import Completion


@torch.inference_mode()
def greedy_completion(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """The model's greedy continuation of `prompt` (KV cache, stops at EOS), decoded without special tokens."""
    device = model.get_input_embeddings().weight.device
    ids = torch.tensor([list(tokenizer(prompt)["input_ids"])], device=device)  # (1, P)
    if ids.shape[1] == 0:
        raise ValueError(f"completion prompt {prompt!r} tokenises to nothing")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos if eos is not None else 0)
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),  # explicit: transformers 5 infers masks from position ids
        max_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    return tokenizer.decode(out[0, ids.shape[1] :].tolist(), skip_special_tokens=True)


def completions(parent, child, tokenizer, prompts: Sequence[str], max_new_tokens: int) -> list[Completion]:
    """Parent's and child's greedy completion of each prompt (the child's is the parent's when they are one)."""
    out = []
    for prompt in prompts:
        p = greedy_completion(parent, tokenizer, prompt, max_new_tokens)
        c = p if child is parent else greedy_completion(child, tokenizer, prompt, max_new_tokens)
        out.append(Completion(prompt, p, c))
    return out
