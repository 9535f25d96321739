"""Publishing: the exported child with its tokenizer is registered in MLflow under an alias, with its report,
and `mlflow.transformers.load_model` in a fresh process (no remote code) gives a model that generates the same
text as the original."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM
from puzzle_ray.arch.export import export_pretrained
from puzzle_ray.distill import TensorBatchSource
from puzzle_ray.evaluate import EvalConfig, PublishError, evaluate, publish
from puzzle_ray.measure import Scenario
from tests.tiny_models import tiny_llama

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the bird sang in the tree", "one two three four five"]
PROMPT = "the cat"


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained here on a few strings (no download)."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(TEXTS, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "<s>", "</s>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
                                   eos_token="</s>")


@pytest.fixture(scope="module")
def child_dir(tmp_path_factory):
    tokenizer = tiny_tokenizer()
    ids = tokenizer.convert_tokens_to_ids(["[PAD]", "<s>", "</s>"])
    config = PuzzleConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          block_configs=[{"attention": {"n_heads_in_group": 2}, "ffn": {"intermediate_size": 48}},
                                         {"attention": {"no_op": True}, "ffn": {"replace_with_linear": True}}],
                          max_position_embeddings=64, initializer_range=0.3, pad_token_id=ids[0], bos_token_id=ids[1],
                          eos_token_id=ids[2])
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("publish") / "child"
    export_pretrained(PuzzleForCausalLM(config).eval(), folder, tokenizer=tokenizer)
    return folder


def _greedy(model_dir, new_tokens=6) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    return tok.decode(out[0], skip_special_tokens=True)


LOAD_SCRIPT = """
import json, os, sys
os.environ["HF_HUB_OFFLINE"] = "1"
import mlflow
import puzzle_ray  # registers the nemotron-nas model type with transformers' Auto classes
mlflow.set_tracking_uri(sys.argv[1])
pipe = mlflow.transformers.load_model(sys.argv[2])
out = pipe(sys.argv[3], max_new_tokens=6, min_new_tokens=6, do_sample=False)[0]["generated_text"]
print(json.dumps({"class": type(pipe.model).__name__, "text": out, "auto_map": hasattr(pipe.model.config, "auto_map")}))
"""


@pytest.mark.integration
def test_publish_registers_an_alias_with_the_report_and_the_model_round_trips(child_dir, mlflow_uri, tmp_path,
                                                                              capfd):
    import mlflow

    data = TensorBatchSource(torch.randint(0, 12, (4, 8), generator=torch.Generator().manual_seed(0)))
    report = evaluate(child_dir, child_dir, data, Scenario(batch_sizes=[1], prefill_len=4, decode_len=2, dtype="fp32"),
                      EvalConfig(batch_size=2, measure_speed=False, episode_count=10, episode_demos=[0, 2]))
    assert report.row("episode_accuracy@2").ratio == 1.0  # the data layer's held-out episodes were scored
    name = f"tiny-child-{time.time_ns()}"
    exp = mlflow.create_experiment(name, artifact_location=(tmp_path / "mlruns").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        published = publish(child_dir, name, alias="candidate", report=report)
    assert published.run_id == run.info.run_id and published.model_uri == f"models:/{name}@candidate"
    printed = capfd.readouterr()
    assert "Successfully registered" not in printed.err + printed.out  # MLflow's own event lines are muted
    assert "Created version" not in printed.err + printed.out

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(name, "candidate")
    assert str(version.version) == published.version
    assert version.tags["eval.kl_from_parent"] == "0"
    # KL from the parent has no retention (evaluate/retention.py: the parent's own KL is 0 by definition).
    assert "eval.kl_from_parent.retention" not in version.tags
    assert version.tags["eval.top1_accuracy.retention"] == "1"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "eval")} == {"eval/eval_report.json",
                                                                                 "eval/eval_report.md"}
    requirements = (tmp_path / "req.txt")
    requirements.write_text(open(mlflow.artifacts.download_artifacts(f"{published.model_uri}/requirements.txt")).read())
    # No pin of puzzle-ray (no index has it): the model carries its code instead; the pins that install stay.
    assert "torchvision" not in requirements.read_text() and "puzzle-ray" not in requirements.read_text()
    assert "torch==" in requirements.read_text() and "transformers==" in requirements.read_text()
    assert "puzzle_ray_pyfunc.py" in {a.path.rsplit("/", 1)[-1] for a in
                                      mlflow.artifacts.list_artifacts(f"{published.model_uri}/code")}

    script = [sys.executable, "-c", textwrap.dedent(LOAD_SCRIPT), mlflow_uri, published.model_uri, PROMPT]
    result = subprocess.run(script, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["class"] == "PuzzleForCausalLM" and not loaded["auto_map"]
    expected = _greedy(child_dir)
    assert len(expected.split()) > len(PROMPT.split())  # it really generated words
    # The pipeline glues the prompt and the continuation without the word-level decoder's spaces.
    assert loaded["text"].replace(" ", "") == expected.replace(" ", "")


IMPORTS_SCRIPT = """
import json, sys
before = set(sys.modules)
import puzzle_ray
getattr(puzzle_ray, "register_auto_classes", lambda: None)()
from transformers import AutoModelForCausalLM, AutoTokenizer
AutoModelForCausalLM.from_pretrained(sys.argv[1]).generate(
    **AutoTokenizer.from_pretrained(sys.argv[1])("the cat", return_tensors="pt"), max_new_tokens=2)
