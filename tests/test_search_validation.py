"""Bad input is rejected before any solve, with one message naming the layer and variant (or the field)."""

import json

import pytest
from pydantic import ValidationError

import puzzle_ray.solve.run as search_module
from puzzle_ray.library.record import LibraryError, Variant
from puzzle_ray.solve import ConstraintError, SearchConfig, load_library, parse_constraint, search
from puzzle_ray.solve.synthetic import random_library


@pytest.fixture
def no_solver(monkeypatch):
    """Any solve is a test failure: validation must happen first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the solver ran before the input was validated")

    monkeypatch.setattr(search_module, "solve_mip", refuse)


def library():
    return random_library(num_layers=3, max_variants=3, seed=1)


def test_missing_metric_names_layer_and_variant(no_solver):
    lib = library()
    del lib.layers[1]["parent"].metrics["kl_div"]
    with pytest.raises(LibraryError, match=r"layer_1 / 'parent': no metrics.kl_div \(needed by the objective\)"):
        search(lib, SearchConfig())


def test_nan_names_layer_and_variant(no_solver):
    lib = library()
    name = list(lib.layers[2])[-1]
    lib.layers[2][name].stats["memory_mib"] = float("nan")
    with pytest.raises(LibraryError, match=rf"layer_2 / '{name}': stats.memory_mib = nan is not finite"):
        search(lib, SearchConfig(constraints=["stats.memory_mib<=100"]))


def test_negative_cost_names_layer_and_variant(no_solver):
    lib = library()
    lib.layers[0]["parent"].stats["runtime_ms"] = -1.0
    with pytest.raises(LibraryError, match=r"layer_0 / 'parent': stats.runtime_ms = -1.0 is negative"):
        search(lib, SearchConfig(constraints=["throughput>=10"]))


def test_non_numeric_and_negative_score(no_solver):
    lib = library()
    lib.layers[0]["parent"].metrics["kl_div"] = "0.1"
    with pytest.raises(LibraryError, match="layer_0 / 'parent': metrics.kl_div = '0.1' is not a number"):
        search(lib, SearchConfig())
    lib = library()
    lib.layers[2]["parent"].metrics["kl_div"] = -0.5
    with pytest.raises(LibraryError, match="layer_2 / 'parent': metrics.kl_div = -0.5 is negative"):
        search(lib, SearchConfig())


def test_layer_without_variants(no_solver, tmp_path):
    lib = library()
    lib.layers[1] = {}
    with pytest.raises(LibraryError, match="layer_1: no variants"):
        search(lib, SearchConfig())
    data = library().to_json()
    data["layer_2"] = {}
    (tmp_path / "block_library.json").write_text(json.dumps(data))
    with pytest.raises(LibraryError, match="layer_2: no variants"):
        load_library(tmp_path)


def test_relative_limit_needs_a_parent(no_solver):
    lib = library()
    for layer in lib.layers:
        for v in layer.values():
            v.extra["is_parent"] = False
    with pytest.raises(LibraryError, match="the parent's figure is unknown: no variant of layer_0 is marked"):
        search(lib, SearchConfig(constraints=["stats.memory_mib<=0.5*parent"]))
    lib.meta["parent_block_stats"] = {"memory_mib": 20.0}
    problem = search_module.problems_for(lib, SearchConfig(constraints=["stats.memory_mib<=0.5*parent"]))[0]
    assert problem.rows[0].upper == pytest.approx(0.5 * (3 * 20.0 + 10.0))  # 3 layers + the non-block part


def test_two_parent_marks_in_one_layer(no_solver):
    lib = library()
    lib.layers[0]["other"] = Variant("other", dict(lib.layers[0]["parent"].stats), {"kl_div": 1.0}, None,
                                     {"is_parent": True})
    with pytest.raises(LibraryError, match="layer_0: several variants are marked"):
        search(lib, SearchConfig(constraints=["stats.memory_mib<=parent"]))


def test_throughput_needs_batch_and_tokens(no_solver):
    lib = library()  # no batch size in its scenario
    with pytest.raises(LibraryError, match="batch size is unknown"):
        search(lib, SearchConfig(constraints=["throughput>=10"]))
    lib = random_library(num_layers=2, max_variants=2, seed=0, batch_sizes=(4,))
    lib.meta["scenario"].pop("sequence_length")
    with pytest.raises(LibraryError, match="tokens per sequence unknown"):
        search(lib, SearchConfig(constraints=["throughput>=10"]))


def test_batch_sizes_must_be_measured(no_solver):
    lib = random_library(num_layers=2, max_variants=2, seed=0, batch_sizes=(4, 8))
    with pytest.raises(ValueError, match="no stats at batch size 16"):
        search(lib, SearchConfig(batch_sizes=[8, 16]))
    lib.layers[1]["parent"].stats["by_batch"].pop("8")
    with pytest.raises(LibraryError, match="layer_1 / 'parent': stats.by_batch has batch sizes"):
        search(lib, SearchConfig())


def test_diversity_beyond_the_layers(no_solver):
    with pytest.raises(ValueError, match="min_diversity=5: more layers than the library's 3"):
        search(library(), SearchConfig(num_solutions=2, min_diversity=5))


def test_unknown_key_in_constraint(no_solver):
    # in no variant at all: a misspelt constraint, named with the keys there are (not a broken layer)
    with pytest.raises(LibraryError, match=r"^constraint 'stats.energy_j<=5': no variant of the library has "
                                           r"stats.energy_j \(it has stats\.[a-z_]+, "):
        search(library(), SearchConfig(constraints=["stats.energy_j<=5"]))
    with pytest.raises(LibraryError, match=r"^the objective: no variant of the library has metrics.bogus"):
        search(library(), SearchConfig(objective="metrics.bogus"))


def test_published_layout_loads_and_maps_blocks(tmp_path):
    """The published layout (no block configs; measurement_info + parent_block_stats beside it)."""
    stats = {"num_kv_heads": 8, "ffn_intermediate_size": 1024, "memory_mib": 10.0, "runtime_ms": 5.0}
    small = {**stats, "num_kv_heads": 0, "ffn_intermediate_size": 0, "memory_mib": 0.0, "runtime_ms": 0.0}
    data = {f"layer_{i}": {"full (parent * 100%) && (parent * 100%)": {"stats": stats, "metrics": {"kl_div": 0.0}},
                           "empty": {"stats": small, "metrics": {"kl_div": 3.0}}} for i in range(3)}
    (tmp_path / "block_library.json").write_text(json.dumps(data))
    (tmp_path / "measurement_info.json").write_text(json.dumps({"batch_size": 16, "sequence_length": 100}))
    (tmp_path / "parent_block_stats.json").write_text(json.dumps({"stats": stats}))
    lib = load_library(tmp_path, num_attention_heads=32)
    assert lib.layers[0]["empty"].block_config.attention.no_op
    assert lib.layers[0]["full (parent * 100%) && (parent * 100%)"].block_config.attention.n_heads_in_group == 4
    best = search(lib, SearchConfig(constraints=["stats.memory_mib<=0.7*parent", "throughput>=0.0001*parent"])).best
    assert best.batch_size == 16 and best.layers_changed == 1 and best.objective == 3.0
    (tmp_path / "library_meta.json").write_text(json.dumps({"num_attention_heads": 32}))
    with pytest.raises(LibraryError, match="disagrees"):
        load_library(tmp_path, num_attention_heads=8)


@pytest.mark.parametrize(
    "text, error",
    [
        ("stats.memory_mib<80000", "use '<=' or '>='"),
        ("stats.memory_mib==80000", "use '<=' or '>='"),
        ("memory<=80000", "expected 'stats.<name>'"),
        ("stats.memory_mib<=lots", "must be a number"),
        ("stats.memory_mib<=inf", "must be a number"),
        ("5<=stats.memory_mib<=4", "lower bound is above"),
        ("throughput>=0", "must be positive"),
        ("stats.memory_mib", "expected 'KEY<=LIMIT'"),
    ],
)
def test_bad_constraints(text, error):
    with pytest.raises(ConstraintError, match=error):
        parse_constraint(text)
    with pytest.raises(ValidationError, match="constraints"):
        SearchConfig(constraints=[text])


def test_constraint_forms():
    c = parse_constraint(" stats.memory_mib <= 0.85 * parent ")
    assert c.upper.of_parent and c.upper.value == 0.85 and c.lower is None and c.text == "stats.memory_mib<=0.85*parent"
    assert parse_constraint("stats.runtime_ms<=85%").upper.value == pytest.approx(0.85)
    assert (parse_constraint("throughput>=parent*2").lower.value == 2
            and parse_constraint("throughput>=2*parent").key == "throughput")
    r = parse_constraint("1e9<=stats.num_params<=2_000_000_000")
    assert (r.lower.value, r.upper.value) == (1e9, 2e9) and not r.uses_parent
    assert parse_constraint("80000>=stats.memory_mib").upper.value == 80000
    assert parse_constraint("2e9>=stats.num_params>=1e9").lower.value == 1e9


def test_config_fields():
    with pytest.raises(ValidationError, match="extra"):
        SearchConfig(objectve="metrics.kl_div")
    with pytest.raises(ValidationError, match="throughput"):
        SearchConfig(objective="throughput")
    with pytest.raises(ValidationError, match="objective"):
        SearchConfig(objective="kl_div")
    with pytest.raises(ValidationError, match="fraction"):
        SearchConfig(min_diversity=1.5)
    with pytest.raises(ValidationError, match="distinct"):
        SearchConfig(batch_sizes=[8, 8])
    with pytest.raises(ValidationError, match="HiGHS rejects mip_rel_gapp"):
        SearchConfig(highs_options={"mip_rel_gapp": 0.1})
    assert SearchConfig(min_diversity=0.25).diversity_layers(80) == 20
    assert SearchConfig(min_diversity=20).diversity_layers(80) == 20
    assert all(f.description for f in SearchConfig.model_fields.values())
