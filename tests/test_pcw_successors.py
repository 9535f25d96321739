"""PCW's successors: attention rescaling (against an oracle and the attention weights) and NBCE (against the
formula applied to ordinary one-window forwards); both as `pcw-eval` variants."""

import pytest
import torch
from pydantic import ValidationError

from puzzle_ray.pcw import NaiveBayesContextWindows, ParallelContextWindows, build_variant, oracle_logits
from puzzle_ray.pcw.config import PCWEvalConfig

from .test_pcw_tiny import BOS, MODELS, build, random_tokens, random_windows

LENGTHS = [7, 12, 5]
LABELS = [[40, 41], [40, 42, 43], [50], [60, 61, 62, 63]]


# ------------------------------------------------------------------------------------------------ rescaling
@pytest.mark.parametrize("alignment", ["left", "right"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", list(MODELS))
def test_rescaled_matches_the_one_pass_oracle_with_the_same_bias(name, attn, alignment):
    model = build(name, attn)
    windows = random_windows(LENGTHS, bos=MODELS[name][1])
    task = random_tokens(6)
    pcw = ParallelContextWindows(model, bos_token_id=BOS, alignment=alignment, context_scale="per_window")
    got = pcw.logits(pcw.encode(windows), task)
    want = oracle_logits(model, windows, task, BOS, alignment, context_weight=1 / 3)
    assert (got - want).abs().max().item() < 1e-5
    plain = ParallelContextWindows(model, bos_token_id=BOS, alignment=alignment)
    assert (got - plain.logits(plain.encode(windows), task)).abs().max().item() > 0.05


@pytest.mark.parametrize("name", ["llama", "qwen2", "child"])  # with a shared BOS, without one, a child
def test_identical_windows_rescaled_are_one_window(name):
    model = build(name)
    (window,) = random_windows([9], bos=MODELS[name][1])
    task = random_tokens(5)
    rescaled = ParallelContextWindows(model, bos_token_id=BOS, context_scale="per_window")
    plain = ParallelContextWindows(model, bos_token_id=BOS)
    got = rescaled.logits(rescaled.encode([window] * 3), task)
    one = plain.logits(plain.encode([window]), task)
    assert (got - one).abs().max().item() < 1e-10
    unscaled = plain.logits(plain.encode([window] * 3), task)
    assert (unscaled - one).abs().max().item() > 0.05


@pytest.mark.parametrize("name", list(MODELS))
def test_one_window_rescaled_is_plain_pcw_exactly(name):
    model = build(name)
    windows = random_windows([10], bos=MODELS[name][1])
    task = random_tokens(6)
    rescaled = ParallelContextWindows(model, bos_token_id=BOS, context_scale="per_window")
    plain = ParallelContextWindows(model, bos_token_id=BOS)
    assert torch.equal(rescaled.logits(rescaled.encode(windows), task), plain.logits(plain.encode(windows), task))


def _first_layer_weights(pcw, context, task):
    """Layer 0's attention weights (heads, T, K) of the task rows (eager attention returns them)."""
    seen = []
    hook = pcw.model.model.layers[0].self_attn.register_forward_hook(lambda m, a, out: seen.append(out[1]))
    try:
        pcw.logits(context, task)
    finally:
        hook.remove()
    (weights,) = seen
    return weights[0]


def test_task_attention_weights_over_the_windows_sum_as_specified():
    # Layer 0 sees the same queries and keys with and without rescaling, so the rescaled weights must be
    # w'_j = c_j w_j / sum_i c_i w_i, with c = 1/B on window tokens and 1 on the shared BOS and the task.
    model = build("llama", "eager")
    windows = random_windows(LENGTHS, bos=True)
    task = random_tokens(6)
    plain = ParallelContextWindows(model)
    rescaled = ParallelContextWindows(model, context_scale="per_window")
    context = plain.encode(windows)
    w = _first_layer_weights(plain, context, task)
    w2 = _first_layer_weights(rescaled, context, task)
    num_ctx = context.num_tokens
    c = torch.ones(w.shape[-1], dtype=w.dtype)
    c[:num_ctx][context.window_of >= 0] = 1 / 3
    want = c * w / (c * w).sum(-1, keepdim=True)
    assert (w2 - want).abs().max().item() < 1e-6  # eager attention's softmax runs in float32
    # The mass on the windows, relative to the rest, is divided by B.
    in_windows = c < 1
    windows_mass = lambda x: x[..., in_windows].sum(-1)  # noqa: E731
    ratio = lambda x: windows_mass(x) / x[..., ~in_windows].sum(-1)  # noqa: E731  (windows / BOS and task)
    assert torch.allclose(ratio(w2), ratio(w) / 3, rtol=1e-5, atol=0)
    assert (w2.sum(-1) - 1).abs().max().item() < 1e-6
    assert (windows_mass(w) - windows_mass(w2)).max().item() > 0.1  # the windows really lost weight


def test_rescaled_label_scores_and_generation_use_the_rescaled_attention():
    model = build("child")
    windows = random_windows(LENGTHS, bos=True)
    pcw = ParallelContextWindows(model, context_scale="per_window")
    context = pcw.encode(windows)
    task = random_tokens(4, seed=10)
    scores = pcw.label_scores(context, [task], LABELS)
    for j, label in enumerate(LABELS):
        logp = torch.log_softmax(oracle_logits(model, windows, task + label[:-1], BOS, context_weight=1 / 3), -1)
        want = sum(logp[len(task) - 1 + t, tok] for t, tok in enumerate(label))
        assert abs(scores[0, j].item() - want.item()) < 1e-5
    out = pcw.generate(context, task, max_new_tokens=3, eos_token_id=[])
    want = oracle_logits(model, windows, task + out[:2], BOS, context_weight=1 / 3)[len(task) - 1 :].argmax(-1)
    assert out == want.tolist()


def test_context_scale_is_checked():
    model = build("llama")
    for bad in ("1/B", 0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="context_scale"):
            ParallelContextWindows(model, context_scale=bad)
    pcw = ParallelContextWindows(model, context_scale=0.5)  # a fixed factor is accepted
    windows = random_windows(LENGTHS, bos=True)
    got = pcw.logits(pcw.encode(windows), random_tokens(3))
    assert (got - oracle_logits(model, windows, random_tokens(3), BOS, context_weight=0.5)).abs().max() < 1e-5


# ------------------------------------------------------------------------------------------------ NBCE
def _ordinary_logprobs(model, prefix, task):
    """log p(. | prefix + task[:i+1]) at each task token, from one ordinary forward."""
    with torch.no_grad():
        logits = model(torch.tensor([prefix + task])).logits[0, len(prefix) :]
    return torch.log_softmax(logits.double(), -1)


def _formula(per_window, uncond, beta, pooling):
    """(1 + beta) * pool_k log p_k - beta * log p_0, renormalised; per_window: B tensors (..., C)."""
    stack = torch.stack(per_window)  # (B, ..., C)
    if pooling == "mean":
        pooled = stack.mean(0)
    else:  # per prediction, the window whose distribution has the lowest entropy
        flat = stack.reshape(len(per_window), -1, stack.shape[-1])  # (B, N, C)
        rows = []
        for n in range(flat.shape[1]):
            entropy = torch.stack([-(p.exp() * p).nan_to_num().sum() for p in flat[:, n]])
            rows.append(flat[int(entropy.argmin()), n])
        pooled = torch.stack(rows).view_as(stack[0])
    return torch.log_softmax((1 + beta) * pooled - beta * uncond, -1)


@pytest.mark.parametrize("pooling", ["min_entropy", "mean"])
@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen2", "child"])
def test_nbce_logits_are_the_formula_on_one_window_forwards(name, pooling):
    model = build(name)
    has_bos = MODELS[name][1]
    windows = random_windows(LENGTHS, bos=has_bos)
    task = random_tokens(6)
    nb = NaiveBayesContextWindows(model, bos_token_id=BOS, beta=0.4, pooling=pooling)
    got = nb.logits(nb.encode(windows), task)
    per_window = [_ordinary_logprobs(model, w, task) for w in windows]
    uncond = _ordinary_logprobs(model, [BOS] if has_bos else [], task)
    want = _formula(per_window, uncond, 0.4, pooling)
    assert got.shape == (6, 128)
    assert (got.double() - want).abs().max().item() < 1e-8


@pytest.mark.parametrize("pooling", ["min_entropy", "mean"])
def test_nbce_label_scores_combine_per_window_label_likelihoods(pooling):
    model = build("llama")
    windows = random_windows(LENGTHS, bos=True)
    inputs = [random_tokens(4, seed=10), random_tokens(7, seed=11)]
    nb = NaiveBayesContextWindows(model, pooling=pooling)
    context = nb.encode(windows)
    scores = nb.label_scores(context, inputs, LABELS, batch_size=5)

    def label_dist(prefix, task):
        out = []
        for label in LABELS:
            logp = _ordinary_logprobs(model, prefix, task + label[:-1])
            out.append(sum(logp[len(task) - 1 + t, tok] for t, tok in enumerate(label)))
        return torch.log_softmax(torch.stack(out), -1)  # p_k over the labels

    for i, task in enumerate(inputs):
        want = _formula([label_dist(w, task) for w in windows], label_dist([BOS], task), 0.25, pooling)
        assert (scores[i] - want).abs().max().item() < 1e-8
    assert torch.allclose(scores.exp().sum(1), torch.ones(2, dtype=torch.float64))
    assert nb.classify(context, inputs, LABELS) == [LABELS[int(j)] for j in scores.argmax(1)]
    one = torch.cat([nb.label_scores(context, [x], LABELS, batch_size=1) for x in inputs])
    assert (scores - one).abs().max().item() < 1e-10


def test_nbce_greedy_decoding_and_generation_follow_the_combined_scores():
    model = build("child")
    nb = NaiveBayesContextWindows(model)
    context = nb.encode(random_windows(LENGTHS, bos=True))
    task = random_tokens(5)
    out = nb.generate(context, task, max_new_tokens=3, eos_token_id=[])
    assert out == [int(nb.logits(context, task + out[:i])[-1].argmax()) for i in range(3)]
    inputs = [random_tokens(n, seed=30 + n) for n in (3, 6, 2)]
    batched = nb.classify(context, inputs, LABELS, method="greedy", batch_size=2, stop_token_id=99)
    assert batched == [nb.classify(context, [x], LABELS, method="greedy", stop_token_id=99)[0] for x in inputs]


def test_nbce_options_are_checked():
    model = build("llama")
    with pytest.raises(ValueError, match="beta"):
        NaiveBayesContextWindows(model, beta=-0.1)
    with pytest.raises(ValueError, match="pooling"):
        NaiveBayesContextWindows(model, pooling="max")
    with pytest.raises(ValueError, match="left only"):
        NaiveBayesContextWindows(model).encode(random_windows([3], bos=True), alignment="right")


# ------------------------------------------------------------------------------------------------ pcw-eval
def test_variants_build_and_the_config_checks_them():
    model = build("llama")
    assert type(build_variant("nbce", model)) is NaiveBayesContextWindows
    assert build_variant("pcw_rescaled", model).context_scale == "per_window"
    assert build_variant("pcw", model).context_scale == "none"
    for variant in ("pcw", "pcw_rescaled", "nbce"):
        assert PCWEvalConfig(model="m", episodes=2, variant=variant).variant == variant
    cfg = PCWEvalConfig(model="m", episodes=2, variant="nbce", nbce_beta=0.5, nbce_pooling="mean")
    assert (cfg.nbce_beta, cfg.nbce_pooling) == (0.5, "mean")
    with pytest.raises(ValidationError, match="variant"):
        PCWEvalConfig(model="m", episodes=2, variant="ape")
    with pytest.raises(ValidationError, match="nbce_pooling"):
        PCWEvalConfig(model="m", episodes=2, nbce_pooling="max")
    with pytest.raises(ValidationError, match="nbce_beta"):
        PCWEvalConfig(model="m", episodes=2, nbce_beta=-1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from .test_pcw_tiny import char_tokenizer

    path = tmp_path_factory.mktemp("tiny-llama-variants")
    build("llama", max_position_embeddings=192, dtype=torch.float32).save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


@pytest.mark.parametrize("variant", ["pcw_rescaled", "nbce"])
def test_cli_pcw_eval_runs_each_variant(model_dir, tmp_path, variant):
    import json

    from typer.testing import CliRunner

    from puzzle_ray.cli import app

    from .test_pcw_eval import write_jsonl

    train, test = write_jsonl(tmp_path / "train.jsonl", 40, seed=1), write_jsonl(tmp_path / "test.jsonl", 4, seed=2)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["pcw-eval", "--model", str(model_dir), "--train", str(train), "--test", str(test),
                                   "--windows", "1,2", "--draws", "1", "--test-size", "3", "--method", "loglik",
                                   "--variant", variant, "--no-mlflow", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert f"PCW accuracy, {variant}" in res.output and set(json.loads(out.read_text())["windows"]) == {"1", "2"}
    res = CliRunner().invoke(app, ["pcw-eval", "--model", str(model_dir), "--train", str(train), "--variant", "apb",
                                   "--no-mlflow"])
    assert res.exit_code == 2 and "variant" in res.output


# ------------------------------------------------------------------------------------------------ reuse, batching
def test_many_queries_reuse_one_context_and_are_batched():
    model = build("llama")
    pcw = ParallelContextWindows(model)
    context = pcw.encode(random_windows(LENGTHS, bos=True))
    calls = {"encode": 0, "query_rows": []}
    h1 = model.model.register_forward_pre_hook(lambda m, a, kw: calls.__setitem__("encode", calls["encode"] + 1),
                                               with_kwargs=True)
    h2 = model.register_forward_pre_hook(lambda m, a, kw: calls["query_rows"].append(kw["input_ids"].shape[0]),
                                         with_kwargs=True)
    try:
        inputs = [random_tokens(n, seed=n) for n in (3, 5, 2, 4, 6)]
        pcw.classify(context, inputs, LABELS, method="loglik", batch_size=8)
    finally:
        h1.remove()
        h2.remove()
    # 5 inputs x 4 labels = 20 rows in forwards of 8, 8, 4; the base model only runs inside them (no encoding).
    assert calls["query_rows"] == [8, 8, 4] and calls["encode"] == 3


# ------------------------------------------------------------------------------------------------ long contexts
def test_windows_past_the_position_limit_are_read_within_it():
    limit = 64
    model = build("llama", max_position_embeddings=limit)
    windows = random_windows([39, 39, 39], bos=True, seed=5)  # 40 tokens each with the BOS: 118 kept > 64
    task = random_tokens(6)
    positions = []
    hook = model.model.register_forward_pre_hook(  # the decoder: encoding calls it directly, queries through the LM
        lambda m, a, kw: positions.append(int(kw["position_ids"].max())), with_kwargs=True
    )
    try:
        pcw = ParallelContextWindows(model)
        context = pcw.encode(windows)
        got = pcw.logits(context, task)
    finally:
        hook.remove()
    assert context.num_tokens == 1 + 3 * 39 > limit
    assert max(positions) == 40 + 6 - 1 < limit
    assert (got - oracle_logits(model, windows, task, BOS)).abs().max().item() < 1e-5
    # Every window is read: changing any one of them changes the task's logits.
    for k in range(3):
        other = [list(w) for w in windows]
        other[k][20] = 3 + (other[k][20] - 2) % 125
        assert (pcw.logits(pcw.encode(other), task) - got).abs().max().item() > 1e-3
    with pytest.raises(ValueError, match="past the model's limit"):
        pcw.encode([[BOS] + random_tokens(limit)])


FILLER = (
    "The weather was calm and the river moved slowly past the old mill.",
    "A few people walked along the road while the shops opened for the day.",
    "The library kept its doors open until the evening bell rang in the square.",
    "Farmers carried baskets of apples to the market near the bridge.",
)


def _haystack(tokenizer, fact: str, tokens: int) -> str:
    """Neutral sentences around `fact` (planted in the middle) until the text is about `tokens` tokens long."""
    sentences, count, i = [], 0, 0
    while count < tokens:
        s = FILLER[i % len(FILLER)]
        sentences.append(s)
        count += len(tokenizer.encode(" " + s, add_special_tokens=False))
        i += 1
    sentences.insert(len(sentences) // 2, fact)
    return " ".join(sentences)


@pytest.mark.integration
def test_smollm2_answers_from_either_window_past_its_8192_positions(smollm2):
    # Two windows of ~4,300 tokens (8,626 in all, past SmolLM2's 8,192 positions), one fact planted in each.
    # The facts differ in their relation: with the same relation for two names ("the secret number of Alice /
    # of Bruno") the 135M model answers one window's number to both questions (it does not bind the name across
    # windows, with or without rescaling), though with both facts in one window it does.
    from puzzle_ray.pcw.loading import load_causal_lm

    folder, _, _ = smollm2
    torch.set_num_threads(2)
    model, tokenizer = load_causal_lm(folder, "float32", "sdpa")
    limit = model.config.max_position_embeddings
    facts = {
        "The secret number of Alice is 4817.": (
            " Question: what is the secret number of Alice? Answer: The secret number of Alice is", "4817"),
        "The red door opens with the code 6293.": (
            " Question: which code opens the red door? Answer: The red door opens with the code", "6293"),
    }
    windows = [_haystack(tokenizer, fact, 4300) for fact in facts]
    pcw = ParallelContextWindows(model, tokenizer, add_bos=True)
    context = pcw.encode(windows)
    assert context.num_tokens > limit and context.max_window_len < limit
    answers = pcw.generate_batch(context, [q for q, _ in facts.values()], max_new_tokens=6)
    texts = [tokenizer.decode(a) for a in answers]
    assert [t.strip().rstrip(".") for t in texts] == [n for _, n in facts.values()], texts
