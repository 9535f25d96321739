"""GKD loss terms: exact zeros for a child equal to its parent, chunking equal to the unchunked formula (values
and gradients), the LM term equal to the model's own loss, the learning-rate schedule."""

import math

import pytest
import torch
import torch.nn.functional as F

from puzzle_ray.distill.loss import chunked_kl_and_lm, cosine_distance, hidden_cosine_loss
from puzzle_ray.distill.objective import GKDStudent, LossWeights, teacher_targets
from puzzle_ray.optim.schedule import warmup_cosine_lr
from tests.tiny_models import tiny_mixed_child


def _ids(batch=3, length=20, vocab=128, seed=0):
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_cosine_distance_is_one_minus_cosine():
    a, b = torch.randn(4, 7, 64), torch.randn(4, 7, 64)
    expected = (1 - F.cosine_similarity(a, b, dim=-1)).mean()
    assert float(cosine_distance(a, b)) == pytest.approx(float(expected), rel=1e-5)
    assert float(cosine_distance(a, -a)) == pytest.approx(2.0, rel=1e-6)
    assert float(cosine_distance(a, 3 * a)) == pytest.approx(0.0, abs=1e-6)  # scale-invariant


def test_every_term_is_exactly_zero_when_the_child_is_the_parent():
    parent = tiny_mixed_child()
    child = tiny_mixed_child()
    child.load_state_dict(parent.state_dict())
    ids = _ids()
    gkd = GKDStudent(child.train(), LossWeights(cosine=1.0, kl=1.0), chunk_tokens=16)
    loss, terms = gkd(ids, teacher_targets(parent, ids))
    assert terms[0].item() == 0.0  # cosine: exactly, not approximately
    assert terms[1].item() == 0.0  # KL(parent || parent)
    assert loss.item() == 0.0


def test_a_perturbed_child_has_positive_terms():
    parent = tiny_mixed_child()
    child = tiny_mixed_child()
    state = {k: v + 0.05 * torch.randn_like(v) for k, v in parent.state_dict().items()}
    child.load_state_dict(state)
    ids = _ids()
    _, terms = GKDStudent(child, LossWeights(), 16)(ids, teacher_targets(parent, ids))
    assert terms[0] > 0 and terms[1] > 0 and terms[2] == 0  # no LM term by default


def test_hidden_cosine_loss_sums_layers_and_rejects_misaligned_lists():
    a = [torch.randn(2, 5, 8) for _ in range(3)]
    b = [torch.randn(2, 5, 8) for _ in range(3)]
    assert float(hidden_cosine_loss(a, b)) == pytest.approx(sum(float(cosine_distance(x, y)) for x, y in zip(a, b)))
    with pytest.raises(ValueError, match="3 child hidden states vs 2"):
        hidden_cosine_loss(a, b[:2])


@pytest.mark.parametrize("chunk", [1, 7, 60, 4096])
def test_chunked_kl_and_lm_match_the_unchunked_formulas_and_their_gradients(chunk):
    torch.manual_seed(1)
    vocab, hidden = 50, 16
    head = torch.nn.Linear(hidden, vocab, bias=False)
    parent_w = torch.randn(vocab, hidden)
    hc = torch.randn(3, 20, hidden, requires_grad=True)
    hp = torch.randn(3, 20, hidden)
    ids = _ids(3, 20, vocab)

    kl, lm = chunked_kl_and_lm(hc, hp, head, parent_w, ids, chunk, with_lm=True)
    (kl + lm).backward()
    kl, lm = kl.detach(), lm.detach()
    grads = hc.grad.clone(), head.weight.grad.clone()

    hc.grad, head.weight.grad = None, None
    logq = F.log_softmax(head(hc), -1)  # (B, T, V)
    logp = F.log_softmax(hp @ parent_w.T, -1)
    ref_kl = (logp.exp() * (logp - logq)).sum(-1).mean()
    ref_lm = F.cross_entropy(logq[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))
    (ref_kl + ref_lm).backward()
    ref_kl, ref_lm = ref_kl.detach(), ref_lm.detach()
    assert kl.item() == pytest.approx(ref_kl.item(), rel=1e-5)
    assert lm.item() == pytest.approx(ref_lm.item(), rel=1e-5)
    torch.testing.assert_close(grads[0], hc.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grads[1], head.weight.grad, rtol=1e-4, atol=1e-6)


def test_lm_term_equals_the_models_own_next_token_loss():
    parent, child = tiny_mixed_child(), tiny_mixed_child()
    ids = _ids()
    _, terms = GKDStudent(child, LossWeights(cosine=0, kl=0, lm=1), 8)(ids, teacher_targets(parent, ids))
    with torch.no_grad():
        own = child(input_ids=ids, labels=ids, use_cache=False).loss
    assert terms[2].item() == pytest.approx(own.item(), rel=1e-5)


def test_teacher_targets_carry_no_graph():
    parent = tiny_mixed_child()
    targets = teacher_targets(parent, _ids())
    assert len(targets.hidden) == parent.config.num_hidden_layers
    assert not any(h.requires_grad for h in targets.hidden) and not targets.final.requires_grad


def test_warmup_then_cosine_to_the_floor():
    lrs = [warmup_cosine_lr(s, 100, 1e-3, 0.1, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # 10 warm-up steps
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # decays monotonically
    assert lrs[-1] == pytest.approx(1e-4, rel=0.01)  # ends at min_lr_ratio * lr
    assert warmup_cosine_lr(0, 1, 1e-3, 0.0, 0.0) == pytest.approx(1e-3)
    assert not any(math.isnan(x) for x in lrs)
