"""puzzle-ray: Puzzle (distillation-based NAS) and Parallel Context Windows on Ray.

`import puzzle_ray` registers the heterogeneous `nemotron-nas` model with transformers' Auto classes, so
`AutoModelForCausalLM.from_pretrained(dir)` loads exported children without `trust_remote_code`. It does so
without importing torch or transformers itself, so that `puzzle-ray --help` (whose modules all live in this
package) starts in a fraction of a second:

- if transformers' Auto classes are already imported, the model type is registered now;
- otherwise a watcher on imports registers it once `transformers.models.auto.configuration_auto` is imported
  (every Auto class imports it: `AutoConfig`, `AutoModelForCausalLM`, `AutoTokenizer`, and mlflow's transformers
  flavour through `AutoConfig`). It registers at the first moment no transformers or `puzzle_ray.arch` module is
  half-imported (registering imports our model code, which imports transformers: doing it inside one of those
  imports would meet a half-built module); that moment comes before the import that brought the Auto classes
  returns, so no code can use them unregistered.

Code that only reads nemotron-nas configs (`puzzle-ray inspect`) never imports the Auto classes and never pays
for the model code. `register_auto_classes()` registers explicitly (idempotent). The model classes are
importable from here too (`from puzzle_ray import PuzzleForCausalLM`), resolved on first use like every
package's exports.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading

__version__ = "0.1.0"

__all__ = ["PuzzleConfig", "PuzzleForCausalLM", "PuzzleModel", "register_auto_classes", "__version__"]

_AUTO = "transformers.models.auto.configuration_auto"  # imported by every Auto class
_WATCHED = ("transformers", "puzzle_ray.arch")  # the packages that registration imports
_lock = threading.RLock()
_registered = False
_registering = False
_loading: set[str] = set()  # watched modules being executed right now


def register_auto_classes() -> None:
    """Register `nemotron-nas` (config, model, causal LM) with transformers' Auto classes; imports the model
    code and torch. Idempotent."""
    global _registered, _registering
    with _lock:
        if _registered or _registering:
            return
        _registering = True
        try:
            from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

            before = sys.modules["transformers"]
            from .arch.config import PuzzleConfig
            from .arch.modeling import PuzzleForCausalLM, PuzzleModel

            AutoConfig.register(PuzzleConfig.model_type, PuzzleConfig, exist_ok=True)
            AutoModel.register(PuzzleConfig, PuzzleModel, exist_ok=True)
            AutoModelForCausalLM.register(PuzzleConfig, PuzzleForCausalLM, exist_ok=True)
            # mlflow.transformers.load_model resolves the class named in `architectures` on the `transformers`
            # module (else it reaches for remote code); exported children name DeciLMForCausalLM, in-memory
            # ones PuzzleForCausalLM. Importing the model code can replace the lazy module object in
            # sys.modules: set the names on the one code already holds and on the current one.
            for module in {id(m): m for m in (before, sys.modules["transformers"])}.values():
                for name in ("DeciLMForCausalLM", "PuzzleForCausalLM"):
                    setattr(module, name, PuzzleForCausalLM)
            _registered = True
        finally:
            _registering = False
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterAfterImports)]


def _maybe_register() -> None:
    if not _registered and not _registering and not _loading and _AUTO in sys.modules:
        register_auto_classes()


def _watched(name: str) -> bool:
    return any(name == w or name.startswith(w + ".") for w in _WATCHED)


class _RegisterAfterImports(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it lets the next finder locate a watched module and makes that module's loader
    tell it when the module has been executed; then it registers if the Auto classes are imported and no
    watched module is still executing. Finding alone (other libraries' `find_spec` availability checks)
    registers nothing. It leaves `sys.meta_path` once the registration is done."""

    def find_spec(self, fullname, path=None, target=None):
        if _registered or not _watched(fullname) or self not in sys.meta_path:
            return None
        for finder in sys.meta_path[sys.meta_path.index(self) + 1:]:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_register(module):
            _loading.add(fullname)
            try:
                exec_module(module)
            finally:
                _loading.discard(fullname)
            _maybe_register()

        loader.exec_module = exec_then_register  # this spec's own loader object: no other import is affected
        return spec


def _install() -> None:
    if _AUTO in sys.modules:
        register_auto_classes()
    elif not any(isinstance(f, _RegisterAfterImports) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImports())


def __getattr__(name: str):
    if name in ("PuzzleConfig", "PuzzleForCausalLM", "PuzzleModel"):
        from . import arch

        return getattr(arch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_install()
