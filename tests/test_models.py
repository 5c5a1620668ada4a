"""The bundled models (models/, made by `make models`) load from their safetensors weights alone,
answer through the CLI by name, stay under the size budget, and still score the test figures
recorded in their run.json when re-measured on the bundled data."""

import json
from dataclasses import replace

import pytest
import torch

from rnnlab import bundled_models, load_run
from rnnlab.api import models_dir
from rnnlab.cli import main

EXPECTED = ["names", "names-gru", "names-rnn", "poems", "sentiment"]


def test_every_bundled_model_is_there_and_small():
    assert bundled_models() == EXPECTED
    total = sum(f.stat().st_size for f in models_dir().rglob("*") if f.is_file())
    assert total < 25e6, f"models/ holds {total / 1e6:.1f} MB"
    assert (models_dir() / "MODELS.md").is_file()


@pytest.mark.parametrize("name", EXPECTED)
def test_every_bundled_model_ships_its_training_curves(name):
    """metrics.jsonl, as the training run wrote it: one row per epoch, at most the planned epochs; the
    poems model's validation perplexity re-measured on its exported weights is its best epoch's."""
    from rnnlab.runs import read_jsonl
    from rnnlab.tasks import get_task

    meta = json.loads((models_dir() / name / "run.json").read_text(encoding="utf-8"))
    rows = read_jsonl(models_dir() / name / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1)) and rows
    task = get_task(meta["task"])
    values = [r[f"val_{task.monitor}"] for r in rows]
    best = max(values) if task.monitor_mode == "max" else min(values)
    if task.monitor == "perplexity":  # recorded on the exported (float16) weights: close to the best epoch's
        assert meta["test"]["val_perplexity"] == pytest.approx(best, rel=0.01)
    assert len(rows) <= meta["train_config"]["epochs"]


@pytest.mark.parametrize("name", [n for n in EXPECTED if n.startswith("names")])
def test_names_models_score_their_recorded_figures(name):
    run = load_run(name)
    recorded = run.meta["test"]
    test = run.evaluate()
    assert test["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-9)
    assert test["macro_f1"] == pytest.approx(recorded["macro_f1"], abs=1e-9)


def test_sentiment_model_scores_its_recorded_figures():
    run = load_run("sentiment")
    # --limit thins the training split only (after the split is drawn): the test split and the
    # vocabulary (the run's) are the same, and jieba tokenizes about 1,600 texts instead of 7,765.
    test = run.evaluate({"limit": 64})
    assert len(test["predictions"]) == 776
    assert test["accuracy"] == pytest.approx(run.meta["test"]["accuracy"], abs=1e-9)
    assert test["roc_auc"] == pytest.approx(run.meta["test"]["roc_auc"], abs=1e-6)


def test_poems_model_scores_its_recorded_perplexity():
    run = load_run("poems")
    test = run.evaluate({"samples": 0})  # the perplexity only; sampling is checked below
    assert test["test_perplexity"] == pytest.approx(run.meta["test"]["test_perplexity"], rel=1e-6)


def test_the_bundled_models_answer_by_name_on_the_command_line(capsys):
    assert main(["predict", "--run", "names", "--json", "Satoshi", "Dovesky"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["top"][0]["label"] == "Japanese" and out[1]["top"][0]["label"] == "Russian"
    assert main(["predict", "--run", "sentiment", "--json", "房间很干净，服务也很热情"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] == "1"
    assert main(["generate", "--run", "poems", "--begin", "山", "--form", "7x4", "--seed", "1"]) == 0
    poem = capsys.readouterr().out.replace("\n", "")
    assert poem.startswith("山") and len(poem) == 32
    assert main(["predict", "--run", "nosuchmodel", "x"]) == 2
    assert "not a bundled model" in capsys.readouterr().err


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fused_twin_answers_as_the_model_and_shares_its_weights(cell):
    """The explainer's forward passes run on torch's fused layers with the model's own weights: the
    same logits, and a change to the model's weights is the twin's too."""
    from rnnlab.models import ClassifierConfig, build_classifier, fused_twin

    torch.manual_seed(0)
    cfg = ClassifierConfig(vocab_size=30, num_classes=3, cell=cell, embed_dim=8, hidden=12, bidirectional=True,
                           pool="attention", ensemble=2)
    model = build_classifier(cfg).eval()
    twin = fused_twin(model)
    assert twin is not model and type(twin.members[0].rnn) is torch.nn.modules.rnn.__dict__[cell.upper()]
    ids, lengths = torch.randint(1, 30, (4, 9)), torch.tensor([9, 5, 1, 7])
    assert torch.allclose(twin(ids, lengths)[0], model(ids, lengths)[0], atol=1e-6)
    with torch.no_grad():
        model.members[1].rnn.weight_hh_l0_reverse.mul_(1.5)
        model.members[0].embed.weight.add_(0.1)
    assert torch.allclose(twin(ids, lengths)[0], model(ids, lengths)[0], atol=1e-6)
    assert fused_twin(build_classifier(replace(cfg, cell="rnn", nonlinearity="sigmoid"))).cfg.backend == "scratch"
    torch_already = build_classifier(replace(cfg, backend="torch"))
    assert fused_twin(torch_already) is torch_already
