"""Constraint expressions of the architecture search, e.g. `stats.memory_mib<=80000`.

Syntax (spaces are ignored):

    KEY<=LIMIT            an upper bound on the child's total of KEY
    KEY>=LIMIT            a lower bound
    LIMIT<=KEY<=LIMIT     a range (both bounds)

    KEY     stats.<name>    any numeric per-variant stat: summed over layers, plus the non-block part
                            (`library.meta.non_block`) when it has that stat
            metrics.<name>  a per-variant metric, summed over layers
            throughput      tokens/s of the whole request batch: batch x tokens_per_sequence / total runtime_ms,
                            so `throughput>=T` is the linear `runtime_ms <= batch x tokens / T`
    LIMIT   80000, 8e4, 80_000      an absolute figure in the stat's own units (MiB, ms, parameters, ...)
            0.85*parent, parent*0.85, 85%, parent
                                    a fraction of the parent's own figure for KEY (the parent is the variant of
                                    every layer that equals the parent's block; see `search.parent`)

Examples: `stats.memory_mib<=0.85*parent`, `throughput>=6000`, `1e9<=stats.num_params<=2e9`,
`stats.prefill_ms<=120` (time to first token), `stats.runtime_ms<=51200` (latency of the request batch).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

THROUGHPUT = "throughput"
_KEY = re.compile(r"^(stats|metrics)\.[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER = r"[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][-+]?\d+)?"


class ConstraintError(ValueError):
    """A constraint or objective expression that cannot be parsed; the message quotes it."""


@dataclass(frozen=True)
class Limit:
    value: float
    """The absolute figure, or the fraction of the parent's figure when `of_parent`."""
    of_parent: bool = False

    def resolve(self, parent_figure: float | None) -> float:
        if not self.of_parent:
            return self.value
        if parent_figure is None:
            raise ValueError("needs the parent's figure")
        return self.value * parent_figure

    def __str__(self) -> str:
        return f"{self.value:.12g}*parent" if self.of_parent else f"{self.value:.12g}"


@dataclass(frozen=True)
class Constraint:
    key: str
    """`stats.<name>`, `metrics.<name>` or `throughput`."""
    lower: Limit | None = None
    upper: Limit | None = None

    @property
    def text(self) -> str:
        """Canonical form, also the constraint's name in costs, tables and messages."""
        if self.lower and self.upper:
            return f"{self.lower}<={self.key}<={self.upper}"
        return f"{self.key}<={self.upper}" if self.upper else f"{self.key}>={self.lower}"

    @property
    def uses_parent(self) -> bool:
        return any(limit is not None and limit.of_parent for limit in (self.lower, self.upper))

    @property
    def column(self) -> str:
        """The per-variant quantity summed by the MIP (`throughput` is a bound on the total runtime)."""
        return "stats.runtime_ms" if self.key == THROUGHPUT else self.key

    def __str__(self) -> str:
        return self.text


def check_key(key: str, what: str = "key") -> str:
    if key != THROUGHPUT and not _KEY.match(key):
        raise ConstraintError(f"{what} {key!r}: expected 'stats.<name>', 'metrics.<name>' or 'throughput'")
    return key


def parse_limit(text: str, where: str) -> Limit:
    t = text.lower()
    if t == "parent":
        return Limit(1.0, of_parent=True)
    if m := re.fullmatch(rf"({_NUMBER})\*parent|parent\*({_NUMBER})", t):
        return Limit(_number(m.group(1) or m.group(2), where), of_parent=True)
    if m := re.fullmatch(rf"({_NUMBER})%", t):
        return Limit(_number(m.group(1), where) / 100, of_parent=True)
    if re.fullmatch(_NUMBER, t):
        return Limit(_number(t, where))
    raise ConstraintError(f"{where}: limit {text!r} must be a number, 'X*parent' or 'X%' (of the parent)")


def parse_constraint(text: str) -> Constraint:
    """`stats.memory_mib<=80000`, `throughput>=0.5*parent`, `1e9<=stats.num_params<=2e9`, ..."""
    if not isinstance(text, str):
        raise ConstraintError(f"constraint {text!r} must be a string such as 'stats.memory_mib<=80000'")
    t = re.sub(r"\s+", "", text)
    where = f"constraint {text!r}"
    if re.search(r"(?<![<>=])[<>](?!=)|==", t):
        raise ConstraintError(f"{where}: use '<=' or '>=' (the search has no strict or equality bounds)")
    parts = re.split(r"(<=|>=)", t)
    if len(parts) == 3:
        left, op, right = parts
        if _looks_like_key(right) and not _looks_like_key(left):  # '80000>=stats.memory_mib'
            left, right, op = right, left, "<=" if op == ">=" else ">="
        key, limit = check_key(left, where + ": key"), parse_limit(right, where)
        c = Constraint(key, upper=limit) if op == "<=" else Constraint(key, lower=limit)
    elif len(parts) == 5 and parts[1] == parts[3]:
        lo, op, key, _, hi = parts
        if op == ">=":
            lo, hi = hi, lo
        c = Constraint(check_key(key, where + ": key"), lower=parse_limit(lo, where), upper=parse_limit(hi, where))
        if c.lower.of_parent == c.upper.of_parent and c.lower.value > c.upper.value:
            raise ConstraintError(f"{where}: the lower bound is above the upper bound")
    else:
        raise ConstraintError(f"{where}: expected 'KEY<=LIMIT', 'KEY>=LIMIT' or 'LOW<=KEY<=HIGH'")
    if c.key == THROUGHPUT and any(limit is not None and limit.value <= 0 for limit in (c.lower, c.upper)):
        raise ConstraintError(f"{where}: a throughput target must be positive")
    return c


def _looks_like_key(text: str) -> bool:
    return text == THROUGHPUT or bool(_KEY.match(text))


def _number(text: str, where: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ConstraintError(f"{where}: limit {text!r} is not a finite number")
    return value
