"""Parallel Context Windows (Ratner et al., ACL 2023) for any Hugging Face causal LM and for Puzzle children.

    from puzzle_ray.pcw import ParallelContextWindows
    pcw = ParallelContextWindows(model, tokenizer)            # alignment="left" (the reference's default)
    context = pcw.encode(["window 1", "window 2"])            # one batched forward; reusable, never changed
    pcw.logits(context, "task")                               # (len(task), vocab)
    pcw.generate(context, "task", max_new_tokens=32)          # new token ids
    pcw.classify(context, ["input 1", "input 2"], labels)     # loglik (default) or method="greedy" (label trie)

Successors, same API: `ParallelContextWindows(..., context_scale="per_window")` (task attention on the windows
scaled by 1/B) and `NaiveBayesContextWindows(model, tokenizer, beta=0.25, pooling="min_entropy")` (NBCE);
`build_variant("pcw" | "pcw_rescaled" | "nbce", ...)` as `pcw-eval` names them.
"""

from .config import PCWEvalConfig
from .context import EncodedContext
from .evaluate import PCWEvalResult, evaluate_tasks, run_pcw_eval
from .labels import LabelTrie, encode_labels
from .layout import WindowLayout, plan_windows
from .nbce import NaiveBayesContextWindows, nbce_combine
from .oracle import oracle_logits
from .parallel_context import ParallelContextWindows
from .tasks import ClassificationTask, Example, PrefixFormat, episode_tasks, jsonl_task
from .variants import VARIANTS, build_variant

__all__ = [
    "ClassificationTask",
    "EncodedContext",
    "Example",
    "LabelTrie",
    "NaiveBayesContextWindows",
    "PCWEvalConfig",
    "PCWEvalResult",
    "ParallelContextWindows",
    "VARIANTS",
    "PrefixFormat",
    "WindowLayout",
    "build_variant",
    "encode_labels",
    "episode_tasks",
    "evaluate_tasks",
    "jsonl_task",
    "nbce_combine",
    "oracle_logits",
    "plan_windows",
    "run_pcw_eval",
]
