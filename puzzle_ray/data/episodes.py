"""Synthetic in-context-learning episodes: training text for the embedded corpus, held-out episodes for evaluation.

Two kinds, both answerable only from the context:

- classification: 16 fixed categories of 8 words (animals, fruits, ...). Each episode picks `num_classes` of
  them and maps them to random capital-letter labels, so "cat" is "B" in one episode and "Q" in the next. The
  demonstrations show words with their labels; the query is a word of one of the episode's categories. A model
  answers by finding a demonstration of the same word (an induction copy) or of the same category (which it can
  learn across episodes), so accuracy grows with the number of demonstrations, as in many-class ICL.
- recall: key-value associative recall. `num_pairs` random words with random two-digit values, then one key.

Both use one line format, `format_demo(text, label)` = "cat B", `format_query(text)` = "cat", and the
label as the continuation " B" (single tokens under the embedded tokenizer). The label directly follows its
input so that the plainest induction circuit (find the earlier "cat", copy the token after it) answers; a
separator between them (as in "cat: B") measurably slows its emergence in a small model. Demonstrations are
joined by `DEMO_SEPARATOR`. Training episodes come from one seed stream, evaluation episodes from another, so a held-out
episode is never a training episode.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

CATEGORIES: dict[str, tuple[str, ...]] = {
    "animals": ("cat", "dog", "horse", "cow", "sheep", "goat", "pig", "mouse"),
    "fruits": ("apple", "pear", "plum", "grape", "lemon", "mango", "peach", "cherry"),
    "colors": ("red", "green", "blue", "yellow", "purple", "pink", "brown", "gray"),
    "vehicles": ("car", "bus", "train", "truck", "bike", "boat", "plane", "ship"),
    "tools": ("hammer", "saw", "drill", "wrench", "axe", "shovel", "rake", "chisel"),
    "body": ("hand", "foot", "head", "knee", "elbow", "finger", "nose", "ear"),
    "weather": ("rain", "snow", "wind", "fog", "storm", "hail", "frost", "cloud"),
    "instruments": ("piano", "violin", "guitar", "drum", "flute", "harp", "cello", "trumpet"),
    "furniture": ("chair", "table", "sofa", "bed", "desk", "shelf", "stool", "bench"),
    "clothing": ("shirt", "coat", "hat", "sock", "shoe", "dress", "scarf", "glove"),
    "drinks": ("tea", "coffee", "milk", "juice", "water", "wine", "beer", "soda"),
    "metals": ("iron", "gold", "silver", "copper", "zinc", "tin", "lead", "nickel"),
    "trees": ("oak", "pine", "birch", "maple", "elm", "cedar", "willow", "ash"),
    "birds": ("eagle", "owl", "crow", "duck", "swan", "robin", "hawk", "parrot"),
    "sports": ("tennis", "golf", "soccer", "hockey", "rugby", "boxing", "rowing", "skiing"),
    "vegetables": ("carrot", "potato", "onion", "garlic", "pepper", "bean", "pea", "cabbage"),
}
CATEGORY_WORDS: tuple[tuple[str, ...], ...] = tuple(CATEGORIES.values())
WORDS_PER_CATEGORY = 8
WORDS: tuple[str, ...] = tuple(w for words in CATEGORY_WORDS for w in words)
CLASS_LABELS: tuple[str, ...] = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
RECALL_VALUES: tuple[str, ...] = tuple(str(n) for n in range(10, 100))

DEMO_SEPARATOR = "\n"
"""Between demonstrations, and between the last demonstration and the query."""
TRAINING_SEPARATORS: tuple[tuple[str, float], ...] = (("\n", 0.75), ("\n==\n", 0.25))
"""Training episodes also use the PCW reference's shot separator, so either layout works at evaluation."""

MAX_CLASSES = min(len(CATEGORIES), len(CLASS_LABELS))
MAX_PAIRS = min(len(WORDS), len(RECALL_VALUES))

# Seed streams: numpy's SeedSequence([seed, stream, kind]) makes the streams independent for every seed.
TRAIN_STREAM, EVAL_STREAM = 1, 2
CLASSIFICATION, RECALL = 0, 1


@dataclass
class Episode:
    demos: list[tuple[str, str]]
    """(input text, label) demonstrations, in order."""
    query: str
    answer: str
    labels: list[str]
    """The candidate labels (the episode's label set); chance accuracy is 1 / len(labels)."""
    kind: str
    """"classification" or "recall"."""


def format_demo(text: str, label: str) -> str:
    return f"{text} {label}"


def format_query(text: str) -> str:
    return text


def format_answer(label: str) -> str:
    """The continuation scored for a label (with its leading space: `format_query(t) + format_answer(l)` is
    `format_demo(t, l)`)."""
    return f" {label}"


