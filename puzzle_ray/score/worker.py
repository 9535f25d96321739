"""A scoring worker: holds the parent and scores library entries of its layers by replace-1-block.

`prepare` runs the parent once per validation batch, keeping the hidden state at every layer's input
(B, T, H). `score_layer(i)` then scores each entry of layer i by running only layers i..L: the entry's block on
the parent's layer-i input, the parent's layers i+1..L, final norm and LM head. Entries of the same layer go
through layers i+1..L together, stacked along the batch axis. The driver calls it for one (layer, batch) at a
time, so it can show progress and spread layers over actors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..arch.blocks import BlockConfig
from ..arch.modeling import PuzzleDecoderLayer, prepare_block_inputs
from ..arch.config import load_puzzle_config
from ..arch.weights import load_tensors, model_from_state
from ..library.realize import entry_weights
from ..library.record import Library
from ..store import ArtifactStore
from ..ui import quiet_third_party


@dataclass
class ScoreSpec:
    store_url: str
    library: dict
    """`Library.to_json()` plus its meta under key `meta`."""
    layers: list[int]
    metrics: list[str]
    variants_per_chunk: int
    threads: int | None
    chunk_tokens: int = 1024
    """Positions whose vocabulary-sized logits exist at once."""
    cache_mib: float = 1024
    """The parent's log-probabilities are kept across layers while they take at most this much memory."""


def token_metrics(hidden: torch.Tensor, lm_head: torch.nn.Module, parent_logp: torch.Tensor, labels: torch.Tensor,
                  parent_hidden: torch.Tensor, metrics: list[str], chunk_tokens: int) -> dict[str, torch.Tensor]:
    """Per-sequence sums of each metric for N = k * B sequences scored against one parent batch of B.

    hidden (N, T, H) final-norm states of the k variants, stacked along the batch axis; parent_logp (B*T, V)
    and parent_hidden (B, T, H) of the parent; labels (B, T) with -100 = ignore. Logits exist for at most
    `chunk_tokens` positions at a time (a 49k vocabulary makes (N, T, V) gigabytes), and the parent's tensors
    are indexed, not repeated, for each variant.
    """
    N, T, H = hidden.shape
    per_parent = parent_logp.shape[0]  # B * T
    flat = hidden.reshape(N * T, H)
    flat_labels, flat_parent_h = labels.reshape(-1), parent_hidden.reshape(per_parent, H)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in metrics}
    for start in range(0, N * T, chunk_tokens):
        rows = torch.arange(start, min(start + chunk_tokens, N * T), device=hidden.device)
        parent_rows = rows % per_parent  # the parent position each variant position is compared with
        h = flat[rows]
        logits = lm_head(h).float()  # (n, V)
        logp = F.log_softmax(logits, -1)
        lab = flat_labels[parent_rows]
        valid = lab != -100
        if "kl_div" in metrics:
            p_logp = parent_logp[parent_rows]
            parts["kl_div"].append((p_logp.exp() * (p_logp - logp)).sum(-1) * valid)
        if "lm_loss" in metrics:
            parts["lm_loss"].append(-logp.gather(-1, lab.clamp_min(0).unsqueeze(-1)).squeeze(-1) * valid)
        if "top1_acc" in metrics:
            parts["top1_acc"].append(((logits.argmax(-1) == lab) & valid).float())
        if "cosine_distance" in metrics:
            cos = F.cosine_similarity(h.float(), flat_parent_h[parent_rows].float(), dim=-1)
            parts["cosine_distance"].append((1 - cos) * valid)
    return {k: torch.cat(v).view(N, T).sum(-1) for k, v in parts.items()}


