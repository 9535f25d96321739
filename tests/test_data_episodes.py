"""Synthetic in-context episodes: seeded generators, held-out streams, and label scoring."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from puzzle_ray.data import episodes as E
from puzzle_ray.data.bpe import train_bpe_tokenizer

from .tiny_models import tiny_llama


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = [text for _, text in E.training_documents(300, 150, seed=1)]
    return train_bpe_tokenizer(texts, vocab_size=1200, out_dir=tmp_path_factory.mktemp("tok") / "episodes")


def test_formats():
    assert E.format_demo("cat", "B") == "cat B"
    assert E.format_query("cat") == "cat"
    assert E.format_query("cat") + E.format_answer("B") == E.format_demo("cat", "B")
    ep = E.Episode([("cat", "B"), ("dog", "C")], "cat", "B", ["B", "C"], "classification")
    assert E.episode_prompt(ep) == "cat B\ndog C\ncat"
    assert E.episode_prompt(ep, 1) == "cat B\ncat"
    assert E.episode_prompt(ep, 0) == "cat"


def test_classification_episodes_are_seeded_and_answerable_only_from_context():
    eps = E.classification_episodes(200, num_classes=8, num_demos=24, seed=0)
    assert eps == E.classification_episodes(200, 8, 24, 0)
    assert eps != E.classification_episodes(200, 8, 24, 1)
    category_of = {w: c for c, words in E.CATEGORIES.items() for w in words}
    for ep in eps:
        assert ep.kind == "classification" and len(ep.labels) == len(set(ep.labels)) == 8 and len(ep.demos) == 24
        assert ep.answer in ep.labels and all(lab in ep.labels for _, lab in ep.demos)
        mapping = {}
        for word, lab in ep.demos + [(ep.query, ep.answer)]:
            assert mapping.setdefault(category_of[word], lab) == lab  # one label per category in an episode
    # The mapping is random per episode: "cat"'s category gets many different labels across episodes.
    labels_of_animals = {lab for ep in eps for w, lab in ep.demos if category_of[w] == "animals"}
    assert len(labels_of_animals) > 10


def test_recall_episodes():
    eps = E.recall_episodes(100, num_pairs=6, seed=3)
    for ep in eps:
        keys = [k for k, _ in ep.demos]
        assert len(set(keys)) == 6 and sorted(ep.labels) == sorted(v for _, v in ep.demos)
        assert dict(ep.demos)[ep.query] == ep.answer
    assert len({ep.query for ep in eps}) > 20


def test_evaluation_and_training_streams_differ():
    train = [text for _, text in E.training_documents(50, 0, seed=0)]
    held = E.classification_episodes(50, 8, 10, seed=0)
    prompts = {E.episode_prompt(ep) for ep in held}
    assert not any(p in t for t in train for p in prompts)


def test_training_documents_mix_kinds_and_separators():
    docs = list(E.training_documents(30, 10, seed=0))
    assert len(docs) == 40 and sum("recall" in k for k, _ in docs) == 10
    assert all("recall" in k for k, _ in docs[3::4])  # interleaved evenly, not appended
    assert any("\n==\n" in t for _, t in docs) and any("==" not in t for _, t in docs)
    assert docs == list(E.training_documents(30, 10, seed=0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes=1"):
        E.classification_episodes(1, 1, 4)
    with pytest.raises(ValueError, match="num_classes=17"):
        E.classification_episodes(1, 17, 4)
    with pytest.raises(ValueError, match="num_pairs=0"):
        E.recall_episodes(1, 0)


def test_episode_tokens_are_single_tokens_under_a_corpus_trained_tokenizer(tokenizer):
    for word in E.WORDS:
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
    for label in E.CLASS_LABELS + E.RECALL_VALUES:
        assert len(tokenizer(E.format_answer(label), add_special_tokens=False)["input_ids"]) == 1, label


class InductionOracle(torch.nn.Module):
    """Predicts the token after the last earlier occurrence of the current token (an ideal induction head):
    the answer of a query "word" when "word label" is in context. Checks that scoring reads the right
    positions of right-padded batches."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(max_position_embeddings=4096)

    def forward(self, input_ids, attention_mask, use_cache=False):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, self.vocab_size)
        for b in range(B):
            ids = input_ids[b].tolist()
            for t in range(1, T):
                for s in range(t - 1, -1, -1):
                    if ids[s] == ids[t]:
                        logits[b, t, ids[s + 1]] = 10.0
                        break
        return SimpleNamespace(logits=logits)


def test_episode_accuracy_reads_the_answer_from_context(tokenizer):
    oracle = InductionOracle(len(tokenizer))
    assert E.episode_accuracy(oracle, tokenizer, E.recall_episodes(40, 5, seed=0)) == 1.0
    eps = E.classification_episodes(60, 4, 24, seed=0)
    seen = np.mean([ep.query in {w for w, _ in ep.demos} for ep in eps])
    many = E.episode_accuracy(oracle, tokenizer, eps, num_demos=24, batch_size=7)
    none = E.episode_accuracy(oracle, tokenizer, eps, num_demos=0)
    assert many >= seen > 0.3 and none < 0.5  # unseen query words score a tie: the first label


def test_label_log_likelihoods_match_a_plain_forward(tokenizer):
    model = tiny_llama(vocab_size=len(tokenizer), initializer_range=0.02)
    contexts = ["cat B\ndog C\ncat", "red 41\nblue"]
    candidates = [[" B", " C"], [" 41", " 5 7", " blue sky"]]  # single-token and multi-token candidates
    scores = E.label_log_likelihoods(model, tokenizer, contexts, candidates, batch_size=2)
    for context, cands, got in zip(contexts, candidates, scores):
        for cand, score in zip(cands, got):
            ctx, cont = E.continuation_ids(tokenizer, context, cand)
            ids = torch.tensor([ctx + cont])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0].float(), -1)
            expected = sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))
            assert score == pytest.approx(expected, abs=1e-4)
