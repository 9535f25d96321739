"""PCW generation: first step, positions of generated tokens, batching, sampling, stopping."""

import pytest
import torch
from transformers import LogitsProcessor

from puzzle_ray.pcw import ParallelContextWindows, oracle_logits

from .test_pcw_tiny import BOS, build, random_tokens, random_windows

LENGTHS = [7, 12, 5]


class RecordScores(LogitsProcessor):
    """Keeps the raw scores each step sees, changes nothing."""

    def __init__(self):
        self.seen = []

    def __call__(self, input_ids, scores):
        self.seen.append((input_ids.clone(), scores.clone()))
        return scores


@pytest.mark.parametrize("name", ["gpt2", "llama", "child"])
def test_first_generation_step_equals_last_logits_row(name):
    model = build(name)
    pcw = ParallelContextWindows(model)
    context = pcw.encode(random_windows(LENGTHS, bos=True))
    tasks = [random_tokens(4, seed=5), random_tokens(9, seed=6)]
    record = RecordScores()
    out = pcw.generate_batch(context, tasks, max_new_tokens=3, logits_processor=[record], eos_token_id=[])
    first_ids, first_scores = record.seen[0]
    for b, task in enumerate(tasks):
        last = pcw.logits(context, task)[-1]
        assert (first_scores[b] - last).abs().max().item() < 1e-5
        assert out[b][0] == int(last.argmax())
        assert first_ids[b, -len(task) :].tolist() == task  # processors see the task, left-padded
    assert [len(o) for o in out] == [3, 3]


@pytest.mark.parametrize("name", ["gpt2", "qwen2", "child"])
def test_greedy_tokens_continue_task_positions(name):
    # Every generated token is the argmax of the oracle over [windows, task + tokens so far]: generated token k
    # sits at position M + len(task) + k and sees everything before it.
    model = build(name)
    windows = random_windows(LENGTHS, bos=name != "qwen2")
    task = random_tokens(5)
    pcw = ParallelContextWindows(model, bos_token_id=BOS)
    generated = pcw.generate(pcw.encode(windows), task, max_new_tokens=6, eos_token_id=[])
    oracle = oracle_logits(model, windows, task + generated[:-1], BOS)
    assert generated == oracle[len(task) - 1 :].argmax(-1).tolist()


def test_one_window_generation_equals_transformers_generate():
    model = build("llama", dtype=torch.float32)
    (window,) = random_windows([10], bos=True)
    task = random_tokens(4)
    pcw = ParallelContextWindows(model)
    ours = pcw.generate(pcw.encode([window]), task, max_new_tokens=8, eos_token_id=[])
    ids = torch.tensor([window + task])
    theirs = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                            eos_token_id=None, pad_token_id=0)
    assert ours == theirs[0, ids.shape[1] :].tolist()


def test_batched_generation_equals_one_by_one():
    model = build("child")
    pcw = ParallelContextWindows(model)
    context = pcw.encode(random_windows(LENGTHS, bos=True))
    tasks = [random_tokens(n, seed=n) for n in (2, 7, 4)]
    batched = pcw.generate_batch(context, tasks, max_new_tokens=5, eos_token_id=[])
    assert batched == [pcw.generate(context, t, max_new_tokens=5, eos_token_id=[]) for t in tasks]


def test_generation_stops_at_eos_per_row():
    model = build("llama")
    pcw = ParallelContextWindows(model)
    context = pcw.encode(random_windows(LENGTHS, bos=True))
    tasks = [random_tokens(3, seed=8), random_tokens(6, seed=9)]
    free = pcw.generate_batch(context, tasks, max_new_tokens=6, eos_token_id=[])
    stop = free[0][1]  # row 0 stops at its first occurrence, row 1 only if it meets it too
    stopped = pcw.generate_batch(context, tasks, max_new_tokens=6, eos_token_id=stop)
    for row, got in zip(free, stopped):
        assert got == (row[: row.index(stop) + 1] if stop in row else row)
    assert len(stopped[0]) <= 2


def test_sampling_is_seeded_and_top_k_limits_choices():
    model = build("llama")
    pcw = ParallelContextWindows(model)
    context = pcw.encode(random_windows(LENGTHS, bos=True))
    task = random_tokens(4)
    kw = dict(max_new_tokens=6, do_sample=True, temperature=0.8, top_k=1, eos_token_id=[])
    greedy = pcw.generate(context, task, max_new_tokens=6, eos_token_id=[])
    assert pcw.generate(context, task, generator=torch.Generator().manual_seed(0), **kw) == greedy
    kw["top_k"] = 50
    a = pcw.generate(context, task, generator=torch.Generator().manual_seed(1), **kw)
    b = pcw.generate(context, task, generator=torch.Generator().manual_seed(1), **kw)
    assert a == b and all(0 <= t < 128 for t in a)


def test_text_generation_with_tokenizer():
    from .test_pcw_tiny import char_tokenizer

    tok = char_tokenizer()
    model = build("llama")
    pcw = ParallelContextWindows(model, tok)
    context = pcw.encode(["first window", "the second, longer window"])
    assert context.num_tokens == 1 + len("first window") + len("the second, longer window")
    out = pcw.generate(context, "\nQ:", max_new_tokens=5)
    assert 1 <= len(out) <= 5 and isinstance(tok.decode(out), str)


def test_add_bos_prepends_a_shared_bos_to_text_windows():
    from .test_pcw_tiny import char_tokenizer

    tok = char_tokenizer(bos=False)  # has no BOS of its own
    tok.bos_token = "<s>"
    model = build("llama")
    plain = ParallelContextWindows(model, tok).encode(["ab", "cde"])
    added = ParallelContextWindows(model, tok, add_bos=True).encode(["ab", "cde"])
    assert plain.num_tokens == 5 and not plain.layout.shared_bos
    assert added.num_tokens == 6 and added.layout.shared_bos and added.max_window_len == 4
