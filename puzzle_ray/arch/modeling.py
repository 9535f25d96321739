"""The heterogeneous Puzzle decoder (`nemotron-nas` / DeciLM layout) as a Hugging Face model.

Each layer i is built from `config.block_configs[i]`:

    h = h + attention(input_layernorm(h))        # GQA / linear (H x H) / skipped entirely if no_op
    h = h + ffn(post_attention_layernorm(h))     # SwiGLU / linear (H x H) / skipped entirely if no_op

A no-op sub-block has neither weights nor its norm, exactly as NVIDIA's DeciLM code builds them. Weight
names are Llama's, so a Llama/Qwen2/Mistral state dict loads unchanged into a model whose blocks equal the
parent's; linear replacements are `self_attn.linear_attn.weight` and `mlp.linear_mlp.weight`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import (
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
    eager_attention_forward,
)

from .blocks import BlockConfig
from .cache import PuzzleCache
from .config import PuzzleConfig


class PuzzleRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x.to(dtype)


class GQAttention(nn.Module):
    """Grouped-query attention with this layer's own number of KV heads; with `config.qk_norm`, q and k are
    RMS-normalised per head (one (head_dim,) weight each, shared by all heads) before RoPE, as Qwen3 does."""

    def __init__(self, config: PuzzleConfig, block: BlockConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = block.attention.num_kv_heads(self.num_heads)
        self.num_key_value_groups = block.attention.n_heads_in_group  # read by the sdpa/eager kernels
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        qkv_bias = config.attention_bias or config.qkv_bias
        h = config.hidden_size
        self.q_proj = nn.Linear(h, self.num_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(h, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(h, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, h, bias=config.attention_bias)
        if config.qk_norm:
            self.q_norm = PuzzleRMSNorm(self.head_dim, config.rms_norm_eps)
            self.k_norm = PuzzleRMSNorm(self.head_dim, config.rms_norm_eps)

    def forward(self, hidden_states, position_embeddings, attention_mask, cache: Cache | None, **kwargs):
        batch_shape = hidden_states.shape[:-1]  # (B, T)
        shape = (*batch_shape, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(shape).transpose(1, 2)  # (B, heads, T, D)
        k = self.k_proj(hidden_states).view(shape).transpose(1, 2)  # (B, kv_heads, T, D)
        v = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        if self.config.qk_norm:  # over D only, so it commutes with the transpose
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = position_embeddings
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        out, _ = attend(
            self,
            q,
            k,
            v,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        return self.o_proj(out.reshape(*batch_shape, -1).contiguous())


class LinearAttention(nn.Module):
    """Attention replaced by one H x H map: every token attends only to itself (no KV cache)."""

    def __init__(self, config: PuzzleConfig):
        super().__init__()
        self.linear_attn = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, hidden_states, *args, **kwargs):
        return self.linear_attn(hidden_states)


class SwiGLU(nn.Module):
    def __init__(self, config: PuzzleConfig, intermediate_size: int):
        super().__init__()
        h, i, bias = config.hidden_size, intermediate_size, config.mlp_bias
        self.intermediate_size = i
        self.gate_proj = nn.Linear(h, i, bias=bias)
        self.up_proj = nn.Linear(h, i, bias=bias)
        self.down_proj = nn.Linear(i, h, bias=bias)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class LinearFFN(nn.Module):
    def __init__(self, config: PuzzleConfig):
        super().__init__()
        self.linear_mlp = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.linear_mlp(x)


def build_attention(config: PuzzleConfig, block: BlockConfig, layer_idx: int) -> nn.Module | None:
    """The attention module its kind builds (None for a no-op)."""
    return block.attention.kind.build(config, block, layer_idx)


def build_ffn(config: PuzzleConfig, block: BlockConfig) -> nn.Module | None:
    """The FFN module its kind builds (None for a no-op)."""
    return block.ffn.kind.build(config, block, None)


class PuzzleDecoderLayer(nn.Module):
    """One heterogeneous layer. `self_attn` / `mlp` (and their norms) are absent for no-op sub-blocks."""

    def __init__(self, config: PuzzleConfig, layer_idx: int, block: BlockConfig | None = None):
        super().__init__()
        self.block = block if block is not None else config.block_configs[layer_idx]
        self.layer_idx = layer_idx
        self.self_attn = build_attention(config, self.block, layer_idx)
        self.mlp = build_ffn(config, self.block)
        eps = config.rms_norm_eps
        if self.self_attn is not None:
            self.input_layernorm = PuzzleRMSNorm(config.hidden_size, eps)
        if self.mlp is not None:
            self.post_attention_layernorm = PuzzleRMSNorm(config.hidden_size, eps)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, cache=None, **kwargs):
        if self.self_attn is not None:
            attn_in = self.input_layernorm(hidden_states)
            hidden_states = hidden_states + self.self_attn(attn_in, position_embeddings, attention_mask, cache,
                                                           **kwargs)
        if self.mlp is not None:
            hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states


def prepare_block_inputs(config, rotary_emb, hidden_states, attention_mask=None, position_ids=None, cache=None):
    """What every decoder layer needs beside its hidden states (B, T, H): RoPE (cos, sin) and the causal mask.

    Shared by the model's forward and by stages that run single layers (BLD actors, scoring, measurement).
    Returns (position_embeddings, mask); the mask is None where sdpa can use its own causal kernel.
    """
    if position_ids is None:
        past = cache.get_seq_length() if cache is not None else 0
        position_ids = torch.arange(hidden_states.shape[1], device=hidden_states.device).unsqueeze(0) + past
    mask = create_causal_mask(
        config=config,
        inputs_embeds=hidden_states,
        attention_mask=attention_mask,
        cache=cache,
        position_ids=position_ids,
    )
    return rotary_emb(hidden_states, position_ids=position_ids), mask


class PuzzlePreTrainedModel(PreTrainedModel):
    config_class = PuzzleConfig
    config: PuzzleConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["PuzzleDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True


class PuzzleModel(PuzzlePreTrainedModel):
    def __init__(self, config: PuzzleConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([PuzzleDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = PuzzleRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds")
        cache = cache if cache is not None else past_key_values
        use_cache = self.config.use_cache if use_cache is None else use_cache
        output_hidden_states = output_hidden_states or self.config.output_hidden_states
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, H)
        if use_cache and cache is None and not self.training:
            cache = PuzzleCache(self.config)
        hidden_states = inputs_embeds
        position_embeddings, mask = prepare_block_inputs(  # cos, sin: (B, T, D)
            self.config, self.rotary_emb, hidden_states, attention_mask, position_ids, cache
        )
        all_hidden = [hidden_states] if output_hidden_states else None
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                hidden_states = self._gradient_checkpointing_func(
                    layer.__call__, hidden_states, position_embeddings, mask, cache
                )
            else:
                hidden_states = layer(hidden_states, position_embeddings, mask, cache, **kwargs)
            if output_hidden_states:
                all_hidden.append(hidden_states)
        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            cache=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
        )


class PuzzleForCausalLM(PuzzlePreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: PuzzleConfig):
        super().__init__(config)
        self.model = PuzzleModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def _prepare_cache_for_generation(self, generation_config, model_kwargs, *args, **kwargs):
        # generate() would build a DynamicCache with a KV slot per layer; give it ours unless the caller chose.
        if model_kwargs.get("cache") is None and model_kwargs.get("past_key_values") is None:
            if generation_config.cache_implementation in (None, "dynamic"):
                model_kwargs["cache"] = PuzzleCache(self.config)
                return
        super()._prepare_cache_for_generation(generation_config, model_kwargs, *args, **kwargs)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache if cache is not None else past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        hidden = out.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep, :])  # (B, T, V)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=out.cache, hidden_states=out.hidden_states)
