"""The GKD objective as modules: the frozen teacher's targets, and the student whose forward returns its loss.

The student's forward computes the whole loss so that DDP and DeepSpeed, which hook the wrapped module's
forward, see every parameter that gets a gradient (calling `student.model(...)` around the wrapper would bypass
DDP's gradient synchronisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..arch import PuzzleForCausalLM
from .loss import chunked_kl_and_lm, hidden_cosine_loss

TERMS = ("cosine", "kl", "lm")


@dataclass(frozen=True)
class LossWeights:
    cosine: float = 1.0
    kl: float = 1.0
    lm: float = 0.0


@dataclass
class TeacherTargets:
    hidden: tuple[torch.Tensor, ...]
    """Output of every decoder layer (before the final norm), L tensors (B, T, H)."""
    final: torch.Tensor
    """The final norm's output (B, T, H): the input of the LM head."""
    head_weight: torch.Tensor
    """The teacher's LM head (V, H)."""


@torch.no_grad()
def teacher_targets(teacher: PuzzleForCausalLM, input_ids: torch.Tensor) -> TeacherTargets:
    """Run the frozen teacher (eval mode, no autograd graph) on (B, T) token ids.

    `torch.no_grad` rather than `torch.inference_mode`: inference tensors may not be saved for the student's
    backward, and the KL's recomputation saves the teacher's hidden states.
    """
    out = teacher.model(input_ids=input_ids, output_hidden_states=True, use_cache=False)
    return TeacherTargets(out.hidden_states[1:], out.last_hidden_state, teacher.lm_head.weight)


class GKDStudent(nn.Module):
    """Wraps the trainable child; `forward(input_ids, teacher)` -> (weighted loss, detached per-term values (3,))."""

    def __init__(self, student: PuzzleForCausalLM, weights: LossWeights, chunk_tokens: int):
        super().__init__()
        self.student = student
        self.weights = weights
        self.chunk_tokens = chunk_tokens

    def forward(self, input_ids: torch.Tensor, teacher: TeacherTargets) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weights
        want_hidden = w.cosine > 0
        out = self.student.model(input_ids=input_ids, output_hidden_states=want_hidden, use_cache=False)
        zero = out.last_hidden_state.new_zeros((), dtype=torch.float32)
        cosine = hidden_cosine_loss(out.hidden_states[1:], teacher.hidden) if want_hidden else zero
        if w.kl > 0 or w.lm > 0:
            kl, lm = chunked_kl_and_lm(
                out.last_hidden_state,
                teacher.final,
                self.student.lm_head,
                teacher.head_weight,
                input_ids,
                self.chunk_tokens,
                with_lm=w.lm > 0,
            )
        else:
            kl, lm = zero, zero
        loss = w.cosine * cosine + w.kl * kl + w.lm * lm
        return loss, torch.stack([cosine, kl, lm]).detach()
