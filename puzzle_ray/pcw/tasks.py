"""Classification tasks for many-shot in-context learning: JSONL files and the embedded corpus's episodes.

A task is a pool of demonstrations to draw shots from, test examples, the label set and a prompt format.
JSONL files (`{"text": ..., "label": ...}` per line, the shape BANKING77, CLINIC150, TREC and similar sets are
commonly exported in) give one task with many test examples; each synthetic episode of the embedded corpus is a
task of its own (its demos, one query).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

SHOT_SEPARATOR = "\n==\n"
"""Between two shots of a window, and between the context and the query (the reference's TEXT_BETWEEN_SHOTS)."""


class PromptFormat(Protocol):
    def demo(self, text: str, label: str) -> str: ...

    def query(self, text: str) -> str: ...


@dataclass(frozen=True)
class PrefixFormat:
    """The reference's format: `{x_prefix}{text}\\n{y_prefix}{label}`; a query ends right after `y_prefix`
    (trailing space stripped: the label is encoded with its own leading space)."""

    x_prefix: str = "input: "
    y_prefix: str = "label: "

    def demo(self, text: str, label: str) -> str:
        return f"{self.x_prefix}{text}\n{self.y_prefix}{label}"

    def query(self, text: str) -> str:
        return f"{self.x_prefix}{text}\n{self.y_prefix}".rstrip()


@dataclass(frozen=True)
class FunctionFormat:
    """A format given by two functions (the data package's `format_demo` / `format_query`)."""

    demo_fn: Callable[[str, str], str]
    query_fn: Callable[[str], str]

    def demo(self, text: str, label: str) -> str:
        return self.demo_fn(text, label)

    def query(self, text: str) -> str:
        return self.query_fn(text)


@dataclass(frozen=True)
class Example:
    text: str
    label: str


@dataclass(frozen=True)
class ClassificationTask:
    name: str
    pool: tuple[Example, ...]
    """Demonstrations that shots are drawn from."""
    tests: tuple[Example, ...]
    labels: tuple[str, ...]
    """Every label a prediction may take, in a fixed order."""
    format: PromptFormat

    def __post_init__(self):
        if not self.pool:
            raise ValueError(f"task {self.name!r}: no demonstrations to draw shots from")
        if not self.tests:
            raise ValueError(f"task {self.name!r}: no test examples")
        unknown = {e.label for e in self.tests} - set(self.labels)
        if unknown:
            raise ValueError(f"task {self.name!r}: test labels {sorted(unknown)} are not among its labels")


def jsonl_records(path: str | Path) -> list[tuple[str, dict]]:
    """(`file:line`, object) for every non-blank line of a JSONL file; raises naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such JSONL file")
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object per line")
            out.append((f"{path}:{n}", record))
    if not out:
        raise ValueError(f"{path}: no examples")
    return out


def load_jsonl(path: str | Path, text_field: str = "text", label_field: str = "label") -> list[Example]:
    """Examples of a JSONL file; raises ValueError naming the file and line of a bad record."""
    out = []
    for where, record in jsonl_records(path):
        for key in (text_field, label_field):
            if key not in record or record[key] is None:
                raise ValueError(f"{where}: missing field {key!r} (fields: {sorted(record)})")
        text, label = str(record[text_field]), str(record[label_field]).strip()
        if not label:
            raise ValueError(f"{where}: empty label")
        out.append(Example(text, label))
    return out


def jsonl_task(
    train_path: str | Path,
    test_path: str | Path | None = None,
    *,
    text_field: str = "text",
    label_field: str = "label",
    format: PromptFormat = PrefixFormat(),
    test_size: int | None = 250,
    seed: int = 42,
    count_tokens: Callable[[str], int] | None = None,
    drop_long_quantile: float | None = None,
) -> ClassificationTask:
    """One task from JSONL files. Without `test_path`, `test_size` examples of the train file are held out.

    With `count_tokens` and `drop_long_quantile`, examples longer than that quantile of their file's token
    lengths are dropped first (the reference drops the longest 1% of train and test sets).
    """
    pool = load_jsonl(train_path, text_field, label_field)
    rng = np.random.default_rng(seed)
    tests = load_jsonl(test_path, text_field, label_field) if test_path is not None else None
    if count_tokens is not None and drop_long_quantile is not None:
        pool = drop_long(pool, count_tokens, drop_long_quantile)
        tests = drop_long(tests, count_tokens, drop_long_quantile) if tests is not None else None
    if tests is None:
        if test_size is None or test_size >= len(pool):
            raise ValueError(f"{train_path}: without a test file, test_size must be below its {len(pool)} examples")
        held = set(rng.choice(len(pool), size=test_size, replace=False).tolist())
        tests = [e for i, e in enumerate(pool) if i in held]
        pool = [e for i, e in enumerate(pool) if i not in held]
    if test_size is not None and test_size < len(tests):
        tests = [tests[i] for i in sorted(rng.choice(len(tests), size=test_size, replace=False).tolist())]
    labels = tuple(dict.fromkeys(e.label for e in [*pool, *tests]))
    return ClassificationTask(Path(train_path).stem, tuple(pool), tuple(tests), labels, format)


def drop_long(examples: list[Example], count_tokens: Callable[[str], int], quantile: float) -> list[Example]:
    """The examples whose text is not longer (in tokens) than the `quantile` of their lengths."""
    lengths = np.array([count_tokens(e.text) for e in examples])
    limit = np.quantile(lengths, quantile)
    return [e for e, n in zip(examples, lengths) if n <= limit]


def episode_tasks(episodes: Sequence, format: PromptFormat) -> list[ClassificationTask]:
    """Each episode (`demos: list[(text, label)]`, `query`, `answer`, `labels`) as a one-query task."""
    tasks = []
    for i, ep in enumerate(episodes):
        pool = tuple(Example(str(t), str(lab)) for t, lab in ep.demos)
        tasks.append(
            ClassificationTask(
                name=f"episode-{i}",
                pool=pool,
                tests=(Example(str(ep.query), str(ep.answer)),),
                labels=tuple(str(lab) for lab in ep.labels),
                format=format,
            )
        )
    return tasks


def synthetic_episode_tasks(count: int, num_classes: int, num_demos: int, seed: int) -> list[ClassificationTask]:
    """The embedded corpus's held-out many-class episodes (`puzzle_ray.data.episodes`), in that module's format."""
    from puzzle_ray.data import episodes as data_episodes

    eps = data_episodes.classification_episodes(count, num_classes, num_demos, seed)
    return episode_tasks(eps, FunctionFormat(data_episodes.format_demo, data_episodes.format_query))


def episode_separator() -> str:
    """The separator the data package puts between demonstrations (and before the query)."""
    from puzzle_ray.data import episodes as data_episodes

    return data_episodes.DEMO_SEPARATOR
