"""Typed stage outputs: their JSON form is exactly the record layout of finished runs, the runner hands typed
outputs to later stages (from this run or from records), and every shipped plan sets its scoring batch size."""

from pathlib import Path

import pytest
import yaml

from puzzle_ray.baselines.config import load_headline
from puzzle_ray.store import ArtifactStore
from puzzle_ray.workflows import load_config
from puzzle_ray.workflows.engine import Runner, Stage
from puzzle_ray.workflows.outputs import (
    CheckOutput,
    EvaluateOutput,
    LibraryOutput,
    MeasureOutput,
    ModelOutput,
    ParentOutput,
    PublishOutput,
    ScoreOutput,
    SolveOutput,
)
from puzzle_ray.workflows.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
PLANS = sorted((ROOT / "workflows").glob("*.yaml")) + [ROOT / "tests" / "assets" / "micro-workflow.yaml"]

RECORDS = {  # `outputs` of record.json files written before the outputs were typed
    "parent": (ParentOutput, {"model_dir": "/p", "tokens": "/t/abc", "train_tokens": 100, "validation_tokens": 10,
                              "quality_report": None}),
    "measure": (MeasureOutput, {"library": "stages/measure/k"}),
    "check": (CheckOutput, {"feasible": True, "smallest": {"stats.num_params": 12.0}}),
    "library": (LibraryOutput, {"library": "library/abc", "entries": 6, "reused": False}),
    "score": (ScoreOutput, {"library": "stages/score/k"}),
    "solve": (SolveOutput, {"library": "stages/solve/k", "chosen": ["a", "b"], "objective": 0.5,
                            "costs": {"stats.num_params": 3.0}, "batch_size": 2, "status": "optimal"}),
    "realize": (ModelOutput, {"model_dir": "/m"}),
    "distill": (ModelOutput, {"model_dir": "/d"}),
    "evaluate": (EvaluateOutput, {"report": {"rows": []}}),
    "publish": (PublishOutput, {"published": True, "model_uri": "models:/x@c", "version": "3"}),
}


@pytest.mark.parametrize("stage", list(RECORDS))
def test_outputs_round_trip_to_the_record_layout(stage):
    cls, record = RECORDS[stage]
    assert {s.name: s.output for s in STAGES}[stage] is cls
    typed = cls.from_json(record)
    assert typed.to_json() == record
    with pytest.raises(AttributeError):  # frozen
        typed.library = "x"


def test_unpublished_record_is_one_flag():
    assert PublishOutput(published=False).to_json() == {"published": False}
    assert PublishOutput.from_json({"published": False}) == PublishOutput(False)


def test_runner_gives_typed_inputs_now_and_from_records(tmp_path):
    store, seen = ArtifactStore(tmp_path / "store"), []

    def first(ctx):
        return ModelOutput(model_dir="/somewhere")

    def second(ctx):
        seen.append(ctx.inputs["first"])
        return ScoreOutput(library=ctx.inputs["first"].model_dir)

    stages = [Stage("first", (), lambda c: {}, first, ModelOutput), Stage("second", ("first",), lambda c: {}, second,
                                                                            ScoreOutput)]
    status = Runner(stages, None, store).run()
    assert status["second"].output == ScoreOutput("/somewhere")
    assert status["second"].outputs == {"library": "/somewhere"}
    again = Runner(stages, None, store)
    assert again.status["first"].state == "cached" and again.status["first"].output == ModelOutput("/somewhere")
    again.run(only="second")
    assert seen == [ModelOutput("/somewhere")] * 2  # typed, whether the input ran now or in an earlier run


def test_a_damaged_completion_record_is_named_and_its_stage_runs_again(tmp_path, caplog):
    from puzzle_ray.store import CorruptRecord
    from puzzle_ray.workflows.engine import record_key

    store, runs = ArtifactStore(tmp_path / "store"), []

    def first(ctx):
        runs.append(ctx.key)
        return ModelOutput(model_dir="/somewhere")

    stages = [Stage("first", (), lambda c: {}, first, ModelOutput)]
    key = Runner(stages, None, store).run()["first"].key
    record = record_key("first", key)
    store.write_bytes(record, store.read_bytes(record)[:25])  # truncated, as by a full disk
    with pytest.raises(CorruptRecord, match=rf"stages/first/{key}/record.json: not valid JSON"):
        store.read_json(record)
    again = Runner(stages, None, store)
    assert again.status["first"].state == "pending" and "completion record is damaged" in caplog.text
    again.run()
    assert len(runs) == 2 and store.read_json(record)["outputs"] == {"model_dir": "/somewhere"}


def test_a_stage_returning_the_wrong_type_fails(tmp_path):
    from puzzle_ray.workflows.engine import StageFailed

    stage = Stage("only", (), lambda c: {}, lambda ctx: {"model_dir": "/x"}, ModelOutput)
    with pytest.raises(StageFailed, match="returned dict, not ModelOutput"):
        Runner([stage], None, ArtifactStore(tmp_path / "store")).run()


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_every_shipped_plan_sets_the_scoring_batch_size(path):
    """Explicitly, at the plan's BLD micro-batch size (what scoring used before it had its own field)."""
    raw = yaml.safe_load(path.read_text())
    assert "batch_size" in raw["score"], f"{path.name}: score.batch_size is not set"
    assert raw["score"]["batch_size"] == raw["bld"]["micro_batch_size"]


@pytest.mark.parametrize("name", ["headline.yaml", "headline-quick.yaml"])
def test_headline_plans_score_at_their_workflow_batch_size(name):
    _, workflow = load_headline(ROOT / "benchmarks" / name)
    assert workflow.score.batch_size == workflow.bld.micro_batch_size


def test_score_stage_key_is_unchanged_by_its_own_batch_size(monkeypatch):
    """Finished runs keep the score stage's key: the slice is the one computed from BLD's micro-batch before."""
    monkeypatch.chdir(ROOT)
    cfg = load_config(ROOT / "workflows" / "tiny-cpu.yaml")
    score = next(s for s in STAGES if s.name == "score")
    old = {"score": {k: v for k, v in cfg.score.model_dump(mode="json").items() if k != "batch_size"},
           "batch": cfg.bld.micro_batch_size}
    assert score.config_slice(cfg) == old
