"""Multi-document retrieval examples: facts spread over documents, a question whose answer is in one of them.

The file is JSONL, one question per line:

    {"documents": ["The badge number of Mira Okafor is 4821. ...", ...],   # short fact documents
     "question": "What is the badge number of Mira Okafor?",
     "answer": "4821",                                                    # short: a number or a word
     "answer_document": 2,                                                # index of the document holding it
     "candidates": ["1937", "5502", "4821", "7713"]}                      # the same kind of value, per document

The shipped task (`FACT_LOOKUP`, made by `puzzle_ray/data/tasks/make_fact_lookup.py`) has 60 questions with 4
documents each, so B = 1..4 parallel windows hold all of them (`pack_documents`; B = 4 is one document per
window). An answer is scored by exact match of greedy generation or by log-likelihood among `candidates`
(chance 1 / len(candidates)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .tasks import jsonl_records

FACT_LOOKUP = Path(__file__).resolve().parent.parent / "data" / "tasks" / "retrieval" / "fact_lookup.jsonl"
"""The shipped multi-document retrieval task (package data)."""

DOCUMENT_SEPARATOR = "\n"
"""Between two documents packed into one window."""


@dataclass(frozen=True)
class RetrievalExample:
    documents: tuple[str, ...]
    question: str
    answer: str
    answer_document: int
    """Index into `documents` of the one that holds the answer."""
    candidates: tuple[str, ...]
    """Answers of the asked kind, one per document (the answer among them): the label set of log-likelihood scoring."""

    def query(self) -> str:
        """The text after the context: the question, then `Answer:` (the answer follows with a leading space)."""
        return f"\nQuestion: {self.question}\nAnswer:"


def load_retrieval(path: str | Path = FACT_LOOKUP) -> list[RetrievalExample]:
    """The examples of a retrieval JSONL file; raises ValueError naming the file and line of a bad record."""
    return [_example(where, r) for where, r in jsonl_records(path)]


def _example(where: str, r: dict) -> RetrievalExample:
    missing = [k for k in ("documents", "question", "answer", "answer_document") if k not in r]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing} (fields: {sorted(r)})")
    docs = r["documents"]
    if not isinstance(docs, list) or not docs or not all(isinstance(d, str) and d.strip() for d in docs):
        raise ValueError(f"{where}: documents must be a non-empty list of non-empty strings")
    index = r["answer_document"]
    if not isinstance(index, int) or not 0 <= index < len(docs):
        raise ValueError(f"{where}: answer_document={index!r} is not an index into its {len(docs)} documents")
    answer = str(r["answer"]).strip()
    if not answer:
        raise ValueError(f"{where}: empty answer")
    candidates = tuple(str(c).strip() for c in r.get("candidates", [answer]))
    if answer not in candidates:
        raise ValueError(f"{where}: answer {answer!r} is not among its candidates {list(candidates)}")
    return RetrievalExample(tuple(docs), str(r["question"]), answer, index, candidates)


def pack_documents(documents: tuple[str, ...] | list[str], windows: int) -> list[str]:
    """The documents in `windows` contiguous groups, in order, as even as possible (the first groups take the
    extra ones), each group joined by DOCUMENT_SEPARATOR: one window's text per group."""
    if not 1 <= windows <= len(documents):
        raise ValueError(f"windows={windows}: expected 1..{len(documents)} (one document at least per window)")
    size, extra = divmod(len(documents), windows)
    out, start = [], 0
    for w in range(windows):
        end = start + size + (w < extra)
        out.append(DOCUMENT_SEPARATOR.join(documents[start:end]))
        start = end
    return out


def window_of(document: int, num_documents: int, windows: int) -> int:
    """The window that `pack_documents` puts a document in."""
    size, extra = divmod(num_documents, windows)
    big = extra * (size + 1)  # documents held by the first `extra` (larger) windows
    return document // (size + 1) if document < big else extra + (document - big) // size
