"""Every source kind tokenises into the cache; every bad input gives one clear error and leaves no cache entry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from puzzle_ray.data import (
    DataConfig,
    DataError,
    EmbeddedSource,
    HFDiskSource,
    JsonlSource,
    ParquetSource,
    TextSource,
    load_tokenizer,
    plan_tokens,
    prepare_tokens,
)
from puzzle_ray.data.bpe import train_bpe_tokenizer

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def sample_text(i: int, words: int = 120) -> str:
    """Deterministic text with line breaks (document `i`): about 1.5 tokens per word under the tiny tokenizer."""
    lines = [" ".join(WORDS[(i * 7 + j * j + j + k) % len(WORDS)] for k in range(12)) for j in range(words // 12)]
    return "\n".join(lines) + "\n"


def train_tiny_tokenizer(folder: Path):
    texts = [sample_text(i) for i in range(40)] + ["def f(x):\n    return x + 1\n"]
    return train_bpe_tokenizer(texts, vocab_size=400, out_dir=folder)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tiny_tokenizer(folder)
    return folder


def config(tmp_path: Path, *sources, **kw) -> DataConfig:
    return DataConfig(**{"sources": list(sources), "seq_len": 32, "validation_fraction": 0.2,
                         "cache_dir": tmp_path / "cache", **kw})


def cache_entries(tmp_path: Path) -> list[str]:
    folder = tmp_path / "cache" / "tokens"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def decoded_train_text(data, tokenizer) -> str:
    ids = data.train.sequences(np.arange(data.train.num_sequences)).reshape(-1)
    return tokenizer.decode(ids.tolist())


# -- each kind --------------------------------------------------------------------------------------------
def test_text_file_and_folder(tmp_path, tokenizer_dir):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    for i in range(30):
        (folder / ("sub" if i % 2 else "") / f"doc{i}.txt").write_text(sample_text(i))
    (folder / "ignored.md").write_text("not matched by the glob")
    data = prepare_tokens(config(tmp_path, TextSource(path=folder)), tokenizer_dir, show_progress=False)
    tok = load_tokenizer(tokenizer_dir)
    assert data.train.num_sequences > 0 and data.validation.num_sequences > 0
    assert data.meta["documents"][0]["documents"] == 30
    assert "not matched" not in decoded_train_text(data, tok)
    (folder / "big.txt").write_text(sample_text(0, 12_000))  # ~80 KB: cut into pieces, some held out
    big = config(tmp_path, TextSource(path=folder / "big.txt"), validation_fraction=0.5)
    one = prepare_tokens(big, tokenizer_dir, show_progress=False)
    assert one.meta["documents"][0]["documents"] == 1
    assert one.validation.num_sequences > 0 and one.meta["splits"]["train"]["pieces"] > 1


def test_jsonl_text_and_chat(tmp_path, tokenizer_dir):
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": sample_text(i), "id": i}) + "\n" for i in range(20)) + "\n")
    data = prepare_tokens(config(tmp_path, JsonlSource(path=texts)), tokenizer_dir, show_progress=False)
    assert data.meta["documents"][0]["documents"] == 20

    chats = tmp_path / "chats.jsonl"
    messages = [[{"role": "user", "content": sample_text(i, 24)},
                 {"role": "assistant", "content": sample_text(i + 1, 24)}] for i in range(30)]
    chats.write_text("".join(json.dumps({"messages": m}) + "\n" for m in messages))
    data = prepare_tokens(config(tmp_path, JsonlSource(path=chats, field="messages")), tokenizer_dir,
                          show_progress=False)
    text = decoded_train_text(data, load_tokenizer(tokenizer_dir))
    assert "<|user|>" in text and "<|assistant|>" in text  # rendered by the chat template


def test_parquet(tmp_path, tokenizer_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "pq"
    folder.mkdir()
    for shard in range(2):
        pq.write_table(pa.table({"body": [sample_text(shard * 10 + i) for i in range(10)], "n": list(range(10))}),
                       folder / f"{shard}.parquet")
    data = prepare_tokens(config(tmp_path, ParquetSource(path=folder, field="body")), tokenizer_dir,
                          show_progress=False)
    assert data.meta["documents"][0]["documents"] == 20


def test_hf_load_from_disk(tmp_path, tokenizer_dir):
    import datasets

    ds = datasets.Dataset.from_dict({"text": [sample_text(i) for i in range(20)]})
    ds.save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": ds, "test": ds.select(range(3))}).save_to_disk(str(tmp_path / "dict"))
    data = prepare_tokens(config(tmp_path, HFDiskSource(path=tmp_path / "single")), tokenizer_dir, show_progress=False)
    assert data.meta["documents"][0]["documents"] == 20
    three = config(tmp_path, HFDiskSource(path=tmp_path / "dict", split="test"), validation_fraction=0)
    data = prepare_tokens(three, tokenizer_dir, show_progress=False)
    assert data.meta["documents"][0]["documents"] == 3
    with pytest.raises(DataError, match="DatasetDict; set split to one of train, test"):
        plan_tokens(config(tmp_path, HFDiskSource(path=tmp_path / "dict")), tokenizer_dir)


def test_embedded_corpus(tmp_path, tokenizer_dir):
    src = EmbeddedSource(max_files=3, classification_episodes=20, recall_episodes=10)
    data = prepare_tokens(config(tmp_path, src), tokenizer_dir, show_progress=False)
    fp = data.meta["fingerprint"]["sources"][0]["stdlib"]
    assert fp["num_files"] == 3 and len(fp["files"]) == 3 and all(f.endswith(".py") for f in fp["files"])
    assert data.meta["documents"][0]["documents"] == 3 + 30
    # Episodes never land in validation, however much is held out: only standard-library text is.
    mostly_held = prepare_tokens(config(tmp_path, src, validation_fraction=0.9), tokenizer_dir, show_progress=False)
    tok = load_tokenizer(tokenizer_dir)

    def episode_lines(split) -> int:
        text = tok.decode(split.sequences(np.arange(split.num_sequences)).reshape(-1).tolist())
        return sum(1 for line in text.splitlines() if re.fullmatch(r"[a-z]+ ([A-Z]|[0-9]{2})", line))

    assert episode_lines(mostly_held.validation) == 0 and episode_lines(mostly_held.train) > 100


def test_sources_combine_into_one_cache(tmp_path, tokenizer_dir):
    (tmp_path / "a.txt").write_text(sample_text(1, 400))
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text("".join(json.dumps({"text": sample_text(i)}) + "\n" for i in range(10)))
    data = prepare_tokens(config(tmp_path, TextSource(path=tmp_path / "a.txt"), JsonlSource(path=jsonl)), tokenizer_dir,
                          show_progress=False)
    assert [d["documents"] for d in data.meta["documents"]] == [1, 10]


# -- bad inputs -------------------------------------------------------------------------------------------
def test_missing_path(tmp_path, tokenizer_dir):
    with pytest.raises(DataError, match=r"sources\[0\] \(text .*nope.txt\): no such file or folder"):
        prepare_tokens(config(tmp_path, TextSource(path=tmp_path / "nope.txt")), tokenizer_dir)
    assert cache_entries(tmp_path) == []


def test_empty_file_and_folder(tmp_path, tokenizer_dir):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty.txt is empty"):
        prepare_tokens(config(tmp_path, TextSource(path=tmp_path / "empty.txt")), tokenizer_dir)
    (tmp_path / "blank.txt").write_text("  \n\n ")
    with pytest.raises(DataError, match="no text"):
        prepare_tokens(config(tmp_path, TextSource(path=tmp_path / "blank.txt")), tokenizer_dir, show_progress=False)
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match=r"no files match '\*\*/\*.txt'"):
        prepare_tokens(config(tmp_path, TextSource(path=tmp_path / "folder")), tokenizer_dir)
    assert cache_entries(tmp_path) == []


def test_wrong_jsonl_field(tmp_path, tokenizer_dir):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"content": "hello"}) + "\n")
    with pytest.raises(DataError, match=r"d.jsonl:1: no field 'text' \(fields: content\)"):
        prepare_tokens(config(tmp_path, JsonlSource(path=path)), tokenizer_dir)
    path.write_text(json.dumps({"text": 3}) + "\n")
    with pytest.raises(DataError, match="field 'text' must be a string or a list of chat messages"):
        prepare_tokens(config(tmp_path, JsonlSource(path=path)), tokenizer_dir)
    assert cache_entries(tmp_path) == []


def test_bad_record_deep_in_a_file_leaves_no_entry(tmp_path, tokenizer_dir):
    path = tmp_path / "d.jsonl"
    records = [json.dumps({"text": sample_text(i)}) for i in range(30)] + ["{not json"]
    path.write_text("\n".join(records) + "\n")
    with pytest.raises(DataError, match="d.jsonl:31: not valid JSON"):
        prepare_tokens(config(tmp_path, JsonlSource(path=path)), tokenizer_dir, show_progress=False)
    assert cache_entries(tmp_path) == []  # neither the entry nor its temporary folder


def test_wrong_parquet_column(tmp_path, tokenizer_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match="has no column 'text' \\(columns: body\\)"):
        prepare_tokens(config(tmp_path, ParquetSource(path=tmp_path / "t.parquet")), tokenizer_dir)
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "n.parquet")
    with pytest.raises(DataError, match="column 'text' has type int64"):
        prepare_tokens(config(tmp_path, ParquetSource(path=tmp_path / "n.parquet")), tokenizer_dir)


def test_not_a_tokenizer_folder(tmp_path):
    (tmp_path / "a.txt").write_text(sample_text(0))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(DataError, match="not a Hugging Face tokenizer folder"):
        prepare_tokens(config(tmp_path, TextSource(path=tmp_path / "a.txt")), tmp_path / "model")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "tokenizer.json").write_text("{broken")
    with pytest.raises(DataError, match="tokenizer .*broken: cannot be loaded"):
        prepare_tokens(config(tmp_path, TextSource(path=tmp_path / "a.txt")), tmp_path / "broken")
    with pytest.raises(DataError, match="no such folder"):
        prepare_tokens(config(tmp_path, TextSource(path=tmp_path / "a.txt"), tokenizer=tmp_path / "missing"))
    with pytest.raises(DataError, match="tokenizer: none given"):
        prepare_tokens(config(tmp_path, TextSource(path=tmp_path / "a.txt")))
    assert cache_entries(tmp_path) == []


def test_chat_needs_a_chat_template(tmp_path, tokenizer_dir):
    tok = load_tokenizer(tokenizer_dir)
    tok.chat_template = None
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(DataError, match="chat messages but the tokenizer has no chat template"):
        prepare_tokens(config(tmp_path, JsonlSource(path=path, field="messages")), tok)
    path.write_text(json.dumps({"messages": [{"role": "user"}]}) + "\n")
    with pytest.raises(DataError, match="c.jsonl:1: each chat message needs string 'role' and 'content'"):
        prepare_tokens(config(tmp_path, JsonlSource(path=path, field="messages")), tokenizer_dir)


def test_too_little_text_for_a_validation_sequence(tmp_path, tokenizer_dir):
    (tmp_path / "a.txt").write_text("alpha beta\n")
    with pytest.raises(DataError, match="fewer than one sequence"):
        prepare_tokens(config(tmp_path, TextSource(path=tmp_path / "a.txt")), tokenizer_dir, show_progress=False)
    assert cache_entries(tmp_path) == []


def test_config_errors_name_the_field():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="validation_fraction=1.5 must be in"):
        DataConfig(sources=[EmbeddedSource()], validation_fraction=1.5)
    with pytest.raises(ValidationError, match="field"):
        DataConfig(sources=[{"kind": "text", "path": "a", "field": "x"}])  # text files have no field
    with pytest.raises(ValidationError, match="sources"):
        DataConfig(sources=[])
