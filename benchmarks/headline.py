"""The headline benchmark: Puzzle against simpler compression of the same parent at equal speed.

    python benchmarks/headline.py             # benchmarks/headline.yaml: the embedded default parent (tiny-cpu)
    python benchmarks/headline.py --quick     # benchmarks/headline-quick.yaml: the micro parent, ~2 min
    python benchmarks/headline.py --config FILE [--targets 1.5 2] [--methods puzzle depth] [--results FILE]

For every target decode-throughput speed-up, children are built by
  puzzle   the workflow's own stages, the target as the MIP constraint `stats.decode_ms<=(1/target)*parent`
  hybrid   the same MIP after hybrid BLD: decoupled BLD, then coupled BLD on the variants the decoupled MIP
           chose at the targets (the same BLD token total as puzzle's; puzzle_ray.baselines.hybrid)
  uniform  one FFN width and KV-head count in every layer (the largest meeting the target), pruned from the
           parent by channel contribution and KV-head pooling, no BLD (Minitron-style)
  depth    whole layers removed, least block influence first, until the target is met (ShortGPT-style)
  greedy   the best objective-per-ms single-layer changes over Puzzle's library, until the target is met
  noop     the same MIP over the parent's blocks with attention and/or FFN removed only (no BLD)
  random   random architectures from Puzzle's library whose predicted speed is within the target's band
and every method is held to the same cost model: the MIP's sum of measured per-block decode times. Every child
then gets the same GKD (workflow `distill` section: same tokens, same config) and the same evaluation (workflow
`evaluate` section: measured prefill and decode speed, KL, top-1, in-context episodes). The tables go to
`results` (Markdown) and to MLflow (experiment `puzzle-ray-headline`: one run per benchmark, a nested run per
row). Everything is content-addressed in the workflow's artifact store (stages, children, GKD, evaluations):
a rerun with the same config recomputes nothing but the cheap architecture choices.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "headline.yaml"
QUICK_CONFIG = HERE / "headline-quick.yaml"
SHARED_STAGES = ("parent", "measure", "library", "score")


@contextmanager
def phase(what: str):
    """Log a step of the benchmark with its wall time."""
    from puzzle_ray.ui import console

    started = time.time()
    yield
    console.log(f"{what}: {time.time() - started:.1f} s")


@contextmanager
def nested_run(client, experiment_id: str, parent_run_id: str, name: str, tags: dict | None = None):
    """A child MLflow run of `parent_run_id`, active (fluent) while the block runs; yields its id."""
    import mlflow

    run = client.create_run(experiment_id, run_name=name, tags={"mlflow.parentRunId": parent_run_id, **(tags or {})})
    ok = False
    try:
        with mlflow.start_run(run_id=run.info.run_id, nested=True):
            yield run.info.run_id
        ok = True
    finally:
        client.set_terminated(run.info.run_id, "FINISHED" if ok else "FAILED")


class Headline:
    """One benchmark run: the shared Puzzle stages once, then every (target, method) row."""

    def __init__(self, config, workflow, client, experiment_id: str, run_id: str):
        from puzzle_ray.store import ArtifactStore
        from puzzle_ray.workflows.stages import STAGES

        self.config, self.workflow = config, workflow
        self.client, self.experiment_id, self.run_id = client, experiment_id, run_id
        self.store = ArtifactStore(workflow.store_url)
        self.stages = [s for s in STAGES if s.name != "publish"]

    # -- MLflow plumbing ------------------------------------------------------------------------------------
    def stage_context(self, parent_run_id: str, prefix: str = ""):
        @contextmanager
        def context(name: str, key: str):
            with nested_run(self.client, self.experiment_id, parent_run_id, f"{prefix}{name}",
                            {"puzzle_ray.stage": name, "puzzle_ray.stage_key": key}) as run_id:
                yield run_id
        return context

    # -- the shared stages: parent, measured costs, block library, scores -----------------------------------
    def prepare(self) -> None:
        import torch

        from puzzle_ray.arch.convert import convert_from_hf
        from puzzle_ray.arch.config import load_puzzle_config
        from puzzle_ray.arch.weights import fingerprint
        from puzzle_ray.baselines.calibration import calibrate_parent
        from puzzle_ray.baselines.costs import CostModel, cost_library
        from puzzle_ray.baselines.depth import REMOVED
        from puzzle_ray.baselines.uniform import uniform_candidates
        from puzzle_ray.configs import content_hash
        from puzzle_ray.data import open_token_cache
        from puzzle_ray.library.build import BLDData
        from puzzle_ray.library.record import Library

        with phase("shared stages: " + ", ".join(SHARED_STAGES)):
            self.outputs, self.keys = self.library_stages(self.workflow, "shared/")
        self.parent_dir = Path(self.outputs["parent"].model_dir)
        self.parent_fp = fingerprint(self.parent_dir)
        self.parent_config = load_puzzle_config(self.parent_dir)
        self.tokens = open_token_cache(self.outputs["parent"].tokens)
        measured = Library.read(self.store, self.outputs["measure"].library)
        # scores + measured costs: the MIP's input, and greedy's and random's
        self.library = self.scored_library(self.outputs)
        self._hybrid, self.hybrid_tokens = None, {}
        self.uniform_grid = []
        if "uniform" in self.config.methods:
            self.uniform_grid = uniform_candidates(self.parent_config, self.workflow.search_space.round_to)
        self.extra_blocks = [REMOVED] + self.uniform_grid
        m = self.workflow.measure
        hidden = self.parent_config.hidden_size
        key = "headline/costs/" + content_hash({"measure": self.keys["measure"],
                                               "extra": [b.to_dict(hidden) for b in self.extra_blocks]})
        with phase(f"cost library: {len(self.extra_blocks)} baseline blocks beside the library's"):
            if self.store.exists(f"{key}/block_library.json"):  # skips even the measurement fleet's start-up
                self.cost_library = Library.read(self.store, key)
            else:
                self.cost_library = cost_library(measured, self.parent_config, self.extra_blocks, m.scenario,
                                                 m.measure, self.store)
                self.cost_library.write(self.store, key)
            self.costs = CostModel(self.cost_library, self.parent_config)
        self.calibration = None
        if {"uniform", "depth"} & set(self.config.methods):
            with phase("parent calibration: FFN channel contributions, block influence"):
                parent = convert_from_hf(self.parent_dir, dtype=torch.float32).eval()
                batches = BLDData.from_tokens(self.tokens, self.workflow.bld).calibration()
                self.calibration = calibrate_parent(parent, batches)
                self.parent_model = parent

    def library_stages(self, workflow, prefix: str):
        """Run (or reuse) parent, measure, library and score for `workflow`: (stage outputs, stage keys)."""
        from puzzle_ray.workflows.engine import Runner

        runner = Runner([s for s in self.stages if s.name in SHARED_STAGES], workflow, self.store)
        runner.run(stage_context=self.stage_context(self.run_id, prefix))
        return {name: st.output for name, st in runner.status.items()}, runner.keys

    def scored_library(self, outputs):
        """The score stage's library with the measure stage's costs: the MIP's input."""
        from puzzle_ray.library.record import Library

        measured = Library.read(self.store, outputs["measure"].library)
        return Library.read(self.store, outputs["score"].library).with_costs(measured)

    def mip_solutions(self, library, target: float, num_solutions: int = 1) -> list:
        """The workflow's MIP over `library` at `target` (its objective and settings); [] when infeasible."""
        from puzzle_ray.solve import InfeasibleError, SearchConfig, search

        config = SearchConfig(**{**self.workflow.search.model_dump(), "constraints": [constraint(target)],
                                 "num_solutions": num_solutions, "use_ray": False})
        try:
            return search(library, config).solutions
        except InfeasibleError:
            return []

    # -- one row --------------------------------------------------------------------------------------------
    def row(self, target: float, method: str, label: str, choose, tags: dict | None = None):
        """Choose (cheap), build, distil and evaluate one child; every failure to meet the target is a row note."""
        from puzzle_ray.baselines.report import MethodResult, mlflow_metrics
        from puzzle_ray.ui import console

        result = MethodResult(target, method, label)
        started = time.time()
        name = f"{target:g}x/{label}"
        console.rule(f"[bold]{name}[/]")
        with nested_run(self.client, self.experiment_id, self.run_id, name,
                        {"headline.method": method, "headline.target": f"{target:g}", **(tags or {})}) as run_id:
            self.client.log_param(run_id, "method", method)
            self.client.log_param(run_id, "target_speedup", target)
            choose(result, run_id)
            result.seconds = time.time() - started
            if result.architecture:
                self.client.log_text(run_id, result.architecture, "architecture.txt")
            if result.note:
                self.client.set_tag(run_id, "headline.note", result.note)
            console.log(f"{name}: {result.note or 'evaluated'} ({result.seconds:.1f} s)")
            metrics = mlflow_metrics(result)
            if metrics:
                from mlflow.entities import Metric

                now = int(time.time() * 1000)
                self.client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        return result

    def distil_and_evaluate(self, result, child_dir: Path, run_id: str) -> None:
        """The same GKD and the same evaluation for every baseline child (cached by content)."""
        from puzzle_ray.arch.weights import fingerprint
        from puzzle_ray.baselines.stored import stored_report
        from puzzle_ray.configs import content_hash
        from puzzle_ray.distill import distill
        from puzzle_ray.evaluate import evaluate

        w = self.workflow
        distilled = distill(self.parent_dir, child_dir, self.tokens.train, w.distill, self.store,
                            mlflow_run_id=run_id, tokenizer_dir=self.parent_dir)
        key = content_hash({"parent": self.parent_fp, "child": fingerprint(distilled), "measure": self.keys["measure"],
                            "extra": [b.to_dict(self.parent_config.hidden_size) for b in self.extra_blocks],
                            "evaluate": w.evaluate.model_dump(mode="json"),
                            "scenario": w.measure.scenario.model_dump(mode="json")})
        result.report, reused = stored_report(self.store, key, lambda: evaluate(
            self.parent_dir, distilled, self.tokens.validation, w.measure.scenario, w.evaluate,
            library=self.cost_library))
        if reused:
            self.client.set_tag(run_id, "headline.eval_reused", "true")
        result.report.log_to_mlflow(run_id)

    def describe(self, blocks) -> str:
        from puzzle_ray.baselines.describe import describe_blocks

        return describe_blocks(blocks, self.parent_config)

    # -- methods --------------------------------------------------------------------------------------------
    def puzzle(self, target: float):
        from puzzle_ray.solve import InfeasibleError, SearchConfig
        from puzzle_ray.workflows.engine import Runner, StageFailed, format_exception

        def choose(result, run_id):
            search = SearchConfig(**{**self.workflow.search.model_dump(), "constraints": [constraint(target)]})
            name = f"{self.workflow.name}-headline-{target:g}x"
            cfg = self.workflow.model_copy(update={"search": search, "name": name})
            runner = Runner(self.stages, cfg, self.store)
            try:
                runner.run(stage_context=self.stage_context(run_id))
            except StageFailed as e:
                if isinstance(e.cause, InfeasibleError):
                    result.note = f"the MIP finds no architecture meeting {target:g}x"
                    return
                raise RuntimeError(f"Puzzle at {target:g}x: {format_exception(e)}") from e
            out = {name: st.output for name, st in runner.status.items()}
            blocks = [self.library.layers[i][n].block_config for i, n in enumerate(out["solve"].chosen)]
            result.architecture = self.describe(blocks)
            result.predicted_speedup = self.costs.speedup(blocks)
            result.report = out["evaluate"].eval_report
            result.report.log_to_mlflow(run_id)

        return self.row(target, "puzzle", "Puzzle (MIP)", choose)

    def pruned(self, target: float, method: str, label: str, pick):
        """A child pruned straight from the parent (uniform, depth): `pick()` -> (blocks, predicted, note)."""
        from puzzle_ray.arch.export import export_pretrained
        from puzzle_ray.baselines.prune import prune_from_parent
        from puzzle_ray.baselines.stored import stored_model
        from puzzle_ray.configs import content_hash

        def choose(result, run_id):
            blocks, note = pick()
            if blocks is None:
                result.note = note
                return
            result.architecture = self.describe(blocks)
            result.predicted_speedup = self.costs.speedup(blocks)
            bld = self.workflow.bld
            key = content_hash({"method": "prune", "parent": self.parent_fp,
                                "blocks": [b.to_dict(self.parent_config.hidden_size) for b in blocks],
                                "calibration": {"batches": bld.calibration_batches, "micro_batch": bld.micro_batch_size,
                                                "seed": bld.seed, "tokens": Path(self.outputs["parent"].tokens).name}})

            def build(folder: Path) -> None:
                child = prune_from_parent(self.parent_model, blocks, self.calibration)
                export_pretrained(child, folder, tokenizer=self.tokenizer(), overwrite=True)

            self.distil_and_evaluate(result, stored_model(self.store, key, build), run_id)

        return self.row(target, method, label, choose)

    def uniform(self, target: float):
        from puzzle_ray.baselines.uniform import choose_uniform, fastest_speedup

        def pick():
            choice = choose_uniform(self.costs, self.uniform_grid, target)
            if choice is None:
                fastest = fastest_speedup(self.costs, self.uniform_grid)
                return None, f"no uniform width / KV-head count meets {target:g}x (the fastest reaches {fastest:.2f}x)"
            return [choice.block] * self.parent_config.num_hidden_layers, None

        return self.pruned(target, "uniform", "uniform width", pick)

    def depth(self, target: float):
        from puzzle_ray.baselines.depth import choose_depth

        def pick():
            choice = choose_depth(self.calibration.influence, self.costs, target)
            if choice is None:
                return None, f"removing layers does not reach {target:g}x"
            return list(choice.blocks), None

        return self.pruned(target, "depth", "depth (block influence)", pick)

    def from_library(self, target: float, method: str, label: str, pick, tags: dict | None = None,
                     library=None):
        """A child assembled from a library (Puzzle's unless `library`, a (Library, stored key) pair, is given:
        greedy, no-op only, random, hybrid): `pick()` -> (variant names, note)."""
        from puzzle_ray.baselines.stored import stored_model
        from puzzle_ray.configs import content_hash
        from puzzle_ray.library.realize import realize

        lib, lib_key = library or (self.library, self.outputs["library"].library)

        def choose(result, run_id):
            chosen, note = pick()
            if chosen is None:
                result.note = note
                return
            blocks = [lib.layers[i][n].block_config for i, n in enumerate(chosen)]
            result.architecture = self.describe(blocks)
            result.predicted_speedup = self.costs.speedup(blocks)
            key = content_hash({"method": "library", "library": lib_key, "chosen": chosen})
            child = stored_model(self.store, key,
                                 lambda folder: realize(lib, chosen, self.store, folder, overwrite=True))
            self.distil_and_evaluate(result, child, run_id)

        return self.row(target, method, label, choose, tags)

    def greedy(self, target: float):
        from puzzle_ray.baselines.greedy import greedy_search

        def pick():
            chosen = greedy_search(self.library, self.costs, self.workflow.search.objective, target)
            return chosen, None if chosen else f"greedy changes cannot reach {target:g}x"

        return self.from_library(target, "greedy", "greedy (layer-wise)", pick)

    def noop(self, target: float):
        from puzzle_ray.baselines.noop import noop_only

        def pick():
            solutions = self.mip_solutions(noop_only(self.library), target)
            if not solutions:
                return None, f"removing attention and FFN sub-blocks does not reach {target:g}x"
            return solutions[0].chosen, None

        return self.from_library(target, "noop", "no-op only (MIP)", pick)

    def hybrid_library(self):
        """(scored library with costs, library key) of the hybrid BLD, built once for every target: decoupled BLD
        on the whole space with part of the tokens, the decoupled MIP's diverse solutions at every target, then
        coupled BLD of those solutions' variants with the rest (`puzzle_ray.baselines.hybrid`)."""
        from puzzle_ray.baselines.hybrid import coupled_space, space_units, split_budget
        from puzzle_ray.ui import console

        if self._hybrid is not None:
            return self._hybrid
        from puzzle_ray.library.build import BLDData

        w, c = self.workflow, self.config
        step = w.bld.micro_batch_size * BLDData.from_tokens(self.tokens, w.bld).seq_len  # tokens per BLD step
        units_d = space_units(w.search_space, self.parent_config, "decoupled")
        tokens_d, _ = split_budget(w.bld.token_budget, step, c.hybrid_coupled_fraction, units_d, units_d)
        decoupled = w.model_copy(update={"name": f"{w.name}-hybrid-decoupled",
                                         "bld": w.bld.model_copy(update={"token_budget": tokens_d})})
        with phase(f"hybrid: decoupled BLD, {tokens_d:,} tokens for each of {units_d} units"):
            outputs_d, _ = self.library_stages(decoupled, "hybrid/decoupled/")
        library_d = self.scored_library(outputs_d)
        solutions = [s.chosen for t in (c.hybrid_targets or c.targets)
                     for s in self.mip_solutions(library_d, t, c.hybrid_solutions)]
        space = coupled_space(library_d, solutions, self.parent_config, w.search_space.round_to)
        units_c = space_units(space, self.parent_config, "coupled")
        _, tokens_c = split_budget(w.bld.token_budget, step, c.hybrid_coupled_fraction, units_d, units_c)
        self.hybrid_tokens = {"hybrid_decoupled_tokens_per_unit": tokens_d, "hybrid_decoupled_units": units_d,
                              "hybrid_coupled_tokens_per_unit": tokens_c, "hybrid_coupled_units": units_c,
                              "hybrid_bld_tokens": tokens_d * units_d + tokens_c * units_c,
                              "puzzle_bld_tokens": w.bld.token_budget * units_d}
        for k, v in self.hybrid_tokens.items():
            self.client.log_param(self.run_id, k, v)
        console.log(f"hybrid: {len(solutions)} decoupled solutions -> {units_c} coupled units; BLD tokens "
                    f"{self.hybrid_tokens['hybrid_bld_tokens']:,} in all (Puzzle's: "
                    f"{self.hybrid_tokens['puzzle_bld_tokens']:,})")
        coupled = w.model_copy(update={"name": f"{w.name}-hybrid-coupled", "search_space": space,
                                       "bld": w.bld.model_copy(update={"mode": "coupled", "token_budget": tokens_c})})
        with phase(f"hybrid: coupled BLD, {tokens_c:,} tokens for each of {units_c} units"):
            outputs_c, _ = self.library_stages(coupled, "hybrid/coupled/")
        self._hybrid = (self.scored_library(outputs_c), outputs_c["library"].library)
        return self._hybrid

    def hybrid(self, target: float):
        library = self.hybrid_library()

        def pick():
            solutions = self.mip_solutions(library[0], target)
            if not solutions:
                return None, f"the MIP over the hybrid's coupled library finds no architecture meeting {target:g}x"
            return solutions[0].chosen, None

        return self.from_library(target, "hybrid", "Puzzle (hybrid BLD)", pick, library=library)

    def random(self, target: float) -> list:
        from puzzle_ray.baselines.random_search import NoRandomArchitecture, random_architecture

        rows = []
        for draw in range(self.config.random_samples):
            def pick(draw=draw):
                try:
                    return random_architecture(self.library, self.costs, target, [self.config.seed, draw],
                                               self.config.random_band), None
                except NoRandomArchitecture as e:
                    return None, str(e)

            rows.append(self.from_library(target, "random", f"random (draw {draw})", pick,
                                          {"headline.draw": str(draw)}))
        return rows

    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.parent_dir, trust_remote_code=False)

    def run_target(self, target: float) -> list:
        rows = []
        for method in self.config.methods:
            out = getattr(self, method)(target)
            rows += out if isinstance(out, list) else [out]
        return rows


