"""The sub-block kind interface and its registry.

A layer has two roles, "attention" and "ffn"; each role has a few kinds (GQA, linear, no-op; SwiGLU, linear,
no-op). A kind is a stateless singleton that knows everything kind-specific about a sub-block config: its JSON
part, its module, its parameters and KV cache, its labels, how it starts from the parent's sub-block. The
configs (`AttentionConfig`, `FFNConfig`) stay plain frozen dataclasses of the published fields and ask
`kind_of(cfg)` which kind they are; nothing else branches on a kind.

Adding a kind: give the config the field that selects it, write one subclass, `register` it. The kinds of a
role are tried in registration order (`applies` on a config, `claims` on a JSON part); each role has one
`fallback` kind (the dense one), chosen when no other applies. Most kinds are selected by a `flag`, a boolean
field and JSON key such as `no_op`.

A kind compares equal to its name and hashes and prints as it, so `cfg.kind == "no_op"` and tables keyed by
name keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..blocks import BlockConfig
    from ..config import PuzzleConfig

Role = Literal["attention", "ffn"]
ROLES: tuple[Role, ...] = ("attention", "ffn")
LabelStyle = Literal["short", "long", "tag"]


class BlockConfigError(ValueError):
    """An impossible or unsupported block configuration; the message names the layer and the field."""


class Calibration(Protocol):
    """What a parent layer's calibration measured (`library.init.LayerCalibration` provides it)."""

    attn_gram: torch.Tensor | None
    """(H, H) sum of x x^T over the attention's normalised inputs, when a least-squares fit was asked for."""
    attn_cross: torch.Tensor | None
    """(H, H) sum of x y^T, y the attention's output."""
    ffn_gram: torch.Tensor | None
    ffn_cross: torch.Tensor | None

    def channel_scores(self) -> torch.Tensor:
        """(I,) contribution of each intermediate channel of the parent's SwiGLU."""


class SubblockKind:
    """One kind of sub-block. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    """Stored and printed name: 'gqa', 'linear', 'no_op', 'swiglu'."""
    role: ClassVar[Role]
    flag: ClassVar[str | None] = None
    """Boolean config field and JSON key that selects this kind; None for the role's fallback kind."""
    fallback: ClassVar[bool] = False
    """The role's default kind, chosen when no other kind applies (exactly one per role)."""
    keys: ClassVar[tuple[str, ...]] = ()
    """JSON keys this kind reads beside the flags (so the role's parser accepts them)."""
    tag: ClassVar[str] = ""
    """Terse mark in one-line architecture descriptions ('-', 'lin'); sized kinds print their size instead."""
    holds_cache: ClassVar[bool] = False
    """Attends over past tokens, so it keeps a KV cache."""
    has_weights: ClassVar[bool] = True
    """False for no-op: no module, no norm, nothing to train or time."""
    linear_map: ClassVar[bool] = False
    """One H x H matrix: fitted by least squares on calibration activations, unknown to some engines."""
    resizable: ClassVar[bool] = False
    """Has a size (KV heads, width) that search spaces and uniform pruning vary."""
    needs_heads: ClassVar[bool] = False
    """Its size and label depend on the parent's number of attention heads."""

    # -- identity: equal to (and hashed, printed as) its name -----------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, SubblockKind):
            return self.name == other.name
        return self.name == other if isinstance(other, str) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return repr(self.name)

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)

    # -- selection and the published JSON part ----------------------------------------------------------------
    def applies(self, cfg) -> bool:
        """Is `cfg` of this kind? (The fallback kind is chosen when no other applies.)"""
        return self.flag is not None and bool(getattr(cfg, self.flag))

    def claims(self, data: dict) -> bool:
        """Does the JSON part `data` select this kind?"""
        return self.flag is not None and bool(data.get(self.flag, False))

    def parse(self, data: dict, where: str, num_attention_heads: int | None = None) -> dict[str, Any]:
        """Config fields (beside the flags) read from the JSON part."""
        return {}

    def write(self, cfg, hidden_size: int | None) -> dict[str, Any]:
        """The JSON part's own keys (the registry appends the role's flags)."""
        return {}

    def fields(self) -> dict[str, Any]:
        """Config fields of this kind when it takes no size (the flagged kinds)."""
        if self.flag is None:
            raise ValueError(f"{self.role} kind {self.name!r} needs a size")
        return {self.flag: True}

    def validate(self, cfg, where: str, num_attention_heads: int | None = None) -> None:
        """Raise `BlockConfigError` naming `where` when `cfg` is impossible for this kind."""

    def resolve(self, cfg, hidden_size: int):
        """Canonical form of `cfg` (equal configs compare equal)."""
        return cfg

    # -- the module and its accounting --------------------------------------------------------------------
    def build(self, config: PuzzleConfig, block: BlockConfig, layer_idx: int | None) -> nn.Module | None:
        """The sub-block's module (without its norm), None when it has no weights."""
        return None

    def params(self, config: PuzzleConfig, cfg) -> int:
        """Parameters of the sub-block, its input norm included (what `build` allocates plus the norm)."""
        return 0

    def kv_heads(self, cfg, num_attention_heads: int | None) -> int:
        return 0

    def kv_bytes_per_token(self, config: PuzzleConfig, cfg, itemsize: int) -> int:
        """KV-cache bytes one token adds: 2 (K and V) x KV heads x head_dim x bytes."""
        return 2 * self.kv_heads(cfg, config.num_attention_heads) * config.head_dim * itemsize

    def cache_layer(self):
        """This layer's slot in `PuzzleCache`: one that stores nothing unless the kind holds a cache."""
        from transformers.cache_utils import DummyLayer

        return DummyLayer()

    def size(self, cfg, num_attention_heads: int | None = None) -> int | None:
        """KV heads, FFN width: the number search spaces vary; None for kinds without one."""
        return None

    def activation_width(self, config: PuzzleConfig, cfg) -> int:
        """Widest intermediate activation per token (for device-memory estimates); 0 when at most hidden."""
        return 0

    def timing_shape(self, config: PuzzleConfig) -> dict[str, Any]:
        """Parent fields (beside the block itself) that change this sub-block's runtime."""
        return {}

    # -- labels -------------------------------------------------------------------------------------------
    def short_label(self, cfg, num_attention_heads: int | None) -> str:
        """Part of a library variant name: 'kv2', '768', 'linear', 'no_op'."""
        return self.name

    def long_label(self, cfg, num_attention_heads: int | None) -> str:
        """Table label: 'gqa kv=8', 'swiglu 14336', 'linear', 'no_op'."""
        return self.name

    def tag_label(self, cfg, num_attention_heads: int | None) -> str:
        """One-line architecture mark: 'kv2', '768', 'lin', '-'."""
        return self.tag or self.short_label(cfg, num_attention_heads)

    def label(self, cfg, num_attention_heads: int | None, style: LabelStyle = "short") -> str:
        how = {"short": self.short_label, "long": self.long_label, "tag": self.tag_label}[style]
        return how(cfg, num_attention_heads)

    # -- initialisation from the parent ---------------------------------------------------------------------
    def init_from_parent(self, new: nn.Module, old: nn.Module, calib: Calibration | None, linear_init: str,
                         layer_idx: int) -> None:
        """Fill `new` (this kind's module) from the parent's module `old` of the same role (norms are copied by
        the caller, under `torch.no_grad()`). `linear_init` is 'lstsq' or 'product' (see `LinearAttentionKind`).
        Kinds import torch here, not at module level: the JSON, arithmetic and labels of a kind are read without
        torch (`puzzle-ray inspect`)."""


