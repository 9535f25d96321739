"""A GGUF file's metadata and tensor table, read without parsing its tokenizer.

`gguf.GGUFReader` builds numpy views of every metadata item, so opening SmolLM2-135M's file (about 100,000
tokenizer strings and merges) costs 5-7 s of CPU before a single config field can be read; `inspect`, the
workflow's pre-flight and `pcw-eval` only need the model's shape. This reader walks the same layout (GGUF
v2/v3: header, key/value metadata, tensor infos, aligned data) with `struct` over a memory map, keeps scalars,
strings and short arrays, and of long arrays only their length and item type.

    meta = read_gguf_metadata(path)   # GGUFMetadata: .fields, .array_lengths, .tensors, .data_start
    meta.fields["llama.block_count"]  # 30

Byte order follows the file (a big-endian file's version reads as a multiple of 2**16). Anything malformed
raises `GGUFLayoutError` (a ValueError) naming the byte offset; the caller names the file.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
VERSIONS = (2, 3)
"""Versions with 64-bit counts (version 1, with 32-bit counts, predates every file transformers reads)."""
DEFAULT_ALIGNMENT = 32
"""The data section's alignment when `general.alignment` is absent."""
KEEP_ARRAY_ITEMS = 64
"""Arrays up to this length are kept as lists (e.g. per-layer head counts); longer ones only by length."""

# value types of the GGUF spec: id -> struct code (fixed size) or a name (variable size)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class GGUFLayoutError(ValueError):
    """The bytes do not follow the GGUF layout (truncated or corrupt)."""


@dataclass(frozen=True)
class GGUFTensorInfo:
    name: str
    """The tensor's GGUF name, e.g. `blk.0.attn_q.weight`."""
    shape: tuple[int, ...]
    """GGUF dimension order (fastest-varying first, the reverse of numpy's)."""
    type_id: int
    """`GGMLQuantizationType` value."""
    offset: int
    """Byte offset from the start of the data section."""


@dataclass(frozen=True)
class GGUFMetadata:
    version: int
    """GGUF version (2 or 3)."""
    fields: dict[str, Any]
    """Metadata values: scalars, strings, and arrays of at most KEEP_ARRAY_ITEMS items as lists."""
    array_lengths: dict[str, int] = field(default_factory=dict)
    """Length of every array field, kept or not (e.g. `tokenizer.ggml.tokens`: the vocabulary size)."""
    tensors: tuple[GGUFTensorInfo, ...] = ()
    """The tensor table, in file order."""
    data_start: int = 0
    """Absolute byte offset of the data section."""

    def tensor_end(self) -> int:
        """The byte where the last tensor's data ends (the file must be at least this long)."""
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        end = self.data_start
        for t in self.tensors:
            try:
                block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(t.type_id)]
            except ValueError:
                raise GGUFLayoutError(f"tensor {t.name!r}: unknown type id {t.type_id}") from None
            elements = 1
            for d in t.shape:
                elements *= d
            end = max(end, self.data_start + t.offset + elements // block * type_size)
        return end


class _Cursor:
    """Sequential reads from a buffer in one byte order; every read is bounds-checked."""

    def __init__(self, buf, order: str):
        self.buf, self.order, self.pos, self.size = buf, order, 0, len(buf)

    def take(self, code: str) -> Any:
        fmt = self.order + code
        n = struct.calcsize(fmt)
        if self.pos + n > self.size:
            raise GGUFLayoutError(f"truncated at byte {self.pos:,} (needs {n} more)")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self, keep: bool = True) -> str | None:
        n = self.take("Q")
        if self.pos + n > self.size:
            raise GGUFLayoutError(f"a string of {n:,} bytes at byte {self.pos:,} runs past the end of the file")
        raw = self.buf[self.pos:self.pos + n] if keep else None
        self.pos += n
        if raw is None:
            return None
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFLayoutError(f"a string at byte {self.pos - n:,} is not UTF-8") from None

    def value(self, type_id: int, keep: bool = True) -> Any:
        if type_id in _SCALARS:
            return self.take(_SCALARS[type_id])
        if type_id == _STRING:
            return self.string(keep)
        raise GGUFLayoutError(f"unknown value type {type_id} at byte {self.pos:,}")

    def array(self) -> tuple[list | None, int]:
        """An array's items (None when longer than KEEP_ARRAY_ITEMS) and its length."""
        item_type, count = self.take("I"), self.take("Q")
        keep = count <= KEEP_ARRAY_ITEMS
        if item_type in _SCALARS and not keep:  # fixed size: jump over it
            end = self.pos + count * struct.calcsize(self.order + _SCALARS[item_type])
            if end > self.size:
                raise GGUFLayoutError(f"an array of {count:,} items at byte {self.pos:,} runs past the end")
            self.pos = end
            return None, count
        if item_type == _ARRAY:
            raise GGUFLayoutError(f"nested arrays at byte {self.pos:,} are not read")
        items = [self.value(item_type, keep) for _ in range(count)]  # strings: one length read each
        return (items if keep else None), count


def read_gguf_metadata(path: str | Path) -> GGUFMetadata:
    """The metadata and tensor table of the GGUF file at `path` (no tensor data read)."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != MAGIC:
            raise GGUFLayoutError(f"not a GGUF file (it starts with {bytes(buf[:4])!r})")
        order = "<"
        cur = _Cursor(buf, order)
        cur.pos = 4
        version = cur.take("I")
        if version & 0xFFFF == 0:  # written on a big-endian machine
            cur.order = order = ">"
            version = struct.unpack(">I", struct.pack("<I", version))[0]
        if version not in VERSIONS:
            raise GGUFLayoutError(f"GGUF version {version} is not supported (supported: {VERSIONS})")
        n_tensors, n_fields = cur.take("Q"), cur.take("Q")
        if n_tensors > cur.size or n_fields > cur.size:  # each needs at least one byte
            raise GGUFLayoutError(f"{n_tensors:,} tensors and {n_fields:,} fields cannot fit in the file")
        fields: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        for _ in range(n_fields):
            key = cur.string()
            type_id = cur.take("I")
            if type_id == _ARRAY:
                items, lengths[key] = cur.array()
                if items is not None:
                    fields[key] = items
            else:
                fields[key] = cur.value(type_id)
        tensors = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.take("I")
            if n_dims > 8:
                raise GGUFLayoutError(f"tensor {name!r} has {n_dims} dimensions")
            shape = tuple(cur.take("Q") for _ in range(n_dims))
            tensors.append(GGUFTensorInfo(name, shape, cur.take("I"), cur.take("Q")))
        alignment = fields.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0:
            raise GGUFLayoutError(f"general.alignment={alignment!r} is not a positive integer")
        data_start = -(-cur.pos // alignment) * alignment
    return GGUFMetadata(version, fields, lengths, tuple(tensors), data_start)
