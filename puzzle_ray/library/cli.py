"""`puzzle-ray library` (the workflow's library stage) and `puzzle-ray realize` (assemble a chosen architecture
from a trained library and export it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import Overrides, Overwrite, WorkflowFile, store_option


def library(config: WorkflowFile, overrides: Overrides = None) -> None:
    """Build the block library: initialise every variant, train them all by BLD (and the stages it needs)."""
    from ..workflows.cli import run_until

    run_until(config, "library", overrides)


def realize(
    library: Annotated[Path, typer.Option(help="block_library.json of a trained library (or its folder)")],
    solution: Annotated[Path, typer.Option(help="`puzzle-ray solve --json` output (or one solution object)")],
    out_dir: Annotated[Path, typer.Argument(help="where to write the child (nemotron-nas layout)")],
    rank: Annotated[int, typer.Option(help="which solution of the file (0 = the best)")] = 0,
    store: Annotated[
        Optional[str], store_option("artifact store of the library's weights (default: the one it names)")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Assemble the child a solution names from the library's trained weights; export it with the parent's tokenizer."""
    import json

    from ..store import ArtifactStore, StoreError
    from ..ui import console, fail
    from .realize import realize as realize_child
    from .record import Library, LibraryError, layer_key

    try:
        lib = Library.read(library)
        data = json.loads(solution.read_text())
        solutions = data.get("solutions", [data])
        if not 0 <= rank < len(solutions):
            fail(f"--rank {rank}: {solution} holds {len(solutions)} solution(s)")
        chosen = solutions[rank]["chosen"]
        names = [chosen[layer_key(i)] for i in range(len(chosen))] if isinstance(chosen, dict) else list(chosen)
        url = store or lib.meta.store_url
        if not url:
            fail(f"{library}: the library names no artifact store; pass --store")
        realize_child(lib, names, ArtifactStore(url), out_dir, overwrite=overwrite)
    except (OSError, ValueError, KeyError, LibraryError, StoreError) as e:
        fail(f"{type(e).__name__}: {e}" if isinstance(e, KeyError) else str(e))
    console.print(f"wrote {out_dir}")


def register(app: typer.Typer) -> None:
    app.command(name="library")(library)
    app.command()(realize)
