"""`puzzle-ray pcw-eval` and `puzzle-ray pcw-generate` (heavy imports stay inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli_options import TrackingUri, config_option, experiment_option, out_option


def pcw_generate(
    model: Annotated[
        Path, typer.Option(help="local model folder (Hugging Face layout or a Puzzle child) or .gguf file")
    ],
    window: Annotated[list[Path], typer.Option(help="a text file: one context window (repeat for more)")],
    prompt: Annotated[str, typer.Option(help="the task text that follows the windows")],
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 64,
    alignment: Annotated[str, typer.Option(help="left (the reference's default) or right")] = "left",
    add_bos: Annotated[bool, typer.Option("--add-bos/--no-add-bos",
                                          help="prepend BOS to windows where the tokenizer does not")] = True,
    do_sample: Annotated[bool, typer.Option("--do-sample/--no-do-sample",
                                            help="sample instead of greedy decoding")] = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: Annotated[int, typer.Option(help="seed for sampling")] = 0,
    dtype: str = "float32",
    attn_implementation: Annotated[str, typer.Option(help="eager or sdpa")] = "sdpa",
    device: str = "cpu",
) -> None:
    """Generate from a prompt that attends to several parallel context windows read from files."""
    import time

    import torch

    from ..ui import console, fail
    from .loading import DTYPES, check_model_dir, load_causal_lm
    from .parallel_context import ParallelContextWindows

    try:  # every option and file is checked before anything is loaded
        for option, value, allowed in (("--alignment", alignment, ("left", "right")),
                                       ("--attn-implementation", attn_implementation, ("eager", "sdpa")),
                                       ("--dtype", dtype, ("auto", *DTYPES))):
            if value not in allowed:
                raise ValueError(f"{option} {value}: expected {', '.join(allowed[:-1])} or {allowed[-1]}")
        try:
            kind = torch.device(device).type
        except RuntimeError:
            raise ValueError(f"--device {device}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: this machine has no CUDA device")
        check_model_dir(model)
        texts = []
        for path in window:
            if not path.is_file():
                raise ValueError(f"--window {path}: no such file")
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"--window {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
            if not text.strip():
                raise ValueError(f"--window {path}: the file is empty (a window needs some text)")
            texts.append(text)
        start = time.perf_counter()
        lm, tokenizer = load_causal_lm(model, dtype, attn_implementation, device)
        pcw = ParallelContextWindows(lm, tokenizer, alignment=alignment, add_bos=add_bos)
        context = pcw.encode(texts)
        generator = torch.Generator(device=device).manual_seed(seed) if do_sample else None
        ids = pcw.generate(
            context,
            prompt,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
        )
    except (OSError, ValueError, RuntimeError) as e:
        fail(str(e))
    console.print(tokenizer.decode(ids, skip_special_tokens=True), markup=False, highlight=False)
    console.print(
        f"[dim]{len(texts)} windows, {context.num_tokens} context tokens (longest window {context.max_window_len}), "
        f"{len(ids)} new tokens in {time.perf_counter() - start:.2f} s[/]"
    )


def pcw_eval(
    model: Annotated[Path | None, typer.Option(help="local model folder or .gguf file; default: the config's")
                     ] = None,
    config: Annotated[Path | None, config_option("YAML of PCWEvalConfig fields")] = None,
    train: Annotated[str | None, typer.Option(help="JSONL of demonstrations (text, label)")] = None,
    test: Annotated[str | None, typer.Option(help="JSONL of test examples")] = None,
    episodes: Annotated[int | None, typer.Option(help="evaluate this many synthetic episodes instead")] = None,
    embedded_parent: Annotated[bool, typer.Option("--embedded-parent/--no-embedded-parent",
                                                  help="use the trained embedded parent as the model")] = False,
    episode_classes: Annotated[int | None, typer.Option(help="classes per synthetic episode")] = None,
    windows: Annotated[str | None, typer.Option(help="numbers of windows, e.g. 1,2,3")] = None,
    context_size: Annotated[
        int | None, typer.Option(help="tokens a window + query may take (default: the model's limit; with "
                                      "--embedded-parent, its training length)")
    ] = None,
    draws: Annotated[int | None, typer.Option(help="random draws of shots per number of windows")] = None,
    shots_per_window: int | None = None,
    test_size: int | None = None,
    method: Annotated[str | None, typer.Option(help="greedy (label trie) or loglik")] = None,
    alignment: Annotated[str | None, typer.Option(help="left or right")] = None,
    variant: Annotated[str | None, typer.Option(help="pcw, pcw_rescaled (1/B attention on the windows) or nbce "
                                                     "(naive-Bayes combination of per-window predictions)")] = None,
    nbce_beta: Annotated[float | None, typer.Option(help="NBCE: weight off the no-context prediction")] = None,
    nbce_pooling: Annotated[str | None, typer.Option(help="NBCE: min_entropy or mean")] = None,
    out: Annotated[Path | None, out_option("also write the result as JSON to this file")] = None,
    output: Annotated[Path | None, typer.Option("--output", hidden=True)] = None,  # the old spelling of --out
    mlflow: Annotated[bool | None, typer.Option("--mlflow/--no-mlflow", help="log to MLflow (default: the "
                                                                            "config's log_mlflow, true)")] = None,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str | None, experiment_option("the config's, pcw-eval")] = None,
) -> None:
    """Many-shot ICL accuracy with 1..B parallel windows (JSONL classification sets or synthetic episodes)."""
    from pydantic import ValidationError
    from rich.table import Table

    from ..configs import read_yaml_mapping, validation_problems
    from ..ui import console, fail
    from .config import PCWEvalConfig
    from .evaluate import run_pcw_eval

    try:
        fields = {}
        if config is not None:
            fields = read_yaml_mapping(config)
        if embedded_parent:
            from puzzle_ray.parent import EmbeddedParentConfig, ensure_embedded_parent

            model = str(ensure_embedded_parent())
            # Positions past its training sequence length are untrained: PCW is what lets it read more.
            if context_size is None and "context_size" not in fields:
                context_size = EmbeddedParentConfig().seq_len
        overrides = {
            "model": None if model is None else str(model),
            "train_path": train,
            "test_path": test,
            "episodes": episodes,
            "episode_classes": episode_classes,
            "context_size": context_size,
            "num_windows": None if windows is None else _window_counts(windows),
            "draws": draws,
            "shots_per_window": shots_per_window,
            "test_size": test_size,
            "method": method,
            "alignment": alignment,
            "variant": variant,
            "nbce_beta": nbce_beta,
            "nbce_pooling": nbce_pooling,
            "tracking_uri": tracking_uri,
            "experiment": experiment,
            "output": None if (out or output) is None else str(out or output),
            "log_mlflow": mlflow,
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        cfg = PCWEvalConfig(**fields)
        result = run_pcw_eval(cfg)
    except ValidationError as e:
        fail(validation_problems(e, first_only=True))
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        fail(str(e))
    which = "" if cfg.variant == "pcw" else f", {cfg.variant}"
    table = Table(title=f"PCW accuracy{which} ({result.shots_per_window} shots per window, {result.num_tests} tests)")
    for col in ("windows", "shots", "accuracy mean", "std", "draws"):
        table.add_column(col, justify="right")
    for b in result.accuracies:
        acc = result.accuracies[b]
        table.add_row(str(b), str(b * result.shots_per_window), f"{result.mean(b):.3f}", f"{result.std(b):.3f}",
                      " ".join(f"{a:.3f}" for a in acc))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("pcw-generate")(pcw_generate)
    app.command("pcw-eval")(pcw_eval)


def _window_counts(text: str) -> list[int]:
    """`--windows 1,2,3` as numbers; an empty or malformed list is an error, not the default."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--windows {text!r}: expected positive window counts separated by commas, e.g. 1,2,3")
    return [int(p) for p in parts]
