"""The model card (`README.md`) of an exported folder: what the model is, which parent it comes from and under
which license, how Puzzle made it, how fast and how good it measured, its layers, and how to load it. Written
with huggingface_hub's `ModelCard`, so model hubs and MLflow (`log_model(model_card=...)`) read the same card.

The facts behind a child's card travel inside the card (its YAML header's `puzzle_ray` entry), so each step
that learns more rewrites it from the folder alone, without the earlier steps' inputs:

    realize    child_card(config, library_facts(library, parent_dir, search))   parent, space, BLD, scoring, MIP
    distill    the realized child's facts + distill_facts(...)                   GKD
    publish    refresh_card(folder, report=..., name=...)                       the evaluation table, the name

(It lives beside the export, below `library/`, `distill/` and `evaluate/`, which all write it; the evaluation
report is read through its `rows`, `notes` and `scenario` only.)
"""

from __future__ import annotations

from ..ui import fmt_number

import importlib.metadata
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .blocks import block_labels
from .config import PuzzleConfig, load_puzzle_config
from .stats import attention_params, ffn_params, kv_bytes_per_token, model_stats

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

CARD_FILE = "README.md"
FACTS_KEY = "puzzle_ray"
"""The YAML header entry that holds `CardFacts`."""
PAPER = "https://arxiv.org/abs/2411.19146"
"""Bercovich et al., 2024, Puzzle: Distillation-Based NAS for Inference-Optimized LLMs."""
PROJECT_LICENSE = "apache-2.0"
"""puzzle-ray's own license (pyproject.toml), which covers the toy parent it trains."""
LICENSE_URLS = {
    "apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
    "mit": "https://opensource.org/license/mit",
    "bsd-3-clause": "https://opensource.org/license/bsd-3-clause",
}
GGUF_SOURCE_FILE = "gguf_source.json"
"""Written beside a GGUF parent's export (`puzzle_ray.parent.gguf.SOURCE_FILE`)."""
PRETRAIN_RECORD_FILE = "pretrain.json"
"""Written beside the embedded toy parent (`puzzle_ray.parent.build.RECORD_FILE`)."""
KV_DTYPE = "bfloat16"
"""The dtype of the card's KV-cache figures (what serving engines use)."""
_BLD_KEYS = ("mode", "token_budget", "micro_batch_size", "linear_init", "lr", "seed")
_DISTILL_KEYS = ("engine", "token_budget", "micro_batch_size", "grad_accum_steps", "lr", "cosine_weight", "kl_weight",
                 "lm_weight", "num_workers", "zero_stage", "seed")


@dataclass(frozen=True)
class ParentInfo:
    """Who the parent is, as a card names it."""

    name: str
    """The parent's name ('SmolLM2-135M-Instruct'), never a content fingerprint."""
    base_model: str | None = None
    """The card's `base_model`: the parent's Hub id where it has one ('HuggingFaceTB/SmolLM2-135M-Instruct'),
    else its name."""
    license: str | None = None
    """Hub license id ('apache-2.0'); None when not known."""
    source: str | None = None
    """How puzzle-ray got it (a GGUF file of a package, a Hugging Face folder, pretrained here)."""
    num_params: int | None = None
    kv_bytes_per_token: int | None = None
    """Summed over layers, in KV_DTYPE."""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParentInfo:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


