"""Blockwise local distillation on Ray actors: training, determinism across actor counts, fault tolerance."""

import shutil
import time
from pathlib import Path

import pytest
import ray
import torch

from puzzle_ray.library.build import build_library, partition_layers
from puzzle_ray.library.config import BLDConfig
from puzzle_ray.library.space import VariantSpace, expand
from puzzle_ray.store import ArtifactStore, StoreError

from .library_fixtures import SEQ, export_tiny_parent, random_data

SPACE = VariantSpace(attention=[1, "linear", "no_op"], ffn=[0.5, "linear", "no_op"], round_to=32)
BLD = dict(token_budget=4 * 32 * 24, micro_batch_size=4, checkpoint_every=4, calibration_batches=2, eval_batches=2,
           linear_init="product", lr=2e-3)


@pytest.fixture(scope="module")
def parent_dir(tmp_path_factory):
    return export_tiny_parent(tmp_path_factory.mktemp("parent") / "parent")


@pytest.fixture(scope="module")
def one_actor(ray_cluster, parent_dir, tmp_path_factory):
    store = ArtifactStore(tmp_path_factory.mktemp("store1"))
    return build_library(parent_dir, SPACE, BLDConfig(num_actors=1, **BLD), random_data(), store), store


def trained_units(result):
    out = {}
    for layer in result.library.layers:
        for v in layer.values():
            for part in ("attention", "ffn"):
                if f"{part}_nmse_init" in v.extra["bld"]:
                    out[(v.extra["weights"][part])] = (v.extra["bld"][f"{part}_nmse_init"],
                                                       v.extra["bld"][f"{part}_nmse_final"])
    return out


def test_bld_lowers_every_trained_variants_nmse(one_actor):
    result, _ = one_actor
    units = trained_units(result)
    assert len(units) == 4 * 4  # per layer: kv1, linear attention; 64-wide, linear FFN
    for key, (init, final) in units.items():
        assert final < init, (key, init, final)


def test_library_record_is_complete(one_actor):
    result, store = one_actor
    lib = result.library
    # (kv2 kv1 linear no_op) x (128 64 linear no_op)
    assert lib.num_layers == 4 and all(len(layer) == 4 * 4 for layer in lib.layers)
    parent_entry = lib.layers[0]["attention=kv2 ffn=128"]
    assert parent_entry.extra["bld"] == {"nmse_init": 0.0, "nmse_final": 0.0, "tokens_seen": 0, "is_parent": True}
    assert parent_entry.extra["weights"] == {"attention": "parent", "ffn": "parent"}
    noop = lib.layers[2]["attention=no_op ffn=no_op"]
    assert noop.stats["num_params"] == 0 and noop.extra["weights"] == {}
    trained = lib.layers[3]["attention=kv1 ffn=64"]
    assert trained.extra["bld"]["tokens_seen"] == BLD["token_budget"]
    assert all(store.exists(k) for k in trained.extra["weights"].values())
    assert store.exists(f"{result.key}/complete.json")


def test_rerun_does_no_training(one_actor, parent_dir):
    _, store = one_actor
    start = time.perf_counter()
    again = build_library(parent_dir, SPACE, BLDConfig(num_actors=1, **BLD), random_data(), store)
    assert again.reused and time.perf_counter() - start < 5
    assert again.library.to_json() == one_actor[0].library.to_json()


def test_two_actors_give_the_same_library(one_actor, parent_dir, tmp_path):
    two = build_library(parent_dir, SPACE, BLDConfig(num_actors=2, **BLD), random_data(), ArtifactStore(tmp_path))
    one = one_actor[0]
    assert two.key == one.key  # the actor count does not change what is computed
    for a, b in zip(one.library.layers, two.library.layers):
        for name in a:
            x, y = a[name].extra["bld"]["nmse_final"], b[name].extra["bld"]["nmse_final"]
            assert y == pytest.approx(x, rel=1e-4, abs=1e-7), name


