"""The cached PCW path against the one-pass oracle, plain in-context learning and naive concatenation."""

import pytest
import torch

from puzzle_ray.pcw import ParallelContextWindows, oracle_logits

from .test_pcw_tiny import BOS, MODELS, build, random_tokens, random_windows

LENGTHS = [7, 12, 5]  # the longest window is not the first: the merged order differs from the given one


@pytest.mark.parametrize("alignment", ["left", "right"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", list(MODELS))
def test_cache_path_matches_one_pass_oracle(name, attn, alignment):
    model = build(name, attn)
    has_bos = MODELS[name][1]
    windows = random_windows(LENGTHS, bos=has_bos)
    task = random_tokens(6)
    pcw = ParallelContextWindows(model, bos_token_id=BOS, alignment=alignment)
    context = pcw.encode(windows)
    got = pcw.logits(context, task)
    want = oracle_logits(model, windows, task, BOS, alignment)
    assert got.shape == (6, 128)
    assert (got - want).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", list(MODELS))
def test_one_window_is_plain_in_context_learning(name):
    model = build(name)
    (window,) = random_windows([11], bos=MODELS[name][1])
    task = random_tokens(5)
    pcw = ParallelContextWindows(model, bos_token_id=BOS)
    got = pcw.logits(pcw.encode([window]), task)
    with torch.no_grad():
        plain = model(torch.tensor([window + task])).logits[0, len(window) :]
    assert (got - plain).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", ["llama", "child"])
def test_naive_concatenation_differs_clearly(name):
    model = build(name)
    windows = random_windows(LENGTHS, bos=True)
    task = random_tokens(6)
    pcw = ParallelContextWindows(model, bos_token_id=BOS)
    got = pcw.logits(pcw.encode(windows), task)
    flat = [BOS] + [t for w in windows for t in w[1:]]
    with torch.no_grad():
        naive = model(torch.tensor([flat + task])).logits[0, len(flat) :]
    assert (got - naive).abs().max().item() > 0.5


def test_left_and_right_alignment_differ_for_unequal_windows():
    model = build("llama")
    windows = random_windows(LENGTHS, bos=True)
    task = random_tokens(4)
    left = ParallelContextWindows(model, alignment="left")
    right = ParallelContextWindows(model, alignment="right")
    diff = left.logits(left.encode(windows), task) - right.logits(right.encode(windows), task)
    assert diff.abs().max().item() > 0.1


def test_shared_bos_is_kept_once_and_nothing_is_dropped_without_it():
    model = build("llama")
    pcw = ParallelContextWindows(model, bos_token_id=BOS)
    with_bos = pcw.encode(random_windows(LENGTHS, bos=True))
    assert with_bos.num_tokens == 1 + sum(LENGTHS) and with_bos.max_window_len == 13
    assert with_bos.token_ids[0].item() == BOS and (with_bos.token_ids == BOS).sum().item() == 1
    assert with_bos.window_of.tolist().count(-1) == 1
    without = pcw.encode(random_windows(LENGTHS, bos=False))
    assert without.num_tokens == sum(LENGTHS) and without.max_window_len == 12
    # Only some windows begin with BOS: nothing is shared, every token is kept (the reference would drop some).
    mixed = random_windows(LENGTHS, bos=False)
    mixed[1] = [BOS] + mixed[1]
    assert pcw.encode(mixed).num_tokens == sum(LENGTHS) + 1


def test_positions_restart_per_window_and_right_alignment_ends_together():
    model = build("gpt2")
    left = ParallelContextWindows(model).encode(random_windows([2, 4], bos=True))
    assert left.positions.tolist() == [0, 1, 2, 3, 4] + [1, 2]  # longest window first, then the other, BOS shared
    right = ParallelContextWindows(model, alignment="right").encode(random_windows([2, 4], bos=True))
    assert right.positions.tolist() == [0, 1, 2, 3, 4] + [3, 4]  # the short window's own BOS (position 2) is dropped


def test_context_is_reused_unchanged_by_queries():
    model = build("child")
    pcw = ParallelContextWindows(model)
    windows = random_windows(LENGTHS, bos=True)
    context = pcw.encode(windows)
    before = [None if k is None else k.clone() for k in context.keys]
    q1, q2 = random_tokens(5, seed=3), random_tokens(8, seed=4)
    first = pcw.logits(context, q1)
    second = pcw.logits(context, q2)
    pcw.generate(context, q1, max_new_tokens=4)
    again = pcw.logits(context, q1)
    fresh1 = pcw.logits(pcw.encode(windows), q1)
    fresh2 = pcw.logits(pcw.encode(windows), q2)
    assert torch.equal(first, fresh1) and torch.equal(second, fresh2) and torch.equal(again, first)
    for b, k in zip(before, context.keys):
        assert (b is None and k is None) or torch.equal(b, k)


def test_batched_logits_equal_one_by_one():
    model = build("qwen2")
    pcw = ParallelContextWindows(model)
    context = pcw.encode(random_windows(LENGTHS, bos=False))
    tasks = [random_tokens(n, seed=n) for n in (3, 9, 1, 6)]
    batched = pcw.logits_batch(context, tasks)
    for task, got in zip(tasks, batched):
        assert got.shape == (len(task), 128)
        assert (got - pcw.logits(context, task)).abs().max().item() < 1e-10


def test_mixed_child_caches_only_its_attention_layers():
    model = build("child")
    context = ParallelContextWindows(model).encode(random_windows(LENGTHS, bos=True))
    shapes = [None if k is None else tuple(k.shape) for k in context.keys]
    # no-op and linear attention hold nothing; GQA layers hold (1, kv_heads, L, head_dim) with L = 1 + 24
    assert shapes == [None, (1, 2, 25, 16), None, (1, 1, 25, 16), (1, 4, 25, 16)]


def test_float32_stays_close_to_the_oracle():
    model = build("llama", dtype=torch.float32)
    windows = random_windows(LENGTHS, bos=True)
    task = random_tokens(6)
    pcw = ParallelContextWindows(model)
    got = pcw.logits(pcw.encode(windows), task)
    want = oracle_logits(model, windows, task, BOS)
    assert (got - want).abs().max().item() < 1e-4


def test_sliding_window_is_applied_by_position():
    # Mistral with a window of 4 positions: the task must not see window tokens 4+ positions back, even though
    # their cache indices are close (windows share positions).
    model = build("mistral", sliding_window=4)
    windows = random_windows(LENGTHS, bos=True)
    task = random_tokens(3)
    pcw = ParallelContextWindows(model)
    got = pcw.logits(pcw.encode(windows), task)
    assert (got - oracle_logits(model, windows, task, BOS)).abs().max().item() < 1e-5
    wide = ParallelContextWindows(build("mistral", sliding_window=None))
    assert (got - wide.logits(wide.encode(windows), task)).abs().max().item() > 0.1


@pytest.mark.parametrize(
    "name, kw",
    [
        ("mistral", dict(sliding_window=4)),  # every layer slides: one mask
        ("qwen2", dict(use_sliding_window=True, sliding_window=4, max_window_layers=1)),  # mixed: a dict of masks
    ],
)
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_one_window_with_sliding_layers_matches_transformers_masks(name, kw, attn):
    # With one window positions equal cache indices, so transformers' own sliding-window masks are the truth.
    model = build(name, attn, **kw)
    (window,) = random_windows([11], bos=MODELS[name][1])
    task = random_tokens(5)
    pcw = ParallelContextWindows(model, bos_token_id=BOS)
    got = pcw.logits(pcw.encode([window]), task)
    ids = torch.tensor([window + task])
    with torch.no_grad():
        plain = model(ids, attention_mask=torch.ones_like(ids)).logits[0, len(window) :]
    assert (got - plain).abs().max().item() < 1e-5
    full = build(name, attn)  # the same weights without sliding layers see more, and differ
    with torch.no_grad():
        assert (full(ids).logits[0, len(window) :] - plain).abs().max().item() > 0.1


def test_windows_are_encoded_independently_and_their_order_does_not_matter():
    model = build("llama")
    pcw = ParallelContextWindows(model)
    windows = random_windows(LENGTHS, bos=True)
    context = pcw.encode(windows)
    # Each window's keys in the merged cache are exactly those of the window encoded alone.
    for k, window in enumerate(windows):
        alone = pcw.encode([window])
        mine = (context.window_of == k) | (context.window_of == -1)
        for merged, single in zip(context.keys, alone.keys):
            assert (merged[:, :, mine] - single).abs().max().item() < 1e-10
    task = random_tokens(6)
    reordered = pcw.logits(pcw.encode(windows[::-1]), task)
    assert (pcw.logits(context, task) - reordered).abs().max().item() < 1e-5


@pytest.mark.parametrize("alignment", ["left", "right"])
@pytest.mark.parametrize("name", ["llama", "child", "qwen2"])
def test_every_chunking_of_the_windows_gives_the_same_context(name, alignment):
    """Windows encoded a few per forward (bounded memory) merge into the context one forward gives."""
    model = build(name)
    windows = random_windows([7, 12, 5, 9], bos=MODELS[name][1])
    task = random_tokens(6)
    want = oracle_logits(model, windows, task, BOS, alignment)
    contexts = {per: ParallelContextWindows(model, bos_token_id=BOS, alignment=alignment,
                                            windows_per_forward=per).encode(windows) for per in (None, 1, 2, 3)}
    whole = contexts[None]
    for per, context in contexts.items():
        assert torch.equal(context.token_ids, whole.token_ids) and torch.equal(context.positions, whole.positions)
        assert torch.equal(context.window_of, whole.window_of)
        for a, b in zip(context.keys + context.values, whole.keys + whole.values):
            assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-10)), per
        got = ParallelContextWindows(model, bos_token_id=BOS, alignment=alignment).logits(context, task)
        assert (got - want).abs().max().item() < 1e-5, per


def test_windows_per_forward_must_be_positive():
    with pytest.raises(ValueError, match="windows_per_forward=0"):
        ParallelContextWindows(build("llama"), windows_per_forward=0)
