"""The real text of the embedded corpus: the `.py` sources of the Python standard library.

Every Python installation ships them, so the corpus needs no download; the exact file list (relative paths
and content digests) goes into the cache key, so two machines with the same Python build the same corpus and
a different Python can never be mistaken for it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Test suites are large, repetitive and full of deliberately broken code: leave them out.
EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})


@dataclass(frozen=True)
class StdlibFile:
    relpath: str
    """POSIX path relative to the standard library root (the document's key)."""
    path: Path
    size: int


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@lru_cache(maxsize=1)
def stdlib_files() -> tuple[StdlibFile, ...]:
    """Every non-test `.py` file of the standard library, sorted by relative path."""
    root = stdlib_root()
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS]  # prune: never walk into site-packages
        for name in files:
            if name.endswith(".py"):
                path = Path(folder) / name
                out.append(StdlibFile(path.relative_to(root).as_posix(), path, path.stat().st_size))
    out.sort(key=lambda f: f.relpath)
    if not out:
        raise FileNotFoundError(f"{root}: no standard-library sources found (a Python without its .py files?)")
    return tuple(out)


def select_files(max_files: int | None) -> tuple[StdlibFile, ...]:
    """The first `max_files` files in an order that mixes packages (every k-th file), or all of them."""
    files = stdlib_files()
    if max_files is None or max_files >= len(files):
        return files
    step = len(files) / max_files
    return tuple(files[int(i * step)] for i in range(max_files))


@lru_cache(maxsize=8)
def stdlib_fingerprint(max_files: int | None) -> dict:
    """The exact file list and a digest of every file's bytes (about 30 ms for the whole library)."""
    files = select_files(max_files)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relpath.encode() + b"\0" + f.path.read_bytes() + b"\0")
    return {
        "python": sys.version.split()[0],
        "num_files": len(files),
        "num_bytes": sum(f.size for f in files),
        "files": [f.relpath for f in files],
        "sha256": digest.hexdigest(),
    }


def read_source(f: StdlibFile) -> str:
    # A few stdlib files hold deliberately odd bytes; keep them as replacement characters rather than fail.
    return f.path.read_bytes().decode("utf-8", errors="replace")