_REGISTRY: dict[Role, list[SubblockKind]] = {role: [] for role in ROLES}


def register(cls: type[SubblockKind]) -> type[SubblockKind]:
    """Class decorator: add one instance of the kind to its role (kinds are tried in this order)."""
    kinds = _REGISTRY[cls.role]
    if any(k.name == cls.name for k in kinds):
        raise ValueError(f"{cls.role} kind {cls.name!r} is already registered")
    if cls.fallback and any(k.fallback for k in kinds):
        raise ValueError(f"{cls.role} already has a fallback kind")
    kinds.append(cls())
    return cls


def unregister(role: Role, name: str) -> None:
    """Remove a kind (for tests that register a toy one)."""
    _REGISTRY[role][:] = [k for k in _REGISTRY[role] if k.name != name]


def kinds(role: Role) -> list[SubblockKind]:
    """The role's kinds in registration order."""
    return list(_REGISTRY[role])


def kind_named(role: Role, name: str) -> SubblockKind:
    for k in _REGISTRY[role]:
        if k.name == name:
            return k
    raise KeyError(f"no {role} kind named {name!r} (known: {[k.name for k in _REGISTRY[role]]})")


def _specific(role: Role) -> list[SubblockKind]:
    return [k for k in _REGISTRY[role] if not k.fallback]


def _fallback(role: Role) -> SubblockKind:
    return next(k for k in _REGISTRY[role] if k.fallback)


def kind_of(cfg) -> SubblockKind:
    """The kind of an `AttentionConfig` / `FFNConfig`: the first registered one that applies, else the fallback."""
    for k in _specific(cfg.ROLE):
        if k.applies(cfg):
            return k
    return _fallback(cfg.ROLE)


def check_exclusive(cfg, where: str) -> None:
    """Raise when more than one kind applies to `cfg` (e.g. both `no_op` and `replace_with_linear`)."""
    on = [k for k in _specific(cfg.ROLE) if k.applies(cfg)]
    if len(on) > 1:
        raise BlockConfigError(f"{where}: {' and '.join(k.flag or k.name for k in on)} cannot both be true")


def accepted_keys(role: Role) -> set[str]:
    """Every JSON key that some kind of `role` reads."""
    return {key for k in _REGISTRY[role] for key in (*k.keys, *([k.flag] if k.flag else []))}


def kind_in(role: Role, data: dict, where: str) -> SubblockKind:
    """The kind that the JSON part `data` selects."""
    on = [k for k in _specific(role) if k.claims(data)]
    if len(on) > 1:
        raise BlockConfigError(f"{where}: {' and '.join(k.flag or k.name for k in on)} cannot both be true")
    return on[0] if on else _fallback(role)


def write_part(cfg, hidden_size: int | None) -> dict[str, Any]:
    """The published JSON part of `cfg`: the kind's own keys, then every flag of the role in registration order."""
    out = kind_of(cfg).write(cfg, hidden_size)
    out.update({k.flag: getattr(cfg, k.flag) for k in _specific(cfg.ROLE) if k.flag})
    return out


def block_labels(block: BlockConfig, num_attention_heads: int | None, style: LabelStyle = "short") -> tuple[str, str]:
    """(attention, FFN) labels of a block in one style; the one formatter of block names."""
    a, f = block.attention, block.ffn
    return a.kind.label(a, num_attention_heads, style), f.kind.label(f, num_attention_heads, style)
