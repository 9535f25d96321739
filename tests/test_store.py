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


HOLD = """
import sys, time
from puzzle_ray.store import ArtifactStore
with ArtifactStore(sys.argv[1]).writer({"workflow": "first-run"}):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_writer_waits_and_is_told_who_holds_the_store(tmp_path):
    import subprocess
    import sys
    import time

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "3"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    told, started = [], time.monotonic()
    with ArtifactStore(tmp_path).writer({"workflow": "second-run"}, on_wait=told.append):
        waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert waited > 1.0 and len(told) == 1
    assert "in use by first-run (pid" in told[0] and str(tmp_path) in told[0]


def test_a_killed_writer_releases_the_store(tmp_path):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "600"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(timeout=30)
    told = []
    with ArtifactStore(tmp_path).writer({"workflow": "next"}, on_wait=told.append):
        pass
    assert told == []  # the OS released the dead holder's lock


def test_an_object_store_writer_marker_is_taken_and_released():
    store = ArtifactStore(f"memory://writer-{id(object())}")
    told = []
    with store.writer({"workflow": "first"}):
        assert store.exists(".writer.json")
        assert not store._create_marker(store.path(".writer.json"), b"{}")  # a second driver would wait
    assert not store.exists(".writer.json")
    with store.writer({"workflow": "second"}, on_wait=told.append):
        pass
    assert told == []


@pytest.mark.parametrize("url", ["local", "memory"])
@pytest.mark.parametrize("damage", ["same-size change", "truncation", "missing file"])
def test_a_stored_folder_whose_file_changed_is_refused_naming_the_file(tmp_path, url, damage):
    from puzzle_ray.store import CorruptArtifact

    store = ArtifactStore(tmp_path / "store" if url == "local" else f"memory://damage-{id(object())}")
    store.put_dir(write_folder(tmp_path / "model"), "runs/model")
    store.get_dir("runs/model", local_dir=tmp_path / "ok")  # intact: verifies
    key = "runs/model/sub/weights.bin"
    if damage == "missing file":
        store.delete(key)
    else:
        store.write_bytes(key, b"\x00\x01\x03" if damage == "same-size change" else b"\x00")
    with pytest.raises(CorruptArtifact, match=r"runs/model/sub/weights\.bin: (is missing|has 1 bytes|changed)"):
        store.get_dir("runs/model", local_dir=tmp_path / "copy")


def test_a_folder_built_in_place_verifies_and_a_refreshed_file_is_relisted(tmp_path):
    from puzzle_ray.store import DIR_MARKER, CorruptArtifact, CorruptRecord, relist_file

    store = ArtifactStore(tmp_path / "store")
    folder = write_folder(Path(store.path("runs/child")))
    store.mark_dir_complete("runs/child", folder)
    assert set(store.read_json(f"runs/child/{DIR_MARKER}")["files"]) == {"config.json", "sub/weights.bin"}
    (folder / "config.json").write_text('{"a": 2}')  # e.g. the model card rewritten by `publish`
    with pytest.raises(CorruptArtifact, match="config.json"):
        store.get_dir("runs/child")
    relist_file(folder, "config.json")
    assert store.get_dir("runs/child") == folder
    (folder / DIR_MARKER).write_bytes(b"")  # a folder completed before listings existed: accepted unchecked
    assert store.get_dir("runs/child") == folder
    (folder / DIR_MARKER).write_text('{"files": {"config.js')  # truncated by a full disk
    with pytest.raises(CorruptRecord, match=r"runs/child/\.complete: not valid JSON"):
        store.get_dir("runs/child")
