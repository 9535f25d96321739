"""The typed config of the many-shot PCW evaluation stage (`puzzle-ray pcw-eval`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from puzzle_ray.configs import StrictConfig


class PCWEvalConfig(StrictConfig):
    model: str
    """Local model folder (Hugging Face layout, or a nemotron-nas Puzzle child) holding its tokenizer too, or a
    `.gguf` file (a parent family's architecture, see `arch/families.py`; converted once into the cache)."""
    train_path: str | None = None
    """JSONL file of demonstrations (`text`, `label` per line). Give this, or `episodes`."""
    test_path: str | None = None
    """JSONL file of test examples; without it, `test_size` examples of `train_path` are held out."""
    text_field: str = "text"
    """JSONL field holding the input text."""
    label_field: str = "label"
    """JSONL field holding the label (numbers are used as their text)."""
    x_prefix: str = "input: "
    """JSONL prompt format: `{x_prefix}{text}\\n{y_prefix}{label}` (the reference's format)."""
    y_prefix: str = "label: "
    """See `x_prefix`."""
    episodes: int = Field(0, ge=0)
    """Number of synthetic many-class episodes of the embedded corpus to evaluate (instead of JSONL files)."""
    episode_classes: int = Field(16, ge=2)
    """Classes per synthetic episode."""
    episode_demos: int | None = Field(None, ge=1)
    """Demonstrations per synthetic episode; None: exactly enough for the largest number of windows."""
    separator: str | None = None
    """Between shots in a window and before the query; None: the reference's "\\n==\\n" for JSONL files, the data
    package's `DEMO_SEPARATOR` for synthetic episodes."""
    num_windows: list[int] = [1, 2, 3]
    """Numbers of parallel windows to evaluate (1 = ordinary in-context learning)."""
    shots_per_window: int | None = Field(None, ge=1)
    """Shots in each window; None: as many as fit `context_size` (the reference's default)."""
    context_size: int | None = Field(None, ge=8)
    """Tokens one window plus the query may take; None: the model's position limit."""
    draws: int = Field(3, ge=1)
    """Random draws of shots per number of windows (accuracy is reported as mean and spread over them)."""
    test_size: int | None = Field(250, ge=1)
    """Test examples to evaluate (a seeded subsample); None: all."""
    drop_long_quantile: float | None = Field(0.99, gt=0, le=1)
    """JSONL: drop examples longer than this quantile of token lengths, as the reference (None: keep all)."""
    seed: int = 42
    """Seeds the test subsample and the draws of shots."""
    method: Literal["greedy", "loglik"] = "greedy"
    """greedy: the reference's constrained greedy decoding over the label trie; loglik: the label with the
    highest total log-likelihood."""
    variant: Literal["pcw", "pcw_rescaled", "nbce"] = "pcw"
    """pcw: Parallel Context Windows; pcw_rescaled: PCW with the task's attention weights on the windows scaled
    by 1/B, as if one window were present (the shared BOS unscaled); nbce: naive-Bayes context extension, one
    prediction per window combined as (1 + nbce_beta) * pool_k log p_k - nbce_beta * log p_0 (see `variants.py`)."""
    nbce_beta: float = Field(0.25, ge=0)
    """NBCE's beta: the weight taken off the no-context prediction p_0 (the paper's code uses 0.25)."""
    nbce_pooling: Literal["min_entropy", "mean"] = "min_entropy"
    """NBCE's pooling over windows: the lowest-entropy window's log p_k (the paper's), or their mean."""
    add_bos: bool = True
    """Prepend the BOS token to each window where the tokenizer does not add it (as the reference's GPT-2 runs,
    and as the embedded corpus's documents are packed); no effect for tokenizers without a BOS token."""
    alignment: Literal["left", "right"] = "left"
    """Window alignment: left (the reference's default) or right (its `right_indentation`); PCW variants only
    (NBCE reads every window from position 0)."""
    batch_size: int = Field(16, ge=1)
    """Query rows per forward when classifying."""
    dtype: Literal["auto", "float32", "bfloat16", "float16", "float64"] = "float32"
    """Model weights' dtype."""
    attn_implementation: Literal["eager", "sdpa"] = "sdpa"
    """Attention kernel (PCW needs explicit 4-D masks: eager or sdpa)."""
    device: str = "cpu"
    """Torch device for the model ("cpu", "cuda", "cuda:1", ...)."""
    tracking_uri: str | None = None
    """MLflow tracking URI; None: $MLFLOW_TRACKING_URI, else MLflow's default (sqlite:///mlflow.db)."""
    experiment: str = "pcw-eval"
    """MLflow experiment name."""
    run_name: str | None = None
    """MLflow run name; None: derived from the model and the data."""
    log_mlflow: bool = True
    """Log parameters, accuracies and the result table to MLflow."""
    output: str | None = None
    """Also write the result as JSON to this file (atomically)."""

    @model_validator(mode="after")
    def _check(self) -> PCWEvalConfig:
        if (self.train_path is None) == (self.episodes == 0):
            raise ValueError("give exactly one data source: train_path (JSONL) or episodes > 0 (synthetic)")
        if self.test_path is not None and self.train_path is None:
            raise ValueError("test_path needs train_path")
        if not self.num_windows or any(b < 1 for b in self.num_windows):
            raise ValueError(f"num_windows={self.num_windows}: expected positive numbers of windows")
        if len(set(self.num_windows)) != len(self.num_windows):
            raise ValueError(f"num_windows={self.num_windows}: repeated values")
        return self