def constraint(target: float) -> str:
    """The MIP constraint of a decode-throughput target (throughput = batch / decode step time)."""
    return f"stats.decode_ms<={1 / target!r}*parent"


def setup_lines(h: Headline) -> list[str]:
    w, s = h.workflow, h.workflow.measure.scenario
    p, block = h.parent_config, h.parent_config.block_configs[0]
    a, f = block.attention, block.ffn
    kv = a.kind.size(a, p.num_attention_heads) if a.kind.resizable else a.kind
    ffn = f.kind.size(f) if f.kind.resizable else f.kind
    lines = [
        f"Parent: workflow `{w.name}`'s ({p.num_hidden_layers} layers, hidden {p.hidden_size}, {p.num_attention_heads} "
        f"heads / {kv} KV heads, FFN {ffn}, vocabulary {p.vocab_size}; fingerprint {h.parent_fp})",
        f"Scenario: batch {s.batch_sizes[0]}, prefill {s.prefill_len}, decode {s.decode_len} tokens, {s.dtype}; "
        f"predicted parent decode step {h.costs.parent_total:.3f} ms",
        f"Search space: attention {w.search_space.attention}, FFN {w.search_space.ffn} "
        f"(round to {w.search_space.round_to}); "
        f"BLD {w.bld.token_budget:,} tokens per variant; MIP objective `{w.search.objective}`",
        f"GKD for every child: {w.distill.token_budget:,} tokens, {w.distill.engine}, "
        f"{w.distill.num_workers} worker(s), "
        f"lr {w.distill.lr:g}, seed {w.distill.seed}",
        f"Evaluation: {w.evaluate.max_batches} held-out batches of {w.evaluate.batch_size}; "
        f"episodes {w.evaluate.episode_count} x demos {w.evaluate.episode_demos}, "
        f"{w.evaluate.episode_classes} classes; speed {w.evaluate.measure.warmup} warm-up + "
        f"{w.evaluate.measure.repeats} timed requests, {w.evaluate.measure.torch_threads} thread(s)",
        f"Random architectures: {h.config.random_samples} per target, predicted decode time within "
        f"[{h.config.random_band:g} x budget, budget]; seed {h.config.seed}",
    ]
    if h.hybrid_tokens:
        t = h.hybrid_tokens
        lines.append(
            f"Hybrid BLD: decoupled {t['hybrid_decoupled_tokens_per_unit']:,} tokens x {t['hybrid_decoupled_units']} "
            f"units, then coupled {t['hybrid_coupled_tokens_per_unit']:,} tokens x {t['hybrid_coupled_units']} "
            f"pairs (the variants of the decoupled MIP's {h.config.hybrid_solutions} diverse solutions per target) "
            f"= {t['hybrid_bld_tokens']:,} tokens; Puzzle's decoupled BLD: {t['puzzle_bld_tokens']:,}")
    return lines


