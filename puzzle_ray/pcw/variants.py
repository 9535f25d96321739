"""PCW and its successors behind one constructor, as `pcw-eval` names them.

    pcw           - Parallel Context Windows (Ratner et al. 2023): the task attends to all windows at once;
    pcw_rescaled  - the same, with the task's attention weights on the windows scaled by 1/B (structured
                    prompting, Hao et al. 2022; `rescale.py`);
    nbce          - naive-Bayes context extension (Su et al. 2024): one prediction per window, combined
                    (`nbce.py`); no shared attention, no alignment.
"""

from __future__ import annotations

from typing import Literal

from transformers import PreTrainedModel

from .layout import Alignment
from .nbce import DEFAULT_BETA, NaiveBayesContextWindows, Pooling
from .parallel_context import ParallelContextWindows

Variant = Literal["pcw", "pcw_rescaled", "nbce"]
VARIANTS = ("pcw", "pcw_rescaled", "nbce")


def build_variant(
    variant: Variant,
    model: PreTrainedModel,
    tokenizer=None,
    *,
    alignment: Alignment = "left",
    add_bos: bool = False,
    beta: float = DEFAULT_BETA,
    pooling: Pooling = "min_entropy",
) -> ParallelContextWindows:
    """The variant's object (all share the `ParallelContextWindows` API); `alignment` is PCW's only, `beta` and
    `pooling` NBCE's only."""
    if variant == "pcw":
        return ParallelContextWindows(model, tokenizer, alignment=alignment, add_bos=add_bos)
    if variant == "pcw_rescaled":
        return ParallelContextWindows(model, tokenizer, alignment=alignment, add_bos=add_bos,
                                      context_scale="per_window")
    if variant == "nbce":
        return NaiveBayesContextWindows(model, tokenizer, beta=beta, pooling=pooling, add_bos=add_bos)
    raise ValueError(f"variant={variant!r}: expected one of {', '.join(VARIANTS)}")
