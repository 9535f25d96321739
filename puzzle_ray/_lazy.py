"""Lazy package namespaces: a package's public names are imported from its submodules on first use.

A package `__init__` declares where its names live instead of importing them:

    from .._lazy import lazy_package
    lazy_package(__name__, {".cache": ["TokenPlan", "prepare_tokens"], ".config": ["DataConfig"]})

so that importing one light module of the package (its `cli.py`, its `config.py`) does not import torch,
transformers or Ray through the package's other modules: `puzzle-ray --help` imports every package's `cli.py`
and must stay fast. `from puzzle_ray.data import prepare_tokens` and `puzzle_ray.data.DataConfig` work as before;
the submodule is imported on first access and the value kept in the package's namespace.

One corner is kept as eager imports had it: where a name equals its submodule's name (`evaluate.publish`, the
function in `evaluate/publish.py`), the package attribute is the function even after the submodule is imported
by its dotted name (the import system sets `package.publish = <module>`; the lazy package stores the function).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterable, Mapping


class LazyPackage(types.ModuleType):
    """A package module whose exported names resolve from their submodules on first access."""

    _lazy_exports: dict[str, str]  # name -> relative module (".cache")

    def __getattr__(self, name: str):
        module = self.__dict__.get("_lazy_exports", {}).get(name)
        if module is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, self.__name__), name)
        types.ModuleType.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value) -> None:
        module = self.__dict__.get("_lazy_exports", {}).get(name)
        if module is not None and isinstance(value, types.ModuleType) and value.__name__ == self.__name__ + module:
            value = getattr(value, name)  # the import system binding a submodule that shares its export's name
        types.ModuleType.__setattr__(self, name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(self.__dict__.get("_lazy_exports", {})))


def lazy_package(package: str, exports: Mapping[str, Iterable[str]]) -> None:
    """Make the package `package` (its `__name__`) resolve `exports` ({".submodule": [names]}) lazily."""
    module = sys.modules[package]
    where = {name: sub for sub, names in exports.items() for name in names}
    module.__class__ = LazyPackage
    types.ModuleType.__setattr__(module, "_lazy_exports", where)
