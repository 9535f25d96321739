"""The published Llama-3.3-70B block library (read in place from ../shared/reference; skipped where absent)."""

import itertools

import pytest

from puzzle_ray.solve import SearchConfig, load_library, search
from puzzle_ray.solve.parent import parent_variants

from .conftest import reference_file

PARENT_MEMORY_MIB = 1437.109375  # parent_block_stats.json, per layer


@pytest.fixture(scope="module")
def library():
    return load_library(reference_file("nvlabs-puzzle-llama-3.3-70b-library"), num_attention_heads=64)


def test_layout_scenario_and_parent(library):
    assert library.num_layers == 80 and all(len(layer) == 16 for layer in library.layers)
    assert library.meta["scenario"]["batch_size"] == 256 and library.meta["scenario"]["sequence_length"] == 1200
    parents = parent_variants(library)
    assert all(p is not None and p.count("parent * 100%") == 2 for p in parents)
    assert library.layers[0][parents[0]].stats["memory_mib"] == library.meta["parent_block_stats"]["memory_mib"]
    blocks = {v.block_config for layer in library.layers for v in layer.values()}
    assert None not in blocks and len(blocks) == 16  # every published variant maps to a block config


def test_authors_scenarios(library):
    first = search(library, SearchConfig(constraints=["stats.memory_mib<=80000", "stats.runtime_ms<=51200"])).best
    second = search(library, SearchConfig(constraints=["stats.memory_mib<=40000"])).best
    third = search(library, SearchConfig(constraints=["stats.memory_mib<=0.85*parent", "stats.runtime_ms<=0.85*parent"],
                                         num_solutions=3, min_diversity=20)).solutions
    for s in (first, second, *third):
        assert s.status == "optimal" and s.mip_gap <= 1e-6 and s.verified and s.batch_size == 256
    assert first.costs["stats.memory_mib<=80000"] <= 80000 and first.costs["stats.runtime_ms<=51200"] <= 51200
    assert second.objective > first.objective  # half the memory costs quality
    assert third[0].limits["stats.memory_mib<=0.85*parent"][1] == pytest.approx(0.85 * 80 * PARENT_MEMORY_MIB)
    assert len(third) == 3 and third[0].objective <= third[1].objective <= third[2].objective
    for a, b in itertools.combinations(third, 2):
        assert sum(x != y for x, y in zip(a.chosen, b.chosen)) >= 20
    assert first.block_configs[0].attention.n_heads_in_group in (8, None)
