"""In-context classification on real tasks (word -> category, city -> country), at 0 and k shots.

A task is a JSONL file of `{"text": ..., "label": ...}` (the shipped ones live in `puzzle_ray/data/tasks/`; any
other path works too). Its examples are split once, stratified by label and seeded, into a pool of
demonstrations and a held-out test part; each test example gets its own k shots drawn from the pool:

    Classify each word by its category.\\n        (the task's instruction; shipped tasks have one)
    banana: fruit\\n                              k shots, `{text}: {label}`
    hammer: tool\\n
    violin:                                      the query; every label is scored as ` {label}`

Scoring ranks every label by the model's log-likelihood of its continuation (all its tokens). One forward
per batch of examples scores all labels: each row holds the prompt, then every label's tokens but its last,
each label in its own block that sees the prompt and itself only and restarts at the position after the
prompt (an explicit 4-D mask and position ids, `puzzle_ray.pcw.adapter`). So a label costs len(label) - 1
extra tokens, not a second pass over the prompt; the prompt's last position predicts every label's first token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..pcw.labels import encode_labels
from ..pcw.tasks import Example, load_jsonl

TASKS_DIR = Path(__file__).resolve().parent.parent / "data" / "tasks"
"""The shipped task files (package data)."""

INSTRUCTIONS = {
    "word_category": "Classify each word by its category.",
    "city_country": "Name the country of each city.",
    "fine_category": "Classify each word by its category.",
    "char_script": "Name the writing system of each string.",
}
"""The instruction line of each shipped task (a JSONL path given by the user has none)."""

TEST_FRACTION = 0.4
"""Share of each label's examples held out as test examples (the rest is the demonstration pool)."""


@dataclass(frozen=True)
class ICLTask:
    name: str
    pool: tuple[Example, ...]
    """Demonstrations that shots are drawn from."""
    tests: tuple[Example, ...]
    """Held-out test examples, in a seeded order (evaluate a prefix of them)."""
    labels: tuple[str, ...]
    instruction: str = ""

    def prompt(self, text: str, shots: Sequence[Example]) -> str:
        head = f"{self.instruction}\n" if self.instruction else ""
        return head + "".join(f"{e.text}: {e.label}\n" for e in shots) + f"{text}:"


def shipped_tasks() -> list[str]:
    """Names of the tasks shipped with the package."""
    return sorted(p.stem for p in TASKS_DIR.glob("*.jsonl"))


def task_path(name_or_path: str) -> Path:
    """A shipped task's file by name, or a JSONL path."""
    if name_or_path.endswith(".jsonl") or "/" in name_or_path:
        if not Path(name_or_path).is_file():
            raise ValueError(f"icl task {name_or_path!r}: no such JSONL file")
        return Path(name_or_path)
    path = TASKS_DIR / f"{name_or_path}.jsonl"
    if not path.is_file():
        raise ValueError(f"icl task {name_or_path!r}: not a shipped task ({', '.join(shipped_tasks())}) "
                         "nor a .jsonl path")
    return path


def load_task(name_or_path: str, seed: int = 0) -> ICLTask:
    """The task split into pool and tests: per label, `TEST_FRACTION` of its examples (at least one) are held
    out, chosen with `seed`; a label needs two examples. Raises ValueError naming the file."""
    path = task_path(name_or_path)
    examples = load_jsonl(path)
    by_label: dict[str, list[Example]] = {}
    for e in examples:
        by_label.setdefault(e.label, []).append(e)
    rng = np.random.default_rng(seed)
    pool, tests = [], []
    for label, group in by_label.items():
        if len(group) < 2:
            raise ValueError(f"{path}: label {label!r} has {len(group)} example; each label needs at least 2")
        order = rng.permutation(len(group))
        n_test = max(1, round(TEST_FRACTION * len(group)))
        tests += [group[i] for i in order[:n_test]]
        pool += [group[i] for i in order[n_test:]]
    tests = [tests[i] for i in rng.permutation(len(tests))]  # interleave labels: any prefix is mixed
    return ICLTask(path.stem, tuple(pool), tuple(tests), tuple(by_label), INSTRUCTIONS.get(path.stem, ""))


def draw_shots(task: ICLTask, k: int, n: int, seed: int) -> list[list[Example]]:
    """k shots (without repetition) for each of the first n test examples; the same for every model."""
    if k > len(task.pool):
        raise ValueError(f"icl task {task.name!r}: {k} shots asked, its pool has {len(task.pool)} examples")
    rng = np.random.default_rng([seed, k])
    return [[task.pool[j] for j in rng.choice(len(task.pool), size=k, replace=False)] for _ in range(n)]


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Prompt ids with the tokenizer's own special-token convention (SmolLM2 adds no BOS; others may)."""
    return list(tokenizer(text)["input_ids"])


