"""The `python_docs` source: English prose (reference topics, docstrings) and code from Python itself, with
stable names, a content fingerprint, and a normal trip through the token cache."""

import json

import pytest
from pydantic import ValidationError

from puzzle_ray.data import DataConfig, DataError, PythonDocsSource, prepare_tokens
from puzzle_ray.data.cache import plan_tokens
from puzzle_ray.data.pydocs import code_selected, docstring_text
from puzzle_ray.data.sources import iter_documents, resolve_source, source_fingerprint
from puzzle_ray.data.tokenizer import load_tokenizer

from .test_data_sources import tokenizer_dir  # noqa: F401  (module fixture: a tiny BPE tokenizer)

SMALL = dict(max_files=12, code_fraction=0.5)


def documents(**kw):
    return list(iter_documents(resolve_source(0, PythonDocsSource(**kw)), None))


def test_documents_are_nonempty_stably_named_and_deterministic():
    docs = documents(**SMALL)
    kinds = {d.key.split("/")[1] for d in docs}
    assert kinds == {"topics", "docstrings", "code"}
    assert all(d.text.strip() and not d.train_only for d in docs)
    assert len({d.key for d in docs}) == len(docs)
    assert [(d.key, d.text) for d in documents(**SMALL)] == [(d.key, d.text) for d in docs]
    topics = [d for d in docs if d.key.startswith("pydocs/topics/")]
    assert len(topics) >= 50 and sum(len(d.text) for d in topics) > 200_000  # English prose
    assert any(d.key == "pydocs/topics/assert" and "assert" in d.text for d in topics)


def test_parts_can_be_switched_off_and_code_share_is_seeded():
    prose = documents(max_files=12, code_fraction=0.0)
    assert not any("/code/" in d.key for d in prose)
    only_topics = documents(docstrings=False, code_fraction=0.0)
    assert only_topics and all("/topics/" in d.key for d in only_topics)
    paths = [f"pkg/m{i}.py" for i in range(400)]
    share = sum(code_selected(p, 0.25, 0) for p in paths) / len(paths)
    assert 0.15 < share < 0.35
    assert [code_selected(p, 0.25, 0) for p in paths] == [code_selected(p, 0.25, 0) for p in paths]
    assert [code_selected(p, 0.25, 0) for p in paths] != [code_selected(p, 0.25, 1) for p in paths]
    with pytest.raises(DataError, match="select nothing"):
        resolve_source(0, PythonDocsSource(topics=False, docstrings=False, code_fraction=0))
    with pytest.raises(ValidationError, match="code_fraction"):
        PythonDocsSource(code_fraction=1.5)
    with pytest.raises(ValidationError):
        DataConfig(sources=[{"kind": "python_docs", "no_such_field": 1}])
    assert DataConfig(sources=[{"kind": "python_docs"}]).sources[0] == PythonDocsSource()


def test_docstrings_read_like_help_without_importing():
    source = '''"""A module that explains itself at some length, enough to be kept."""
def public(a, b=2, *args, key: int = 3) -> str:
    """Return something useful, described in a sentence long enough."""
def _private():
    """Hidden helper that is documented but private, so it is left out."""
class Thing(Base):
    """A thing with a docstring long enough to be kept in the text."""
    def method(self, x):
        """Do the method's work; this docstring is long enough too."""
    def short(self):
        """Tiny."""
'''
    text = docstring_text("pkg/mod.py", source)
    assert text.startswith("Module pkg.mod\n\nA module that explains itself")
    assert "public(a, b=2, *args, key: int=3) -> str\n    Return something useful" in text
    assert "class Thing(Base)" in text and "    method(self, x)\n        Do the method's work" in text
    assert "_private" not in text and "Tiny" not in text
    assert docstring_text("bad.py", "def (:\n") == ""


def test_fingerprint_follows_settings_and_content():
    a = source_fingerprint(resolve_source(0, PythonDocsSource(**SMALL)))
    assert a == source_fingerprint(resolve_source(0, PythonDocsSource(**SMALL)))
    assert a["topics"]["count"] >= 50 and len(a["topics"]["sha256"]) == 64 and a["stdlib"]["num_files"] == 12
    b = source_fingerprint(resolve_source(0, PythonDocsSource(**{**SMALL, "code_fraction": 0.2})))
    assert a != b
    json.dumps(a)  # goes into the cache key


def test_tokenised_by_the_cache_with_both_splits(tmp_path, tokenizer_dir):  # noqa: F811
    cfg = DataConfig(sources=[PythonDocsSource(max_files=6, code_fraction=0.3)], seq_len=64,
                     validation_fraction=0.1, cache_dir=tmp_path / "cache")
    data = prepare_tokens(cfg, tokenizer=tokenizer_dir, show_progress=False)
    meta = json.loads((data.path / "meta.json").read_text())
    assert meta["splits"]["train"]["num_sequences"] > 0 and meta["splits"]["validation"]["num_sequences"] > 0
    assert plan_tokens(cfg, tokenizer=tokenizer_dir).key == meta["key"]  # re-opened, not re-built
    tok = load_tokenizer(tokenizer_dir)
    first = data.train.sequences([0])[0].tolist()
    if tok.bos_token_id is not None and tok.bos_token_id != tok.eos_token_id:
        assert first[0] == tok.bos_token_id  # BOS is written by the cache, whether or not the tokenizer adds it


def test_a_tokenizer_that_does_not_add_its_bos_still_gets_bos_and_eos(tmp_path):
    """Like SmolLM2's: a BOS token exists (and differs from EOS) but encoding never adds it."""
    from .test_pcw_tiny import char_tokenizer

    tok = char_tokenizer(bos=False)
    tok.bos_token = "<s>"
    assert tok("ab")["input_ids"][0] != tok.bos_token_id  # not auto-added
    cfg = DataConfig(sources=[PythonDocsSource(docstrings=False, code_fraction=0.0)], seq_len=512,
                     validation_fraction=0.0, cache_dir=tmp_path / "cache")
    data = prepare_tokens(cfg, tokenizer=tok, show_progress=False)
    ids = data.train.sequences(range(data.train.num_sequences)).reshape(-1).tolist()
    assert ids[0] == tok.bos_token_id
    topics = len(documents(docstrings=False, code_fraction=0.0))
    assert ids.count(tok.bos_token_id) >= topics - 2 and ids.count(tok.eos_token_id) >= topics - 2  # a tail is cut