KNOWN_PARENTS: dict[str, ParentInfo] = {
    "smollm2-135m-instruct": ParentInfo(
        "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
}
"""Parents whose GGUF files do not say enough, by the file name's stem (lower case, before the first dot)."""


@dataclass
class CardFacts:
    """What a child's card says about where it comes from and how it was made (None: not recorded)."""

    parent: ParentInfo
    name: str | None = None
    """The child's name (the registered model name once published); default '<parent>-Puzzle'."""
    search_space: dict[str, Any] | None = None
    """The variant space every layer chose from (`VariantSpace`)."""
    bld: dict[str, Any] | None = None
    """Blockwise local distillation: mode, token budget, ..."""
    scoring: dict[str, Any] | None = None
    """Replace-1-block scoring: metrics and tokens."""
    search: dict[str, Any] | None = None
    """The MIP: objective, constraints, the batch size solved for."""
    scenario: dict[str, Any] | None = None
    """The deployment scenario the costs were measured for."""
    distill: dict[str, Any] | None = None
    """Global knowledge distillation (GKD); None for a child that was not distilled."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def child_name(self) -> str:
        return self.name or f"{self.parent.name}-Puzzle"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"parent": self.parent.to_json()}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("parent", "extra") and value is not None:
                out[f.name] = _plain(value)
        out.update(_plain(self.extra))
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardFacts:
        data = dict(data)
        parent = ParentInfo.from_json(data.pop("parent", None) or {"name": "unknown parent"})
        known = {f.name for f in fields(cls)} - {"parent", "extra"}
        return cls(parent, **{k: data.pop(k) for k in list(data) if k in known}, extra=data)


# -- the parent ------------------------------------------------------------------------------------------------
def parent_info(parent_dir: str | Path) -> ParentInfo:
    """Name, Hub id, license and origin of the parent in `parent_dir` (a puzzle-ray parent folder: a GGUF
    parent's, the embedded toy's, or an exported Hugging Face folder with its card)."""
    folder = Path(parent_dir)
    stats = _stats(folder)
    gguf = _read_json(folder / GGUF_SOURCE_FILE)
    if gguf is not None:
        file = str(gguf.get("file") or "")
        src = gguf.get("source") or {}
        package = src.get("package")
        origin = f"of the package {package} {_version(package) or ''}".strip() if package else "from a local path"
        source = f"the GGUF file {file} {origin}, dequantised to float32 and converted to the nemotron-nas layout"
        known = KNOWN_PARENTS.get(file.split(".")[0].lower())
        if known is not None:
            return replace(known, source=source, **stats)
        name = gguf.get("name") or Path(file).stem or folder.name
        return ParentInfo(name, name, None, source, **stats)
    if (folder / PRETRAIN_RECORD_FILE).is_file():
        cfg = load_puzzle_config(folder)
        name = f"puzzle-ray-toy-{cfg.num_hidden_layers}L-{cfg.hidden_size}H"
        return ParentInfo(name, name, PROJECT_LICENSE, "the toy parent puzzle-ray pretrains on the Python standard "
                          "library's sources and documentation (`puzzle-ray pretrain`)", **stats)
    card = read_card(folder)
    if card is not None:
        data = card.data.to_dict()
        facts = data.get(FACTS_KEY) or {}
        if "source" in facts:  # our own card of a converted parent
            return ParentInfo(**{**ParentInfo.from_json(facts["source"]).to_json(), **stats})
        name = data.get("model_name") or folder.name
        return ParentInfo(name, name, data.get("license"), f"the Hugging Face folder {folder.name}", **stats)
    return ParentInfo(folder.name, folder.name, None, f"the folder {folder.name}", **stats)


def _stats(folder: Path) -> dict[str, int]:
    try:
        s = model_stats(load_puzzle_config(folder), KV_DTYPE)
    except (OSError, ValueError):
        return {}
    return {"num_params": s.num_params, "kv_bytes_per_token": s.kv_bytes_per_token}


def _version(dist: str | None) -> str | None:
    try:
        return importlib.metadata.version(dist) if dist else None
    except importlib.metadata.PackageNotFoundError:
        return None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- facts from the stages -------------------------------------------------------------------------------------
def library_facts(library, parent_dir: str | Path | None = None, search=None, name: str | None = None) -> CardFacts:
    """A realized child's facts: the parent (from its folder), the library's search space, BLD and scoring
    settings and scenario, and the MIP's objective and constraints when `search` (a `SearchConfig` or its dict)
    is given."""
    meta = library.meta
    parent = parent_info(parent_dir) if parent_dir is not None else ParentInfo("unknown parent")
    if parent.num_params is None and meta.parent_config:
        s = model_stats(PuzzleConfig(**meta.parent_config), KV_DTYPE)
        parent = replace(parent, num_params=s.num_params, kv_bytes_per_token=s.kv_bytes_per_token)
    scoring = None
    if meta.scoring:
        scoring = {k: meta.scoring[k] for k in ("metrics", "tokens") if k in meta.scoring}
    return CardFacts(
        parent=parent,
        name=name,
        search_space=meta.search_space,
        bld={k: meta.bld[k] for k in _BLD_KEYS if k in meta.bld} if meta.bld else None,
        scoring=scoring,
        search=search_facts(search),
        scenario=meta.scenario,
    )


def search_facts(search) -> dict[str, Any] | None:
    """The MIP's objective, direction, constraints and serving engines from a `SearchConfig` (or its dict)."""
    if search is None:
        return None
    data = search.model_dump(mode="json") if hasattr(search, "model_dump") else dict(search)
    keys = ("objective", "maximize", "constraints", "batch_sizes", "engines")
    return {k: data[k] for k in keys if data.get(k) is not None}


def distill_facts(config, tokens: int | None = None, steps: int | None = None) -> dict[str, Any]:
    """GKD's settings from a `DistillConfig` (or its dict), with the tokens and steps it ran."""
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
    out = {k: data[k] for k in _DISTILL_KEYS if k in data}
    if out.get("engine") != "deepspeed":
        out.pop("zero_stage", None)
    if tokens is not None:
        out["tokens"] = tokens
    if steps is not None:
        out["steps"] = steps
    return out


# -- reading and writing ---------------------------------------------------------------------------------------
def read_card(model_dir: str | Path) -> ModelCard | None:
    """The folder's card, or None when it has none (or one huggingface_hub cannot read)."""
    from huggingface_hub import ModelCard

    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        return None
    try:
        return ModelCard.load(path)
    except Exception:  # a hand-written README without a YAML header is not ours to rewrite
        return None


def card_facts(model_dir: str | Path) -> CardFacts | None:
    """The `CardFacts` a puzzle-ray card in `model_dir` carries (None for other cards or none)."""
    card = read_card(model_dir)
    data = card.data.to_dict().get(FACTS_KEY) if card is not None else None
    return CardFacts.from_json(data) if isinstance(data, dict) and "parent" in data else None


def write_card(model_dir: str | Path, card: ModelCard) -> Path:
    from ..store import relist_file

    path = Path(model_dir) / CARD_FILE
    path.write_text(str(card), encoding="utf-8")
    relist_file(model_dir, CARD_FILE)  # a stored child's folder must still verify after its card is refreshed
    return path


def refresh_card(model_dir: str | Path, report=None, name: str | None = None, model_uri: str | None = None,
                 write: bool = True) -> ModelCard:
    """The card of the exported child in `model_dir` rebuilt from the facts it carries (or, for a folder
    without them, from what the folder says), with the evaluation `report`'s table and the name `name`;
    written back into the folder when `write` (and the folder is writable)."""
    folder = Path(model_dir)
    facts = card_facts(folder) or CardFacts(parent=ParentInfo("unknown parent"))
    if name:
        facts.name = name
    card = child_card(load_puzzle_config(folder), facts, report=report, model_uri=model_uri)
    if write:
        try:
            write_card(folder, card)
        except OSError:  # a read-only copy (a remote store's download): the caller still has the card
            pass
    return card


def license_text(card: ModelCard) -> str:
    """A LICENSE.txt for the model: the card's license, where it comes from, and where to read it."""
    data = card.data.to_dict()
    facts = CardFacts.from_json(data.get(FACTS_KEY) or {})
    licence, model = data.get("license"), data.get("model_name") or "this model"
    if not licence:
        return (f"No license is recorded for {model} or its parent {facts.parent.name}: check the parent's terms "
                "before using or distributing it.\n")
    url = LICENSE_URLS.get(licence)
    text = f"{model} is distributed under the {licence} license"
    if facts.parent.license == licence and facts.parent.base_model:
        text += f", the license of its parent {facts.parent.base_model}"
    text += "."
    if url:
        text += f"\nThe license text: {url}"
    return text + "\n"


# -- the card --------------------------------------------------------------------------------------------------
def child_card(config: PuzzleConfig, facts: CardFacts, report=None, model_uri: str | None = None) -> ModelCard:
    """The card of the Puzzle child with architecture `config`: heading, YAML header (license, base model,
    facts), how to load it, how it was made, the evaluation (from `report` when there is one), its layers."""
    from huggingface_hub import ModelCard, ModelCardData

    name, parent = facts.child_name, facts.parent
    data = ModelCardData(
        model_name=name,
        license=parent.license,
        base_model=parent.base_model or parent.name,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["puzzle", "nemotron-nas", "puzzle-ray", "neural-architecture-search", "distillation"],
        **{FACTS_KEY: facts.to_json()},
    )
    parts = [
        f"# {name}: a Puzzle child of {parent.name}\n",
        _summary(config, facts, report),
        _how_to_load(config, model_uri),
        _how_it_was_made(facts),
        _evaluation(report),
        _architecture(config, parent),
        _license(parent),
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts))


