"""English prose and code that every Python ships: the `python_docs` source.

    topics      the Python language reference's topics (`pydoc_data.topics.topics`, what `help("assert")`
                shows): about 80 documents, ~465k characters of English
    docstrings  per standard-library module, its docstring and those of its public classes, functions and
                methods, with their signatures, in the layout of `help(module)`; read from the sources with
                `ast` (nothing is imported)
    code        a seeded share of the standard library's source files, as they are

Documents are named `topics/<topic>`, `docstrings/<relpath>`, `code/<relpath>`: stable across machines with
the same Python, so the cache's hash-based train / validation split is too. The fingerprint holds the Python
version, the topics' digest and the standard library's file list and content digest.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
from collections.abc import Iterator
from functools import lru_cache

from .stdlib import StdlibFile, read_source, select_files, stdlib_fingerprint


def _topics() -> dict[str, str]:
    from pydoc_data.topics import topics

    return dict(topics)


@lru_cache(maxsize=1)
def topics_fingerprint() -> dict:
    topics = _topics()
    return {"count": len(topics), "sha256": hashlib.sha256(json.dumps(topics, sort_keys=True).encode()).hexdigest()}


def code_selected(relpath: str, fraction: float, seed: int) -> bool:
    """Whether a file's source goes in as code: a seeded hash of its path below `fraction` (order independent)."""
    if fraction <= 0:
        return False
    h = int.from_bytes(hashlib.blake2b(f"code\0{seed}\0{relpath}".encode(), digest_size=8).digest(), "big")
    return h < fraction * 2**64


def module_name(relpath: str) -> str:
    name = relpath.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    try:
        args = ast.unparse(node.args)
    except Exception:  # pragma: no cover - ast.unparse handles every parsed tree
        args = "..."
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return f"{node.name}({args}){returns}"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.splitlines())


def _public(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__") and name != "__init__")


def docstring_text(relpath: str, source: str, min_chars: int = 40) -> str:
    """`help(module)`-like text of one source file: the module's docstring, then each public class (with its
    methods) and function that has a docstring of at least `min_chars` characters; "" if nothing qualifies
    (or the file does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    parts = []
    doc = ast.get_docstring(tree)
    if doc and len(doc) >= min_chars:
        parts.append(f"Module {module_name(relpath)}\n\n{inspect.cleandoc(doc)}")
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(node.name):
            d = ast.get_docstring(node)
            if d and len(d) >= min_chars:
                parts.append(f"{_signature(node)}\n{_indent(d, '    ')}")
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            d = ast.get_docstring(node)
            members = []
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(item.name):
                    md = ast.get_docstring(item)
                    if md and len(md) >= min_chars:
                        members.append(f"    {_signature(item)}\n{_indent(md, '        ')}")
            if (d and len(d) >= min_chars) or members:
                bases = ", ".join(ast.unparse(b) for b in node.bases)
                head = f"class {node.name}({bases})" if bases else f"class {node.name}"
                body = [_indent(d, "    ")] if d and len(d) >= min_chars else []
                parts.append("\n\n".join([head, *body, *members]))
    return "\n\n".join(parts)


def python_docs_fingerprint(cfg) -> dict:
    out = {"settings": cfg.model_dump(mode="json")}
    if cfg.topics:
        out["topics"] = topics_fingerprint()
    if cfg.docstrings or cfg.code_fraction > 0:
        out["stdlib"] = stdlib_fingerprint(cfg.max_files)
    return out


def _files(cfg) -> tuple[StdlibFile, ...]:
    return select_files(cfg.max_files) if cfg.docstrings or cfg.code_fraction > 0 else ()


def python_docs_documents(cfg) -> Iterator[tuple[str, str]]:
    """(key, text) of every document: the topics (sorted by name), then per file its docstrings and its code."""
    if cfg.topics:
        for name, text in sorted(_topics().items()):
            if text.strip():
                yield f"topics/{name}", text
    for f in _files(cfg):
        source = read_source(f)
        if cfg.docstrings:
            text = docstring_text(f.relpath, source, cfg.min_docstring_chars)
            if text.strip():
                yield f"docstrings/{f.relpath}", text + "\n"
        if code_selected(f.relpath, cfg.code_fraction, cfg.seed) and source.strip():
            yield f"code/{f.relpath}", source


def check_python_docs(cfg) -> None:
    """Raise `DataError` if the configuration selects nothing, or this Python lacks what it selects."""
    from .errors import DataError

    if not (cfg.topics or cfg.docstrings or cfg.code_fraction > 0):
        raise DataError("python_docs: topics, docstrings and code_fraction select nothing; enable one")
    if cfg.topics:
        try:
            _topics()
        except ImportError:
            raise DataError("python_docs: this Python has no pydoc_data.topics; set topics: false") from None
    if cfg.docstrings or cfg.code_fraction > 0:
        select_files(cfg.max_files)  # raises if this Python has no .py sources