def test_killed_actor_resumes_from_checkpoint(one_actor, parent_dir, tmp_path):
    killed = []

    def kill_once(step, actors):
        if step == 10 and not killed:
            time.sleep(1.0)  # let the actors pass step 8's checkpoint
            ray.kill(actors[1], no_restart=False)
            killed.append(step)

    result = build_library(parent_dir, SPACE, BLDConfig(num_actors=2, **BLD), random_data(), ArtifactStore(tmp_path),
                           on_step=kill_once)
    assert killed and result.restored_from, "no actor resumed from a checkpoint"
    assert max(s for steps in result.restored_from.values() for s in steps) > 0
    for a, b in zip(one_actor[0].library.layers, result.library.layers):
        for name in a:
            x, y = a[name].extra["bld"]["nmse_final"], b[name].extra["bld"]["nmse_final"]
            assert y == pytest.approx(x, rel=1e-4, abs=1e-7), name


class DriverKilled(Exception):
    pass


def test_fresh_driver_resumes_actors_at_uneven_checkpoints_exactly(one_actor, parent_dir, tmp_path):
    """A driver dies when one actor has written a later checkpoint than the other; the next driver's new actors
    each restore their own latest checkpoint, so it must bring them to one common step before training on.
    Otherwise the actor that is ahead trains on the steps it has already seen (wrong weights, exit code 0)."""
    import json

    def step8():
        return sorted(p for p in tmp_path.rglob("ckpt/*") if (p / "step_00000008" / "state.json").exists())

    def die(step, actors):
        if step == 10:
            deadline = time.time() + 120
            while len(step8()) < 2 and time.time() < deadline:  # both actors past step 8's checkpoint
                time.sleep(0.2)
            raise DriverKilled

    store = ArtifactStore(tmp_path)
    with pytest.raises(DriverKilled):
        build_library(parent_dir, SPACE, BLDConfig(num_actors=2, **BLD), random_data(), store, on_step=die)
    folders = step8()
    assert len(folders) == 2, "both actors should have checkpointed step 8"
    shutil.rmtree(folders[1] / "step_00000008")  # the second actor had not written step 8 yet: 8 against 4

    result = build_library(parent_dir, SPACE, BLDConfig(num_actors=2, **BLD), random_data(), store)
    assert result.restored_from and min(s for steps in result.restored_from.values() for s in steps) == 4
    losses = json.loads((tmp_path / result.key / "losses.json").read_text())
    total = BLD["token_budget"] // (BLD["micro_batch_size"] * SEQ)
    for uid, history in losses.items():
        assert [step for step, _ in history] == list(range(1, total + 1)), uid  # every step once, in order
    for a, b in zip(one_actor[0].library.layers, result.library.layers):
        for name in a:
            x, y = a[name].extra["bld"]["nmse_final"], b[name].extra["bld"]["nmse_final"]
            assert y == pytest.approx(x, rel=1e-4, abs=1e-7), name


def test_common_step_of_kept_checkpoints():
    from puzzle_ray.library.build import common_step

    assert common_step([[0, 4, 8], [0, 4]]) == 4
    assert common_step([[0, 8, 12], [0, 4, 8]]) == 8
    assert common_step([[0, 4], []]) == -1 and common_step([]) == -1


def test_unwritable_store_is_rejected_before_training(parent_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="not writable"):
        build_library(parent_dir, SPACE, BLDConfig(**BLD), random_data(), ArtifactStore(blocker / "store"))


def test_bad_space_is_rejected_before_training(parent_dir, tmp_path):
    with pytest.raises(ValueError, match="FFN width 512 is larger than the parent's 128"):
        build_library(parent_dir, VariantSpace(ffn=[512]), BLDConfig(**BLD), random_data(), ArtifactStore(tmp_path))
    assert not list(tmp_path.iterdir())


def test_coupled_mode_trains_pairs(ray_cluster, parent_dir, tmp_path):
    space = VariantSpace(attention=["linear"], ffn=[0.5], round_to=32)
    result = build_library(parent_dir, space, BLDConfig(mode="coupled", **{**BLD, "token_budget": 4 * 32 * 8}),
                           random_data(), ArtifactStore(tmp_path))
    entry = result.library.layers[1]["attention=linear ffn=64"]
    assert set(entry.extra["weights"]) == {"block"}
    assert entry.extra["bld"]["nmse_final"] <= entry.extra["bld"]["nmse_init"]


def test_partition_is_contiguous_and_balanced(parent_dir):
    from puzzle_ray.arch.config import load_puzzle_config

    spaces = expand(SPACE, load_puzzle_config(parent_dir)) * 3  # 12 layers
    for n in (1, 2, 3, 5, 12, 20):
        ranges = partition_layers(spaces, n)
        assert ranges[0][0] == 0 and ranges[-1][1] == 12 and len(ranges) == min(n, 12)
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(ranges, ranges[1:]))


