"""Many-shot evaluation: tasks, shots per window, balanced windows, the pcw-eval stage, MLflow, the CLI."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from puzzle_ray.pcw.config import PCWEvalConfig
from puzzle_ray.pcw.shots import balance_windows, shots_per_window
from puzzle_ray.pcw.tasks import PrefixFormat, episode_tasks, jsonl_task, load_jsonl

from .test_pcw_tiny import build, char_tokenizer

LABELS = ["red", "blue", "green", "gold"]  # "green" and "gold" share their first character


def write_jsonl(path, n, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for _ in range(n):
            label = int(rng.integers(len(LABELS)))
            words = " ".join("".join(rng.choice(list("abcdefgh"), size=int(rng.integers(2, 6)))) for _ in range(3))
            f.write(json.dumps({"text": f"{LABELS[label][:2]} {words}", "label": LABELS[label]}) + "\n")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    model = build("llama", max_position_embeddings=192, dtype=__import__("torch").float32)
    model.save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("jsonl")
    return write_jsonl(root / "train.jsonl", 60, seed=1), write_jsonl(root / "test.jsonl", 8, seed=2)


def test_shots_per_window_follows_the_90th_percentile():
    # 90th percentile of (10..19) + 2 is 20.1: (200 - 20) / 20.1 -> 8 shots
    assert shots_per_window(list(range(10, 20)), 2, 20, 200) == 8
    assert shots_per_window([50], 0, 190, 200) == 0


def test_balanced_windows_have_equal_counts_and_close_lengths():
    lengths = [30, 1, 1, 1, 29, 2, 2, 3, 28]
    windows = balance_windows(lengths, 3, np.random.default_rng(0))
    assert sorted(i for w in windows for i in w) == list(range(9)) and all(len(w) == 3 for w in windows)
    totals = sorted(sum(lengths[i] for i in w) for w in windows)
    assert totals[-1] - totals[0] <= 3  # every window gets one long shot
    with pytest.raises(ValueError, match="do not split"):
        balance_windows(lengths[:8], 3, np.random.default_rng(0))


def test_jsonl_loading_and_errors(tmp_path, data):
    train, test = data
    task = jsonl_task(train, test, test_size=5)
    assert len(task.pool) == 60 and len(task.tests) == 5 and set(task.labels) <= set(LABELS)
    held = jsonl_task(train, None, test_size=10, seed=3)
    assert len(held.pool) == 50 and len(held.tests) == 10
    assert not {e.text for e in held.pool} & {e.text for e in held.tests} or len(set(e.text for e in held.pool)) < 50
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing field 'label'"):
        load_jsonl(bad)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not valid JSON"):
        load_jsonl(bad)
    with pytest.raises(FileNotFoundError, match="no such JSONL file"):
        load_jsonl(tmp_path / "missing.jsonl")


def test_prefix_format_is_the_references():
    fmt = PrefixFormat("Review: ", "Sentiment: ")
    assert fmt.demo("great", "positive") == "Review: great\nSentiment: positive"
    assert fmt.query("great") == "Review: great\nSentiment:"


def test_episodes_become_one_query_tasks():
    @dataclass
    class Episode:  # the shape of puzzle_ray.data.episodes.Episode
        demos: list
        query: str
        answer: str
        labels: list
        kind: str = "classification"

    fmt = PrefixFormat()
    tasks = episode_tasks([Episode([("x", "a"), ("y", "b")], "z", "b", ["a", "b"])], fmt)
    assert len(tasks) == 1 and tasks[0].tests[0].label == "b" and tasks[0].labels == ("a", "b")
    with pytest.raises(ValueError, match="not among its labels"):
        episode_tasks([Episode([("x", "a")], "z", "c", ["a", "b"])], fmt)


def test_config_validation_names_the_problem():
    with pytest.raises(ValidationError, match="exactly one data source"):
        PCWEvalConfig(model="m")
    with pytest.raises(ValidationError, match="exactly one data source"):
        PCWEvalConfig(model="m", train_path="t.jsonl", episodes=3)
    with pytest.raises(ValidationError, match="num_windows"):
        PCWEvalConfig(model="m", episodes=3, num_windows=[0, 1])
    with pytest.raises(ValidationError, match="Extra inputs"):
        PCWEvalConfig(model="m", episodes=3, windows=3)
    assert PCWEvalConfig(model="m", episodes=3).method == "greedy"


@pytest.mark.integration
def test_pcw_eval_stage_logs_accuracy_per_windows(model_dir, data, mlflow_uri, tmp_path):
    from mlflow.tracking import MlflowClient

    from puzzle_ray.pcw.evaluate import run_pcw_eval

    train, test = data
    out = tmp_path / "result.json"
    cfg = PCWEvalConfig(model=str(model_dir), train_path=str(train), test_path=str(test), num_windows=[1, 2, 3],
                        draws=2, test_size=6, x_prefix="in: ", y_prefix="is: ", experiment="pcw-test",
                        run_name="tiny", output=str(out))
    result = run_pcw_eval(cfg)
    k = result.shots_per_window
    assert k >= 2 and set(result.accuracies) == {1, 2, 3}
    assert all(len(a) == 2 and all(0 <= x <= 1 for x in a) for a in result.accuracies.values())
    assert json.loads(out.read_text())["windows"]["3"]["draws"] == result.accuracies[3]
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("pcw-test").experiment_id])
    assert run.data.metrics["accuracy_mean_2w"] == pytest.approx(result.mean(2))
    assert run.data.params["shots_per_window_used"] == str(k)


def test_pcw_eval_rejects_bad_files_before_loading_the_model(tmp_path, model_dir):
    from puzzle_ray.pcw.evaluate import run_pcw_eval

    bad = tmp_path / "train.jsonl"
    bad.write_text('{"text": "a"}\n')
    with pytest.raises(ValueError, match="missing field 'label'"):
        run_pcw_eval(PCWEvalConfig(model=str(model_dir), train_path=str(bad), log_mlflow=False))
    with pytest.raises(ValueError, match="no such model folder"):
        run_pcw_eval(PCWEvalConfig(model=str(tmp_path / "nope"), train_path=str(bad), log_mlflow=False))


def test_cli_pcw_generate(model_dir, tmp_path):
    from puzzle_ray.cli import app

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("in: red apple\nis: red")
    b.write_text("in: blue sky\nis: blue\n==\nin: gold coin\nis: gold")
    runner = CliRunner()
    args = ["pcw-generate", "--model", str(model_dir), "--window", str(a), "--window", str(b),
            "--prompt", "\n==\nin: red car\nis:", "--max-new-tokens", "4"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "2 windows" in res.output
    res = runner.invoke(app, args[:4] + [str(tmp_path / "missing.txt")] + args[5:])
    assert res.exit_code == 2 and "missing.txt: no such file" in res.output
    (tmp_path / "empty.txt").write_text("\n")
    res = runner.invoke(app, args[:4] + [str(tmp_path / "empty.txt")] + args[5:])
    assert res.exit_code == 2 and "empty.txt: the file is empty" in res.output
    (tmp_path / "binary.txt").write_bytes(bytes(range(128, 256)))
    res = runner.invoke(app, args[:4] + [str(tmp_path / "binary.txt")] + args[5:])
    assert res.exit_code == 2 and "binary.txt: not UTF-8 text" in res.output


def test_cli_pcw_generate_checks_its_options_before_loading_the_model(tmp_path, monkeypatch):
    import puzzle_ray.pcw.loading as loading
    from puzzle_ray.cli import app

    monkeypatch.setattr(loading, "load_causal_lm", lambda *a, **k: pytest.fail("loaded the model"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "w.txt").write_text("some text")
    args = ["pcw-generate", "--model", str(tmp_path / "model"), "--window", str(tmp_path / "w.txt"), "--prompt", "p"]
    for option, value, allowed in (("--attn-implementation", "flash", "eager or sdpa"),
                                   ("--dtype", "float8", "float16 or float64"), ("--alignment", "up", "left or right"),
                                   ("--device", "tpu", "not a torch device")):
        res = CliRunner().invoke(app, [*args, option, value])
        assert res.exit_code == 2 and f"{option} {value}: " in res.output and allowed in res.output, res.output


def test_cli_pcw_eval(model_dir, data, tmp_path):
    from puzzle_ray.cli import app

    train, test = data
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["pcw-eval", "--model", str(model_dir), "--train", str(train), "--test", str(test),
                                   "--windows", "1,2", "--draws", "1", "--test-size", "3", "--method", "loglik",
                                   "--no-mlflow", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "PCW accuracy" in res.output and set(json.loads(out.read_text())["windows"]) == {"1", "2"}
    res = CliRunner().invoke(app, ["pcw-eval", "--model", str(model_dir), "--no-mlflow"])
    assert res.exit_code == 2 and "exactly one data source" in res.output
    config = tmp_path / "pcw.yaml"
    config.write_text("modle: x\nmethod: sampling\n")  # misspelt `model`: the unknown field is named first
    res = CliRunner().invoke(app, ["pcw-eval", "--config", str(config), "--no-mlflow"])
    assert res.exit_code == 2 and "error: modle: Extra inputs are not permitted" in res.output, res.output
    config.write_text("model: x\nepisodes: 2\nmethod: sampling\n")
    res = CliRunner().invoke(app, ["pcw-eval", "--config", str(config), "--no-mlflow"])
    assert res.exit_code == 2 and "method: Input should be 'greedy' or 'loglik' (got 'sampling')" in res.output
    config.write_bytes(bytes(range(128, 256)))
    res = CliRunner().invoke(app, ["pcw-eval", "--config", str(config), "--no-mlflow"])
    assert res.exit_code == 2 and "pcw.yaml: not a text file (not UTF-8" in res.output, res.output
    for bad in ("", "1,,2", "0", "two"):  # never silently the default
        res = CliRunner().invoke(app, ["pcw-eval", "--model", str(model_dir), "--train", str(train), "--test",
                                       str(test), "--windows", bad, "--no-mlflow"])
        assert res.exit_code == 2 and f"--windows {bad!r}: expected positive window counts" in res.output, bad
