"""Bad input gets one clear error, raised before any forward."""

import pytest
import torch

from puzzle_ray.pcw import ParallelContextWindows

from .test_pcw_tiny import build, char_tokenizer, random_tokens, random_windows


@pytest.fixture(scope="module")
def pcw():
    return ParallelContextWindows(build("gpt2", n_positions=32))  # positions 0..31


@pytest.fixture(scope="module")
def context(pcw):
    return pcw.encode(random_windows([9, 20], bos=True))  # M = 21: tasks may use positions 21..31


def test_empty_window_list(pcw):
    with pytest.raises(ValueError, match="at least one window|non-empty list"):
        pcw.encode([])
    with pytest.raises(ValueError, match=r"windows\[1\] is empty"):
        pcw.encode([[1, 5], []])


def test_window_longer_than_the_position_limit(pcw):
    with pytest.raises(ValueError, match=r"windows\[1\] \(33 tokens\).*max_position_embeddings=32"):
        pcw.encode(random_windows([4, 32], bos=True))
    pcw.encode(random_windows([4, 31], bos=True))  # 32 tokens: positions 0..31 fit


def test_task_positions_past_the_limit(pcw, context):
    assert pcw.logits(context, random_tokens(11)).shape == (11, 128)  # positions 21..31
    with pytest.raises(ValueError, match=r"tasks\[0\] \(12 tokens\) needs position 32"):
        pcw.logits(context, random_tokens(12))
    with pytest.raises(ValueError, match=r"tasks\[1\]"):
        pcw.logits_batch(context, [random_tokens(3), random_tokens(12)])
    with pytest.raises(ValueError, match=r"tasks\[0\] \(8 tokens \+ max_new_tokens=5\) needs position 32"):
        pcw.generate(context, random_tokens(8), max_new_tokens=5)  # fed: 8 task + 4 generated tokens
    # 8 task tokens at 21..28, generated tokens fed at 29..31; the 4th generated token is never fed
    assert len(pcw.generate(context, random_tokens(8), max_new_tokens=4, eos_token_id=[])) == 4
    with pytest.raises(ValueError, match="longest label"):
        pcw.classify(context, [random_tokens(10)], [[5], [6, 7, 8]])


def test_labels_that_tokenise_to_nothing(pcw, context):
    with pytest.raises(ValueError, match=r"labels\[1\]=\[\] tokenises to nothing"):
        pcw.classify(context, [random_tokens(3)], [[5], []])
    text = ParallelContextWindows(build("gpt2"), char_tokenizer())
    ctx = text.encode(["a window"])
    with pytest.raises(ValueError, match=r"labels\[0\]='  ' tokenises to nothing"):
        text.classify(ctx, ["task"], ["  ", "yes"])
    with pytest.raises(ValueError, match="tokenise identically"):
        text.classify(ctx, ["task"], ["yes", " yes"])
    with pytest.raises(ValueError, match="at least one label"):
        text.classify(ctx, ["task"], [])


def test_other_bad_input(pcw, context):
    with pytest.raises(ValueError, match="is text: pass a tokenizer"):
        pcw.encode(["some text"])
    with pytest.raises(ValueError, match=r"tasks\[0\] is empty"):
        pcw.logits(context, [])
    with pytest.raises(ValueError, match="method='beam'"):
        pcw.classify(context, [random_tokens(2)], [[5], [6]], method="beam")
    with pytest.raises(ValueError, match="alignment='center'"):
        ParallelContextWindows(build("gpt2"), alignment="center")
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        pcw.generate(context, random_tokens(2), max_new_tokens=0)
    with pytest.raises(ValueError, match="1-D tensor"):
        pcw.logits(context, torch.zeros(2, 2, dtype=torch.long))


def test_attention_without_explicit_masks_is_refused():
    model = build("llama")
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="attn_implementation='flash_attention_2'.*eager or sdpa"):
        ParallelContextWindows(model)