def episode_prompt(episode: Episode, num_demos: int | None = None, separator: str = DEMO_SEPARATOR) -> str:
    """The first `num_demos` demonstrations (all if None) and the query, ready for the answer's continuation."""
    demos = episode.demos if num_demos is None else episode.demos[:num_demos]
    return "".join(format_demo(t, lab) + separator for t, lab in demos) + format_query(episode.query)


# -- generators -------------------------------------------------------------------------------------------
def _rng(seed: int, stream: int, kind: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, kind])


def _classification(rng: np.random.Generator, num_classes: int, num_demos: int) -> Episode:
    cats = rng.choice(len(CATEGORY_WORDS), num_classes, replace=False)
    labels = [CLASS_LABELS[i] for i in rng.choice(len(CLASS_LABELS), num_classes, replace=False)]
    # One draw per demonstration and the query: (class, word within the class's category); vectorised.
    classes = rng.integers(num_classes, size=num_demos + 1)
    words = rng.integers(WORDS_PER_CATEGORY, size=num_demos + 1)
    pairs = [(CATEGORY_WORDS[cats[c]][w], labels[c]) for c, w in zip(classes.tolist(), words.tolist())]
    (query, answer) = pairs.pop()
    return Episode(pairs, query, answer, labels, "classification")


def _recall(rng: np.random.Generator, num_pairs: int) -> Episode:
    keys = [WORDS[i] for i in rng.choice(len(WORDS), num_pairs, replace=False)]
    values = [RECALL_VALUES[i] for i in rng.choice(len(RECALL_VALUES), num_pairs, replace=False)]
    q = int(rng.integers(num_pairs))
    return Episode(list(zip(keys, values)), keys[q], values[q], values, "recall")


def _check(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name}={value} must be in [{low}, {high}]")


def classification_episodes(count: int, num_classes: int, num_demos: int, seed: int = 0) -> list[Episode]:
    """`count` held-out many-class episodes with `num_demos` demonstrations each (evaluation seed stream)."""
    _check("count", count, 0, 10**9)
    _check("num_classes", num_classes, 2, MAX_CLASSES)
    _check("num_demos", num_demos, 0, 10**6)
    rng = _rng(seed, EVAL_STREAM, CLASSIFICATION)
    return [_classification(rng, num_classes, num_demos) for _ in range(count)]


def recall_episodes(count: int, num_pairs: int, seed: int = 0) -> list[Episode]:
    """`count` held-out key-value recall episodes (`num_pairs` demonstrations, one queried key)."""
    _check("count", count, 0, 10**9)
    _check("num_pairs", num_pairs, 1, MAX_PAIRS)
    rng = _rng(seed, EVAL_STREAM, RECALL)
    return [_recall(rng, num_pairs) for _ in range(count)]