def export_card(config: PuzzleConfig, source: str | Path | None = None) -> ModelCard:
    """The card of a folder exported without one (a parent converted to the nemotron-nas layout): its origin
    (the card of the Hugging Face folder `source`, when there is one), how to load it, its layers."""
    from huggingface_hub import ModelCard, ModelCardData

    origin = None
    if source is not None and (Path(source) / "config.json").is_file():
        got = read_card(source)
        meta = got.data.to_dict() if got is not None else {}
        name = meta.get("model_name") or Path(source).name
        origin = ParentInfo(name, name, meta.get("license"), f"the Hugging Face folder {Path(source).name}")
    title = origin.name if origin else f"nemotron-nas model ({config.num_hidden_layers} layers, hidden " \
                                       f"{config.hidden_size})"
    data = ModelCardData(
        model_name=title,
        license=origin.license if origin else None,
        base_model=origin.base_model if origin else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["nemotron-nas", "puzzle-ray"],
        **({FACTS_KEY: {"source": origin.to_json()}} if origin else {}),
    )
    lead = (f"{origin.name} ({origin.source}) converted by puzzle-ray to the nemotron-nas layout: the same weights "
            "and the same outputs." if origin else "A model in the nemotron-nas layout, written by puzzle-ray.")
    parts = [f"# {title}\n", lead + "\n", _how_to_load(config, None),
             _architecture(config, None)]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts))


