"""The library record's contract: one read / write pair (store or folder, byte-identical round trips), typed meta
and BLD fields that keep unknown keys, `Variant.is_parent` as the one answer, `with_costs` for the search's input."""

import json

import pytest

from puzzle_ray.arch.blocks import AttentionConfig, BlockConfig, FFNConfig
from puzzle_ray.library.bld_record import BLDRecord, SubBlockBLD
from puzzle_ray.library.meta import LibraryMeta
from puzzle_ray.library.record import Library, LibraryError, Variant
from puzzle_ray.solve.parent import parent_variants
from puzzle_ray.store import ArtifactStore

BLD = {"nmse_init": 0.5, "nmse_final": 0.25, "tokens_seen": 64, "is_parent": False,
       "ffn_nmse_init": 0.5, "ffn_nmse_final": 0.25, "ffn_reverted": False}
PARENT_BLD = {"nmse_init": None, "nmse_final": None, "tokens_seen": 0, "is_parent": True}


def _library(layers: int = 2) -> Library:
    full, half = BlockConfig(AttentionConfig(n_heads_in_group=2), FFNConfig(intermediate_size=128)), \
        BlockConfig(AttentionConfig(n_heads_in_group=2), FFNConfig(intermediate_size=64))
    out = []
    for _ in range(layers):
        out.append({
            "parent": Variant("parent", {"num_params": 10}, {"kl_div": 0.0}, full,
                              {"bld": dict(PARENT_BLD), "weights": {"ffn": "parent"}}),
            "half": Variant("half", {"num_params": 6}, {"kl_div": 0.3}, half,
                            {"bld": dict(BLD), "weights": {"ffn": "k"}}),
        })
    # unusual key order and keys this version does not know: both must survive a round trip
    meta = {"zeta": [1, 2], "hidden_size": 64, "num_attention_heads": 4, "non_block": None, "custom": {"a": 1}}
    return Library(out, meta)


def _legacy_folder_bytes(lib: Library) -> tuple[bytes, bytes]:
    """What the old `Library.save` wrote: unsorted keys, one-space indent."""
    return ((json.dumps(lib.to_json(), indent=1) + "\n").encode(),
            (json.dumps(lib.meta.to_json(), indent=1, default=str) + "\n").encode())


def test_folder_round_trip_is_byte_identical(tmp_path):
    lib = _library()
    block, meta = _legacy_folder_bytes(lib)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "block_library.json").write_bytes(block)
    (tmp_path / "old" / "library_meta.json").write_bytes(meta)
    again = Library.read(tmp_path / "old")
    again.write(tmp_path / "new")
    assert (tmp_path / "new" / "block_library.json").read_bytes() == block
    assert (tmp_path / "new" / "library_meta.json").read_bytes() == meta
    assert Library.read(tmp_path / "new" / "block_library.json").to_json() == lib.to_json()  # the file itself
    assert list(again.meta.to_json()) == ["zeta", "hidden_size", "num_attention_heads", "non_block", "custom"]
    assert not list(tmp_path.glob("new/.library-*"))  # the staging folder is gone


