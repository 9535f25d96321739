"""Which inference engines serve which sub-block combination of an exported (`nemotron-nas`) child.

The one compatibility table of the project: export warnings, `puzzle-ray inspect`, engine-aware search
(`search.engines`) and the model card all ask it (through `serving/check.py`). Each entry says whether the
engine's nemotron-nas (DeciLM) loader builds and runs the case correctly and, if not, what goes wrong, with the
place in that engine's own source that shows it (a file of the engine's repository and the code there), so an
entry can be re-checked when an engine changes.

Cases are per layer. A layer has one attention case and one FFN case, and, when it keeps its attention (GQA or
linear) beside a no-op FFN, that pair as a case of its own: llama.cpp treats a layer without an FFN as a layer
without anything. This module imports nothing heavy (the search config's validator reads `ENGINE_IDS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EngineId = Literal["vllm", "sglang", "tensorrt-llm", "llama.cpp", "mlx"]
ENGINE_IDS: tuple[str, ...] = ("vllm", "sglang", "tensorrt-llm", "llama.cpp", "mlx")
"""What `search.engines` accepts."""

ENGINE_NAMES = {"vllm": "vLLM", "sglang": "SGLang", "tensorrt-llm": "TensorRT-LLM", "llama.cpp": "llama.cpp",
                "mlx": "MLX"}
"""How messages name each engine."""

CASES = {
    "gqa": "GQA attention, any KV-head count per layer",
    "mixed_kv_heads": "GQA layers with different KV-head counts in one child",
    "linear_attention": "linear attention (one H x H matrix)",
    "no_op_attention": "no-op attention",
    "no_op_attention_first": "no-op attention as the first layer's",
    "swiglu": "SwiGLU FFN of a width ffn_mult expresses (a multiple of 256)",
    "swiglu_inexact": "SwiGLU FFN of a width ffn_mult cannot express",
    "linear_ffn": "linear FFN (one H x H matrix)",
    "no_op_ffn": "no-op FFN (beside no-op attention: the whole layer removed)",
    "gqa+no_op_ffn": "GQA attention kept beside a no-op FFN",
    "linear_attention+no_op_ffn": "linear attention kept beside a no-op FFN",
}
"""Every case a layer of a child can be in, and how tables describe it. `mixed_kv_heads` is the one case of a
whole child (its layers together); `no_op_attention_first` is `no_op_attention` where it is layer 0."""

Verdict = Literal["served", "load error", "silently wrong"]


@dataclass(frozen=True)
class Entry:
    """One engine's handling of one case."""

    verdict: Verdict
    """'served'; 'load error' (the engine refuses: nothing wrong is served); 'silently wrong' (it loads and
    produces wrong outputs: the case a search must avoid most)."""
    source: str
    """Where the engine's own code shows it: a file of its repository and the code there."""
    detail: str = ""
    """What goes wrong, or what is lost while it is served (e.g. padded caches)."""

    @property
    def served(self) -> bool:
        return self.verdict == "served"


def _served(source: str, detail: str = "") -> Entry:
    return Entry("served", source, detail)


def _load_error(source: str, detail: str) -> Entry:
    return Entry("load error", source, detail)


def _wrong(source: str, detail: str) -> Entry:
    return Entry("silently wrong", source, detail)


_VLLM = "vllm/model_executor/models/nemotron_nas.py"
_SGLANG = "python/sglang/srt/models/nemotron_nas.py"
_TRT = "tensorrt_llm/_torch/models/modeling_nemotron_nas.py"
_MLX = "mlx_lm/models/nemotron-nas.py"
_LLAMA_CPP_DECI = "src/models/deci.cpp"
_LLAMA_CPP_CONVERT = "conversion/deci.py (DeciModel, used by convert_hf_to_gguf.py)"
_ROUNDING = "`int(2 * ffn_mult * n_embd / 3)` rounded up to a multiple of 256"
_INEXACT = "the width it derives from ffn_mult differs from the weights' shape"
_NO_LINEAR = "no module takes `replace_with_linear`: `n_heads_in_group` / `ffn_mult` is null there"


