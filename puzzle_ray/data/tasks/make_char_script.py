"""Writes `char_script.jsonl`: a three-letter string of one writing system -> that system's name (40 classes).

The letters come from Python's own Unicode database (`unicodedata`): for each script, the letters (general
category L*) of one contiguous code-point range of its block. Each example is three letters drawn with a fixed
seed, so the file is the same on every run of the same Python (its `unicodedata.unidata_version` is recorded in
the README). Most of these scripts are unknown to a small English model: it has to match the query's bytes to
the demonstrations', which is what in-context classification with many labels measures.

    python puzzle_ray/data/tasks/make_char_script.py
"""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

SCRIPTS = (  # (label, first code point, last code point): one range of letters per script
    ("Latin", 0x0061, 0x007A), ("Greek", 0x03B1, 0x03C9), ("Cyrillic", 0x0430, 0x044F),
    ("Armenian", 0x0561, 0x0586), ("Hebrew", 0x05D0, 0x05EA), ("Arabic", 0x0621, 0x064A),
    ("Syriac", 0x0710, 0x072F), ("Thaana", 0x0780, 0x07A5), ("Devanagari", 0x0905, 0x0939),
    ("Bengali", 0x0985, 0x09B9), ("Gurmukhi", 0x0A05, 0x0A39), ("Gujarati", 0x0A85, 0x0AB9),
    ("Oriya", 0x0B05, 0x0B39), ("Tamil", 0x0B85, 0x0BB9), ("Telugu", 0x0C05, 0x0C39),
    ("Kannada", 0x0C85, 0x0CB9), ("Malayalam", 0x0D05, 0x0D39), ("Sinhala", 0x0D85, 0x0DC6),
    ("Thai", 0x0E01, 0x0E2E), ("Lao", 0x0E81, 0x0EAE), ("Tibetan", 0x0F40, 0x0F6C),
    ("Myanmar", 0x1000, 0x102A), ("Georgian", 0x10D0, 0x10FA), ("Hangul", 0xAC00, 0xD7A3),
    ("Ethiopic", 0x1200, 0x135A), ("Cherokee", 0x13A0, 0x13F4), ("Ogham", 0x1681, 0x169A),
    ("Runic", 0x16A0, 0x16EA), ("Khmer", 0x1780, 0x17B3), ("Mongolian", 0x1820, 0x1878),
    ("Hiragana", 0x3041, 0x3096), ("Katakana", 0x30A1, 0x30FA), ("Chinese", 0x4E00, 0x9FFF),
    ("Yi", 0xA000, 0xA48C), ("Vai", 0xA500, 0xA60B), ("Tifinagh", 0x2D30, 0x2D67),
    ("Glagolitic", 0x2C30, 0x2C5E), ("Gothic", 0x10330, 0x1034A), ("Deseret", 0x10428, 0x1044F),
    ("Coptic", 0x2C81, 0x2CE3),
)
PER_CLASS = 12
LETTERS_PER_TEXT = 3
SEED = 0
OUT = Path(__file__).resolve().parent / "char_script.jsonl"


def letters(first: int, last: int) -> list[str]:
    """The letters of the range, in code-point order."""
    return [chr(c) for c in range(first, last + 1) if unicodedata.category(chr(c)).startswith("L")]


def examples(seed: int = SEED) -> list[dict[str, str]]:
    """PER_CLASS distinct texts per script, scripts in SCRIPTS order."""
    rng = random.Random(seed)
    out = []
    for label, first, last in SCRIPTS:
        pool = letters(first, last)
        if len(pool) < 10:
            raise ValueError(f"{label}: only {len(pool)} letters in U+{first:04X}..U+{last:04X}")
        texts: list[str] = []
        while len(texts) < PER_CLASS:
            text = "".join(rng.choice(pool) for _ in range(LETTERS_PER_TEXT))
            if text not in texts:
                texts.append(text)
        out += [{"text": t, "label": label} for t in texts]
    return out


def main() -> None:
    OUT.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples()), encoding="utf-8")
    print(f"{OUT}: {len(SCRIPTS)} classes x {PER_CLASS} (unicodedata {unicodedata.unidata_version})")


if __name__ == "__main__":
    main()
