"""Every command's options: booleans are `--x/--no-x` flags, and options that several commands share are
spelled alike (`puzzle_ray/cli_options.py`)."""

from collections import defaultdict

import pytest
import typer.main
from typer.core import TyperOption
from typer.testing import CliRunner

from puzzle_ray.cli import app

COMMANDS = typer.main.get_command(app).commands


def options(command) -> list[TyperOption]:
    return [p for p in command.params if isinstance(p, TyperOption) and not p.hidden]


def value_type(opt) -> str:
    """The option's value type: the annotation (typer 0.29, which vendors click) or click's ParamType's name."""
    desc = getattr(opt, "type_descriptor", None)
    if desc is not None:
        return getattr(desc.annotation, "__name__", str(desc.annotation)).lower()
    return {"boolean": "bool", "text": "str", "integer": "int"}.get(opt.type.name, opt.type.name)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_no_value_placeholder_for_booleans(name):
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "BOOLEAN" not in result.output, result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_boolean_is_an_on_off_flag(name):
    assert options(COMMANDS[name]) or name in ("library", "score")  # (the test sees the options)
    for opt in options(COMMANDS[name]):
        if value_type(opt) == "bool" or opt.is_flag:
            assert opt.is_flag and opt.secondary_opts, f"{name} {opt.opts}: not an --x/--no-x flag"


SHARED = {  # parameter -> its one spelling (primary names, secondary names)
    "out": (["--out"], []),
    "store": (["--store"], []),
    "config": (["--config"], []),
    "cache_dir": (["--cache-dir"], []),
    "token_budget": (["--token-budget"], []),
    "tokens": (["--tokens"], []),
    "mlflow": (["--mlflow"], ["--no-mlflow"]),
    "tracking_uri": (["--tracking-uri"], []),
    "experiment": (["--experiment"], []),
    "overwrite": (["--overwrite"], ["--no-overwrite"]),
    "json_output": (["--json"], ["--no-json"]),
    "batch_sizes": (["--batch-sizes"], []),
    "prefill_len": (["--prefill-len"], []),
    "decode_len": (["--decode-len"], []),
}


def test_shared_options_are_spelled_alike_everywhere():
    seen = defaultdict(set)
    for name, command in COMMANDS.items():
        for opt in options(command):
            if opt.name in SHARED:
                assert (opt.opts, opt.secondary_opts) == SHARED[opt.name], (name, opt.opts)
                seen[opt.name].add(name)
            for spelling in opt.opts + opt.secondary_opts:
                assert spelling not in ("--output", "--no-cache") or opt.secondary_opts, (name, spelling)
    assert {"distill", "evaluate", "pcw-eval"} <= seen["mlflow"]
    assert {"pretrain", "measure", "solve", "evaluate", "pcw-eval"} <= seen["out"]
    # a command that logs to MLflow takes the tracking URI and the experiment too
    for name, command in COMMANDS.items():
        names = {opt.name for opt in options(command)}
        if names & {"mlflow", "experiment", "tracking_uri"}:
            assert {"experiment", "tracking_uri"} <= names, name
    assert {"run", "distill", "evaluate", "publish", "solve", "pcw-eval"} <= seen["tracking_uri"]


def test_a_spelling_means_one_kind_of_value_across_commands():
    kinds = defaultdict(set)
    for name, command in COMMANDS.items():
        for opt in options(command):
            for spelling in opt.opts:
                kinds[spelling].add((value_type(opt), opt.is_flag))
    mixed = {s: k for s, k in kinds.items() if len(k) > 1}
    assert not mixed, mixed


def test_old_spellings_still_work_hidden():
    for name, old, new in (("pcw-eval", "--output", "--out"), ("pretrain", "--tokens", "--token-budget")):
        params = {o for p in COMMANDS[name].params if isinstance(p, TyperOption) for o in p.opts}
        assert old in params and new in params
        result = CliRunner().invoke(app, [name, "--help"], terminal_width=200)
        assert old not in result.output.replace(new, "")
