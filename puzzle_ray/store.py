"""The artifact store: a local folder by default, any fsspec URL (`s3://`, `gs://`, ...) on clusters.

It is the only thing Ray actors and tasks share: nothing assumes a common filesystem except through this
URL. Writes are atomic where the backend allows (write to a temporary name, then move), so a reader never
sees half a file and a crashed writer leaves nothing that looks complete. Completion is recorded by writing
a small JSON record last.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
from filelock import FileLock, Timeout

if TYPE_CHECKING:  # torch is imported by the methods that read or write tensors: the locks and folders of
    import torch  # this module serve torch-free commands too (`inspect` of a GGUF file)


@contextmanager
def exclusive_lock(lock_file: str | Path) -> Iterator[None]:
    """An exclusive OS lock on a local file (filelock: flock on POSIX), released when the holder exits, even by
    a crash."""
    with FileLock(str(lock_file)):
        yield


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (else set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_modes(folder: str | Path) -> None:
    """Give `folder` and everything in it the modes `mkdir` and `open` would have given them (0755 / 0644 under
    the usual umask; executables keep their execute bits): `tempfile` makes private ones (0700 / 0600), and a
    staged folder that takes a published folder's place must be as readable as any other."""
    mask = _umask()
    dir_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    for path in [Path(folder), *Path(folder).rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(dir_mode)
        elif path.is_file():
            executable = path.stat().st_mode & 0o100
            path.chmod(dir_mode if executable else file_mode)


@contextmanager
def staged_folder(out_dir: str | Path) -> Iterator[Path]:
    """Yield an empty sibling of local folder `out_dir` to fill. On success it takes `out_dir`'s place (a
    previous folder is moved aside first and removed after), on error it is removed: readers never see a
    half-written folder, and a crash mid-write keeps the previous one. The folder and its files get normal modes
    (see `normal_modes`), not the private ones of a temporary folder."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield tmp
        normal_modes(tmp)
        old = out_dir.parent / f".old-{out_dir.name}-{uuid.uuid4().hex[:8]}"
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class StoreError(OSError):
    """The artifact store cannot be used (missing, not writable, bad URL); the message names the URL."""


class CorruptRecord(ValueError):
    """A stored JSON record that does not parse (e.g. truncated by a full disk); the message names it."""


class CorruptArtifact(ValueError):
    """A stored file whose bytes no longer match the digest recorded when it was written; the message names it."""


WRITER_LOCK, WRITER_INFO = ".writer.lock", ".writer.json"
"""The store's writer lock (local stores) and who holds it (JSON: workflow, pid, host, since)."""


class ArtifactStore:
    def __init__(self, url: str | Path):
        self.url = str(url).rstrip("/")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except (ValueError, ImportError) as e:
            raise StoreError(f"artifact store {self.url!r}: {e}") from None

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def __reduce__(self):
        return (ArtifactStore, (self.url,))  # ship the URL, not the filesystem object, to Ray workers

    @property
    def is_local(self) -> bool:
        return "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def uri(self, key: str) -> str:
        """A full URL for `key`, e.g. to log in MLflow."""
        return f"{self.url}/{key}"

    @contextmanager
    def writer(self, owner: dict[str, Any], on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the store's writer lock for the block: one workflow run per store at a time.

        A second run waits for the first, told (through `on_wait`) who holds the lock. Local stores use an OS
        file lock, which a killed holder releases; object stores get a marker created atomically where the
        filesystem supports exclusive creation (a marker left by a killed driver must then be deleted by hand:
        the message names it)."""
        info = json.dumps({**owner, "pid": os.getpid(), "host": os.uname().nodename, "since": time.time()})
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)
            lock = FileLock(self.path(WRITER_LOCK))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                if on_wait:
                    on_wait(f"artifact store {self.url} is in use by {self._holder()}; waiting for it to finish")
                lock.acquire()
            try:
                self.write_bytes(WRITER_INFO, info.encode())
                yield
            finally:
                lock.release()
            return
        marker = self.path(WRITER_INFO)
        while not self._create_marker(marker, info.encode()):
            if on_wait:
                on_wait(f"artifact store {self.url} is in use by {self._holder()} (if no run holds it, delete "
                        f"{self.uri(WRITER_INFO)}); waiting")
                on_wait = None
            time.sleep(10)
        try:
            yield
        finally:
            self.fs.rm(marker)

    def _create_marker(self, path: str, data: bytes) -> bool:
        """Create `path` unless it exists: atomically where the filesystem has exclusive creation, else by a
        check then a write (a narrow race between two drivers starting in the same second)."""
        try:
            with self.fs.open(path, "xb") as f:
                f.write(data)
            return True
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError, TypeError):  # no exclusive creation on this filesystem
            if self.fs.exists(path):
                return False
            with self.fs.open(path, "wb") as f:
                f.write(data)
            return True

    def _holder(self) -> str:
        try:
            h = json.loads(self.read_bytes(WRITER_INFO))
            return (f"{h.get('workflow', '?')} (pid {h.get('pid')} on {h.get('host')}, since "
                    f"{time.strftime('%H:%M:%S', time.localtime(h.get('since', 0)))})")
        except (OSError, ValueError):
            return "another run"

    def check_writable(self) -> None:
        """Raise `StoreError` now, before any expensive work, if we cannot write here."""
        probe = f".write-probe-{uuid.uuid4().hex}"
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            self.write_bytes(probe, b"ok")
            self.fs.rm(self.path(probe))
        except (OSError, PermissionError) as e:
            raise StoreError(f"artifact store {self.url!r} is not writable: {e}") from None

    # -- bytes ---------------------------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self.path(key)
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        if self.is_local:
            os.replace(tmp, path)  # atomic on POSIX
        else:
            self.fs.mv(tmp, path)

    def read_bytes(self, key: str) -> bytes:
        try:
            with self.fs.open(self.path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri(key)}: not in the artifact store") from None

    def delete(self, key: str) -> None:
        if self.exists(key):
            self.fs.rm(self.path(key), recursive=True)

    def list(self, prefix: str) -> list[str]:
        """Keys directly under `prefix` (names only)."""
        if not self.exists(prefix):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.path(prefix), detail=False))

    # -- JSON ----------------------------------------------------------------------------------------------
    def write_json(self, key: str, obj: Any) -> None:
        self.write_bytes(key, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())

    def read_json(self, key: str) -> Any:
        """The JSON document at `key`; a damaged one raises `CorruptRecord` naming it."""
        return self._parse_json(key, self.read_bytes(key))

    def _parse_json(self, key: str, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CorruptRecord(f"{self.uri(key)}: not valid JSON ({e})") from None

    # -- tensors -------------------------------------------------------------------------------------------
    def write_tensors(self, key: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
        """Write a safetensors file; returns the SHA-256 of its bytes, for the record that names it."""
        from safetensors.torch import save as save_safetensors

        tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        data = save_safetensors(tensors, metadata=metadata)
        self.write_bytes(key, data)
        return hashlib.sha256(data).hexdigest()

    def read_tensors(self, key: str, sha256: str | None = None) -> dict[str, torch.Tensor]:
        """The tensors at `key`; with `sha256` (from the record that names the file) the bytes are checked first,
        and a file changed since it was written raises `CorruptArtifact` naming it."""
        data = self.read_bytes(key)
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise CorruptArtifact(f"{self.uri(key)}: its content changed after it was written (SHA-256 mismatch); "
                                  "delete it and run the stage that wrote it again")
        from safetensors.torch import load as load_safetensors

        return load_safetensors(data)

    def write_torch(self, key: str, obj: Any) -> None:
        """Optimiser states and other nested tensor structures (read back with weights_only=True)."""
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        self.write_bytes(key, buf.getvalue())

    def read_torch(self, key: str) -> Any:
        import torch

        return torch.load(io.BytesIO(self.read_bytes(key)), weights_only=True, map_location="cpu")

    # -- folders -------------------------------------------------------------------------------------------
    def put_dir(self, local_dir: str | Path, key: str) -> None:
        """Upload a local folder (e.g. an exported model); the `.complete` listing is written last."""
        local_dir, files = Path(local_dir), {}
        for file in _folder_files(local_dir):
            data, name = file.read_bytes(), file.relative_to(local_dir).as_posix()
            self.write_bytes(f"{key}/{name}", data)
            files[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}  # from the bytes sent
        self.write_json(f"{key}/{DIR_MARKER}", {"files": files})

    def mark_dir_complete(self, key: str, folder: str | Path) -> None:
        """Record the folder `key`, built in place at `folder` (a local store's own path), as complete."""
        self.write_json(f"{key}/{DIR_MARKER}", dir_listing(folder))

    def dir_complete(self, key: str) -> bool:
        return self.exists(f"{key}/{DIR_MARKER}")

    def get_dir(self, key: str, local_dir: str | Path | None = None, prefix: str = "puzzle-") -> Path:
        """Download a folder written by `put_dir` (into `local_dir`, or a new temporary folder named `prefix*`);
        on a local store, return the folder in place, creating nothing. Every file its listing names is
        checked (present, same size, same SHA-256): a changed one raises `CorruptArtifact` naming it."""
        if not self.dir_complete(key):
            raise FileNotFoundError(f"{self.uri(key)}: no complete folder in the artifact store")
        raw = self.read_bytes(f"{key}/{DIR_MARKER}")
        listing = self._parse_json(f"{key}/{DIR_MARKER}", raw) if raw else {}  # empty: from before listings
        if not isinstance(listing, dict) or not isinstance(listing.get("files", {}), dict):
            raise CorruptRecord(f"{self.uri(key)}/{DIR_MARKER}: not a folder listing")
        if self.is_local:
            folder = Path(self.path(key))
        else:
            folder = Path(local_dir) if local_dir is not None else Path(tempfile.mkdtemp(prefix=prefix))
            self.fs.get(self.path(key) + "/", str(folder), recursive=True)
        _verify_listing(folder, listing.get("files", {}), self.uri(key))  # {} for a folder from before listings
        return folder


DIR_MARKER = ".complete"
"""A stored folder's completion record, written last: JSON {"files": {relative name: {"size", "sha256"}}}."""


def _folder_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DIR_MARKER)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _file_entry(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"size": st.st_size, "sha256": _digest(path, st)}  # remembered: this process's next read hashes nothing


def dir_listing(folder: str | Path) -> dict[str, Any]:
    """The completion record of a folder: every file's size and SHA-256, computed once, at write time."""
    folder = Path(folder)
    return {"files": {f.relative_to(folder).as_posix(): _file_entry(f) for f in _folder_files(folder)}}


def relist_file(folder: str | Path, name: str) -> None:
    """After rewriting `name` inside a complete folder (the model card of a stored child, which evaluation and
    publishing refresh), record its new size and digest, so the folder still verifies; no-op without a listing."""
    marker = Path(folder) / DIR_MARKER
    if not marker.is_file() or not marker.stat().st_size:
        return
    listing = json.loads(marker.read_text())
    listing.setdefault("files", {})[name] = _file_entry(Path(folder) / name)
    tmp = marker.with_name(f".tmp-{uuid.uuid4().hex}{DIR_MARKER}")
    tmp.write_text(json.dumps(listing, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, marker)


_VERIFIED: dict[tuple, str] = {}
"""Digests this process already computed, by (path, inode, size, mtime): a folder read by several stages of one
driver is hashed once; any rewrite of a file changes its mtime and is hashed again."""


def _digest(path: Path, st: os.stat_result) -> str:
    stamp = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if stamp not in _VERIFIED:
        _VERIFIED[stamp] = _file_sha256(path)
    return _VERIFIED[stamp]


def _verify_listing(folder: Path, files: dict[str, dict[str, Any]], uri: str) -> None:
    for name, entry in files.items():
        path = folder / name
        st = path.stat() if path.is_file() else None
        if st is None:
            problem = "is missing"
        elif st.st_size != entry.get("size"):
            problem = f"has {st.st_size:,} bytes, {entry.get('size')} when it was written"
        elif _digest(path, st) != entry.get("sha256"):
            problem = "changed after it was written (SHA-256 mismatch)"
        else:
            continue
        raise CorruptArtifact(f"{uri}/{name}: {problem}; delete the folder and run the stage that wrote it again")
