"""Parallel Context Windows (Ratner et al., ACL 2023) for any Hugging Face causal LM and for Puzzle children.

    from puzzle_ray.pcw import ParallelContextWindows
    pcw = ParallelContextWindows(model, tokenizer)            # alignment="left" (the reference's default)
    context = pcw.encode(["window 1", "window 2"])            # windows_per_forward at a time; reusable
    pcw.logits(context, "task")                               # (len(task), vocab)
    pcw.generate(context, "task", max_new_tokens=32)          # new token ids
    pcw.classify(context, ["input 1", "input 2"], labels)     # loglik (default) or method="greedy" (label trie)

Successors, same API: `ParallelContextWindows(..., context_scale="per_window")` (task attention on the windows
scaled by 1/B) and `NaiveBayesContextWindows(model, tokenizer, beta=0.25, pooling="min_entropy")` (NBCE);
`build_variant("pcw" | "pcw_rescaled" | "nbce", ...)` as `pcw-eval` names them.
"""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): importing one light module of this
# package (its cli.py, its config.py) does not import the heavy ones.
lazy_package(__name__, {
    ".config": ["PCWEvalConfig"],
    ".context": ["EncodedContext"],
    ".evaluate": ["PCWEvalResult", "evaluate_tasks", "run_pcw_eval"],
    ".labels": ["LabelTrie", "encode_labels"],
    ".layout": ["WindowLayout", "plan_windows"],
    ".nbce": ["NaiveBayesContextWindows", "nbce_combine"],
    ".oracle": ["oracle_logits"],
    ".parallel_context": ["ParallelContextWindows"],
    ".tasks": ["ClassificationTask", "Example", "PrefixFormat", "episode_tasks", "jsonl_task"],
    ".variants": ["VARIANTS", "build_variant"],
})

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
