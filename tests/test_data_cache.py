"""The token cache: deterministic splits, reuse without tokenising, rank sharding, budgets, pickling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from puzzle_ray.data import (DataConfig, DataError, JsonlSource, TextSource, open_token_cache, plan_tokens,
                             prepare_tokens)
from puzzle_ray.data import cache as cache_module
from puzzle_ray.data.cache import cut_pieces, is_validation

from .test_data_sources import sample_text, tokenizer_dir  # noqa: F401 - module-scoped tokenizer fixture


@pytest.fixture
def corpus(tmp_path):
    """40 documents whose every line starts with its own number: any 16-token row is unique."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(40):
        lines = sample_text(i, 240).splitlines()
        (folder / f"{i:02d}.txt").write_text("".join(f"{i}.{j} {' '.join(line.split()[:3])}\n"
                                                     for j, line in enumerate(lines * 4)))
    return folder


def make_config(tmp_path, folder, **kw) -> DataConfig:
    fields = {"sources": [TextSource(path=folder)], "seq_len": 16, "validation_fraction": 0.25, "seed": 3,
              "cache_dir": tmp_path / "cache", "shard_sequences": 64}
    return DataConfig(**{**fields, **kw})


def all_rows(split) -> np.ndarray:
    return split.sequences(np.arange(split.num_sequences))


def test_layout_and_packing(tmp_path, corpus, tokenizer_dir):
    data = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False)
    meta = json.loads((data.path / "meta.json").read_text())
    assert meta["key"] == data.path.name and meta["dtype"] == "uint16" and meta["seq_len"] == 16
    assert len(data.train.meta["shards"]) > 1  # 64 sequences per shard: several shard files
    for split in (data.train, data.validation):
        m = split.meta
        assert m["num_sequences"] * 16 + m["dropped_tokens"] == m["input_tokens"]
        assert m["dropped_tokens"] < 16
    rows = all_rows(data.train)
    assert rows.shape == (data.train.num_sequences, 16) and rows.dtype == np.int64
    # Documents are packed between BOS and EOS.
    from puzzle_ray.data import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    flat = rows.reshape(-1)
    assert (flat == tok.bos_token_id).sum() > 0 and (flat == tok.eos_token_id).sum() > 0


def test_splits_are_deterministic_and_disjoint(tmp_path, corpus, tokenizer_dir):
    a = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False)
    b = prepare_tokens(make_config(tmp_path, corpus, cache_dir=tmp_path / "other"), tokenizer_dir, show_progress=False)
    assert a.key == b.key
    for name in ("train", "validation"):
        assert np.array_equal(all_rows(a.split(name)), all_rows(b.split(name)))
    assert a.validation.num_sequences > 0
    # Another seed holds out other pieces; the same seed always the same ones.
    c = prepare_tokens(make_config(tmp_path, corpus, seed=4), tokenizer_dir, show_progress=False)
    assert c.key != a.key and not np.array_equal(all_rows(c.validation)[:5], all_rows(a.validation)[:5])
    held = [is_validation(3, f"0/{i:02d}.txt#0", 0.25) for i in range(40)]
    assert 0 < sum(held) < 40 and held == [is_validation(3, f"0/{i:02d}.txt#0", 0.25) for i in range(40)]


def test_cut_pieces_at_line_breaks():
    text = "".join(f"line {i}\n" for i in range(5000))
    pieces = cut_pieces(text, 1000)
    assert "".join(pieces) == text and all(len(p) <= 1000 for p in pieces)
    assert all(p.endswith("\n") for p in pieces)
    assert cut_pieces("x" * 2500, 1000) == ["x" * 1000, "x" * 1000, "x" * 500]


def test_second_open_does_not_tokenise(tmp_path, corpus, tokenizer_dir, monkeypatch):
    calls = []
    real = cache_module.encode_batch
    monkeypatch.setattr(cache_module, "encode_batch", lambda tok, texts: calls.append(len(texts)) or real(tok, texts))
    first = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False)
    assert sum(calls) == first.meta["splits"]["train"]["pieces"] + first.meta["splits"]["validation"]["pieces"]
    calls.clear()
    again = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False)
    assert calls == [] and again.path == first.path
    # A changed file is a new entry (content-addressed), tokenised again.
    (corpus / "00.txt").write_text(sample_text(99, 240))
    changed = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False)
    assert calls and changed.key != first.key
    # Opening by path needs no config and no tokenizer at all.
    assert open_token_cache(first.path).train.num_sequences == first.train.num_sequences


def test_key_ignores_location_but_not_tokenizer_or_seq_len(tmp_path, corpus, tokenizer_dir):
    import shutil

    from puzzle_ray.data import load_tokenizer

    key = plan_tokens(make_config(tmp_path, corpus), tokenizer_dir).key
    moved = tmp_path / "moved"
    shutil.copytree(corpus, moved)
    assert plan_tokens(make_config(tmp_path, moved), tokenizer_dir).key == key
    assert plan_tokens(make_config(tmp_path, corpus, seq_len=32), tokenizer_dir).key != key
    tok = load_tokenizer(tokenizer_dir)
    tok.add_tokens(["<extra>"])
    assert plan_tokens(make_config(tmp_path, corpus), tok).key != key


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_rank_sharding_covers_every_sequence_exactly_once(tmp_path, corpus, tokenizer_dir, world_size):
    split = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False).train
    rows = all_rows(split)
    index = {row.tobytes(): i for i, row in enumerate(rows)}
    assert len(index) == len(rows)  # sequences are distinct, so a row identifies its index
    seen = []
    for rank in range(world_size):
        batches = list(split.batches(5, rank=rank, world_size=world_size, seed=7))
        assert len(batches) == split.num_batches(5, rank=rank, world_size=world_size)
        assert all(b.dtype == torch.int64 and b.shape[1] == 16 for b in batches)
        seen += [index[r.numpy().astype(np.int64).tobytes()] for b in batches for r in b]
    assert sorted(seen) == list(range(len(rows)))