def test_store_round_trip_is_byte_identical(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    lib = _library()
    store.write_json("old/library_meta.json", lib.meta.to_json())  # what the workflow's stages wrote
    store.write_json("old/block_library.json", lib.to_json())
    Library.read(store, "old").write(store, "new")
    for name in ("block_library.json", "library_meta.json"):
        assert store.read_bytes(f"new/{name}") == store.read_bytes(f"old/{name}")
    assert Library.read(store, "new").meta == lib.meta


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such library file"):
        Library.read(tmp_path / "nowhere")
    (tmp_path / "block_library.json").write_text("[1, 2]")
    with pytest.raises(LibraryError, match="block_library.json: expected an object of layers"):
        Library.read(tmp_path)
    (tmp_path / "block_library.json").write_text("{")
    with pytest.raises(LibraryError, match="not valid JSON"):
        Library.read(tmp_path)
    (tmp_path / "block_library.json").write_bytes(bytes(range(128, 256)))
    with pytest.raises(LibraryError, match=r"block_library\.json: not a text file \(not UTF-8"):
        Library.read(tmp_path)
    (tmp_path / "block_library.json").write_text('{"layer_0": {}}')  # a bad entry: the file is named too
    with pytest.raises(LibraryError, match=r"block_library\.json: layer_0: no variants"):
        Library.read(tmp_path)


def test_read_errors_from_a_store_name_the_uri(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    store.write_json("lib/block_library.json", {"layer_0": {}})
    with pytest.raises(LibraryError, match=r"store/lib/block_library\.json: layer_0: no variants"):
        Library.read(store, "lib")


def test_meta_is_typed_and_keeps_unknown_keys():
    meta = LibraryMeta.from_json({"hidden_size": 64, "scenario": {"batch_sizes": [2]}, "custom": 1})
    assert meta.hidden_size == 64 and meta.scenario == {"batch_sizes": [2]} and meta.extra == {"custom": 1}
    assert meta.non_block is None and "non_block" not in meta and meta.get("non_block", {}) == {}
    assert meta["custom"] == 1 and meta.get("scenario")["batch_sizes"] == [2]
    meta["non_block"] = {"num_params": 3}  # the dict-style access older callers use
    meta["other"] = True
    assert meta.non_block == {"num_params": 3} and meta.to_json() == {
        "hidden_size": 64, "scenario": {"batch_sizes": [2]}, "custom": 1, "non_block": {"num_params": 3}, "other": True}
    assert LibraryMeta.from_json({"non_block": None}).to_json() == {"non_block": None}  # present-but-null survives


def test_bld_record_round_trips_and_tolerates_partial_records():
    record = BLDRecord.from_json(BLD)
    assert record.parts == {"ffn": SubBlockBLD(0.5, 0.25, False)} and record.tokens_seen == 64
    assert record.to_json() == BLD and list(record.to_json()) == list(BLD)
    assert BLDRecord.from_json({"is_parent": True}).is_parent
    assert BLDRecord.from_json({**BLD, "note": "x"}).extra == {"note": "x"}


def test_is_parent_is_one_answer_for_score_and_search():
    lib = _library()
    assert [v.is_parent for v in lib.layers[0].values()] == [True, False]
    assert parent_variants(lib) == ["parent", "parent"]
    published = Variant("p", {}, {}, None, {"is_parent": True})  # a top-level mark (no BLD record)
    assert published.is_parent and published.bld is None
    assert not Variant("q", {}, {}, None, {"bld": "not a record"}).is_parent


def test_with_costs_lays_measured_stats_and_facts_over_scores():
    scored = _library()
    scored.meta["scoring"] = {"tokens": 10}
    scored.meta["scenario"] = {"stale": True}
    measured = _library()
    for layer in measured.layers:
        for v in layer.values():
            v.stats = {"num_params": 99, "decode_ms": 1.5}
    measured.meta["scenario"] = {"batch_sizes": [2]}
    measured.meta["non_block"] = {"decode_ms": 0.5}
    measured.meta["measurement"] = {"hardware": "cpu"}
    merged = scored.with_costs(measured)
    v = merged.layers[1]["half"]
    assert v.stats == {"num_params": 99, "decode_ms": 1.5} and v.metrics == {"kl_div": 0.3} and v.bld.tokens_seen == 64
    assert merged.meta.scenario == {"batch_sizes": [2]} and merged.meta.non_block == {"decode_ms": 0.5}
    assert merged.meta.measurement == {"hardware": "cpu"} and merged.meta.scoring == {"tokens": 10}
    assert merged.meta.extra == {"zeta": [1, 2], "custom": {"a": 1}}
    assert scored.layers[1]["half"].stats == {"num_params": 6}  # the inputs are not changed
    with pytest.raises(LibraryError, match="no measured costs"):
        del measured.layers[0]["half"]
        scored.with_costs(measured)
    with pytest.raises(LibraryError, match="costs for 1 layers"):
        scored.with_costs(_library(layers=1))
