"""The quality report: is the parent really trained?

On held-out text (the validation split: standard-library files the model never saw), next-token loss and top-1
accuracy against a unigram baseline; on held-out synthetic episodes, in-context accuracy at several
demonstration counts against chance. The unigram top-1 is the best any unigram model could reach there (the
held-out text's own most frequent token); its loss is that of the training split's add-one-smoothed unigram.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data.episodes import classification_episodes, episode_accuracy, recall_episodes
from ..data.split import TokenData
from .config import QualityReportConfig
from .train import autocast


@torch.inference_mode()
def next_token_metrics(model, data: TokenData, max_tokens: int, batch_size: int, precision: str = "fp32") -> dict:
    """Loss, top-1 accuracy and target-token counts over the first `max_tokens` held-out tokens."""
    split = data.validation
    device = next(model.parameters()).device
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    counts = np.zeros(data.vocab_size, dtype=np.int64)
    for ids in split.batches(batch_size, token_budget=min(max_tokens, split.num_tokens), shuffle=False):
        targets = ids[:, 1:]  # (B, T-1)
        counts += np.bincount(targets.reshape(-1).numpy(), minlength=data.vocab_size)
        with autocast(device, precision):
            logits = model(input_ids=ids.to(device), use_cache=False).logits[:, :-1].float().cpu()  # (B, T-1, V)
        flat = logits.reshape(-1, logits.shape[-1])
        loss_sum += float(torch.nn.functional.cross_entropy(flat, targets.reshape(-1), reduction="sum"))
        correct += int((logits.argmax(-1) == targets).sum())
        n += targets.numel()
    return {"loss": loss_sum / n, "top1": correct / n, "tokens": n, "target_counts": counts}


def unigram_metrics(data: TokenData, val_counts: np.ndarray) -> dict:
    """Top-1 of the held-out text's most frequent token; loss of the training split's smoothed unigram."""
    train_counts = data.train.token_counts(data.vocab_size).astype(np.float64)
    probs = (train_counts + 1) / (train_counts.sum() + len(train_counts))
    n = val_counts.sum()
    return {"loss": float(-(val_counts * np.log(probs)).sum() / n), "top1": float(val_counts.max() / n)}


def quality_report(model, tokenizer, data: TokenData, cfg: QualityReportConfig, precision: str = "fp32") -> dict:
    """Every number of the report, as a JSON-ready dict."""
    lm = next_token_metrics(model, data, cfg.eval_tokens, cfg.batch_size, precision)
    unigram = unigram_metrics(data, lm.pop("target_counts"))
    # The same episodes at every demonstration count: only the number of demonstrations in context changes.
    cls_eps = classification_episodes(cfg.episodes, cfg.num_classes, max(cfg.demo_counts), cfg.seed)
    device = next(model.parameters()).device
    with autocast(device, precision):
        classification = {
            str(k): episode_accuracy(model, tokenizer, cls_eps, k, cfg.batch_size) for k in sorted(set(cfg.demo_counts))
        }
        recall = {
            str(p): episode_accuracy(model, tokenizer, recall_episodes(cfg.episodes, p, cfg.seed), None, cfg.batch_size)
            for p in sorted(set(cfg.recall_pairs))
        }
    return {
        "heldout_text": {
            "tokens": lm["tokens"],
            "loss": lm["loss"],
            "perplexity": math.exp(lm["loss"]),
            "top1": lm["top1"],
            "unigram_loss": unigram["loss"],
            "unigram_top1": unigram["top1"],
            "top1_vs_unigram": lm["top1"] / unigram["top1"],
        },
        "episodes": {
            "count": cfg.episodes,
            "seed": cfg.seed,
            "classification": {
                "num_classes": cfg.num_classes,
                "chance": 1 / cfg.num_classes,
                "accuracy_by_demos": classification,
            },
            "recall": {
                "accuracy_by_pairs": recall,
                "chance_by_pairs": {str(p): 1 / p for p in sorted(set(cfg.recall_pairs))},
            },
        },
        "config": cfg.model_dump(mode="json"),
    }


def report_tables(report: dict):
    """Two rich tables: held-out text, and in-context episodes."""
    from rich.table import Table

    text = report["heldout_text"]
    t1 = Table(title=f"held-out text ({text['tokens']:,} tokens)")
    for col in ("", "loss", "top-1"):
        t1.add_column(col, justify="right" if col else "left")
    t1.add_row("parent", f"{text['loss']:.3f}", f"{text['top1']:.1%}")
    t1.add_row("unigram baseline", f"{text['unigram_loss']:.3f}", f"{text['unigram_top1']:.1%}")
    t1.add_row("ratio", "", f"{text['top1_vs_unigram']:.2f}x")
    eps = report["episodes"]
    cls = eps["classification"]
    t2 = Table(title=f"held-out in-context episodes ({eps['count']} each)")
    for col in ("task", "in context", "accuracy", "chance"):
        t2.add_column(col, justify="left" if col == "task" else "right")
    # JSON keys are strings (and saved sorted as strings): order the rows by their number.
    for k, acc in sorted(cls["accuracy_by_demos"].items(), key=lambda kv: int(kv[0])):
        t2.add_row(f"{cls['num_classes']}-class classification", f"{k} demos", f"{acc:.1%}", f"{cls['chance']:.1%}")
    for p, acc in sorted(eps["recall"]["accuracy_by_pairs"].items(), key=lambda kv: int(kv[0])):
        t2.add_row("key-value recall", f"{p} pairs", f"{acc:.1%}", f"{eps['recall']['chance_by_pairs'][p]:.1%}")
    return t1, t2