def test_realize_cli_assembles_the_chosen_child(one_actor, tmp_path):
    import json
    import subprocess
    import sys

    from transformers import AutoModelForCausalLM

    result, store = one_actor
    folder = tmp_path / "library"
    result.library.write(folder)
    chosen = {f"layer_{i}": "attention=no_op ffn=64" if i % 2 else "attention=kv1 ffn=linear" for i in range(4)}
    (tmp_path / "solution.json").write_text(json.dumps({"solutions": [{"chosen": chosen}]}))
    res = subprocess.run([sys.executable, "-m", "puzzle_ray.cli", "realize", "--library", str(folder),
                          "--solution", str(tmp_path / "solution.json"), str(tmp_path / "child")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    child = AutoModelForCausalLM.from_pretrained(tmp_path / "child")
    kinds = [(b.attention.kind, b.ffn.kind) for b in child.config.block_configs]
    assert kinds == [("gqa", "linear"), ("no_op", "swiglu")] * 2
    trained = store.read_tensors(result.library.layers[1]["attention=no_op ffn=64"].extra["weights"]["ffn"])
    assert torch.equal(child.model.layers[1].mlp.up_proj.weight, trained["mlp.up_proj.weight"])
    bad = subprocess.run([sys.executable, "-m", "puzzle_ray.cli", "realize", "--library", str(folder),
                          "--solution", str(tmp_path / "solution.json"), "--rank", "3", str(tmp_path / "c2")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "holds 1 solution" in bad.stderr


def test_a_changed_library_weight_file_is_named_not_realised(one_actor, tmp_path):
    """64 bytes changed inside a stored weight file (a disk error, a bad copy): assembling a child refuses it."""
    import shutil as sh

    from puzzle_ray.library.realize import realize
    from puzzle_ray.store import CorruptArtifact

    result, store = one_actor
    copy = ArtifactStore(tmp_path / "store")
    sh.copytree(store.root, copy.root)
    entry = result.library.layers[1]["attention=no_op ffn=64"]
    assert entry.extra["weights_sha256"]["ffn"]  # recorded when BLD wrote the file
    path = Path(copy.path(entry.extra["weights"]["ffn"]))
    data = bytearray(path.read_bytes())
    data[-64:] = bytes(64)  # inside the tensor data, past the safetensors header
    path.write_bytes(bytes(data))
    chosen = ["attention=kv2 ffn=128", "attention=no_op ffn=64", "attention=kv2 ffn=128", "attention=kv2 ffn=128"]
    with pytest.raises(CorruptArtifact, match=rf"{path.name}: its content changed after it was written"):
        realize(result.library, chosen, copy, tmp_path / "child")
    assert not (tmp_path / "child").exists()


def test_every_phase_shows_progress_in_its_unit(ray_cluster, parent_dir, tmp_path, monkeypatch):
    import puzzle_ray.library.build as build_module

    from .test_score import recording_progress

    bars = recording_progress(monkeypatch, build_module)
    bld = BLDConfig(num_actors=2, **{**BLD, "token_budget": 4 * 32 * 4})
    build_library(parent_dir, SPACE, bld, random_data(), ArtifactStore(tmp_path))
    (bar,) = bars
    rows = {t.description.split(" (layers")[0]: t for t in bar.tasks}
    assert list(rows) == ["BLD: starting actors", "BLD: calibration", "BLD: initialisation", "BLD: evaluation (init)",
                          "BLD (2 actors)", "BLD: evaluation (final)", "BLD: saving weights"]
    expected = {"BLD: starting actors": (2, "actors"), "BLD: calibration": (2, "batch"),
                "BLD: initialisation": (4, "layers"), "BLD: evaluation (init)": (2, "batch"),
                "BLD (2 actors)": (4 * 32 * 4, "tok"), "BLD: evaluation (final)": (2, "batch"),
                "BLD: saving weights": (2, "actors")}
    for name, (total, unit) in expected.items():
        row = rows[name]
        assert (row.total, row.completed, row.fields["unit"]) == (total, total, unit), name
    assert sum(1 for d, _ in bar.advances if d == "BLD: initialisation") == 4  # layer by layer