def run_headline(config, workflow):
    """Run (or resume) the benchmark; returns the HeadlineReport (also written to `config.results` and MLflow)."""
    import mlflow
    from mlflow import MlflowClient

    from puzzle_ray.baselines.figure import headline_figure
    from puzzle_ray.baselines.report import HeadlineReport, machine_info
    from puzzle_ray.cluster import connect
    from puzzle_ray.workflows.preflight import preflight
    from puzzle_ray.workflows.tracking import tracking_uri

    from puzzle_ray.store import ArtifactStore

    preflight(workflow, ArtifactStore(workflow.store_url))  # cheap checks before any work
    if config.results is not None:
        config.results.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    machine = machine_info() | {"load_start": f"{os.getloadavg()[0]:.2f}"}
    with phase("Ray"):
        connect(workflow.ray.num_cpus, workflow.ray.num_gpus, workflow.ray.object_store_mb)
    uri = tracking_uri(workflow.mlflow.tracking_uri)
    mlflow.set_tracking_uri(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # Ray Train workers log GKD metrics there too
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(config.experiment)
    run = client.create_run(experiment_id, run_name=f"headline-{workflow.name}")
    # start_run(run_id=...) insists that the run is in the active experiment (an earlier workflow in the same
    # process may have set another)
    mlflow.set_experiment(experiment_id=experiment_id)
    ok = False
    try:
        with mlflow.start_run(run_id=run.info.run_id):
            mlflow.log_dict(config.model_dump(mode="json"), "headline_config.json")
            mlflow.log_dict(workflow.model_dump(mode="json"), "workflow_config.json")
            h = Headline(config, workflow, client, experiment_id, run.info.run_id)
            h.prepare()
            results = []
            for target in config.targets:
                results += h.run_target(target)
            machine |= {"load_end": f"{os.getloadavg()[0]:.2f}", "wall_s": time.time() - started}
            title = f"Headline benchmark: Puzzle vs. simpler compression at equal speed ({workflow.name})"
            report = HeadlineReport(title, results, machine, setup_lines(h))
            text = report.markdown()
            figure = headline_figure(results, Path(tempfile.mkdtemp()) / "headline.png", title)
            mlflow.log_artifact(str(figure))
            mlflow.log_text(text, "headline.md")
            mlflow.log_table(table_columns(results), "headline_table.json")
            mlflow.log_metric("wall_s", machine["wall_s"])
            ok = True
    finally:
        client.set_terminated(run.info.run_id, "FINISHED" if ok else "FAILED")
    if config.results is not None:
        config.results.write_text(text)
        shutil.copyfile(figure, config.results.with_suffix(".png"))
    return report


def table_columns(results) -> dict[str, list]:
    """The rows as MLflow table columns (every figure of every row; missing ones as None)."""
    from puzzle_ray.baselines.report import mlflow_metrics

    rows = [{"target": r.target, "method": r.method, "label": r.label, "architecture": r.architecture,
             "note": r.note or "", **mlflow_metrics(r)} for r in results]
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k) for row in rows] for k in keys}


