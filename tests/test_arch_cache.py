"""The per-layer KV cache of a mixed child: each layer holds exactly what it needs."""

import torch

from puzzle_ray.arch import PuzzleCache

from .tiny_models import MIXED_BLOCKS, tiny_mixed_child


def test_cache_shapes_per_layer():
    model = tiny_mixed_child()
    ids = torch.randint(0, 128, (3, 9))
    with torch.no_grad():
        cache = model(ids, use_cache=True).cache
    assert isinstance(cache, PuzzleCache)
    shapes = [None if layer.keys is None else tuple(layer.keys.shape) for layer in cache.layers]
    # (batch, kv_heads, tokens, head_dim): no-op and linear attention hold nothing.
    assert shapes == [None, (3, 2, 9, 16), None, (3, 1, 9, 16), (3, 4, 9, 16)]
    assert cache.get_seq_length() == 9


def test_logits_equal_with_and_without_cache():
    # float64, so that any difference is a bug and not float32 rounding of different matmul shapes.
    model = tiny_mixed_child().double()
    ids = torch.randint(0, 128, (2, 14))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        out = model(ids[:, :6], use_cache=True)
        steps, cache = [out.logits], out.cache
        for t in range(6, 14):
            out = model(ids[:, t : t + 1], cache=cache, use_cache=True)
            steps.append(out.logits)
    assert (full - torch.cat(steps, 1)).abs().max().item() <= 1e-10


def test_generate_with_cache_matches_greedy_without_cache():
    model = tiny_mixed_child()
    ids = torch.randint(0, 128, (2, 5))
    generated = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                               pad_token_id=0)
    seq = ids
    with torch.no_grad():
        for _ in range(8):
            nxt = model(seq, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
    assert torch.equal(generated, seq)


def test_sampling_generates_within_vocab():
    model = tiny_mixed_child()
    ids = torch.randint(0, 128, (2, 4))
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=True, top_k=10,
                         pad_token_id=0)
    assert out.shape == (2, 10) and int(out.max()) < 128


def test_child_without_any_attention_generates():
    blocks = [{"attention": {"no_op": True}, "ffn": {"intermediate_size": 32}}, MIXED_BLOCKS[2]]
    model = tiny_mixed_child(block_configs=blocks, num_hidden_layers=2)
    ids = torch.randint(0, 128, (1, 4))
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        expected = model(out[:, :-1], use_cache=False).logits[:, -1].argmax(-1)
    assert out.shape == (1, 7) and out[0, -1] == expected[0]
