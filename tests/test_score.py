"""Replace-1-block scoring: exact prefix reuse, the parent scores 0, bad metrics are rejected."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from puzzle_ray.arch.export import export_pretrained
from puzzle_ray.library.build import build_library
from puzzle_ray.library.config import BLDConfig
from puzzle_ray.library.realize import assemble_child
from puzzle_ray.library.space import VariantSpace
from puzzle_ray.score import ScoreConfig, score_library
from puzzle_ray.store import ArtifactStore

from .library_fixtures import SEQ, VOCAB, export_tiny_parent, random_data


def train_copy_task(path):
    """A tiny parent trained (briefly) to continue 'x y x y ...' for random x, y: it has to attend two back."""
    export_tiny_parent(path, layers=3)
    model = AutoModelForCausalLM.from_pretrained(path)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(5)
    for _ in range(150):
        ids = alternating(16, g)
        loss = model(ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    export_pretrained(model.eval(), path, overwrite=True)
    return path


def alternating(batch, g):
    pair = torch.randint(0, VOCAB, (batch, 2), generator=g)
    return pair.repeat(1, SEQ // 2)  # (batch, SEQ): x y x y ...


def copy_batches(seed, n):
    g = torch.Generator().manual_seed(seed)
    return [alternating(4, g) for _ in range(n)]


@pytest.fixture(scope="module")
def scored(ray_cluster, tmp_path_factory):
    parent_dir = train_copy_task(tmp_path_factory.mktemp("parent") / "parent")
    store = ArtifactStore(tmp_path_factory.mktemp("store"))
    space = VariantSpace(attention=["linear", "no_op"], ffn=[0.5, "no_op"], round_to=32)
    bld = BLDConfig(token_budget=4 * SEQ * 6, checkpoint_every=3, calibration_batches=2, eval_batches=2)
    library = build_library(parent_dir, space, bld, random_data(), store).library
    val = copy_batches(9, 2)
    return parent_dir, store, library, val, score_library(library, val, ScoreConfig(), store)


def naive_metrics(parent, child, val):
    kl = nll = n = 0.0
    with torch.no_grad():
        for ids in val:
            p = F.log_softmax(parent(ids).logits, -1)[:, :-1]
            c = F.log_softmax(child(ids).logits, -1)[:, :-1]
            kl += (p.exp() * (p - c)).sum(-1).sum().item()
            nll += -c.gather(-1, ids[:, 1:].unsqueeze(-1)).sum().item()
            n += ids[:, 1:].numel()
    return kl / n, nll / n


def test_prefix_reuse_equals_running_the_whole_replaced_model(scored):
    parent_dir, store, library, val, lib = scored
    parent = AutoModelForCausalLM.from_pretrained(parent_dir).eval()
    base = [next(n for n, v in layer.items() if v.extra["bld"]["is_parent"]) for layer in library.layers]
    for layer, name in [(0, "attention=linear ffn=64"), (1, "attention=no_op ffn=no_op"), (2, "attention=kv2 ffn=64")]:
        chosen = list(base)
        chosen[layer] = name
        kl, loss = naive_metrics(parent, assemble_child(library, chosen, store), val)
        m = lib.layers[layer][name].metrics
        assert m["kl_div"] == pytest.approx(kl, abs=1e-5) and m["lm_loss"] == pytest.approx(loss, abs=1e-5)


def test_parent_scores_zero_and_no_op_attention_scores_worse(scored):
    *_, lib = scored
    parent = lib.layers[0]["attention=kv2 ffn=128"].metrics
    noop = lib.layers[0]["attention=no_op ffn=128"].metrics
    assert parent["kl_div"] == 0.0 and parent["cosine_distance"] == 0.0
    assert noop["kl_div"] > 0.01 and noop["lm_loss"] > parent["lm_loss"] and noop["top1_acc"] < parent["top1_acc"]
    assert parent["top1_acc"] > 0.5  # the trained parent continues the pattern


def test_more_actors_give_the_same_scores(scored):
    _, store, library, val, lib = scored
    lib2 = score_library(library, val, ScoreConfig(num_actors=2, metrics=["kl_div"]), store)
    for a, b in zip(lib.layers, lib2.layers):
        for name in a:
            assert b[name].metrics["kl_div"] == pytest.approx(a[name].metrics["kl_div"], rel=1e-4, abs=1e-7)


def test_unknown_metric_is_rejected():
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        ScoreConfig(metrics=["kl_div", "bleu"])


def recording_progress(monkeypatch, module):
    """Progress bars `module` makes, each with the (task description, amount) of every advance."""
    bars, original = [], module.progress

    def make(*args, **kwargs):
        bar = original(*args, **kwargs)
        bar.advances = []
        advance = bar.advance
        bar.advance = lambda task, amount=1: (bar.advances.append((bar._tasks[task].description, amount)),
                                              advance(task, amount))
        bars.append(bar)
        return bar

    monkeypatch.setattr(module, "progress", make)
    return bars


def test_scoring_shows_actors_starting_then_variants_per_layer_and_batch(scored, monkeypatch):
    import puzzle_ray.score.score as score_module

    _, store, library, val, lib = scored
    bars = recording_progress(monkeypatch, score_module)
    again = score_library(library, val, ScoreConfig(num_actors=2, metrics=["kl_div"]), store)
    (bar,) = bars
    tasks = {t.description: t for t in bar.tasks}
    entries = sum(not v.is_parent for layer in library.layers for v in layer.values())
    starting, scoring = tasks["starting scoring actors"], tasks["replace-1-block scoring"]
    assert starting.total == starting.completed == 2 and starting.fields["unit"] == "actors"
    assert scoring.total == entries and scoring.completed == pytest.approx(entries) and scoring.finished
    steps = [a for d, a in bar.advances if d == "replace-1-block scoring"]
    assert len(steps) == library.num_layers * len(val)  # one step per (layer, batch) as its result returns
    for a, b in zip(lib.layers, again.layers):  # scoring batch by batch gives the same sums
        for name in a:
            assert b[name].metrics["kl_div"] == pytest.approx(a[name].metrics["kl_div"], rel=1e-6, abs=1e-9)
