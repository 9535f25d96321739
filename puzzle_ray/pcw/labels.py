"""Label tokenisation and the label trie of constrained greedy decoding (the reference's restrictive decoding).

The reference encodes each label as `" " + label.lstrip()` without special tokens (`label.lstrip()` for
SentencePiece tokenizers, which add the leading space themselves), truncates every label to its shortest unique
prefix, and decodes greedily while only the tokens that continue some still-possible label are allowed. A
label that is a prefix of another (`"A"` and `"A B"`) is ended by a stop token (the reference: `"\\n"`).

`LabelTrie.choose` reproduces that choice exactly; the reference adds +100 to the allowed tokens' logits
instead of excluding the others, which is the same unless two logits differ by more than 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

STOP_SEQUENCE = "\n"


def sentencepiece_style(tokenizer) -> bool:
    """True if the tokenizer puts a word-start marker on a text's first word by itself (SentencePiece '▁')."""
    ids = tokenizer.encode("a", add_special_tokens=False)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    return bool(pieces) and pieces[0].startswith("\u2581")


def encode_labels(labels: Sequence[str | Sequence[int]], tokenizer=None) -> list[list[int]]:
    """Token ids of each label (text labels as the reference encodes them). Raises ValueError naming the label
    that tokenises to nothing, or two labels that tokenise identically."""
    if len(labels) == 0:
        raise ValueError("labels: at least one label is needed")
    out = []
    prefix = None
    for j, label in enumerate(labels):
        if isinstance(label, str):
            if not label.strip():
                raise ValueError(f"labels[{j}]={label!r} tokenises to nothing: a label needs a visible word")
            if tokenizer is None:
                raise ValueError(f"labels[{j}]={label!r} is text: pass a tokenizer, or give token-id lists")
            if prefix is None:
                prefix = "" if sentencepiece_style(tokenizer) else " "
            ids = list(tokenizer.encode(prefix + label.lstrip(), add_special_tokens=False))
        else:
            ids = [int(t) for t in label]
        if not ids:
            raise ValueError(f"labels[{j}]={label!r} tokenises to nothing: a label needs at least one token")
        out.append(ids)
    seen: dict[tuple[int, ...], int] = {}
    for j, ids in enumerate(out):
        if tuple(ids) in seen:
            i = seen[tuple(ids)]
            raise ValueError(f"labels[{i}]={labels[i]!r} and labels[{j}]={labels[j]!r} tokenise identically")
        seen[tuple(ids)] = j
    return out


def stop_token_of(tokenizer) -> int | None:
    """The token that ends a label which is a prefix of another (the last token of "\\n", as the reference)."""
    if tokenizer is None:
        return None
    ids = tokenizer.encode(STOP_SEQUENCE, add_special_tokens=False)
    return int(ids[-1]) if ids else None


@dataclass
class TrieNode:
    candidates: frozenset[int]
    """Indices of the labels still possible at this node."""
    children: dict[int, TrieNode] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        return len(self.candidates) == 1

    @property
    def label(self) -> int:
        (j,) = self.candidates
        return j


class LabelTrie:
    """Labels' token sequences as a trie; decoding stops as soon as one label is left (its unique prefix)."""

    def __init__(self, label_ids: Sequence[Sequence[int]], stop_token_id: int | None = None):
        self.label_ids = [list(ids) for ids in label_ids]
        self.root = self._build(frozenset(range(len(self.label_ids))), 0, stop_token_id)

    def _build(self, candidates: frozenset[int], depth: int, stop: int | None) -> TrieNode:
        node = TrieNode(candidates)
        if node.decided:
            return node
        by_token: dict[int, set[int]] = {}
        ended = [j for j in candidates if len(self.label_ids[j]) == depth]
        for j in candidates:
            if len(self.label_ids[j]) > depth:
                by_token.setdefault(self.label_ids[j][depth], set()).add(j)
        if ended:
            # Labels are distinct, so at most one ends here while others continue: the stop token chooses it.
            (j,) = ended
            if stop is None:
                raise ValueError(
                    f"label {j} is a prefix of another label: constrained decoding needs a stop token "
                    "(pass a tokenizer or stop_token_id)"
                )
            if stop in by_token:
                raise ValueError(f"the stop token {stop} also continues a label: choose another stop_token_id")
            node.children[stop] = TrieNode(frozenset({j}))
        for token, js in by_token.items():
            node.children[token] = self._build(frozenset(js), depth + 1, stop)
        return node

    @staticmethod
    def choose(node: TrieNode, scores: torch.Tensor) -> tuple[int, TrieNode]:
        """The allowed token with the highest score (scores: (V,)), and the node it leads to."""
        tokens = sorted(node.children)  # ties go to the lowest token id, as an argmax over the vocabulary
        best = int(torch.argmax(scores[torch.tensor(tokens, device=scores.device)]))
        return tokens[best], node.children[tokens[best]]