def print_tables(report, console) -> None:
    """The per-target tables on the terminal (the Markdown file has the same cells)."""
    from rich.table import Table

    from puzzle_ray.baselines.report import target_rows, verdict

    for target in sorted({r.target for r in report.results}):
        results = [r for r in report.results if r.target == target]
        head, rows = target_rows(results)
        table = Table(title=f"target {target:g}x decode throughput", caption=verdict(results))
        for col in head:
            table.add_column(col, overflow="fold")
        for cells in rows:
            table.add_row(*cells, style="bold" if cells[0].startswith("Puzzle") else None)
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    from puzzle_ray.baselines.config import load_headline
    from puzzle_ray.ui import console, fail
    from puzzle_ray.workflows.config import ConfigError

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, help=f"headline config (default {DEFAULT_CONFIG.name})")
    ap.add_argument("--quick", action="store_true", help=f"the small version ({QUICK_CONFIG.name})")
    ap.add_argument("--targets", type=float, nargs="+", help="override the config's speed-up targets")
    ap.add_argument("--methods", nargs="+", help="override the config's methods")
    ap.add_argument("--results", type=Path, help="override the Markdown output file")
    args = ap.parse_args(argv)
    if args.config and args.quick:
        fail("give --config or --quick, not both")
    path = args.config or (QUICK_CONFIG if args.quick else DEFAULT_CONFIG)
    try:
        config, workflow = load_headline(path, targets=args.targets, methods=args.methods)
    except ConfigError as e:
        fail(str(e))
    if args.results:
        config = config.model_copy(update={"results": args.results.resolve()})
    from puzzle_ray.ui import quiet_third_party

    quiet_third_party()  # as `puzzle-ray run` does: no transformers/Ray bars and notices among ours
    report = run_headline(config, workflow)
    from rich.console import Console

    print_tables(report, Console(width=max(console.width, 200)))
    if config.results is not None:
        console.print(f"written: {config.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
