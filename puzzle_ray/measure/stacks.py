"""The models that are timed, with random weights (runtime depends on shapes, not on weight values), and
their prefill / decode workloads.

- a block stack: a `PuzzleModel` of N copies of one block, fed hidden states directly (B, T, H); the
  baseline is the same stack of N no-op blocks, so embeddings, mask and RoPE set-up and the model's own
  dispatch cancel in the difference and what is left is N times what the block adds inside a real model;
- the non-block model: the full `PuzzleForCausalLM` of the parent with every layer a no-op, run exactly as
  `cost_model.measure_model_costs` runs a real model (token ids in, last-position logits, greedy token out).

Prefill fills a fresh `PuzzleCache` with B x P tokens. Decode runs k steps of B tokens from a cache warmed to
the scenario's average decode context (P + D/2, centred over the k steps) and crops it back after each sample.
The non-block model's samples start from evicted caches (`CacheFlush`), one decode step each.
"""

from __future__ import annotations

import torch

from ..arch.blocks import BlockConfig
from ..arch.cache import PuzzleCache
from ..arch.config import PuzzleConfig
from ..arch.modeling import PuzzleForCausalLM, PuzzleModel
from .config import Scenario
from .timed_block import NO_OP_BLOCK

_DROP_KEYS = (
    "block_configs",
    "num_hidden_layers",
    "architectures",
    "auto_map",
    "transformers_version",
    "dtype",
    "torch_dtype",
)


def derived_config(parent: PuzzleConfig, blocks: list[BlockConfig], min_positions: int, **overrides) -> PuzzleConfig:
    """The parent's config with other layers (all shape settings, RoPE and attention kernel kept)."""
    data = {k: v for k, v in parent.to_dict().items() if k not in _DROP_KEYS}
    data.update(
        block_configs=[b.to_dict(parent.hidden_size) for b in blocks],
        num_hidden_layers=len(blocks),
        max_position_embeddings=max(parent.max_position_embeddings, min_positions),
        **overrides,
    )
    config = PuzzleConfig(**data)
    config._attn_implementation = parent._attn_implementation or "sdpa"
    return config


def random_model(cls, config: PuzzleConfig, dtype: torch.dtype, device: str | torch.device, seed: int):
    """`cls(config)` built directly on `device` in `dtype` with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = cls(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval().requires_grad_(False)


def block_stack(
    parent: PuzzleConfig, block: BlockConfig, depth: int, scenario: Scenario, device, seed: int
) -> PuzzleModel:
    config = derived_config(parent, [block] * depth, scenario.total_len + 8, vocab_size=8)
    return random_model(PuzzleModel, config, scenario.torch_dtype, device, seed)


def non_block_model(parent: PuzzleConfig, scenario: Scenario, device, seed: int) -> PuzzleForCausalLM:
    config = derived_config(parent, [NO_OP_BLOCK] * parent.num_hidden_layers, scenario.total_len + 8)
    return random_model(PuzzleForCausalLM, config, scenario.torch_dtype, device, seed)


def decode_steps(scenario: Scenario, steps_per_sample: int) -> tuple[int, int]:
    """(steps per sample, cache length before the first timed step), centring the sample on P + D/2."""
    k = min(steps_per_sample, scenario.decode_len)
    return k, max(scenario.prefill_len, scenario.decode_context - (k - 1) // 2)


class CacheFlush:
    """Overwrites a buffer of `nbytes`, evicting the caches: what the model's layers do to the embeddings' and
    LM head's weights between two uses, reproduced for the non-block part that is timed on its own."""

    def __init__(self, nbytes: int, device):
        self.buffer = torch.empty(max(1, nbytes // 4), dtype=torch.float32, device=device)

    def __call__(self) -> None:
        self.buffer.fill_(1.0)


class _Inputs:
    """Random prompt and decode inputs of one batch size: hidden states for stacks, token ids for LMs."""

    def __init__(self, model, batch_size: int, scenario: Scenario, device, seed: int, flush: CacheFlush | None = None):
        self.model = model
        self.flush = flush
        self.is_lm = isinstance(model, PuzzleForCausalLM)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        b, p, h = batch_size, scenario.prefill_len, model.config.hidden_size
        if self.is_lm:
            vocab = model.config.vocab_size
            self.prompt = torch.randint(0, vocab, (b, p), generator=gen).to(device)  # (B, P)
            self.step = torch.randint(0, vocab, (b, 1), generator=gen).to(device)  # (B, 1)
        else:
            self.prompt = torch.randn(b, p, h, generator=gen).to(device, scenario.torch_dtype)  # (B, P, H)
            self.step = torch.randn(b, 1, h, generator=gen).to(device, scenario.torch_dtype)  # (B, 1, H)

    def forward(self, x: torch.Tensor, cache: PuzzleCache) -> torch.Tensor:
        if self.is_lm:
            logits = self.model(input_ids=x, cache=cache, use_cache=True, logits_to_keep=1).logits  # (B, 1, V)
            return logits[:, -1:].argmax(-1)  # (B, 1): the greedy next token, fed to the next step
        self.model(inputs_embeds=x, cache=cache, use_cache=True)
        return self.step


class PrefillWorkload(_Inputs):
    def setup(self) -> None:
        self.cache = PuzzleCache(self.model.config)
        if self.flush:
            self.flush()

    @torch.inference_mode()
    def run(self) -> torch.Tensor:
        return self.forward(self.prompt, self.cache)


class DecodeWorkload(_Inputs):
    """k decode steps from a cache of `context` tokens (random K/V: values do not change the cost)."""

    def __init__(
        self, model, batch_size: int, scenario: Scenario, device, seed: int, steps_per_sample: int, flush=None
    ):
        super().__init__(model, batch_size, scenario, device, seed, flush)
        self.steps, self.context = decode_steps(scenario, steps_per_sample)
        config = model.config
        self.cache = PuzzleCache(config)
        gen = torch.Generator(device="cpu").manual_seed(seed + 1)
        for i, block in enumerate(config.block_configs):
            if block.attention.kind.holds_cache:
                kv = block.attention.num_kv_heads(config.num_attention_heads)
                shape = (batch_size, kv, self.context, config.head_dim)  # (B, kv_heads, T, D)
                k = torch.randn(shape, generator=gen).to(device, scenario.torch_dtype)
                self.cache.update(k, torch.randn(shape, generator=gen).to(device, scenario.torch_dtype), i)

    def setup(self) -> None:
        extra = self.cache.get_seq_length() - self.context if self.cache.has_attention else 0
        if extra > 0:
            self.cache.crop(-extra)
        if self.flush:
            self.flush()

    @torch.inference_mode()
    def run(self) -> torch.Tensor:
        x = self.step
        for _ in range(self.steps):
            x = self.forward(x, self.cache)
        return x
