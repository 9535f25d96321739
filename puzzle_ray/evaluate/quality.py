"""Quality of a child against its parent on the same held-out tokens: LM loss, next-token top-1 accuracy,
and KL(parent || child), accumulated over chunks of tokens so that no full (B, T, V) logits tensor exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..arch import PuzzleForCausalLM
from ..distill.loss import IGNORE_INDEX, next_token_labels
from ..ui import progress


@dataclass
class QualitySums:
    tokens: int = 0
    """Positions with a next token (the last position of each sequence has none)."""
    parent_nll: float = 0.0
    child_nll: float = 0.0
    parent_correct: int = 0
    child_correct: int = 0
    kl: float = 0.0
    kl_positions: int = 0
    """All positions, the last included: KL compares distributions and needs no label."""

    def metrics(self) -> tuple[dict[str, float], dict[str, float]]:
        """(parent, child) -> {lm_loss, top1_accuracy, kl_from_parent}; the parent's KL is 0 by definition."""
        n = max(self.tokens, 1)
        parent = {"lm_loss": self.parent_nll / n, "top1_accuracy": self.parent_correct / n, "kl_from_parent": 0.0}
        child = {"lm_loss": self.child_nll / n, "top1_accuracy": self.child_correct / n,
                 "kl_from_parent": self.kl / max(self.kl_positions, 1)}
        return parent, child


def _final_hidden(model: PuzzleForCausalLM, ids: torch.Tensor) -> torch.Tensor:
    return model.model(input_ids=ids, use_cache=False).last_hidden_state  # (B, T, H)


@torch.inference_mode()
def compare_quality(
    parent: PuzzleForCausalLM,
    child: PuzzleForCausalLM,
    batches: Iterable[torch.Tensor],
    chunk_tokens: int = 1024,
    total_batches: int | None = None,
    same_model: bool = False,
) -> tuple[dict[str, float], dict[str, float]]:
    """(parent metrics, child metrics) over `batches` of (B, T) token ids. With `same_model` the child's
    forward is skipped (the parent is evaluated against itself)."""
    sums = QualitySums()
    device = next(parent.parameters()).device
    with progress("batch", transient=True) as bar:
        task = bar.add_task("evaluating quality", total=total_batches)
        for ids in batches:
            ids = ids.to(device)
            hp = _final_hidden(parent, ids).flatten(0, 1)  # (B*T, H)
            hc = hp if same_model else _final_hidden(child, ids).flatten(0, 1)
            labels = next_token_labels(ids).flatten()  # (B*T,)
            for start in range(0, hp.shape[0], chunk_tokens):
                part = slice(start, start + chunk_tokens)
                _accumulate(sums, parent.lm_head(hp[part]), child.lm_head(hc[part]), labels[part])
            bar.advance(task)
    return sums.metrics()


def _accumulate(sums: QualitySums, parent_logits, child_logits, labels) -> None:
    """Add one chunk of N positions: logits (N, V), labels (N,)."""
    lp = F.log_softmax(parent_logits.float(), dim=-1)  # (N, V)
    lc = F.log_softmax(child_logits.float(), dim=-1)
    has_label = labels != IGNORE_INDEX
    safe = labels.clamp(min=0).unsqueeze(-1)  # (N, 1)
    sums.tokens += int(has_label.sum())
    sums.parent_nll -= float((lp.gather(-1, safe).squeeze(-1) * has_label).sum())
    sums.child_nll -= float((lc.gather(-1, safe).squeeze(-1) * has_label).sum())
    sums.parent_correct += int(((lp.argmax(-1) == labels) & has_label).sum())
    sums.child_correct += int(((lc.argmax(-1) == labels) & has_label).sum())
    sums.kl += float(F.kl_div(lc, lp, log_target=True, reduction="sum"))
    sums.kl_positions += labels.shape[0]
