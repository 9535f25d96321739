"""Parallel Context Windows (Ratner et al., ACL 2023) for any Hugging Face causal LM and for Puzzle children.

    from puzzle_ray.pcw import ParallelContextWindows
    pcw = ParallelContextWindows(model, tokenizer)            # alignment="left" (the reference's default)
    context = pcw.encode(["window 1", "window 2"])            # one batched forward; reusable, never changed
    pcw.logits(context, "task")                               # (len(task), vocab)
    pcw.generate(context, "task", max_new_tokens=32)          # new token ids
    pcw.classify(context, ["input 1", "input 2"], labels)     # loglik (default) or method="greedy" (label trie)
"""

from .config import PCWEvalConfig
from .context import EncodedContext
from .evaluate import PCWEvalResult, evaluate_tasks, run_pcw_eval
from .labels import LabelTrie, encode_labels
from .layout import WindowLayout, plan_windows
from .oracle import oracle_logits
from .parallel_context import ParallelContextWindows
from .tasks import ClassificationTask, Example, PrefixFormat, episode_tasks, jsonl_task

__all__ = [
    "ClassificationTask",
    "EncodedContext",
    "Example",
    "LabelTrie",
    "PCWEvalConfig",
    "PCWEvalResult",
    "ParallelContextWindows",
    "PrefixFormat",
    "WindowLayout",
    "encode_labels",
    "episode_tasks",
    "evaluate_tasks",
    "jsonl_task",
    "oracle_logits",
    "plan_windows",
    "run_pcw_eval",
]
