"""Token sources: check them cheaply, fingerprint their content, and read them as documents.

`resolve_source` runs before any tokenising: a missing path, a folder without matching files, an empty file,
a JSONL record or column without the configured field, or a value of the wrong type raises one `DataError`
naming the source and the file (and line). `iter_documents` then reads every document; errors found only
there (a bad line deep in a file) name the file and line too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .config import EmbeddedSource, HFDiskSource, JsonlSource, ParquetSource, PythonDocsSource, Source, TextSource
from .errors import DataError
from .tokenizer import check_messages, render_chat


@dataclass(frozen=True)
class Document:
    key: str
    """Stable name (relative path, line or row): decides its train / validation assignment."""
    text: str
    train_only: bool = False
    """Synthetic episodes: never held out (held-out episodes are generated separately)."""


@dataclass
class ResolvedSource:
    """A checked source: its config, its files (in reading order) and whether it holds chat messages."""

    index: int
    config: Source
    files: list[Path] = field(default_factory=list)
    root: Path | None = None
    chat: bool = False

    @property
    def name(self) -> str:
        where = f" {self.config.path}" if getattr(self.config, "path", None) is not None else ""
        return f"sources[{self.index}] ({self.config.kind}{where})"

    def relpath(self, file: Path) -> str:
        return file.relative_to(self.root).as_posix() if self.root is not None and file != self.root else file.name


# -- checking ---------------------------------------------------------------------------------------------
def _files(src: ResolvedSource, glob: str) -> None:
    path = Path(src.config.path)
    if not path.exists():
        raise DataError(f"{src.name}: no such file or folder")
    if path.is_dir():
        src.root = path
        src.files = sorted(p for p in path.glob(glob) if p.is_file())
        if not src.files:
            raise DataError(f"{src.name}: no files match {glob!r} in this folder")
    else:
        src.root, src.files = path.parent, [path]
    for f in src.files:
        if f.stat().st_size == 0:
            raise DataError(f"{src.name}: {f} is empty")


def _value_kind(value, where: str, field_name: str) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        check_messages(value, where)
        return "chat"
    raise DataError(
        f"{where}: field {field_name!r} must be a string or a list of chat messages, got {type(value).__name__}"
    )


def _check_jsonl(src: ResolvedSource) -> None:
    kinds = set()
    for f in src.files:
        with f.open("rb") as fh:
            for n, line in enumerate(fh, start=1):
                if line.strip():
                    record = _parse_json_line(line, f"{f}:{n}")
                    kinds.add(_value_kind(_field(record, src.config.field, f"{f}:{n}"), f"{f}:{n}", src.config.field))
                    break
            else:
                raise DataError(f"{src.name}: {f} has no records")
    src.chat = "chat" in kinds


def _parse_json_line(line: bytes, where: str) -> dict:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object per line, got {type(record).__name__}")
    return record


def _field(record: dict, name: str, where: str):
    if name not in record or record[name] is None:
        raise DataError(f"{where}: no field {name!r} (fields: {', '.join(sorted(record)) or 'none'})")
    return record[name]


def _column_kind(arrow_type, where: str, name: str) -> str:
    import pyarrow as pa

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return "chat"
    raise DataError(f"{where}: column {name!r} has type {arrow_type}, expected strings or chat messages")


def _check_parquet(src: ResolvedSource) -> None:
    import pyarrow.parquet as pq

    rows, kinds = 0, set()
    for f in src.files:
        try:
            meta = pq.ParquetFile(f)
        except Exception as e:
            raise DataError(f"{src.name}: {f} is not a Parquet file ({e})") from None
        schema = meta.schema_arrow
        if src.config.field not in schema.names:
            raise DataError(f"{src.name}: {f} has no column {src.config.field!r} (columns: {', '.join(schema.names)})")
        kinds.add(_column_kind(schema.field(src.config.field).type, f"{src.name}: {f}", src.config.field))
        rows += meta.metadata.num_rows
    if rows == 0:
        raise DataError(f"{src.name}: no rows")
    src.chat = "chat" in kinds


def _load_hf(src: ResolvedSource):
    import datasets

    cfg: HFDiskSource = src.config
    try:
        ds = datasets.load_from_disk(str(cfg.path))
    except Exception as e:
        raise DataError(f"{src.name}: not a folder written by datasets' save_to_disk ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if cfg.split is None or cfg.split not in ds:
            raise DataError(f"{src.name}: a DatasetDict; set split to one of {', '.join(ds)} (got {cfg.split!r})")
        ds = ds[cfg.split]
    elif cfg.split is not None:
        raise DataError(f"{src.name}: split={cfg.split!r} given but the folder holds a single Dataset")
    return ds


def _check_hf(src: ResolvedSource) -> None:
    path = Path(src.config.path)
    if not path.is_dir():
        raise DataError(f"{src.name}: no such folder")
    ds = _load_hf(src)
    if src.config.field not in ds.column_names:
        raise DataError(f"{src.name}: no column {src.config.field!r} (columns: {', '.join(ds.column_names)})")
    if len(ds) == 0:
        raise DataError(f"{src.name}: no rows")
    src.chat = _column_kind(ds.data.schema.field(src.config.field).type, src.name, src.config.field) == "chat"
    src.root = path
    src.files = sorted(p for p in path.rglob("*") if p.is_file())


def resolve_source(index: int, config: Source) -> ResolvedSource:
    """Check one source without reading more than its first record; raise `DataError` naming the problem."""
    src = ResolvedSource(index, config)
    if isinstance(config, TextSource):
        _files(src, config.glob)
    elif isinstance(config, JsonlSource):
        _files(src, config.glob)
        _check_jsonl(src)
    elif isinstance(config, ParquetSource):
        _files(src, config.glob)
        _check_parquet(src)
    elif isinstance(config, HFDiskSource):
        _check_hf(src)
    elif isinstance(config, EmbeddedSource):
        from .stdlib import select_files

        select_files(config.max_files)  # raises if this Python has no .py sources
    elif isinstance(config, PythonDocsSource):
        from .pydocs import check_python_docs

        check_python_docs(config)
    else:  # pragma: no cover - the discriminated union admits nothing else
        raise DataError(f"sources[{index}]: unknown kind {config.kind!r}")
    return src


# -- fingerprints -----------------------------------------------------------------------------------------
def _file_digests(src: ResolvedSource, memo_dir: Path | None) -> list[list]:
    """[relpath, size, blake2b] per file. Digests are memoised by (path, size, mtime, inode) so that opening a
    cache again does not read a large corpus; a changed file has a new mtime and is hashed again."""
    stats = [(str(f.resolve()), st.st_size, st.st_mtime_ns, st.st_ino) for f in src.files for st in [f.stat()]]
    memo = None
    if memo_dir is not None:
        memo = memo_dir / (hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:32] + ".json")
        if memo.is_file():
            try:
                return json.loads(memo.read_text())
            except (OSError, json.JSONDecodeError):
                pass
    out = []
    for f in src.files:
        digest = hashlib.blake2b(digest_size=16)
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        out.append([src.relpath(f), f.stat().st_size, digest.hexdigest()])
    if memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_suffix(f".tmp{id(out)}")
            tmp.write_text(json.dumps(out))
            tmp.replace(memo)
        except OSError:
            pass  # a read-only cache only loses the memo
    return out


def source_fingerprint(src: ResolvedSource, memo_dir: Path | None = None) -> dict:
    """What the source's documents depend on: its settings (not where it lies) and its files' content."""
    settings = src.config.model_dump(mode="json", exclude={"path"})
    if isinstance(src.config, EmbeddedSource):
        from .stdlib import stdlib_fingerprint

        return {"settings": settings, "stdlib": stdlib_fingerprint(src.config.max_files)}
    if isinstance(src.config, PythonDocsSource):
        from .pydocs import python_docs_fingerprint

        return python_docs_fingerprint(src.config)
    return {"settings": settings, "files": _file_digests(src, memo_dir)}


# -- reading ----------------------------------------------------------------------------------------------
def _text(value, where: str, field_name: str, tokenizer) -> str:
    if _value_kind(value, where, field_name) == "chat":
        return render_chat(tokenizer, value, where)
    return value


def iter_documents(src: ResolvedSource, tokenizer) -> Iterator[Document]:
    """Every document of the source, in a fixed order (empty texts are skipped)."""
    cfg = src.config
    if isinstance(cfg, TextSource):
        for f in src.files:
            try:
                text = f.read_bytes().decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{src.name}: {f} is not UTF-8 text ({e})") from None
            if text.strip():
                yield Document(src.relpath(f), text)
    elif isinstance(cfg, JsonlSource):
        for f in src.files:
            with f.open("rb") as fh:
                for n, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    where = f"{f}:{n}"
                    text = _text(_field(_parse_json_line(line, where), cfg.field, where), where, cfg.field, tokenizer)
                    if text.strip():
                        yield Document(f"{src.relpath(f)}:{n}", text)
    elif isinstance(cfg, ParquetSource):
        import pyarrow.parquet as pq

        for f in src.files:
            row = 0
            for batch in pq.ParquetFile(f).iter_batches(columns=[cfg.field], batch_size=1024):
                for value in batch.column(0).to_pylist():
                    where = f"{f} row {row}"
                    if value is None:
                        raise DataError(f"{where}: column {cfg.field!r} is null")
                    text = _text(value, where, cfg.field, tokenizer)
                    if text.strip():
                        yield Document(f"{src.relpath(f)}:{row}", text)
                    row += 1
    elif isinstance(cfg, HFDiskSource):
        ds = _load_hf(src).select_columns([cfg.field])
        row = 0
        for batch in ds.iter(batch_size=1024):
            for value in batch[cfg.field]:
                where = f"{src.name} row {row}"
                if value is None:
                    raise DataError(f"{where}: column {cfg.field!r} is null")
                text = _text(value, where, cfg.field, tokenizer)
                if text.strip():
                    yield Document(str(row), text)
                row += 1
    elif isinstance(cfg, EmbeddedSource):
        yield from embedded_documents(cfg)
    elif isinstance(cfg, PythonDocsSource):
        from .pydocs import python_docs_documents

        for key, text in python_docs_documents(cfg):
            yield Document(f"pydocs/{key}", text)


def embedded_documents(cfg: EmbeddedSource) -> Iterator[Document]:
    """The standard library's sources, then the training episodes (always in the training split)."""
    from .episodes import training_documents
    from .stdlib import read_source, select_files

    for f in select_files(cfg.max_files):
        text = read_source(f)
        if text.strip():
            yield Document(f"stdlib/{f.relpath}", text)
    for key, text in training_documents(cfg.classification_episodes, cfg.recall_episodes, cfg.seed, cfg.max_demos):
        yield Document(key, text, train_only=True)
