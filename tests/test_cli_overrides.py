"""`puzzle-ray run CONFIG KEY=VALUE ...`: overrides validated like the YAML, and `--print-config`."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from puzzle_ray.cli import app
from puzzle_ray.workflows.config import ConfigError, config_yaml, load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "workflows" / "tiny-cpu.yaml"
SHIPPED = sorted((ROOT / "workflows").glob("*.yaml"))


def test_overrides_apply_with_yaml_values():
    base = load_config(TINY)
    cfg = load_config(TINY, ["bld.token_budget=49152", "search.num_solutions=3", "name=my run",
                             "search.constraints=[stats.decode_ms<=0.5*parent, stats.memory_mib<=100]",
                             "mlflow.tracking_uri=sqlite:///other.db", "cache_dir="])
    assert base.bld.token_budget == 98304 and cfg.bld.token_budget == 49152
    assert cfg.search.num_solutions == 3 and cfg.name == "my run"
    assert cfg.search.constraints == ["stats.decode_ms<=0.5*parent", "stats.memory_mib<=100"]
    assert cfg.mlflow.tracking_uri == "sqlite:///other.db" and cfg.cache_dir is None
    assert cfg.bld.lr == base.bld.lr  # the rest of the section is the file's
    assert load_config(TINY, ["bld.token_budget=1", "bld.token_budget=2048"]).bld.token_budget == 2048  # last wins


@pytest.mark.parametrize("override, names", [
    ("bld.token_budgt=49152", ["bld.token_budgt=49152", "bld has no field 'token_budgt'"]),
    ("bldd.token_budget=49152", ["bldd.token_budget=49152", "the plan has no field 'bldd'"]),
    ("bld.token_budget=many", ["bld.token_budget", "integer", "override bld.token_budget=many"]),
    ("bld.token_budget=[1, 2", ["bld.token_budget=[1, 2", "not valid YAML"]),
    ("bld.token_budget", ["expected KEY=VALUE"]),
    ("name.first=x", ["name is 'tiny-cpu' in the file, not a section"]),
])
def test_bad_overrides_name_the_field(override, names):
    with pytest.raises(ConfigError) as e:
        load_config(TINY, [override])
    for name in names:
        assert name in str(e.value)


def test_plan_file_problems_name_the_file_the_unknown_field_first_and_what_was_given(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(128, 256)))
    with pytest.raises(ConfigError, match=r"binary\.yaml: not a text file \(not UTF-8"):
        load_config(binary)
    plan = tmp_path / "plan.yaml"
    plan.write_text("nmae: x\ndistill: {engine: horovod}\n")  # misspelt `name`, so `name` is missing too
    with pytest.raises(ConfigError) as e:
        load_config(plan)
    problems = str(e.value).removeprefix(f"{plan}: ").split("; ")
    assert problems[0] == "nmae: Extra inputs are not permitted" and "name: Field required" in problems
    assert "distill.engine: Input should be 'ddp' or 'deepspeed' (got 'horovod')" in problems


def test_run_rejects_a_bad_override_with_exit_code_2_and_runs_nothing(monkeypatch):
    import puzzle_ray.workflows.driver as driver

    calls = []
    monkeypatch.setattr(driver, "run_workflow", lambda *a, **k: calls.append(a))
    result = CliRunner().invoke(app, ["run", str(TINY), "bld.token_budgt=49152", "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "bld has no field 'token_budgt'" in result.output and calls == []
    result = CliRunner().invoke(app, ["run", str(TINY), "bld.token_budget=-5"])
    assert result.exit_code == 2 and "bld.token_budget" in result.output and calls == []
    result = CliRunner().invoke(app, ["run", str(TINY), "bld.token_budget=49152", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1 and calls[0][0].bld.token_budget == 49152  # the driver gets the overridden plan


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_print_config_round_trips_through_load_config(path, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["run", str(path), "bld.token_budget=49152", "--print-config",
                                      "--experiment", "x: y"])
    assert result.exit_code == 0, result.output
    printed = tmp_path / "resolved.yaml"
    printed.write_text(result.stdout)
    again = load_config(printed)
    expected = load_config(path, ["bld.token_budget=49152"])
    assert again.mlflow.experiment == "x: y"  # an option's value is taken as is, not read as YAML
    assert again == expected.model_copy(update={"mlflow": expected.mlflow.model_copy(update={"experiment": "x: y"})})
    assert set(yaml.safe_load(result.stdout)) == set(type(expected).model_fields)  # every field, defaults included
    assert config_yaml(again) == result.stdout


def test_ray_job_entrypoint_takes_the_same_overrides():
    result = subprocess.run([sys.executable, "-m", "puzzle_ray.workflows", str(TINY), "bld.token_budget=4096",
                             "--print-config"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert yaml.safe_load(result.stdout)["bld"]["token_budget"] == 4096
    bad = subprocess.run([sys.executable, "-m", "puzzle_ray.workflows", str(TINY), "bld.nope=1", "--print-config"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and "bld has no field 'nope'" in bad.stderr