def test_drop_last_gives_equal_full_batches(tmp_path, corpus, tokenizer_dir):
    split = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False).train
    counts = [[b.shape[0] for b in split.batches(4, rank=r, world_size=3, drop_last=True)] for r in range(3)]
    assert len({len(c) for c in counts}) == 1 and all(n == 4 for c in counts for n in c)
    assert sum(map(sum, counts)) > split.num_sequences - 12


def test_order_is_seeded_and_resumable(tmp_path, corpus, tokenizer_dir):
    split = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False).train
    a = torch.cat(list(split.batches(4, seed=1)))
    assert torch.equal(a, torch.cat(list(split.batches(4, seed=1))))
    assert not torch.equal(a, torch.cat(list(split.batches(4, seed=2))))
    assert torch.equal(torch.cat(list(split.batches(4, shuffle=False))), torch.from_numpy(all_rows(split)))
    resumed = torch.cat(list(split.batches(4, seed=1, start_batch=3)))
    assert torch.equal(resumed, a[12:])


def test_token_budget(tmp_path, corpus, tokenizer_dir):
    split = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False).train
    got = list(split.batches(3, token_budget=100))
    assert sum(b.shape[0] for b in got) == 7  # ceil(100 / 16) sequences
    with pytest.raises(DataError, match=r"token budget of .* exceeds the .* tokens of the train split"):
        next(split.batches(3, token_budget=split.num_tokens + 1))
    cycled = list(split.batches(8, token_budget=3 * split.num_tokens, cycle=True, seed=5))
    rows = torch.cat(cycled)
    assert rows.shape[0] == 3 * split.num_sequences
    # Each epoch is a permutation of its own: every sequence three times, in a different order each epoch.
    n = split.num_sequences
    assert not torch.equal(rows[:n], rows[n : 2 * n])
    assert sorted(map(bytes, rows[:n].numpy())) == sorted(map(bytes, rows[n : 2 * n].numpy()))
    endless = split.batches(8, cycle=True)
    assert sum(next(endless).shape[0] for _ in range(3 * n // 8 + 2)) > 3 * n - 8


def test_handles_pickle_as_paths(tmp_path, corpus, tokenizer_dir):
    data = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False)
    first = next(data.train.batches(2, seed=0))
    blob = pickle.dumps(data.train)
    assert len(blob) < 500  # a path, not the tokens
    assert torch.equal(next(pickle.loads(blob).batches(2, seed=0)), first)
    assert pickle.loads(pickle.dumps(data)).validation.num_sequences == data.validation.num_sequences


@pytest.mark.integration
def test_batches_from_a_ray_worker(tmp_path, corpus, tokenizer_dir, ray_cluster):
    ray = ray_cluster
    data = prepare_tokens(make_config(tmp_path, corpus), tokenizer_dir, show_progress=False)

    @ray.remote(num_cpus=0.5)
    def read(split, rank):
        return [b.sum().item() for b in split.batches(4, rank=rank, world_size=2, seed=1)]

    remote = ray.get([read.remote(data.train, r) for r in range(2)])
    local = [[b.sum().item() for b in data.train.batches(4, rank=r, world_size=2, seed=1)] for r in range(2)]
    assert remote == local


def test_concurrent_builder_of_the_same_key_keeps_the_first(tmp_path, corpus, tokenizer_dir):
    cfg = make_config(tmp_path, corpus)
    first = prepare_tokens(cfg, tokenizer_dir, show_progress=False)
    plan = plan_tokens(cfg, tokenizer_dir)
    cache_module.build_tokens(plan, show_progress=False)  # a second builder finishing late
    assert [p.name for p in (tmp_path / "cache" / "tokens").iterdir()] == [first.key]


def test_jsonl_chat_budget_error_names_the_split(tmp_path, tokenizer_dir):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": sample_text(i)}) + "\n" for i in range(30)))
    data = prepare_tokens(DataConfig(sources=[JsonlSource(path=path)], seq_len=16, validation_fraction=0.3,
                                     cache_dir=tmp_path / "cache"), tokenizer_dir, show_progress=False)
    with pytest.raises(DataError, match="validation split"):
        next(data.validation.batches(2, token_budget=10**9))


def test_cli_tokenize(tmp_path, corpus, tokenizer_dir):
    import yaml
    from typer.testing import CliRunner

    from puzzle_ray.cli import app

    workflow = {"data": {"sources": [{"kind": "text", "path": str(corpus)}], "seq_len": 16,
                         "validation_fraction": 0.25}}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(workflow))
    args = ["tokenize", str(tmp_path / "w.yaml"), "--tokenizer", str(tokenizer_dir), "--cache-dir", str(tmp_path / "c")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "train" in first.output and "validation" in first.output and "(reused)" not in first.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "(reused)" in again.output
    workflow["data"]["sources"][0]["path"] = str(tmp_path / "missing")
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(workflow))
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 2 and "no such file or folder" in bad.output
    workflow["data"]["seq_len"] = 0
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(workflow))
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 2 and "seq_len" in bad.output