print(json.dumps(sorted({m.partition(".")[0] for m in set(sys.modules) - before})))
"""


def _canonical(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _with_dependencies(names: set[str]) -> set[str]:
    """`names` and everything they require (installed here, extras left out), canonical names."""
    import importlib.metadata

    from packaging.requirements import Requirement

    todo, seen = [_canonical(n) for n in names], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_canonical(req.name))
    return seen


def test_serving_requirements_cover_what_loading_a_child_imports(child_dir):
    """requirements.txt must build an environment where the logged code loads the model: every distribution
    that importing puzzle_ray and loading a child imports is pinned or comes with a pinned one (or mlflow)."""
    import importlib.metadata

    from puzzle_ray.evaluate import pip_requirements
    from puzzle_ray.evaluate.publish import code_paths

    reqs = pip_requirements()
    assert reqs and not any(_canonical(r).startswith("puzzle-ray") for r in reqs)
    assert {r.split("==")[0] for r in reqs} >= {"torch", "transformers"} and all("==" in r for r in reqs)
    out = subprocess.run([sys.executable, "-c", IMPORTS_SCRIPT, str(child_dir)], capture_output=True, text=True,
                         check=True, timeout=300)
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    by_module = importlib.metadata.packages_distributions()
    covered = _with_dependencies({r.split("==")[0] for r in reqs} | {"mlflow"})
    # A module is covered when one of the distributions that ship it is (`google` is a namespace several share).
    # torch.utils.data imports dill only when it is installed (`torch.utils._import_utils.dill_available`).
    optional = {"dill"}
    missing = {m for m in modules if by_module.get(m) and not {_canonical(d) for d in by_module[m]} & covered}
    assert len(modules) > 10 and not missing - optional - {"puzzle_ray"}, missing
    package, loader = map(Path, code_paths())
    assert (package / "__init__.py").is_file() and package.name == "puzzle_ray" and loader.is_file()

def test_publishing_refuses_folders_it_cannot_serve(child_dir, tmp_path):
    import shutil

    bare = tmp_path / "no-tokenizer"
    shutil.copytree(child_dir, bare)
    for f in bare.glob("tokenizer*"):
        f.unlink()
    with pytest.raises(PublishError, match="no-tokenizer: no tokenizer"):
        publish(bare, "x")
    export_pretrained_llama = tmp_path / "llama"
    tiny_llama().save_pretrained(export_pretrained_llama)
    with pytest.raises(PublishError, match="not in the nemotron-nas export layout"):
        publish(export_pretrained_llama, "x")
    with pytest.raises(PublishError, match="missing: not a model folder"):
        publish(tmp_path / "missing", "x")


def test_publish_cli_checks_every_input_before_mlflow(child_dir, tmp_path, monkeypatch):
    import mlflow
    from typer.testing import CliRunner

    from puzzle_ray.cli import app

    monkeypatch.chdir(tmp_path)  # MLflow's default store would be ./mlflow.db
    monkeypatch.setattr(mlflow, "set_experiment", lambda *a, **k: pytest.fail("MLflow was set up"))
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "binary" / "config.json").parent.mkdir()
    (tmp_path / "binary" / "config.json").write_bytes(bytes(range(128, 256)))
    for args, message in ((["binary", "--name", "x"], "binary/config.json: not a JSON text file"),
                          ([child_dir, "--name", ""], "--name '': give a non-empty name"),
                          ([child_dir, "--name", "x", "--alias", " "], "--alias ' ': give a non-empty alias"),
                          ([tmp_path / "missing", "--name", "x"], "missing: not a model folder"),
                          ([child_dir, "--name", "x", "--report", "nosuch.json"], "--report nosuch.json: no such file"),
                          ([child_dir, "--name", "x", "--report", "bad.json"], "--report bad.json: not an eval")):
        res = CliRunner().invoke(app, ["publish", *map(str, args)])
        assert res.exit_code == 2 and message in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "binary"]


PYFUNC_SCRIPT = """
import importlib.abc, importlib.machinery, importlib.util, json, os, sys
os.environ["HF_HUB_OFFLINE"] = "1"