def _summary(config: PuzzleConfig, facts: CardFacts, report) -> str:
    parent, s = facts.parent, model_stats(config, KV_DTYPE)
    made = "distilled by GKD" if facts.distill else "assembled from its block library (not distilled yet)"
    text = (f"A heterogeneous `nemotron-nas` model derived from **{_parent_link(parent)}** with "
            f"[Puzzle]({PAPER}) (distillation-based neural architecture search) by puzzle-ray, {made}: "
            f"{config.num_hidden_layers} layers, each with its own attention and FFN variant; "
            f"{format_count(s.num_params)} parameters")
    if parent.num_params:
        text += f" ({s.num_params / parent.num_params:.0%} of the parent's {format_count(parent.num_params)})"
    text += f", {s.kv_bytes_per_token:,} KV-cache bytes per token in {KV_DTYPE}"
    if parent.kv_bytes_per_token:
        text += f" ({s.kv_bytes_per_token / parent.kv_bytes_per_token:.0%} of the parent's)"
    text += "."
    headline = headline_text(report) if report is not None else None
    if headline:
        text += f"\n\nMeasured: {headline}."
    return text + "\n"


def _parent_link(parent: ParentInfo) -> str:
    if parent.base_model and "/" in parent.base_model:
        return f"[{parent.name}](https://huggingface.co/{parent.base_model})"
    return parent.name


def _how_to_load(config: PuzzleConfig, model_uri: str | None) -> str:
    from .export import engine_warnings

    text = """## How to load

The folder is in the published `nemotron-nas` layout (`DeciLMForCausalLM`, one `block_configs` entry per layer).
transformers does not know that model type by itself: **`import puzzle_ray` first** (it registers the model with
transformers' Auto classes), then load the folder as usual. No `trust_remote_code`: the folder holds no code.

```python
import puzzle_ray  # noqa: F401  registers model_type "nemotron-nas" (install puzzle-ray from its source tree)
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
```
"""
    if model_uri:
        text += f"""
From the MLflow registry: `mlflow.pyfunc.load_model("{model_uri}")` needs nothing more (the model carries
puzzle-ray's code and registers it itself); `mlflow.transformers.load_model("{model_uri}")` gives the pipeline
after `import puzzle_ray`.
"""
    warnings = engine_warnings(config)
    if warnings:
        text += "\nServing engines that read `nemotron-nas` checkpoints:\n\n" + "".join(f"- {w}\n" for w in warnings)
    return text


