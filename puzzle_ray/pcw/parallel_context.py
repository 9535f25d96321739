"""Parallel Context Windows (Ratner et al., ACL 2023) for any transformers 5 causal LM and for Puzzle children.

    pcw = ParallelContextWindows(model, tokenizer)
    context = pcw.encode(["demo 1 ...", "demo 2 ...", "demo 3 ..."])   # batched forwards over the windows
    pcw.logits(context, "\\n==\\nquery")                                 # (len(task), vocab)
    pcw.generate(context, "Question: ...", max_new_tokens=32)
    pcw.classify(context, ["\\n==\\ninput: x\\ntype:"], ["sports", "world"])

Windows are encoded in batched forwards of `windows_per_forward` rows, padded to the chunk's longest, each row
attending causally to itself only (an explicit 4-D mask) with explicit position ids; each chunk's kept tokens
are gathered from its cache before the next chunk runs, and the pieces are merged into one context (one shared
BOS). Chunks bound the peak memory: every row's padded mask, activations and full cache are live at once.
Queries run against their own cache built around the context's tensors, so a context serves any number of
queries and never changes. See `layout.py` for the exact semantics.

`context_scale="per_window"` rescales the task's attention over the windows as if one were present
(`rescale.py`); `NaiveBayesContextWindows` (`nbce.py`) is the same API without shared attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import DummyLayer
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .adapter import ModelAdapter
from .context import EncodedContext
from .labels import LabelTrie, encode_labels, stop_token_of
from .layout import Alignment, plan_windows
from .query import QueryBatch
from .rescale import ContextScale, check_context_scale, context_bias

Tokens = str | Sequence[int] | torch.Tensor
ClassifyMethod = Literal["loglik", "greedy"]


class ParallelContextWindows:
    """PCW around a causal LM. `tokenizer` is needed only for text windows, tasks and labels."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer=None,
        alignment: Alignment = "left",
        bos_token_id: int | None = None,
        add_bos: bool = False,
        context_scale: ContextScale = "none",
        windows_per_forward: int | None = 1,
    ):
        if windows_per_forward is not None and windows_per_forward < 1:
            raise ValueError(f"windows_per_forward={windows_per_forward}: expected a positive number or None (all)")
        if alignment not in ("left", "right"):
            raise ValueError(f"alignment={alignment!r}: expected 'left' or 'right'")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.alignment: Alignment = alignment
        self.adapter = ModelAdapter(model)
        if bos_token_id is None:
            bos_token_id = tokenizer.bos_token_id if tokenizer is not None else model.config.bos_token_id
        self.bos_token_id = bos_token_id
        """Windows that all begin with this token share one copy of it (None: never share)."""
        self.add_bos = add_bos
        """Text windows: prepend the BOS token where the tokenizer does not add it itself (the reference does so
        for GPT-2; models trained on BOS-prefixed documents want it). False: the tokenizer's own behaviour."""
        self.context_scale: ContextScale = check_context_scale(context_scale)
        """Task queries weigh each window key's exp(q . k) by c: "none" (c = 1, plain PCW), "per_window"
        (c = 1/B: as if one window were present) or a positive c; the shared BOS keeps 1 (see `rescale.py`)."""
        self.windows_per_forward = windows_per_forward
        """Windows encoded per forward (None: all in one). On CPU, 1 costs no more time than one batched forward
        and keeps the peak memory at one window at a time's, where one forward over B = 8 windows holds 2.7x
        (benchmarks/pcw_speed.py); on a GPU, more rows per forward is faster where memory allows."""

    # ----------------------------------------------------------------------------------------------- tokens
    def _ids(self, x: Tokens, what: str, special: bool) -> list[int]:
        if isinstance(x, str):
            if self.tokenizer is None:
                raise ValueError(f"{what} is text: pass a tokenizer to ParallelContextWindows, or give token ids")
            return list(self.tokenizer(x, add_special_tokens=special)["input_ids"])
        if isinstance(x, torch.Tensor):
            if x.dim() != 1:
                raise ValueError(f"{what}: expected a 1-D tensor of token ids, got shape {tuple(x.shape)}")
            return [int(t) for t in x.tolist()]
        return [int(t) for t in x]

    def window_ids(self, window: Tokens, index: int = 0) -> list[int]:
        """A window's tokens: text is tokenised with the tokenizer's special tokens (its BOS), as the reference."""
        ids = self._ids(window, f"windows[{index}]", special=True)
        if self.add_bos and isinstance(window, str) and self.bos_token_id is not None:
            if not ids or ids[0] != self.bos_token_id:
                ids = [self.bos_token_id, *ids]
        return ids

    def task_ids(self, task: Tokens, index: int = 0) -> list[int]:
        """A task's tokens: text is tokenised without special tokens (it continues the context)."""
        ids = self._ids(task, f"tasks[{index}]", special=False)
        if not ids:
            raise ValueError(f"tasks[{index}] is empty: a task needs at least one token")
        return ids

    def _check_tasks(self, context: EncodedContext, ids: Sequence[list[int]], what: str, extra: int = 0,
                     note: str = "") -> None:
        """Task i's last fed token sits at position M + len_i - 1 + extra (`extra` more tokens fed after it)."""
        for i, x in enumerate(ids):
            highest = context.max_window_len + len(x) - 1 + extra
            self.adapter.check_positions(highest, f"{what}[{i}] ({len(x)} tokens{note})")

    # ----------------------------------------------------------------------------------------------- queries
    def _rows_per_query(self, context: EncodedContext) -> int:
        """Model rows each query takes (a variant may read one context through several rows)."""
        return 1

    def _row_queries(self, context: EncodedContext, batch: int) -> QueryBatch:
        """`batch` queries' model rows (batch x rows_per_query) against the context, logits as the model gives."""
        return QueryBatch(self.adapter, context, batch, context_bias=context_bias(self.context_scale, context, batch))

    def _queries(self, context: EncodedContext, batch: int):
        """`batch` queries against the context; `.extend(rows)` gives each query's next-token scores (B, T, V)."""
        return self._row_queries(context, batch)

    # ----------------------------------------------------------------------------------------------- encode
    @torch.no_grad()
    def encode(self, windows: Sequence[Tokens], alignment: Alignment | None = None) -> EncodedContext:
        """Encode the windows in batched forwards (`windows_per_forward` rows each) and merge their caches into
        one context."""
        if isinstance(windows, (str, torch.Tensor)) or len(windows) == 0:
            raise ValueError("windows: expected a non-empty list of windows (strings or token-id lists)")
        ids = [self.window_ids(w, k) for k, w in enumerate(windows)]
        layout = plan_windows(ids, self.bos_token_id, alignment or self.alignment)
        for k, w in enumerate(layout.windows):
            self.adapter.check_positions(layout.shifts[k] + len(w) - 1, f"windows[{k}] ({len(w)} tokens)")
        order = layout.merge_order  # chunks follow the merged order, so concatenating their pieces keeps it
        step = self.windows_per_forward or len(order)
        pieces = [self._encode_chunk(layout, order[a : a + step]) for a in range(0, len(order), step)]
        keys = [_cat([p[0][i] for p in pieces]) for i in range(self.adapter.num_layers)]
        values = [_cat([p[1][i] for p in pieces]) for i in range(self.adapter.num_layers)]
        num, kept = len(layout.windows), layout.kept()
        shared = layout.shared_bos and num > 1
        window_of = [(-1 if shared and i == 0 and k == layout.longest else k) for k, i in kept]
        device = self.adapter.device
        return EncodedContext(
            layout=layout,
            keys=tuple(keys),
            values=tuple(values),
            token_ids=torch.tensor([layout.windows[k][i] for k, i in kept], device=device),
            positions=torch.tensor([layout.position(k, i) for k, i in kept], device=device),
            window_of=torch.tensor(window_of, device=device),
        )

    def _encode_chunk(self, layout, chunk: Sequence[int]) -> tuple[list, list]:
        """One forward over the windows `chunk` (in merged order); per layer, their kept tokens' keys and values
        (1, kv, L_chunk, D), None for a layer without a cache."""
        device = self.adapter.device
        lo = min(layout.shifts[k] for k in chunk)  # the chunk's columns: positions lo .. hi - 1
        hi = max(layout.shifts[k] + len(layout.windows[k]) for k in chunk)
        num, m = len(chunk), hi - lo
        # Column j of every row holds the token at position lo + j: left alignment pads on the right, right on
        # the left.
        input_ids = torch.zeros(num, m, dtype=torch.long, device=device)  # (W, M)
        valid = torch.zeros(num, m, dtype=torch.bool, device=device)
        for r, k in enumerate(chunk):
            w = layout.windows[k]
            cols = slice(layout.shifts[k] - lo, layout.shifts[k] - lo + len(w))
            input_ids[r, cols] = torch.tensor(w, device=device)
            valid[r, cols] = True
        positions = (lo + torch.arange(m, device=device)).unsqueeze(0).expand(num, m)  # (W, M)
        causal = torch.ones(m, m, dtype=torch.bool, device=device).tril()
        # (W, M, M): own window only, causal, no padding keys. Padding queries see themselves, so that no row is
        # fully masked (a softmax over nothing gives NaN, and 0 * NaN would poison the real tokens).
        allowed = (valid.unsqueeze(1) & causal) | torch.eye(m, dtype=torch.bool, device=device)
        cache = self.adapter.new_cache()
        self.adapter.forward(input_ids, positions, allowed, positions, cache, hidden_only=True)

        first = {k: (1 if (layout.shared_bos and k != layout.longest) else 0) for k in chunk}
        kept = [(r, i) for r, k in enumerate(chunk) for i in range(first[k], len(layout.windows[k]))]
        rows = torch.tensor([r for r, _ in kept], device=device)
        cols = torch.tensor([layout.position(chunk[r], i) - lo for r, i in kept], device=device)
        keys, values = [], []
        for i in range(self.adapter.num_layers):
            layer = cache.layers[i] if i < len(cache.layers) else None
            if layer is None or isinstance(layer, DummyLayer) or layer.keys is None:
                keys.append(None)
                values.append(None)
                continue
            # (W, kv, M, D) -> pick (row, col) pairs -> (L, kv, D) -> (1, kv, L, D)
            keys.append(layer.keys[rows, :, cols, :].transpose(0, 1).unsqueeze(0).contiguous())
            values.append(layer.values[rows, :, cols, :].transpose(0, 1).unsqueeze(0).contiguous())
        return keys, values

    # ----------------------------------------------------------------------------------------------- logits
    def logits(self, context: EncodedContext, task: Tokens) -> torch.Tensor:
        """Next-token logits at each task position: (len(task), vocab)."""
        return self.logits_batch(context, [task])[0]

    @torch.no_grad()
    def logits_batch(self, context: EncodedContext, tasks: Sequence[Tokens]) -> list[torch.Tensor]:
        """`logits` for several tasks in one batched forward."""
        ids = [self.task_ids(t, i) for i, t in enumerate(tasks)]
        if not ids:
            raise ValueError("tasks: expected at least one task")
        self._check_tasks(context, ids, "tasks")
        out = self._queries(context, len(ids)).extend(ids)
        return [out[b, : len(x)] for b, x in enumerate(ids)]

    # ----------------------------------------------------------------------------------------------- generate
    def generate(self, context: EncodedContext, task: Tokens, max_new_tokens: int = 32, **generate_kwargs) -> list[int]:
        """New token ids continuing `task` after the context (EOS included if generated)."""
        return self.generate_batch(context, [task], max_new_tokens, **generate_kwargs)[0]

    @torch.no_grad()
    def generate_batch(
        self,
        context: EncodedContext,
        tasks: Sequence[Tokens],
        max_new_tokens: int = 32,
        *,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        logits_processor: LogitsProcessorList | Sequence | None = None,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        """Greedy or sampled continuations of several tasks, batched. Generated token k of task i sits at
        position M + len_i + k. `logits_processor`s see (task + generated tokens, left-padded) and the scores."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens}: must be at least 1")
        ids = [self.task_ids(t, i) for i, t in enumerate(tasks)]
        if not ids:
            raise ValueError("tasks: expected at least one task")
        self._check_tasks(context, ids, "tasks", max_new_tokens - 1, f" + max_new_tokens={max_new_tokens}")
        eos = self._eos_ids(eos_token_id)
        pad = pad_token_id if pad_token_id is not None else (min(eos) if eos else 0)
        processors = LogitsProcessorList(logits_processor or [])
        if do_sample:
            if temperature <= 0:
                raise ValueError(f"temperature={temperature}: must be > 0 when sampling (use do_sample=False)")
            if temperature != 1.0:
                processors.append(TemperatureLogitsWarper(temperature))
            if top_k:
                processors.append(TopKLogitsWarper(top_k))
            if top_p is not None and top_p < 1.0:
                processors.append(TopPLogitsWarper(top_p))
        batch = len(ids)
        device = self.adapter.device
        queries = self._queries(context, batch)
        logits = queries.extend(ids)
        scores = logits[torch.arange(batch, device=device), torch.tensor([len(x) - 1 for x in ids], device=device)]
        generated: list[list[int]] = [[] for _ in range(batch)]
        finished = [False] * batch
        for step in range(max_new_tokens):
            history = _left_padded([x + g for x, g in zip(ids, generated)], pad, device)
            scores = processors(history, scores.float())
            if do_sample:
                probs = torch.softmax(scores, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            else:
                nxt = scores.argmax(dim=-1)
            for b in range(batch):
                if not finished[b]:
                    generated[b].append(int(nxt[b]))
                    finished[b] = int(nxt[b]) in eos
            if all(finished) or step == max_new_tokens - 1:
                break
            # Finished rows feed nothing: their padding key is never attended.
            rows = [[] if finished[b] else [generated[b][-1]] for b in range(batch)]
            scores = queries.extend(rows, pad_token_id=pad)[:, 0]
        return generated

    def _eos_ids(self, eos_token_id) -> set[int]:
        if eos_token_id is None:
            if self.tokenizer is not None and self.tokenizer.eos_token_id is not None:
                eos_token_id = self.tokenizer.eos_token_id
            else:
                gen = getattr(self.model, "generation_config", None)
                eos_token_id = getattr(gen, "eos_token_id", None) or self.model.config.eos_token_id
        if eos_token_id is None:
            return set()
        return {int(eos_token_id)} if isinstance(eos_token_id, int) else {int(t) for t in eos_token_id}

    # ----------------------------------------------------------------------------------------------- classify
    def classify(
        self,
        context: EncodedContext,
        inputs: Sequence[Tokens],
        labels: Sequence[str | Sequence[int]],
        method: ClassifyMethod = "loglik",
        batch_size: int = 32,
        stop_token_id: int | None = None,
    ) -> list:
        """For each input, the label (an element of `labels`) it predicts.

        loglik: the label whose tokens have the highest total log-likelihood after the input (batched over
        input x label rows). greedy: the reference's constrained greedy decoding over the label trie.
        """
        if method not in ("loglik", "greedy"):
            raise ValueError(f"method={method!r}: expected 'loglik' or 'greedy'")
        label_ids = encode_labels(labels, self.tokenizer)
        ids = self._classify_inputs(context, inputs, label_ids, batch_size)
        if method == "loglik":
            scores = self._label_scores(context, ids, label_ids, batch_size)
            return [labels[int(j)] for j in scores.argmax(dim=1)]
        stop = stop_token_id if stop_token_id is not None else stop_token_of(self.tokenizer)
        return [labels[j] for j in self._greedy_labels(context, ids, label_ids, batch_size, stop)]

    def label_scores(
        self,
        context: EncodedContext,
        inputs: Sequence[Tokens],
        labels: Sequence[str | Sequence[int]],
        batch_size: int = 32,
    ) -> torch.Tensor:
        """(len(inputs), len(labels)) total log-likelihood of each label's tokens after each input."""
        label_ids = encode_labels(labels, self.tokenizer)
        ids = self._classify_inputs(context, inputs, label_ids, batch_size)
        return self._label_scores(context, ids, label_ids, batch_size)

    def _classify_inputs(self, context, inputs, label_ids, batch_size) -> list[list[int]]:
        """Inputs' token ids, checked: both methods feed at most the input and its longest label but one token
        (the greedy trie stops as soon as one label is left)."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be at least 1")
        ids = [self.task_ids(x, i) for i, x in enumerate(inputs)]
        if not ids:
            raise ValueError("inputs: expected at least one input")
        longest = max(len(lab) for lab in label_ids)
        self._check_tasks(context, ids, "inputs", longest - 1, f" + the longest label, {longest}")
        return ids

    def _label_scores(self, context, ids, label_ids, batch_size) -> torch.Tensor:
        return self._label_logliks(context, ids, label_ids, batch_size)[:, :, 0]

    @torch.no_grad()
    def _label_logliks(self, context, ids, label_ids, batch_size) -> torch.Tensor:
        """(inputs, labels, rows_per_query) total log-likelihood of each label's tokens after each input, in each
        model row of the query. All input x label pairs are batched, `batch_size` rows per forward, against the
        one encoded context (never re-encoded)."""
        per = self._rows_per_query(context)
        pairs = [(i, j) for i in range(len(ids)) for j in range(len(label_ids))]
        scores = torch.empty(len(ids), len(label_ids), per, dtype=torch.float64)
        step = max(1, batch_size // per)
        for start in range(0, len(pairs), step):
            chunk = pairs[start : start + step]
            # Feed input + label[:-1]; the logits at the input's last token onwards predict the label's tokens.
            rows = [ids[i] + label_ids[j][:-1] for i, j in chunk for _ in range(per)]
            logits = self._row_queries(context, len(chunk)).extend(rows)
            logprobs = torch.log_softmax(logits.double(), dim=-1)
            for p, (i, j) in enumerate(chunk):
                first = len(ids[i]) - 1
                targets = torch.tensor(label_ids[j], device=logprobs.device)
                steps = torch.arange(first, first + len(targets), device=logprobs.device)
                rows_of = logprobs[p * per : (p + 1) * per]  # (per, T, V)
                scores[i, j] = rows_of[:, steps, targets].sum(dim=1).cpu()
        return scores

    @torch.no_grad()
    def _greedy_labels(self, context, ids, label_ids, batch_size, stop) -> list[int]:
        trie = LabelTrie(label_ids, stop)
        out: list[int] = []
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            nodes = [trie.root] * len(chunk)
            if all(n.decided for n in nodes):
                out.extend(n.label for n in nodes)
                continue
            queries = self._queries(context, len(chunk))
            logits = queries.extend(chunk)
            scores = [logits[b, len(x) - 1] for b, x in enumerate(chunk)]
            while True:
                fed: list[list[int]] = []
                for b, node in enumerate(nodes):
                    if node.decided:
                        fed.append([])
                        continue
                    token, nodes[b] = trie.choose(node, scores[b])
                    fed.append([] if nodes[b].decided else [token])
                if all(n.decided for n in nodes):
                    break
                step = queries.extend(fed)[:, 0]
                scores = [step[b] for b in range(len(chunk))]
            out.extend(n.label for n in nodes)
        return out


def _cat(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    """Concatenate the chunks' pieces of one layer along the token axis (None for a layer without a cache)."""
    return None if parts[0] is None else (parts[0] if len(parts) == 1 else torch.cat(parts, dim=2))


def _left_padded(rows: Sequence[Sequence[int]], pad: int, device) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad, dtype=torch.long, device=device)
    for b, r in enumerate(rows):
        out[b, width - len(r) :] = torch.tensor(list(r), dtype=torch.long, device=device)
    return out
