"""`puzzle-ray pretrain`: build (or reuse) the embedded default parent and print its quality report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import CacheDir, TokenBudget, config_option, out_option


def register(app: typer.Typer) -> None:
    @app.command()
    def pretrain(
        config: Annotated[
            Optional[Path], config_option("YAML of EmbeddedParentConfig fields, or with a `parent:` section")
        ] = None,
        cache_dir: CacheDir = None,
        token_budget: TokenBudget = None,
        tokens: Annotated[Optional[int], typer.Option("--tokens", hidden=True)] = None,  # the old spelling
        out: Annotated[Optional[Path], out_option("also copy the model folder here")] = None,
        force: Annotated[bool, typer.Option("--force/--no-force", help="retrain even if a cached parent exists")
                         ] = False,
    ) -> None:
        """Pretrain the embedded default parent (about 3 minutes on 2 CPU cores; cached afterwards)."""
        import shutil

        from pydantic import ValidationError

        from ..configs import validation_problems
        from ..data.cli import load_yaml_section
        from ..data.errors import DataError
        from ..ui import console, fail
        from .build import pretrain as run_pretrain
        from .config import EmbeddedParentConfig
        from .quality import report_tables

        try:
            fields = load_yaml_section(config, "parent") if config is not None else {}
            budget = token_budget if token_budget is not None else tokens
            if budget is not None:
                fields["train"] = {**fields.get("train", {}), "token_budget": budget}
            cfg = EmbeddedParentConfig(**fields)
            if out is not None and out.exists() and any(out.iterdir()):
                raise ValueError(f"--out {out}: already exists and is not empty")
            result = run_pretrain(cfg, cache_dir, force=force)
            if out is not None:
                shutil.copytree(result.path, out, dirs_exist_ok=True)
        except ValidationError as e:
            fail(validation_problems(e, first_only=True))
        except (DataError, OSError, ValueError, FloatingPointError) as e:
            fail(str(e))
        for table in report_tables(result.report):
            console.print(table)
        if result.summary:
            s = result.summary
            rate = f"{s['tokens_per_second']:,.0f} tok/s, {s['precision']}"
            console.print(f"trained {s['tokens']:,} tokens in {s['seconds']:.0f} s ({rate})")
        state = "reused" if result.reused else "built"
        console.print(f"{state} {result.path} in {result.seconds:.1f} s")