def _how_it_was_made(facts: CardFacts) -> str:
    p = facts.parent
    lines = ["## How it was made", "",
             f"[Puzzle]({PAPER}) (Bercovich et al., 2024), run by puzzle-ray on the parent **{p.name}**"
             + (f" ({p.source})" if p.source else "") + ":", ""]
    space = facts.search_space
    if space:
        att = ", ".join(str(x) for x in space.get("attention", []))
        ffn = ", ".join(str(x) for x in space.get("ffn", []))
        lines.append(f"1. **Search space**: for every layer, the parent's block and each mix of attention "
                     f"[{att}] (KV heads, `linear`, `no_op`) and FFN [{ffn}] (fractions of the parent's width, "
                     "`linear`, `no_op`)" + (f", with overrides for layers {sorted(space['overrides'])}"
                                             if space.get("overrides") else "") + ".")
    else:
        lines.append("1. **Search space**: not recorded.")
    bld = facts.bld
    lines.append("2. **Blockwise local distillation (BLD)**: every variant trained to reproduce its parent block's "
                 "output from the parent's own input activations" +
                 (f", {_tokens(bld.get('token_budget'))} tokens ({bld.get('mode', 'decoupled')} mode, "
                  f"{bld.get('linear_init', 'lstsq')} initialisation of linear replacements)." if bld else
                  " (settings not recorded)."))
    sc = facts.scoring
    lines.append("3. **Replace-1-block scoring**: each variant scored by how much it changes the parent's output "
                 "when it alone replaces the parent's block" +
                 (f" ({', '.join(sc.get('metrics', []))} on {_tokens(sc.get('tokens'))} held-out tokens)." if sc
                  else "."))
    search = facts.search
    if search:
        goal = "maximising" if search.get("maximize") else "minimising"
        constraints = "; ".join(f"`{c}`" for c in search.get("constraints", [])) or "no constraints"
        lines.append(f"4. **Mixed-integer program (MIP)**: one variant per layer, {goal} the summed "
                     f"`{search.get('objective')}` subject to {constraints}"
                     + _scenario_text(facts.scenario) + _engines_text(search.get("engines")) + ".")
    else:
        lines.append("4. **Mixed-integer program (MIP)**: one variant per layer under the deployment constraints"
                     + _scenario_text(facts.scenario) + " (objective and constraints not recorded).")
    gkd = facts.distill
    if gkd:
        how = gkd.get("engine", "ddp") + (f" ZeRO-{gkd['zero_stage']}" if "zero_stage" in gkd else "")
        lines.append(f"5. **Global knowledge distillation (GKD)**: the assembled child trained end to end against "
                     f"the parent (cosine on every layer's hidden state x {gkd.get('cosine_weight', 1)}, KL on "
                     f"the logits x {gkd.get('kl_weight', 1)}) on {_tokens(gkd.get('tokens', gkd.get('token_budget')))}"
                     f" tokens, {gkd.get('num_workers', 1)} worker(s), {how}.")
    else:
        lines.append("5. **Global knowledge distillation (GKD)**: not run on these weights (the library's BLD-trained "
                     "blocks as assembled).")
    return "\n".join(lines) + "\n"


def _engines_text(engines: list[str] | None) -> str:
    if not engines:
        return ""
    from ..serving.check import engine_list

    return (f", over the variants that {engine_list(engines)} serve (`search.engines`; `serving/matrix.py` of "
            "puzzle-ray)")


def _scenario_text(scenario: dict | None) -> str:
    if not scenario:
        return ""
    keys = [k for k in ("batch_sizes", "prefill_len", "decode_len", "dtype", "batch_size", "sequence_length")
            if k in scenario]
    return " (costs measured for " + ", ".join(f"{k} {scenario[k]}" for k in keys) + ")" if keys else ""


def _evaluation(report) -> str:
    if report is None:
        return ("## Evaluation\n\nNot evaluated yet: puzzle-ray's evaluate stage measures speed and quality against "
                "the parent, and publishing rewrites this card with its table.\n")
    lines = ["## Evaluation", "",
             "Parent vs child, measured by puzzle-ray's evaluate stage"
             + (f" ({', '.join(f'{k}={v}' for k, v in report.scenario.items())})" if report.scenario else "")
             + ". Speed and memory at the scenario's batch sizes; quality on held-out text (accuracies with their "
             "95 % interval where the report has one, and what guessing scores).", "",
             "| section | metric | parent | child | child vs parent | chance |", "|---|---|---:|---:|---:|---:|"]
    order = {"speed": 0, "quality": 1, "memory": 2}
    for r in sorted(report.rows, key=lambda r: order.get(r.section, 3)):
        versus = f"{r.ratio_name} {_fmt(r.ratio)}" if r.ratio_name and _finite(r.ratio) else ""
        if r.section == "speed" and _finite(r.ratio):
            versus = f"{r.ratio:.2f}x faster"  # (throughput and time rows alike: the speed-up)
        parent, child = (r.cell("parent"), r.cell("child")) if hasattr(r, "cell") else (_fmt(r.parent), _fmt(r.child))
        chance = _fmt(getattr(r, "chance", None))
        lines.append(f"| {r.section} | {r.metric} | {parent} | {child} | {versus} | {chance} |")
    if getattr(report, "notes", None):
        lines += ["", *[f"- {n}" for n in report.notes]]
    return "\n".join(lines) + "\n"


