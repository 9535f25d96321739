"""The artifact store: folders round-trip through a remote (fsspec) store; a local store hands out its own
folder and creates nothing."""

import tempfile
from pathlib import Path

import pytest

from puzzle_ray.store import ArtifactStore


def write_folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"a": 1}')
    (root / "sub" / "weights.bin").write_bytes(b"\x00\x01\x02")
    return root


def test_remote_store_round_trips_a_folder_into_a_named_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    store = ArtifactStore("memory://store-test")
    assert not store.is_local
    store.put_dir(write_folder(tmp_path / "model"), "runs/model")
    out = store.get_dir("runs/model", prefix="child-")
    assert out.parent == tmp_path / "tmp" and out.name.startswith("child-")
    assert (out / "config.json").read_text() == '{"a": 1}'
    assert (out / "sub" / "weights.bin").read_bytes() == b"\x00\x01\x02"
    with pytest.raises(FileNotFoundError, match="no complete folder"):
        store.get_dir("runs/missing")


def test_local_store_returns_the_folder_in_place_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    store = ArtifactStore(tmp_path / "store")
    store.put_dir(write_folder(tmp_path / "model"), "runs/model")
    out = store.get_dir("runs/model", prefix="child-")
    assert out.is_relative_to(tmp_path / "store") and (out / "config.json").exists()
    assert list((tmp_path / "tmp").iterdir()) == []