def training_documents(
    num_classification: int, num_recall: int, seed: int = 0, max_demos: int = 64, max_classes: int = MAX_CLASSES
) -> Iterator[tuple[str, str]]:
    """(key, text) training documents from the training seed stream, classification and recall interleaved.

    A classification document is a whole episode: every demonstration after the first of its category is a
    supervised in-context prediction. A recall document lists its pairs, then asks for every key once, in a
    random order.
    """
    _check("max_demos", max_demos, 4, 10**6)
    _check("max_classes", max_classes, 2, MAX_CLASSES)
    rng_c = _rng(seed, TRAIN_STREAM, CLASSIFICATION)
    rng_r = _rng(seed, TRAIN_STREAM, RECALL)
    seps, probs = zip(*TRAINING_SEPARATORS)
    cumulative = np.cumsum(probs)
    total = num_classification + num_recall
    for i in range(total):
        # Interleave evenly so that any prefix of the stream has both kinds in proportion.
        is_recall = (i + 1) * num_recall // max(total, 1) > i * num_recall // max(total, 1)
        rng = rng_r if is_recall else rng_c
        sep = seps[min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(seps) - 1)]
        if is_recall:
            n = int(rng.integers(2, min(max_demos // 2, MAX_PAIRS) + 1))
            ep = _recall(rng, n)
            order = rng.permutation(n)
            lines = [format_demo(*ep.demos[j]) for j in range(n)] + [format_demo(*ep.demos[j]) for j in order]
            yield f"episode/recall/{i}", sep.join(lines) + "\n"
        else:
            k = int(rng.integers(2, min(max_classes, max_demos // 2) + 1))
            ep = _classification(rng, k, int(rng.integers(k, max_demos + 1)))
            lines = [format_demo(t, lab) for t, lab in ep.demos] + [format_demo(ep.query, ep.answer)]
            yield f"episode/classification/{i}", sep.join(lines) + "\n"


# -- scoring ----------------------------------------------------------------------------------------------
def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _prefix_ids(tokenizer) -> list[int]:
    # Documents in the token cache start with BOS (see puzzle_ray.data.tokenizer.separator_ids): score alike.
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return [bos] if bos is not None and bos != eos else []


def continuation_ids(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids), tokenised jointly where the tokenizer keeps the context's tokens."""
    ctx = _prefix_ids(tokenizer) + _encode(tokenizer, context)
    full = _prefix_ids(tokenizer) + _encode(tokenizer, context + continuation)
    if full[: len(ctx)] == ctx and len(full) > len(ctx):
        return ctx, full[len(ctx) :]
    return ctx, _encode(tokenizer, continuation)


def _padded_logits(model, sequences: list[list[int]]) -> torch.Tensor:
    """The model's logits for right-padded `sequences`, with an explicit attention mask: (B, T, V)."""
    device = next(model.parameters()).device
    ids = torch.zeros(len(sequences), max(map(len, sequences)), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits


@torch.inference_mode()
def label_log_likelihoods(
    model, tokenizer, contexts: Sequence[str], candidates: Sequence[Sequence[str]], batch_size: int = 16
) -> list[list[float]]:
    """log p(candidate | context) for every candidate continuation of every context, in batches.

    When all of a context's candidates are single tokens, one forward pass of the context scores them all
    (the usual case for episodes); otherwise each (context, candidate) pair is a sequence of its own, and its
    score is the sum of the continuation tokens' log-probabilities.
    """
    if len(contexts) != len(candidates):
        raise ValueError(f"{len(contexts)} contexts but {len(candidates)} candidate lists")
    max_len = getattr(model.config, "max_position_embeddings", None)
    scores: list[list[float]] = [[0.0] * len(c) for c in candidates]
    # Work items: (sequence, index of its first scored token or None, [(context i, candidate j, token id)]).
    items: list[tuple[list[int], int | None, list[tuple[int, int, int | None]]]] = []
    for i, (context, cands) in enumerate(zip(contexts, candidates)):
        pairs = [continuation_ids(tokenizer, context, c) for c in cands]
        ctx = pairs[0][0]
        if max_len is not None and len(ctx) + max(len(p[1]) for p in pairs) > max_len:
            raise ValueError(f"context {i} has {len(ctx)} tokens: more than the model's {max_len} positions")
        if all(len(cont) == 1 and c_ids == ctx for c_ids, cont in pairs):
            items.append((ctx, None, [(i, j, cont[0]) for j, (_, cont) in enumerate(pairs)]))
        else:
            items += [(c_ids + cont, len(c_ids), [(i, j, None)]) for j, (c_ids, cont) in enumerate(pairs)]
    order = sorted(range(len(items)), key=lambda k: len(items[k][0]))  # similar lengths share a batch
    for b in range(0, len(order), batch_size):
        batch = [items[k] for k in order[b : b + batch_size]]
        logits = _padded_logits(model, [seq for seq, _, _ in batch])  # (B, T, V)
        for row, (seq, start, targets) in enumerate(batch):
            # Only the rows that predict scored tokens go through log-softmax (a full (B, T, V) one is costly
            # with real vocabularies): the last position, or positions start-1 .. len-2 for seq[start:].
            rows = slice(len(seq) - 1, len(seq)) if start is None else slice(start - 1, len(seq) - 1)
            logp = torch.log_softmax(logits[row, rows].float(), dim=-1).cpu()  # (n, V)
            if start is None:  # single-token candidates: the distribution after the context's last token
                for i, j, token in targets:
                    scores[i][j] = float(logp[0, token])
            else:
                ((i, j, _),) = targets
                scores[i][j] = float(logp.gather(-1, torch.tensor(seq[start:])[:, None]).sum())
    return scores


def episode_accuracy(
    model, tokenizer, episodes: Sequence[Episode], num_demos: int | None = None, batch_size: int = 16
) -> float:
    """Share of episodes whose answer has the highest log-likelihood among the episode's labels, with the first
    `num_demos` demonstrations in context (all if None)."""
    if not episodes:
        raise ValueError("episodes: empty")
    was_training = model.training
    model.eval()
    try:
        contexts = [episode_prompt(ep, num_demos) for ep in episodes]
        candidates = [[format_answer(lab) for lab in ep.labels] for ep in episodes]
        scores = label_log_likelihoods(model, tokenizer, contexts, candidates, batch_size)
    finally:
        model.train(was_training)
    correct = sum(ep.labels[int(np.argmax(s))] == ep.answer for ep, s in zip(episodes, scores))
    return correct / len(episodes)
