"""`puzzle-ray tokenize`: tokenise a data config's sources into the token cache once, and show its splits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import CacheDir


def load_yaml_section(path: Path, section: str) -> dict:
    """The mapping in a YAML file, or its `section` entry when the file is a whole workflow config."""
    from ..configs import read_yaml_mapping

    fields = read_yaml_mapping(path)
    if section in fields and isinstance(fields[section], dict):
        fields = fields[section]
    return fields


def register(app: typer.Typer) -> None:
    @app.command()
    def tokenize(
        config: Annotated[Path, typer.Argument(help="YAML of DataConfig fields, or a workflow YAML with `data:`")],
        tokenizer: Annotated[Optional[Path], typer.Option(help="tokenizer folder (overrides the config's)")] = None,
        cache_dir: CacheDir = None,
    ) -> None:
        """Tokenise the sources into the content-addressed token cache (once) and print its splits."""
        import time

        from pydantic import ValidationError
        from rich.table import Table

        from ..configs import validation_problems
        from ..ui import console, fail
        from .cache import plan_tokens, prepare_tokens
        from .config import DataConfig
        from .errors import DataError

        start = time.perf_counter()
        try:
            fields = load_yaml_section(config, "data")
            if cache_dir is not None:
                fields["cache_dir"] = str(cache_dir)
            cfg = DataConfig(**fields)
            plan = plan_tokens(cfg, tokenizer)
            reused = plan.exists
            data = prepare_tokens(cfg, plan.tokenizer)
        except ValidationError as e:
            fail(validation_problems(e, first_only=True))
        except (DataError, OSError, ValueError) as e:
            fail(str(e))
        table = Table(title=f"token cache {data.path}" + (" (reused)" if reused else ""))
        for col in ("split", "sequences", "tokens", "dropped tail"):
            table.add_column(col, justify="left" if col == "split" else "right")
        for split in (data.train, data.validation):
            dropped = split.meta["dropped_tokens"]
            table.add_row(split.name, f"{split.num_sequences:,}", f"{split.num_tokens:,}", f"{dropped:,}")
        console.print(table)
        console.print(f"[dim]seq_len {data.seq_len}, vocab {data.vocab_size:,}; {time.perf_counter() - start:.2f} s[/]")
