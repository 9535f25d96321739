"""Writes `retrieval/fact_lookup.jsonl`: multi-document retrieval, 60 questions over 4 short fact documents each.

Each document describes one invented person in four sentences (three attributes and a hobby). The question asks
one attribute of one person; every document states that same attribute of its own person, so the other three
documents are distractors with an answer of the right kind (and give the candidate answers for log-likelihood
scoring, chance 1/4). Attribute values of one kind never repeat within a question, and the kinds' value sets are
disjoint (numbers of 2, 3 and 4 digits, colours, animals, towns), so the answer appears in its document only.
The answer's document cycles through positions 0..3 (15 questions each). Names and numbers are invented;
`random.Random(SEED)` makes the file the same on every run.

    python puzzle_ray/data/tasks/make_fact_lookup.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

FIRST = ("Mira Tobias Anika Rafael Selma Joren Priya Lucan Ingrid Mateo Yara Osric Delia Kofi Nadia Emil "
         "Talia Bruno Ximena Corin Hanne Idris Leona Stellan").split()
LAST = ("Okafor Lindqvist Moreau Castellan Brandt Oyelaran Petrov Achterberg Nakamura Valdez Holloway Sorensen "
        "Quint Marchetti Abara Fenwick Dunmore Kowalczyk Ravel Thorne Ibsen Carvalho Whitlock Esposito").split()
TOWNS = ("Brackwater Lindale Fernhollow Ostrava Millbrook Eastmere Kelvingrove Saltmarsh Ashcombe Harrowgate "
         "Thornbury Westfield").split()
COLOURS = "red blue green yellow purple orange pink brown grey white".split()
PETS = "cat dog parrot rabbit hamster tortoise goldfish ferret lizard canary".split()
HOBBIES = ("painting chess gardening cycling knitting sailing pottery baking climbing fishing "
           "birdwatching rowing").split()

ATTRIBUTES = {  # name -> the values it takes
    "badge number": [str(n) for n in range(1000, 10000)],
    "room number": [str(n) for n in range(100, 1000)],
    "locker number": [str(n) for n in range(10, 100)],
    "favourite colour": COLOURS,
    "pet": PETS,
    "home town": TOWNS,
}
QUESTIONS = 60
DOCUMENTS = 4
FACTS_PER_DOCUMENT = 3
SEED = 0
OUT = Path(__file__).resolve().parent / "retrieval" / "fact_lookup.jsonl"


def fact(attribute: str, name: str, value: str) -> str:
    if attribute == "pet":
        return f"The pet of {name} is a {value}."
    return f"The {attribute} of {name} is {value}."


def record(rng: random.Random, answer_document: int) -> dict:
    """One question: DOCUMENTS people (no first or last name shared), the asked attribute in every document."""
    firsts, lasts = rng.sample(FIRST, DOCUMENTS), rng.sample(LAST, DOCUMENTS)
    names = [f"{f} {s}" for f, s in zip(firsts, lasts)]
    asked = rng.choice(sorted(ATTRIBUTES))
    others = [a for a in sorted(ATTRIBUTES) if a != asked]
    attributes = [[asked, *rng.sample(others, FACTS_PER_DOCUMENT - 1)] for _ in names]
    values = {a: iter(rng.sample(ATTRIBUTES[a], DOCUMENTS)) for a in ATTRIBUTES}  # distinct within the question
    documents, candidates = [], []
    for name, attrs in zip(names, attributes):
        facts = [(a, next(values[a])) for a in attrs]
        candidates.append(facts[0][1])
        rng.shuffle(facts)
        sentences = [fact(a, name, v) for a, v in facts] + [f"{name} enjoys {rng.choice(HOBBIES)}."]
        documents.append(" ".join(sentences))
    return {
        "documents": documents,
        "question": f"What is the {asked} of {names[answer_document]}?",
        "answer": candidates[answer_document],
        "answer_document": answer_document,
        "candidates": candidates,
    }


def records(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    positions = [i % DOCUMENTS for i in range(QUESTIONS)]
    rng.shuffle(positions)
    return [record(rng, p) for p in positions]


def main() -> None:
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("".join(json.dumps(r) + "\n" for r in records()), encoding="utf-8")
    print(f"{OUT}: {QUESTIONS} questions x {DOCUMENTS} documents")


if __name__ == "__main__":
    main()