class ScoreWorker:
    def __init__(self, spec: ScoreSpec):
        quiet_third_party()  # before transformers is imported here (a cluster's job env may lack the variables)
        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec = spec
        self.store = ArtifactStore(spec.store_url)
        self.library = Library.from_json({k: v for k, v in spec.library.items() if k != "meta"}, spec.library["meta"])
        self.parent_dir = self.store.get_dir(self.library.meta.parent_key, prefix="puzzle-parent-")
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
    def prepare(self, batches: list[torch.Tensor], parent_metrics: bool = False) -> dict:
        """Run the parent once per batch and keep what every entry reuses: the hidden state at each layer's
        input, the final hidden state and the labels. Returns {"tokens": scored positions} and, with
        `parent_metrics`, {"parent": the parent's own figures on the same tokens} (KL and cosine distance 0)."""
        m = self.model.model
        self.prefix = []
        tokens = 0
        for ids in batches:
            ids = ids.to(self.device)
            labels = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], 1)  # next token; last has none
            tokens += int((labels != -100).sum())
            h = m.embed_tokens(ids)
            pos, mask = prepare_block_inputs(self.config, m.rotary_emb, h)
            inputs = []  # (B, T, H) at every layer's input
            for layer in m.layers:
                inputs.append(h)
                h = layer(h, pos, mask, None)
            self.prefix.append((inputs, pos, mask, labels, m.norm(h)))
        # The parent's log-probabilities (B*T, V) per batch are kept only while they are small; otherwise each
        # layer recomputes them once for all of its variants (a 49k-128k vocabulary makes them large).
        vocab = self.model.lm_head.out_features
        size = sum(p[4].shape[0] * p[4].shape[1] for p in self.prefix) * vocab * 4
        self.logp_cache = {} if size <= self.spec.cache_mib * 2**20 else None
        out: dict = {"tokens": tokens}
        if parent_metrics:
            totals = {k: 0.0 for k in self.spec.metrics}
            for b, (_, _, _, labels, hidden) in enumerate(self.prefix):
                per_seq = token_metrics(hidden, self.model.lm_head, self._parent_logp(b), labels, hidden,
                                        self.spec.metrics, self.spec.chunk_tokens)
                for k, v in per_seq.items():
                    totals[k] += float(v.sum())
            out["parent"] = {k: v / tokens for k, v in totals.items()}
        return out

    def _parent_logp(self, b: int) -> torch.Tensor:
        if self.logp_cache is not None and b in self.logp_cache:
            return self.logp_cache[b]
        parent_hidden = self.prefix[b][4]
        logp = torch.cat([F.log_softmax(self.model.lm_head(part).float(), -1)  # (B*T, V)
                          for part in parent_hidden.flatten(0, 1).split(self.spec.chunk_tokens)])
        if self.logp_cache is not None:
            self.logp_cache[b] = logp
        return logp

    @torch.no_grad()
    def score_layer(self, i: int, batches: list[torch.Tensor], batch: int | None = None) -> dict[str, dict[str, float]]:
        """Metric sums over the prepared tokens for every non-parent entry of layer i, keyed 'layer_i/<variant>'.
        Only layers i..L run: the entry's block on the parent's layer-i input, then the parent's later layers;
        entries go through them `variants_per_chunk` at a time, stacked along the batch axis. `batches` are the
        ones given to `prepare` (a restarted actor prepares again from them); `batch` scores that one only (the
        driver calls layer i once per batch to show progress; the layer's blocks are kept between the calls)."""
        if getattr(self, "prefix", None) is None:
            self.prepare(batches)
        m, metrics = self.model.model, self.spec.metrics
        names = [n for n, v in self.library.layers[i].items() if not v.is_parent]
        if getattr(self, "_blocks", (None,))[0] != i:
            self._blocks = (i, {n: self._entry_layer(i, n) for n in names})
        blocks = self._blocks[1]
        sums = {f"layer_{i}/{n}": {k: 0.0 for k in metrics} for n in names}
        chosen = range(len(self.prefix)) if batch is None else [batch]
        for b in chosen:
            inputs, pos, mask, labels, parent_hidden = self.prefix[b]
            parent_logp = self._parent_logp(b)
            B = labels.shape[0]
            for start in range(0, len(names), self.spec.variants_per_chunk):
                chunk = names[start : start + self.spec.variants_per_chunk]
                x = torch.cat([blocks[n](inputs[i], pos, mask, None) for n in chunk])  # (k*B, T, H)
                cpos, cmask = prepare_block_inputs(self.config, m.rotary_emb, x)
                for layer in m.layers[i + 1 :]:
                    x = layer(x, cpos, cmask, None)
                per_seq = token_metrics(m.norm(x), self.model.lm_head, parent_logp, labels, parent_hidden,
                                        metrics, self.spec.chunk_tokens)  # each (k*B,)
                for j, n in enumerate(chunk):
                    acc = sums[f"layer_{i}/{n}"]
                    for k, v in per_seq.items():
                        acc[k] += float(v[j * B : (j + 1) * B].sum())
        return sums