def _fused_residual(path: str) -> Entry:
    return _served(f"{path}: the FFN branch is skipped under `if not self._is_no_op_ffn:` and the layer returns "
                   "`hidden_states, residual`, which the next layer's fused norm adds")


def _first_layer(path: str) -> Entry:
    return _load_error(f"{path}: `hidden_states, residual = self.post_attention_layernorm(hidden_states, residual)` "
                       "with `residual` still None", "with no attention in layer 0 the first residual is None and "
                       "the fused norm returns one tensor where two are unpacked (by reading the code)")


_LLAMA_CPP_SKIP = _wrong(
    f"{_LLAMA_CPP_DECI}: `if (n_ff == 0) {{ continue; }}` comes before `inpL = cur`",
    "a layer without an FFN is skipped as a whole: its attention output is dropped",
)

MATRIX: dict[str, dict[str, Entry]] = {
    "vllm": {
        "gqa": _served(f"{_VLLM}: `num_kv_heads = (config.num_attention_heads // "
                       "block_config.attention.n_heads_in_group)` in each DeciLMDecoderLayer"),
        "mixed_kv_heads": _served(f"{_VLLM}: per-layer `num_kv_heads`; the KV cache keeps one spec per layer"),
        "linear_attention": _load_error(f"{_VLLM}: only `if not self._is_no_op_attention:` builds attention",
                                        _NO_LINEAR + " (`int // None`); no `linear_attn` parameter to load into"),
        "no_op_attention": _served(f"{_VLLM}: `if self._is_no_op_attention: pass`"),
        "no_op_attention_first": _first_layer(_VLLM),
        "swiglu": _served(f"{_VLLM}: `_ffn_mult_to_intermediate_size`: {_ROUNDING}"),
        "swiglu_inexact": _load_error(f"{_VLLM}: `_ffn_mult_to_intermediate_size` (the same rounding)", _INEXACT),
        "linear_ffn": _load_error(f"{_VLLM}: `if hasattr(block_config.ffn, \"ffn_mult\"):` then "
                                  "`int(2 * ffn_mult * ...)`", _NO_LINEAR + "; no `linear_mlp` module"),
        "no_op_ffn": _served(f"{_VLLM}: `if not self._is_no_op_ffn:`"),
        "gqa+no_op_ffn": _fused_residual(_VLLM),
        "linear_attention+no_op_ffn": _load_error(f"{_VLLM}: as linear attention", _NO_LINEAR),
    },
    "sglang": {
        "gqa": _served(f"{_SGLANG}: per-layer `num_kv_heads = ... // block_config.attention.n_heads_in_group`"),
        "mixed_kv_heads": _load_error(
            "python/sglang/srt/configs/model_config.py `get_total_num_kv_heads`: `if len(nkvh) > 1: raise "
            "ValueError(\"Variable GQA (VGQA) is not yet supported for nemotron-nas in sglang\")`",
            "every GQA layer of a child must have the same KV-head count"),
        "linear_attention": _load_error(
            "python/sglang/srt/configs/model_config.py `get_total_num_kv_heads`: `... // "
            "block.attention.n_heads_in_group for block in ... if not block.attention.no_op`",
            _NO_LINEAR + " (`int // None` before the model is built); no `linear_attn` module"),
        "no_op_attention": _served(f"{_SGLANG}: `if self._is_no_op_attention: pass`"),
        "no_op_attention_first": _first_layer(_SGLANG),
        "swiglu": _served(f"{_SGLANG}: `_ffn_mult_to_intermediate_size(ffn_mult, self.hidden_size)`: {_ROUNDING}"),
        "swiglu_inexact": _load_error(f"{_SGLANG}: `_ffn_mult_to_intermediate_size` (never reads "
                                      "intermediate_size)", _INEXACT),
        "linear_ffn": _load_error(f"{_SGLANG}: `ffn_mult = block_config.ffn.ffn_mult` then `2 * ffn_mult`",
                                  _NO_LINEAR + "; unknown weights are only warned about, so `linear_mlp` would "
                                  "be dropped"),
        "no_op_ffn": _served(f"{_SGLANG}: `if not self._is_no_op_ffn:`"),
        "gqa+no_op_ffn": _fused_residual(_SGLANG),
        "linear_attention+no_op_ffn": _load_error(f"{_SGLANG}: as linear attention", _NO_LINEAR),
    },
    "tensorrt-llm": {
        "gqa": _served(f"{_TRT}: `num_key_value_heads=config.num_key_value_heads[layer_idx]`"),
        "mixed_kv_heads": _served(f"{_TRT}: `config.num_key_value_heads = [config.num_attention_heads // "
                                  "block.attention.n_heads_in_group if ... else 0 ...]`; the KV cache manager "
                                  "takes `num_kv_heads: Union[int, List[Optional[int]]]`"),
        "linear_attention": _served(f"{_TRT}: `if self.block_config.attention.replace_with_linear: self.self_attn = "
                                    "LinearAttention(model_config, config)` with `self.linear_attn`",
                                    "not with LoRA (NotImplementedError)"),
        "no_op_attention": _served(f"{_TRT}: `if not self.block_config.attention.no_op:`"),
        "no_op_attention_first": _served(f"{_TRT}: the residual add is inside each sub-block's branch"),
        "swiglu": _served(f"{_TRT}: `intermediate_size=_ffn_mult_to_intermediate_size(...ffn_mult, "
                          f"config.hidden_size)`: {_ROUNDING}"),
        "swiglu_inexact": _load_error(f"{_TRT}: `_ffn_mult_to_intermediate_size` (the same rounding)", _INEXACT),
        "linear_ffn": _served(f"{_TRT}: `if self.block_config.ffn.replace_with_linear: self.mlp = LinearMLP(...)` "
                              "with `self.linear_mlp`", "not with LoRA (NotImplementedError)"),
        "no_op_ffn": _served(f"{_TRT}: `if not self.block_config.ffn.no_op:`"),
        "gqa+no_op_ffn": _served(f"{_TRT}: `hidden_states = residual + hidden_states` inside the attention branch"),
        "linear_attention+no_op_ffn": _served(f"{_TRT}: as GQA beside a no-op FFN"),
    },
    "llama.cpp": {
        "gqa": _served(
            f"{_LLAMA_CPP_CONVERT}: `self._num_kv_heads.append(num_attention_heads // n_heads_in_group)` per layer; "
            f"{_LLAMA_CPP_DECI}: `create_tensor_qkv(layer, i, ..., n_embd_k_gqa, n_embd_v_gqa, 0)` with "
            "`hparams.n_head_kv(i)`",
        ),
        "mixed_kv_heads": _served(
            f"{_LLAMA_CPP_DECI}: per-layer `n_head_kv(il)`",
            "without flash attention the V cache of every layer is padded to the largest layer's "
            "(src/llama-kv-cache.cpp: 'padding V cache to'), so part of the KV saving is lost",
        ),
        "linear_attention": _served(
            f"{_LLAMA_CPP_CONVERT}: `replace_with_linear` gives `_num_kv_heads` 0 and `_num_heads` "
            "num_attention_heads; gguf-py/gguf/tensor_mapping.py maps `self_attn.linear_attn` to attn_output; "
            f"{_LLAMA_CPP_DECI}: `if (n_head > 0 && n_head_kv == 0) {{ cur = build_lora_mm(wo, cur); }}`",
        ),
        "no_op_attention": _served(f"{_LLAMA_CPP_DECI}: `if (n_head == 0) {{ cur = inpL; }}`"),
        "no_op_attention_first": _load_error(
            "src/llama-model.cpp: `if (hparams.n_head() > 0) { hparams.n_embd_head_k_full = hparams.n_embd / "
            "hparams.n_head(); ... }` (the head size is read from layer 0's head count)",
            "with no attention in layer 0 the head size stays 0 and the next attention layer's q weight has the "
            "wrong shape ('check_tensor_dims: tensor blk.1.attn_q.weight has wrong shape'; "
            "benchmarks/engine_check.py)"),
        "swiglu": _served(f"{_LLAMA_CPP_CONVERT}: `_ffn_mult_to_intermediate_size`: {_ROUNDING}"),
        "swiglu_inexact": _load_error(f"{_LLAMA_CPP_CONVERT}: `_ffn_mult_to_intermediate_size` (the same rounding)",
                                      _INEXACT),
        "linear_ffn": _load_error(
            f"{_LLAMA_CPP_CONVERT}: `if ffn_mult is None: # dummy layer` gives n_ff 0; "
            "gguf-py/gguf/tensor_mapping.py has no entry for `mlp.linear_mlp`",
            "the converter cannot map `mlp.linear_mlp.weight` (and would treat the layer as FFN-free)",
        ),
        "no_op_ffn": _served(f"{_LLAMA_CPP_DECI}: `if (n_ff == 0) {{ continue; }}` (right when attention is no-op "
                             "too)"),
        "gqa+no_op_ffn": _LLAMA_CPP_SKIP,
        "linear_attention+no_op_ffn": _LLAMA_CPP_SKIP,
    },
    "mlx": {
        "gqa": _served(f"{_MLX}: `self.n_kv_heads = n_kv_heads = n_heads // attention_config.n_heads_in_group`"),
        "mixed_kv_heads": _served(f"{_MLX}: one `KVCache()` per layer in `make_cache`"),
        "linear_attention": _load_error(
            f"{_MLX}: `LinearSubblockReplacement` holds `self.linear = nn.Linear(...)`; `sanitize` renames nothing",
            "the parameter is `self_attn.linear.weight`, the checkpoint's `self_attn.linear_attn.weight`: strict "
            "weight loading refuses it"),
        "no_op_attention": _served(f"{_MLX}: `if self.attention_config.no_op: self.self_attn = None`"),
        "no_op_attention_first": _load_error(
            f"{_MLX}: `mask = create_attention_mask(h, cache[0])` with `_BaseCache()` for a no-op layer",
            "the attention mask is made from layer 0's cache, which a no-op layer 0 does not have (by reading)"),
        "swiglu": _served(f"{_MLX}: `hidden_dim = _ffn_mult_to_intermediate_size(ffn_config.ffn_mult, dim)`: "
                          f"{_ROUNDING}; its `FFNConfig` has no `intermediate_size` field, so the export writes that "
                          "key only where ffn_mult cannot express the width"),
        "swiglu_inexact": _load_error(f"{_MLX}: `FFNConfig(**data.get(\"ffn\", {{}}))` (fields no_op, "
                                      "replace_with_linear, sparsify, ffn_mult)",
                                      "the exact `intermediate_size` key is an unexpected argument"),
        "linear_ffn": _load_error(f"{_MLX}: `self.mlp = LinearSubblockReplacement(...)` (`self.linear`)",
                                  "the parameter is `mlp.linear.weight`, the checkpoint's `mlp.linear_mlp.weight`"),
        "no_op_ffn": _served(f"{_MLX}: `if self.ffn_config.no_op: self.mlp = None`"),
        "gqa+no_op_ffn": _served(f"{_MLX}: `x = residual + attn_out`, then `if self.mlp is not None:`"),
        "linear_attention+no_op_ffn": _load_error(f"{_MLX}: as linear attention", "see linear attention"),
    },
}
"""engine id -> case -> entry; every engine has every case (a test checks it). Read from: vLLM 00bd149,
SGLang 15a024d, TensorRT-LLM 0193dbd, mlx-lm 13c89f4 and the llama.cpp of llama-cpp-python 0.3.36; entries
marked 'by reading' were not run here (benchmarks/engine_check.py runs the llama.cpp ones)."""

NOTES: dict[str, list[str]] = {
    "vllm": ["`get_total_num_kv_heads` (vllm/config/model.py) reports the first attention layer's KV-head count "
             "for the whole model"],
    "sglang": ["weights that match no parameter are only warned about (`Parameter ... not found in params_dict`)"],
    "mlx": ["its config dataclasses reject unknown keys, and `head_dim` is always hidden_size / heads"],
    "llama.cpp": [
        "convert_hf_to_gguf.py's DeciLM path accepts only the Llama-3 vocabulary (128,256 tokens) or a SentencePiece "
        "tokenizer (conversion/deci.py `set_vocab`); other BPE tokenizers stop it with 'Cannot find Llama BPE "
        "tokenizer' (benchmarks/engine_check.py shows a shim, outside the export)",
    ],
}
"""Engine-level facts that are not about one case."""


def entry(engine: str, case: str) -> Entry:
    return MATRIX[engine][case]