def _architecture(config: PuzzleConfig, parent: ParentInfo | None) -> str:
    heads = config.num_attention_heads
    lines = ["## Architecture", "",
             f"{config.num_hidden_layers} layers, hidden size {config.hidden_size}, {heads} query heads, vocabulary "
             f"{config.vocab_size:,}. Per layer:", "",
             f"| layer | attention | FFN | parameters | KV bytes/token ({KV_DTYPE}) |", "|---:|---|---|---:|---:|"]
    for i, b in enumerate(config.block_configs):
        att, ffn = block_labels(b, heads, "long")
        lines.append(f"| {i} | {att} | {ffn} | {attention_params(config, b) + ffn_params(config, b):,} "
                     f"| {kv_bytes_per_token(config, b, KV_DTYPE):,} |")
    return "\n".join(lines) + "\n"


def _license(parent: ParentInfo) -> str:
    if parent.license is None:
        return (f"## License\n\nNo license is recorded for the parent {parent.name}: its terms apply to this "
                "derived model; check them before use.\n")
    url = LICENSE_URLS.get(parent.license)
    name = f"[{parent.license}]({url})" if url else parent.license
    return (f"## License\n\n{name}, the license of the parent {parent.name}, whose weights this model is derived "
            "from.\n")


# -- the headline ----------------------------------------------------------------------------------------------
def speed_rows(report) -> dict[str, Any]:
    """The report's measured decode-throughput and prefill rows, by kind, at the largest batch size."""
    out: dict[str, Any] = {}
    for kind, prefix in (("decode", "decode_tokens_per_s@"), ("prefill", "prefill_ms@")):
        rows = [r for r in report.rows if r.section == "speed" and r.metric.startswith(prefix) and _finite(r.ratio)]
        if rows:
            out[kind] = max(rows, key=lambda r: _batch(r.metric))
    return out


def headline_text(report) -> str | None:
    """One line: measured speed-ups, then the quality the child keeps, e.g. '1.48x decode throughput (batch 8),
    1.69x prefill; 83% of the parent's next-token top-1, KL 0.79 nats from it'."""
    parts = []
    speed = speed_rows(report)
    if "decode" in speed:
        parts.append(f"{speed['decode'].ratio:.2f}x decode throughput (batch {_batch(speed['decode'].metric)})")
    if "prefill" in speed:
        parts.append(f"{speed['prefill'].ratio:.2f}x prefill")
    quality = []
    for metric, what in (("top1_accuracy", "next-token top-1"), ("lm_loss", "per-token likelihood")):
        try:
            row = report.row(metric, "quality")
        except KeyError:
            continue
        if _finite(row.ratio):
            quality.append(f"{row.ratio:.0%} of the parent's {what}")
    try:
        kl = report.row("kl_from_parent", "quality")
        if _finite(kl.child):
            quality.append(f"KL {kl.child:.3g} nats from it")
    except KeyError:
        pass
    text = ", ".join(parts)
    if quality:
        text += ("; " if text else "") + ", ".join(quality)
    return text or None


def _batch(metric: str) -> int:
    try:
        return int(metric.rsplit("@", 1)[1])
    except (IndexError, ValueError):
        return 0


# -- formatting ------------------------------------------------------------------------------------------------
def _plain(value):
    """Plain YAML-safe data: dicts with string keys, lists, strings, finite numbers (NaN becomes None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


_fmt = fmt_number  # one number format for reports, summaries and cards (puzzle_ray/ui.py)


def format_count(n: int) -> str:
    """A parameter count for people: '88.1 M', '139.7 K'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return str(int(n))


def _tokens(n) -> str:
    return f"{n:,}" if isinstance(n, int) else "an unrecorded number of"
