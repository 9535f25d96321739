"""Classification: label log-likelihoods (batched = one by one = oracle), and the label-trie greedy decoding."""

import pytest
import torch

from puzzle_ray.pcw import LabelTrie, ParallelContextWindows, encode_labels, oracle_logits

from .test_pcw_tiny import BOS, build, char_tokenizer, random_tokens, random_windows

LENGTHS = [7, 12, 5]
LABELS = [[40, 41], [40, 42, 43], [50], [60, 61, 62, 63]]  # two share a first token


def test_label_scores_are_oracle_log_likelihoods():
    model = build("child")
    windows = random_windows(LENGTHS, bos=True)
    inputs = [random_tokens(4, seed=10), random_tokens(7, seed=11)]
    pcw = ParallelContextWindows(model)
    scores = pcw.label_scores(pcw.encode(windows), inputs, LABELS)
    for i, task in enumerate(inputs):
        for j, label in enumerate(LABELS):
            logp = torch.log_softmax(oracle_logits(model, windows, task + label[:-1], BOS), -1)
            want = sum(logp[len(task) - 1 + t, tok] for t, tok in enumerate(label))
            assert abs(scores[i, j].item() - want.item()) < 1e-5


@pytest.mark.parametrize("method", ["loglik", "greedy"])
def test_batched_classification_equals_one_by_one(method):
    model = build("llama")
    pcw = ParallelContextWindows(model)
    context = pcw.encode(random_windows(LENGTHS, bos=True))
    inputs = [random_tokens(n, seed=20 + n) for n in (3, 8, 5, 1, 6)]
    batched = pcw.classify(context, inputs, LABELS, method=method, batch_size=3, stop_token_id=99)
    single = [pcw.classify(context, [x], LABELS, method=method, stop_token_id=99)[0] for x in inputs]
    assert batched == single
    if method == "loglik":
        scores = pcw.label_scores(context, inputs, LABELS, batch_size=7)
        one = torch.cat([pcw.label_scores(context, [x], LABELS, batch_size=1) for x in inputs])
        assert (scores - one).abs().max().item() < 1e-8
        assert batched == [LABELS[int(j)] for j in scores.argmax(1)]


def reference_restrictive_greedy(pcw, context, task, label_ids, stop, eos=2):
    """The reference's decoding, step by step: shortest unique prefixes padded with EOS, a stop token after
    labels contained in others, and at each step only tokens continuing a still-possible label."""
    pad = max(len(x) for x in label_ids)
    rows = [x + [eos] * (pad - len(x)) for x in label_ids]
    for i, x in enumerate(label_ids):  # minimise to the shortest unique prefix
        for j in range(len(x)):
            if sum(r[:j] == x[:j] for r in rows) == 1:
                rows[i] = x[:j] + [eos] * (pad - j)
                break
    short = [[t for t in r if t != eos] for r in rows]
    pad = max(len(x) for x in short)
    rows = [x + [eos] * (pad - len(x)) for x in short]
    for i, x in enumerate(short):  # contained labels end with the stop token
        if sum(r[: len(x)] == x for r in rows) > 1:
            rows[i][len(x)] = stop
    rows = [r + [eos] for r in rows]
    alive = list(range(len(rows)))
    out = []
    for step in range(pad + 1):
        allowed = sorted({rows[i][step] for i in alive})
        logits = pcw.logits(context, task + out)[-1]
        tok = allowed[int(torch.argmax(logits[torch.tensor(allowed)]))]
        if tok == eos:
            break
        out.append(tok)
        alive = [i for i in alive if rows[i][step] == tok]
    if out and out[-1] == stop:
        out = out[:-1]  # the reference strips the stop sequence from the decoded label
    (winner,) = [i for i, x in enumerate(short) if x == out]
    return winner


def test_greedy_trie_matches_the_reference_restrictive_decoding():
    model = build("qwen2")
    pcw = ParallelContextWindows(model)
    context = pcw.encode(random_windows(LENGTHS, bos=False))
    labels = LABELS + [[40]]  # [40] is a prefix of two labels: it needs the stop token
    stop = 99
    inputs = [random_tokens(n, seed=30 + n) for n in range(2, 12)]
    got = pcw.classify(context, inputs, labels, method="greedy", stop_token_id=stop)
    want = [labels[reference_restrictive_greedy(pcw, context, x, labels, stop)] for x in inputs]
    assert got == want
    assert len({tuple(g) for g in got}) > 1  # the inputs do not all get the same label


def test_trie_stops_at_shortest_unique_prefix():
    trie = LabelTrie([[5, 6, 7], [5, 8], [9, 1, 2]], stop_token_id=None)
    assert sorted(trie.root.children) == [5, 9]
    assert trie.root.children[9].decided and trie.root.children[9].label == 2  # one token decides label 2
    node = trie.root.children[5]
    assert sorted(node.children) == [6, 8] and node.children[6].label == 0
    contained = LabelTrie([[5], [5, 6]], stop_token_id=3)
    assert sorted(contained.root.children[5].children) == [3, 6]
    with pytest.raises(ValueError, match="stop token"):
        LabelTrie([[5], [5, 6]], stop_token_id=None)


def test_text_labels_are_encoded_with_a_leading_space():
    tok = char_tokenizer()
    assert encode_labels(["pos", " neg"], tok) == [tok.encode(" pos", add_special_tokens=False),
                                                   tok.encode(" neg", add_special_tokens=False)]
    model = build("llama")
    pcw = ParallelContextWindows(model, tok)
    context = pcw.encode(["input: good\nlabel: pos\n==\ninput: bad\nlabel: neg", "input: fine\nlabel: pos"])
    queries = ["\n==\ninput: great\nlabel:", "\n==\ninput: awful\nlabel:"]
    for method in ("loglik", "greedy"):
        assert set(pcw.classify(context, queries, ["pos", "neg"], method=method)) <= {"pos", "neg"}
