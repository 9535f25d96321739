"""Publishing: the exported child with its tokenizer is registered in MLflow under an alias, with its report,
and `mlflow.transformers.load_model` in a fresh process (no remote code) gives a model that generates the same
text as the original."""

import json
import subprocess
import sys
import textwrap
import time

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
def test_publish_registers_an_alias_with_the_report_and_the_model_round_trips(child_dir, mlflow_uri, tmp_path):
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

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(name, "candidate")
    assert str(version.version) == published.version
    assert version.tags["eval.kl_from_parent"] == "0" and version.tags["eval.kl_from_parent.retention"] == "1"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "eval")} == {"eval/eval_report.json",
                                                                                 "eval/eval_report.md"}
    requirements = (tmp_path / "req.txt")
    requirements.write_text(open(mlflow.artifacts.download_artifacts(f"{published.model_uri}/requirements.txt")).read())
    assert "torchvision" not in requirements.read_text() and "puzzle-ray==" in requirements.read_text()

    script = [sys.executable, "-c", textwrap.dedent(LOAD_SCRIPT), mlflow_uri, published.model_uri, PROMPT]
    result = subprocess.run(script, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["class"] == "PuzzleForCausalLM" and not loaded["auto_map"]
    expected = _greedy(child_dir)
    assert len(expected.split()) > len(PROMPT.split())  # it really generated words
    # The pipeline glues the prompt and the continuation without the word-level decoder's spaces.
    assert loaded["text"].replace(" ", "") == expected.replace(" ", "")


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
