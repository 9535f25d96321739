"""The shipped task files validate: classification files parse, have the documented classes, balanced and with
enough examples per class, no duplicate texts; the retrieval file's answer is in its document and no other."""

from __future__ import annotations

import importlib.util
import json
import re
import unicodedata
from collections import Counter

import pytest

from puzzle_ray.evaluate.icl import TASKS_DIR
from puzzle_ray.pcw.retrieval import FACT_LOOKUP, load_retrieval, pack_documents, window_of
from puzzle_ray.pcw.tasks import load_jsonl

MANIFEST = {  # task -> (classes, examples per class), as the README's table documents them
    "word_category": (16, 20),
    "city_country": (16, 12),
    "fine_category": (32, 12),
    "char_script": (40, 12),
}
README = (TASKS_DIR / "README.md").read_text(encoding="utf-8")


def script(name: str):
    """A generator script of the tasks folder (not a package), as a module."""
    spec = importlib.util.spec_from_file_location(name, TASKS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_row(name: str) -> list[str]:
    rows = [line for line in README.splitlines() if line.startswith(f"| `{name}.jsonl` |")]
    assert len(rows) == 1, f"{name}: expected one row in the README's table"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_every_shipped_file_is_documented():
    assert sorted(p.stem for p in TASKS_DIR.glob("*.jsonl")) == sorted(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_classification_file(name):
    classes, per_class = MANIFEST[name]
    examples = load_jsonl(TASKS_DIR / f"{name}.jsonl")
    counts = Counter(e.label for e in examples)
    assert len(counts) == classes and 10 <= classes <= 50
    assert set(counts.values()) == {per_class} and per_class >= 6  # balanced, several shots per class per draw
    texts = [e.text.strip().lower() for e in examples]
    assert len(set(texts)) == len(texts), [t for t, n in Counter(texts).items() if n > 1]
    assert all(e.text.strip() for e in examples)
    for label in counts:  # short labels, each named in the README's row of its task
        assert len(label) <= 20 and len(label.split()) <= 2, label
    _, n_classes, size, made = readme_row(name)
    assert int(n_classes) == classes and size.startswith(f"{classes * per_class} ({per_class} per class)")
    missing = [lab for lab in counts if not re.search(rf"\b{re.escape(lab)}\b", made)]
    assert not missing, f"{name}: labels not listed in the README: {missing}"


def test_char_script_is_what_its_script_writes():
    make = script("make_char_script")
    examples = [json.loads(line) for line in (TASKS_DIR / "char_script.jsonl").read_text("utf-8").splitlines()]
    assert [lab for lab, _, _ in make.SCRIPTS] == list(dict.fromkeys(e["label"] for e in examples))
    for e in examples:  # every letter in its script's range
        first, last = next((a, b) for lab, a, b in make.SCRIPTS if lab == e["label"])
        assert all(first <= ord(c) <= last and unicodedata.category(c).startswith("L") for c in e["text"]), e
    if unicodedata.unidata_version != "14.0.0":  # the version the file was made with (README)
        pytest.skip(f"unicodedata {unicodedata.unidata_version}: letter sets may differ from the shipped file's")
    assert make.examples() == examples


def mentions(document: str, value: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", document) is not None


def test_fact_lookup_answers_sit_in_the_indicated_document_only():
    examples = load_retrieval()
    assert len(examples) == 60 and all(len(e.documents) == 4 for e in examples)
    assert Counter(e.answer_document for e in examples) == {0: 15, 1: 15, 2: 15, 3: 15}
    for e in examples:
        holding = [i for i, d in enumerate(e.documents) if mentions(d, e.answer)]
        assert holding == [e.answer_document], (e.question, e.answer, holding)
        assert len(e.answer.split()) == 1 and e.candidates[e.answer_document] == e.answer
        assert len(set(e.candidates)) == len(e.candidates) == len(e.documents)
        for i, c in enumerate(e.candidates):  # each candidate only in its own document
            assert [j for j, d in enumerate(e.documents) if mentions(d, c)] == [i], (e.question, c)
        name = e.question.removesuffix("?").split(" of ", 1)[1]
        assert [i for i, d in enumerate(e.documents) if name in d] == [e.answer_document]
    records = [json.loads(line) for line in FACT_LOOKUP.read_text("utf-8").splitlines()]
    assert script("make_fact_lookup").records() == records


def test_pack_documents_keeps_order_and_window_of_finds_each_document():
    docs = tuple(f"doc{i}" for i in range(4))
    assert pack_documents(docs, 4) == list(docs)
    assert pack_documents(docs, 1) == ["doc0\ndoc1\ndoc2\ndoc3"]
    assert pack_documents(docs, 3) == ["doc0\ndoc1", "doc2", "doc3"]
    for n in range(1, 8):
        for b in range(1, n + 1):
            packed = pack_documents([f"doc{i}" for i in range(n)], b)
            assert len(packed) == b
            for i in range(n):
                assert f"doc{i}" in packed[window_of(i, n, b)].split("\n")
    with pytest.raises(ValueError, match="windows=5"):
        pack_documents(docs, 5)


def test_load_retrieval_names_a_bad_record(tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = {"documents": ["a is 1."], "question": "q?", "answer": "1", "answer_document": 0}
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "answer_document": 3}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: answer_document=3"):
        load_retrieval(bad)
    bad.write_text(json.dumps({**good, "candidates": ["2"]}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: answer '1' is not among"):
        load_retrieval(bad)
    ok = tmp_path / "ok.jsonl"
    ok.write_text(json.dumps(good) + "\n")
    assert load_retrieval(ok)[0].candidates == ("1",)  # without candidates: the answer alone
