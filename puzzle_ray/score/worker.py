"""A scoring worker: holds the parent and scores library entries of its layers by replace-1-block.

For each validation batch the parent runs once, keeping the hidden state at every layer's input (B, T, H)
and its logits. An entry of layer i is then scored by running only layers i..L: the entry's block on the
parent's layer-i input, the parent's layers i+1..L, final norm and LM head. Entries of the same layer go
through layers i+1..L together, stacked along the batch axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..arch.blocks import BlockConfig
from ..arch.modeling import PuzzleDecoderLayer, prepare_block_inputs
from ..arch.summary import load_puzzle_config
from ..arch.weights import load_tensors, model_from_state
from ..library.realize import entry_weights
from ..library.record import Library
from ..store import ArtifactStore


@dataclass
class ScoreSpec:
    store_url: str
    library: dict
    """`Library.to_json()` plus its meta under key `meta`."""
    layers: list[int]
    metrics: list[str]
    variants_per_chunk: int
    threads: int | None


def token_metrics(logits: torch.Tensor, parent_logp: torch.Tensor, labels: torch.Tensor, hidden: torch.Tensor,
                  parent_hidden: torch.Tensor, metrics: list[str]) -> dict[str, torch.Tensor]:
    """Per-sequence sums of each metric. logits (N, T, V), labels (N, T) with -100 = ignore."""
    out = {}
    logp = F.log_softmax(logits.float(), -1)
    valid = labels != -100  # (N, T)
    if "kl_div" in metrics:
        kl = (parent_logp.exp() * (parent_logp - logp)).sum(-1)  # (N, T)
        out["kl_div"] = (kl * valid).sum(-1)
    if "lm_loss" in metrics:
        nll = -logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        out["lm_loss"] = (nll * valid).sum(-1)
    if "top1_acc" in metrics:
        out["top1_acc"] = ((logits.argmax(-1) == labels) & valid).sum(-1).float()
    if "cosine_distance" in metrics:
        cos = F.cosine_similarity(hidden.float(), parent_hidden.float(), dim=-1)
        out["cosine_distance"] = ((1 - cos) * valid).sum(-1)
    return out


class ScoreWorker:
    def __init__(self, spec: ScoreSpec):
        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec = spec
        self.store = ArtifactStore(spec.store_url)
        self.library = Library.from_json({k: v for k, v in spec.library.items() if k != "meta"}, spec.library["meta"])
        self.parent_dir = self.store.get_dir(self.library.meta["parent_key"], prefix="puzzle-parent-")
        config = load_puzzle_config(self.parent_dir)
        config._attn_implementation = "sdpa"
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = model_from_state(config, load_tensors(self.parent_dir, "", strip=False), f"parent {self.parent_dir}")
        self.model = model.to(self.device).requires_grad_(False)
        self.config = config

    def ready(self) -> list[int]:
        return self.spec.layers

    def _entry_layer(self, i: int, name: str) -> PuzzleDecoderLayer:
        block: BlockConfig = self.library.layers[i][name].block_config
        layer = PuzzleDecoderLayer(self.config, i, block)
        layer.load_state_dict(entry_weights(self.library, i, name, self.store, self.parent_dir))
        return layer.to(self.device).eval()

    @torch.no_grad()
    def score(self, batches: list[torch.Tensor]) -> dict[str, dict[str, float]]:
        """Metric sums over tokens, keyed 'layer_i/<variant>', plus '__tokens__' (the token count)."""
        m, metrics = self.model.model, self.spec.metrics
        sums: dict[str, dict[str, float]] = {}
        tokens = 0
        todo = {i: [n for n, v in self.library.layers[i].items() if not v.extra.get("bld", {}).get("is_parent")]
                for i in self.spec.layers}
        layers = {(i, n): self._entry_layer(i, n) for i, names in todo.items() for n in names}
        for ids in batches:
            ids = ids.to(self.device)
            labels = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], 1)  # next token; last has none
            tokens += int((labels != -100).sum())
            h = m.embed_tokens(ids)
            pos, mask = prepare_block_inputs(self.config, m.rotary_emb, h)
            inputs = []  # hidden state at every layer's input
            for layer in m.layers:
                inputs.append(h)
                h = layer(h, pos, mask, None)
            parent_hidden = m.norm(h)
            parent_logp = F.log_softmax(self.model.lm_head(parent_hidden).float(), -1)
            for i, names in todo.items():
                for start in range(0, len(names), self.spec.variants_per_chunk):
                    chunk = names[start : start + self.spec.variants_per_chunk]
                    x = torch.cat([layers[(i, n)](inputs[i], pos, mask, None) for n in chunk])  # (V*B, T, H)
                    cpos, cmask = prepare_block_inputs(self.config, m.rotary_emb, x)
                    for layer in m.layers[i + 1 :]:
                        x = layer(x, cpos, cmask, None)
                    hidden = m.norm(x)
                    logits = self.model.lm_head(hidden)
                    B = ids.shape[0]
                    rep = lambda t: t.repeat(len(chunk), *[1] * (t.dim() - 1))  # noqa: E731
                    per_seq = token_metrics(logits, rep(parent_logp), rep(labels), hidden, rep(parent_hidden), metrics)
                    for j, n in enumerate(chunk):
                        acc = sums.setdefault(f"layer_{i}/{n}", {k: 0.0 for k in metrics})
                        for k, v in per_seq.items():
                            acc[k] += float(v[j * B : (j + 1) * B].sum())
        sums["__tokens__"] = {"tokens": tokens}
        return sums

    @torch.no_grad()
    def parent_metrics(self, batches: list[torch.Tensor]) -> dict[str, float]:
        """The parent's own figures on the same tokens (KL and cosine distance 0 by definition)."""
        totals = {k: 0.0 for k in self.spec.metrics}
        tokens = 0
        for ids in batches:
            ids = ids.to(self.device)
            labels = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], 1)
            tokens += int((labels != -100).sum())
            hidden = self.model.model(ids, use_cache=False).last_hidden_state  # (B, T, H)
            logits = self.model.lm_head(hidden)
            logp = F.log_softmax(logits.float(), -1)
            per_seq = token_metrics(logits, logp, labels, hidden, hidden, self.spec.metrics)
            for k, v in per_seq.items():
                totals[k] += float(v.sum())
        return {k: v / tokens for k, v in totals.items()}