def _packed_row(prompt: list[int], labels: list[list[int]]):
    """Token ids, positions, (T, T) allowed mask of one row, and for each label the row indices whose next-token
    distributions score its tokens."""
    p = len(prompt)
    ids, pos = list(prompt), list(range(p))
    blocks = []  # (start, length) of each label's block in the row
    score_at = []
    for lab in labels:
        start = len(ids)
        body = lab[:-1]  # the last token is only predicted, never fed
        ids += body
        pos += range(p, p + len(body))
        blocks.append((start, len(body)))
        score_at.append([p - 1] + list(range(start, start + len(body))))
    t = len(ids)
    allowed = torch.zeros(t, t, dtype=torch.bool)
    allowed[:p, :p] = torch.ones(p, p, dtype=torch.bool).tril()
    for start, n in blocks:
        if n:
            allowed[start : start + n, :p] = True
            allowed[start : start + n, start : start + n] = torch.ones(n, n, dtype=torch.bool).tril()
    return ids, pos, allowed, score_at


@torch.inference_mode()
def label_log_likelihoods(
    model,
    prompts: Sequence[list[int]],
    labels: Sequence[list[int]],
    batch_size: int = 8,
    pad_token_id: int = 0,
    on_batch=None,
) -> np.ndarray:
    """(N, C) log-likelihood of each label's tokens after each prompt (token ids), batched and packed.

    Rows are right-padded; a padded position attends only to itself and is never read.
    """
    from ..pcw.adapter import ModelAdapter

    adapter = ModelAdapter(model)
    head = model.get_output_embeddings()
    device = adapter.device
    out = np.zeros((len(prompts), len(labels)), dtype=np.float64)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    targets = [torch.tensor(lab) for lab in labels]
    for b0 in range(0, len(order), batch_size):
        rows = order[b0 : b0 + batch_size]
        packed = [_packed_row(list(prompts[i]), [list(lab) for lab in labels]) for i in rows]
        t = max(len(r[0]) for r in packed)
        ids = torch.full((len(rows), t), pad_token_id, dtype=torch.long)
        pos = torch.zeros((len(rows), t), dtype=torch.long)
        allowed = torch.eye(t, dtype=torch.bool).repeat(len(rows), 1, 1)  # (B, T, T): padding sees itself
        for b, (r_ids, r_pos, r_allowed, _) in enumerate(packed):
            n = len(r_ids)
            ids[b, :n], pos[b, :n] = torch.tensor(r_ids), torch.tensor(r_pos)
            allowed[b, :n, :n] = r_allowed
        adapter.check_positions(int(pos.max()), "icl prompt")
        ids, pos, allowed = ids.to(device), pos.to(device), allowed.to(device)
        hidden = adapter.forward(ids, pos, allowed, pos, None, hidden_only=True)  # (B, T, H)
        for b, i in enumerate(rows):
            score_at = packed[b][3]
            flat = torch.tensor([j for s in score_at for j in s], device=device)
            logp = torch.log_softmax(head(hidden[b, flat]).float(), dim=-1)  # (sum len(label), V)
            k = 0
            for c, target in enumerate(targets):
                n = len(target)
                out[i, c] = float(logp[k : k + n].gather(-1, target.to(device).unsqueeze(-1)).sum())
                k += n
        if on_batch is not None:
            on_batch(len(rows))
    return out


@dataclass(frozen=True)
class ICLPrompts:
    """One task at one shot count, tokenised: what every model is scored on."""

    task: str
    shots: int
    prompts: list[list[int]]
    labels: list[list[int]]
    answers: np.ndarray
    """(N,) index of the right label of each prompt."""

    @property
    def chance(self) -> float:
        return 1.0 / len(self.labels)


def build_prompts(task: ICLTask, tokenizer, shots: int, examples: int, seed: int) -> ICLPrompts:
    tests = task.tests[:examples]
    drawn = draw_shots(task, shots, len(tests), seed)
    prompts = [encode_prompt(tokenizer, task.prompt(e.text, s)) for e, s in zip(tests, drawn)]
    answers = np.array([task.labels.index(e.label) for e in tests])
    return ICLPrompts(task.name, shots, prompts, encode_labels(task.labels, tokenizer), answers)


def accuracy(scores: np.ndarray, answers: np.ndarray) -> float:
    return float((scores.argmax(axis=1) == answers).mean()) if len(answers) else math.nan


def icl_accuracies(
    models: dict,
    tokenizer,
    tasks: Sequence[str],
    shots: Sequence[int],
    examples: int,
    seed: int = 0,
    batch_size: int = 8,
    show_progress: bool = True,
) -> dict[tuple[str, int], dict[str, float]]:
    """{(task name, shots): {model name: accuracy}} on the same prompts for every model (a model given twice,
    e.g. the parent against itself, is scored once)."""
    sets = []
    for name in tasks:
        task = load_task(name, seed)
        sets += [build_prompts(task, tokenizer, k, examples, seed) for k in shots]
    distinct = list({id(m): m for m in models.values()}.values())
    total = sum(len(s.prompts) for s in sets) * len(distinct)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: dict[tuple[str, int], dict[str, float]] = {}
    bar = None
    if show_progress:
        from ..ui import progress

        bar = progress("prompt", transient=True)
        bar.start()
        job = bar.add_task("in-context tasks", total=total)
    try:
        for s in sets:
            scores = {}
            for m in distinct:
                step = (lambda n: bar.advance(job, n)) if bar is not None else None
                ll = label_log_likelihoods(m, s.prompts, s.labels, batch_size, pad, on_batch=step)
                scores[id(m)] = accuracy(ll, s.answers)
            out[(s.task, s.shots)] = {name: scores[id(m)] for name, m in models.items()}
    finally:
        if bar is not None:
            bar.stop()
    return out
