"""The `puzzle-ray` command line. Each subcommand is a thin wrapper around a library function.

Start-up is kept cheap: this module and every package's `cli.py` import typer, pathlib and typing only (the
packages' `__init__` resolve their names lazily, `puzzle_ray/_lazy.py`; `import puzzle_ray` defers the
transformers registration until transformers is imported), and each command imports what it needs when it runs.
So `puzzle-ray --help` and every subcommand's `--help` import neither torch nor transformers nor Ray (a test
checks it). Other libraries' progress bars and notices are silenced when a command runs, not at start-up
(`QuietCommand`), because that silencing imports them. Flags show no `<bool>` placeholder (`cli_options.Command`).
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand

from .cli_options import Command, Group, Overwrite, QuietCommand, enable_quiet

app = typer.Typer(add_completion=False, no_args_is_help=True, cls=Group,
                  help="Puzzle NAS and Parallel Context Windows on Ray.")

# Each package adds its own subcommands through `puzzle_ray.<package>.cli.register(app)`; a package that does
# not exist yet (or has no commands) is skipped.
COMMAND_PACKAGES = ["data", "parent", "library", "score", "measure", "solve", "distill", "evaluate", "pcw", "workflows"]


@app.command()
def inspect(
    config: Annotated[
        Path, typer.Argument(help="config.json (nemotron-nas or a parent family: Llama, Qwen2, Qwen3, Mistral), "
                                  "a model folder or a .gguf file")
    ],
    parent: Annotated[
        Optional[Path], typer.Option(help="the parent's config.json, folder or .gguf, to compare against")
    ] = None,
    dtype: Annotated[str, typer.Option(help="KV-cache dtype for the byte counts")] = "bfloat16",
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="also build the model on the meta device and check that "
                                                        "its parameter count equals the formula's (imports the "
                                                        "model code: slower start)")
    ] = False,
) -> None:
    """Per-layer architecture table, parameters and KV-cache bytes per token, without loading weights."""
    from .arch.shape import load_model_shape  # reads nemotron-nas and saved family configs without torch
    from .arch.stats import DTYPE_BYTES, model_stats
    from .arch.summary import engines_table, layer_table, totals_table
    from .ui import console, fail

    if dtype not in DTYPE_BYTES:
        fail(f"--dtype {dtype}: expected one of {', '.join(sorted(DTYPE_BYTES))}")
    try:
        child = load_model_shape(config)
        configs = {"parent": load_model_shape(parent)} if parent else {}
        configs[config.stem if config.is_file() else config.name] = child
        if verify:
            from .arch.config import load_puzzle_config
            from .arch.summary import count_params_on_meta
            from .parent.gguf import gguf_puzzle_config

            full = gguf_puzzle_config(config) if config.suffix.lower() == ".gguf" else load_puzzle_config(config)
            if count_params_on_meta(full) != model_stats(child, dtype).num_params:
                fail("parameter formula disagrees with the model class (please report this)")
        console.print(layer_table(child, dtype))
        console.print(totals_table(configs, dtype))
        console.print(engines_table(child))
    except (OSError, ValueError) as e:
        fail(str(e))
    wall, cpu = _since_start()
    console.print(f"[dim]inspected in {wall:.2f} s ({cpu:.2f} s CPU) since the process started"
                  + (", parameter count verified on the meta device" if verify else "") + "[/]")


def _since_start() -> tuple[float, float]:
    """(wall, CPU) seconds since this process started: interpreter and imports included, as `time` shows."""
    import time

    cpu = time.process_time()
    try:
        import psutil

        return time.time() - psutil.Process().create_time(), cpu
    except (ImportError, OSError):  # psutil is a dependency; without it, at least the CPU time is honest
        return float("nan"), cpu


@app.command()
def convert(
    parent_dir: Annotated[
        Path, typer.Argument(help="a local Llama / Qwen2 / Qwen3 / Mistral Hugging Face model folder or .gguf file")
    ],
    out_dir: Annotated[Path, typer.Argument(help="where to write the nemotron-nas export")],
    overwrite: Overwrite = False,
) -> None:
    """Write the parent, unchanged, in the nemotron-nas export layout (every block is the parent's own). A GGUF
    file is dequantised and the export checked against it (logits and greedy tokens)."""
    import warnings

    from transformers import AutoTokenizer

    from .arch.config import load_puzzle_config
    from .arch.convert import convert_from_hf
    from .arch.export import check_out_dir, export_pretrained
    from .ui import console, fail

    try:  # the cheap checks first: nothing is loaded for an output that would be refused
        check_out_dir(out_dir, overwrite)
    except OSError as e:
        fail(str(e))
    if parent_dir.suffix.lower() == ".gguf":
        from .parent.gguf import export_gguf

        try:
            record = export_gguf(parent_dir, out_dir, overwrite=overwrite)
        except (OSError, ValueError, RuntimeError) as e:
            fail(str(e))
        diff, secs = record["verify"]["max_abs_logit_diff"], record["seconds"]["total"]
        console.print(f"wrote {out_dir} ({record['architecture']}, max |logit diff| {diff:.2g}, {secs:.0f} s)")
        return
    try:
        if (parent_dir / "config.json").is_file():  # a supported family (the error names config.json), before
            load_puzzle_config(parent_dir)         # any weights; convert_from_hf names a folder without one
        with warnings.catch_warnings():  # torch's note on a .bin's pickle protocol; a refusal is the error
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            model = convert_from_hf(parent_dir)
        tokenizer = None
        if any((parent_dir / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
            tokenizer = AutoTokenizer.from_pretrained(parent_dir, trust_remote_code=False)
        export_pretrained(model, out_dir, tokenizer=tokenizer, overwrite=overwrite)
    except (OSError, ValueError, RuntimeError) as e:
        fail(str(e))
    console.print(f"wrote {out_dir}")


def _register_packages() -> None:
    for name in COMMAND_PACKAGES:
        module_name = f"puzzle_ray.{name}.cli"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name in (module_name, f"puzzle_ray.{name}"):
                continue
            raise
        module.register(app)
    for info in app.registered_commands:  # every command but `inspect` (config arithmetic) runs libraries
        if info.cls in (None, TyperCommand):  # typer's default: no command asked for a class of its own
            info.cls = Command if info.callback is inspect else QuietCommand


_register_packages()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    enable_quiet()
    app()


if __name__ == "__main__":
    sys.exit(main())