class OnlyTheModelsCode(importlib.abc.MetaPathFinder):
    # puzzle_ray (and the model's loader) may come from the model's own code/ folder only, not from this
    # environment's installation, however it was installed (editable finders included).
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] not in ("puzzle_ray", "puzzle_ray_pyfunc"):
            return None
        if "." in name:
            return importlib.machinery.PathFinder.find_spec(name, path)
        code = [p for p in sys.path if os.path.basename(p.rstrip(os.sep)) == "code"]
        spec = importlib.machinery.PathFinder.find_spec(name, code) if code else None
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} outside the model's code", name=name)
        return spec


sys.meta_path.insert(0, OnlyTheModelsCode())
try:
    importlib.util.find_spec("puzzle_ray")
    raise SystemExit("puzzle_ray is importable before the model is loaded")
except ModuleNotFoundError:
    pass
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
out = model.predict([sys.argv[3]], params={"max_new_tokens": 6, "min_new_tokens": 6})
import puzzle_ray
print(json.dumps({"text": out[0], "puzzle_ray": puzzle_ray.__file__, "params": sorted(
    p.name for p in model.metadata.get_params_schema().params)}))
"""


@pytest.mark.integration
def test_published_version_describes_itself_and_serves_from_its_own_code(child_dir, mlflow_uri, tmp_path):
    """The version's source is the workflow's parent run; it has a description, speed-up tags, an input example,
    generation params, our license file, and its pyfunc loads where puzzle_ray is not installed."""
    import shutil

    import mlflow
    import yaml

    from puzzle_ray.arch.card import CardFacts, ParentInfo, child_card, write_card
    from puzzle_ray.arch.config import load_puzzle_config
    from puzzle_ray.evaluate.report import Row

    folder = tmp_path / "child"
    shutil.copytree(child_dir, folder)
    facts = CardFacts(ParentInfo("TinyParent", "org/tiny-parent", "apache-2.0"),
                      search={"objective": "metrics.kl_div", "constraints": ["stats.decode_ms<=0.6*parent"]})
    write_card(folder, child_card(load_puzzle_config(folder), facts))
    data = TensorBatchSource(torch.randint(0, 12, (4, 8), generator=torch.Generator().manual_seed(0)))
    report = evaluate(folder, folder, data, Scenario(batch_sizes=[1], prefill_len=4, decode_len=2, dtype="fp32"),
                      EvalConfig(batch_size=2, measure_speed=False, episode_count=10, episode_demos=[0]))
    # Speed rows as the evaluate stage writes them when it measures (measuring a tiny model here would be noise).
    report.rows += [Row("speed", "decode_tokens_per_s@1", "higher", 100.0, 130.0),
                    Row("speed", "decode_tokens_per_s@8", "higher", 400.0, 600.0),
                    Row("speed", "prefill_ms@8", "time", 50.0, 40.0)]

    client = mlflow.MlflowClient()
    name = f"tiny-described-{time.time_ns()}"
    exp = mlflow.create_experiment(name, artifact_location=(tmp_path / "mlruns").as_uri())
    workflow_run = client.create_run(exp, run_name="workflow").info.run_id
    stage_run = client.create_run(exp, run_name="publish", tags={"mlflow.parentRunId": workflow_run}).info.run_id
    published = publish(folder, name, report=report, run_id=stage_run, source_run_id=workflow_run)

    version = client.get_model_version(name, published.version)
    assert version.run_id == workflow_run == published.run_id  # the run reviewers open, not the stage's
    assert version.tags["eval.decode_speedup"] == "1.5" and version.tags["eval.decode_speedup_at_1"] == "1.3"
    assert version.tags["eval.prefill_speedup"] == "1.25" and version.tags["puzzle_ray.parent"] == "TinyParent"
    assert version.tags["license"] == "apache-2.0"
    assert version.description.startswith("Puzzle child of TinyParent (org/tiny-parent), made by puzzle-ray: "
                                          "1.50x decode throughput (batch 8), 1.25x prefill; 100% of the parent's")
    assert "mlflow.pyfunc.load_model" in version.description
    logged = client.get_logged_model(published.model_id)
    assert logged.source_run_id == workflow_run
    linked = {m.key for m in logged.metrics or []}
    assert {"eval/quality/lm_loss/child", "eval/speed/decode_tokens_per_s_at_8/retention"} <= linked
    assert {a.path for a in client.list_artifacts(stage_run, "eval")} == {"eval/eval_report.json",
                                                                          "eval/eval_report.md"}

    files = Path(mlflow.artifacts.download_artifacts(published.model_uri, dst_path=str(tmp_path / "artifacts")))
    mlmodel = yaml.safe_load((files / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "puzzle_ray_pyfunc"
    assert mlmodel["saved_input_example_info"] and "max_new_tokens" in mlmodel["signature"]["params"]
    assert (files / "code" / "puzzle_ray" / "__init__.py").is_file()
    assert (files / "code" / "puzzle_ray_pyfunc.py").is_file()
    assert "puzzle-ray" not in (files / "requirements.txt").read_text()
    licence = (files / "LICENSE.txt").read_text()
    assert "apache-2.0" in licence and "org/tiny-parent" in licence and "huggingface.co" not in licence
    card = (files / "model_card.md").read_text()
    assert card.lstrip().startswith(f"# {name}: a Puzzle child of TinyParent\n")
    assert "| speed | decode_tokens_per_s@8 | 400 | 600 |" in card and "`stats.decode_ms<=0.6*parent`" in card
    assert yaml.safe_load((files / "model_card_data.yaml").read_text())["base_model"] == "org/tiny-parent"
    assert (folder / "README.md").read_text().lstrip().startswith("---")  # the folder's card has the table too
    assert "| speed | decode_tokens_per_s@8 | 400 | 600 |" in (folder / "README.md").read_text()

    script = [sys.executable, "-c", textwrap.dedent(PYFUNC_SCRIPT), mlflow_uri, published.model_uri, PROMPT]
    result = subprocess.run(script, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert f"{os.sep}code{os.sep}puzzle_ray{os.sep}" in loaded["puzzle_ray"]  # the model's own copy
    assert len(loaded["text"].replace(" ", "")) > len(PROMPT.replace(" ", ""))
    assert loaded["text"].replace(" ", "") == _greedy(folder).replace(" ", "")  # the same greedy text
    assert {"max_new_tokens", "do_sample", "temperature"} <= set(loaded["params"])
