"""--pretrain lm (rnnlab.pretrain, ULMFiT): the encoder first learns the training texts as a language
model (forward: the next token, backward: the one before), then the classifier is fine-tuned from it
with discriminative rates and gradual unfreezing; the report shows both stages."""

import json

import pytest
import torch

from rnnlab.api import train_task
from rnnlab.cli import main
from rnnlab.errors import UserError
from rnnlab.experiment import resume_training
from rnnlab.pretrain import FACTOR, STAGE, EncoderLM, FineTuning
from rnnlab.runs import load_checkpoint, read_jsonl

from test_names import tiny_folder
from test_sentiment import review_csv

QUIET = dict(log=lambda *a: None, progress=False, baseline=False)
SMALL = dict(hidden=16, embed_dim=8, bidirectional=True, lr=0.02, schedule="none", batch_size=4)


@pytest.fixture(scope="module")
def names_data(tmp_path_factory):
    return str(tiny_folder(tmp_path_factory.mktemp("pretrain") / "names", per_label=15))


def test_the_language_model_learns_the_texts_and_epoch_1_trains_the_output_layer_alone(names_data, tmp_path):
    run = train_task("names", out=tmp_path / "run", data=names_data, epochs=1, pretrain="lm", pretrain_epochs=4,
                     **SMALL, **QUIET)
    lm = read_jsonl(run / STAGE / "metrics.jsonl")
    assert [r["epoch"] for r in lm] == [1, 2, 3, 4] and lm[-1]["val_perplexity"] < lm[0]["val_perplexity"]
    vocab = json.loads((run / "config.json").read_text())["model_config"]["vocab_size"]
    assert lm[-1]["val_perplexity"] < vocab / 2  # well below a uniform guess over the characters
    pretrained = load_checkpoint(run / STAGE / "best.pt")["model"]
    final = load_checkpoint(run / "best.pt")["model"]
    # epoch 1 of fine-tuning moves the output layer only: the embedding and the LSTM are the language model's
    members = {k.split(".")[1] for k in final if k.startswith("members.")}
    assert len(members) == 5  # the default ensemble: every member pretrained
    for k in members:
        for name in ("embed.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0_reverse"):
            assert torch.equal(final[f"members.{k}.{name}"], pretrained[f"members.{k}.{name}"]), (k, name)
    report = (run / "report.html").read_text(encoding="utf-8")
    assert "Stage 1: pretraining the encoder" in report and (run / "pretrain.png").is_file()


def test_fine_tuning_groups_and_unfreezing():
    from rnnlab.models import ClassifierConfig, build_classifier

    model = build_classifier(ClassifierConfig(vocab_size=12, num_classes=3, embed_dim=4, hidden=5, bidirectional=True,
                                              pool="attention", ensemble=2, freeze_vectors=True))
    plan = FineTuning(model, lr=0.01)
    assert [g["lr"] for g in plan.groups] == pytest.approx([0.01, 0.01 / FACTOR, 0.01 / FACTOR**2])
    assert sum(len(g["params"]) for g in plan.groups) == len(list(model.parameters()))
    trains = lambda: {n.split(".")[2] for n, p in model.named_parameters() if p.requires_grad}  # noqa: E731
    plan.unfreeze(1)
    assert trains() == {"head", "attention"}
    plan.unfreeze(2)
    assert trains() == {"head", "attention", "rnn"}
    plan.unfreeze(3)
    assert trains() == {"head", "attention", "rnn"}  # --freeze-vectors: the embedding stays fixed


def test_the_two_views_of_sentiment_each_learn_their_own_texts(tmp_path):
    run = train_task("sentiment", out=tmp_path / "run", data=str(review_csv(tmp_path / "r.csv")), tokenizer="jieba+char",
                     vectors="random", ensemble=2, epochs=2, pretrain="lm", pretrain_epochs=2, **SMALL, **QUIET)
    lm = read_jsonl(run / STAGE / "metrics.jsonl")
    assert len(lm) == 2 and all(r["val_perplexity"] > 1 for r in lm)
    keys = load_checkpoint(run / STAGE / "best.pt")["model"]
    assert {"out.0.0.weight", "out.0.1.weight", "out.1.0.weight", "out.1.1.weight"} <= set(keys)  # word and char members
    assert len(read_jsonl(run / "metrics.jsonl")) == 2


def test_a_resumed_run_does_not_pretrain_again(names_data, tmp_path):
    run = train_task("names", out=tmp_path / "run", data=names_data, epochs=2, pretrain="lm", pretrain_epochs=2,
                     **SMALL, **QUIET)
    before = (run / STAGE / "metrics.jsonl").read_bytes()
    resume_training(run, epochs=3, log=lambda *a: None)
    assert (run / STAGE / "metrics.jsonl").read_bytes() == before
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]
    # interrupted within stage 1: a line, not a half-made resume
    (run / "last.pt").unlink()
    with pytest.raises(UserError, match="pretraining .* did not finish"):
        resume_training(run, log=lambda *a: None)


def test_pretraining_is_refused_where_it_means_nothing(names_data, tmp_path, capsys):
    cases = [(["poems", "--pretrain", "lm"], "the poems task has no classifier to pretrain"),
             (["names", "--data", names_data, "--pretrain", "lm", "--cell", "tutorial"], "needs a recurrent cell"),
             (["names", "--data", names_data, "--pretrain", "lm", "--layers", "2", "--bidirectional"],
              "would see the tokens they predict"),
             (["names", "--data", names_data, "--pretrain", "gpt"], "--pretrain")]
    for args, message in cases:
        assert main(["train", *args, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err
        assert not (tmp_path / "x").exists()


def test_the_language_model_predicts_the_next_and_the_previous_token():
    """A member's loss: the mean of the forward direction's cross-entropy on the next token and the
    backward direction's on the previous one, over the real steps of each text (padding left out)."""
    from rnnlab.models import ClassifierConfig, build_classifier

    torch.manual_seed(0)
    model = build_classifier(ClassifierConfig(vocab_size=6, num_classes=2, embed_dim=6, hidden=6, bidirectional=True,
                                              cell="gru", backend="scratch"))
    lm = EncoderLM(model, 6).eval()
    f, h = torch.nn.functional.cross_entropy, 6
    with torch.no_grad():
        ids = torch.tensor([[2, 3, 4, 5], [3, 4, 0, 0]])
        got = lm.member_loss(0, ids, torch.tensor([4, 2]))
        run = lambda x: model.rnn(model.inputs(x).transpose(0, 1))[0][:, 0]  # noqa: E731  (T, 2H), time first
        out0, out1 = run(ids[:1]), run(ids[1:, :2])  # the first text; the second's real steps only
        heads = lm.out[0]
        fwd = f(heads[0](torch.cat([out0[:3, :h], out1[:1, :h]])), torch.tensor([3, 4, 5, 4]))
        bwd = f(heads[1](torch.cat([out0[1:, h:], out1[1:, h:]])), torch.tensor([2, 3, 4, 3]))
    assert float(got) == pytest.approx(float((fwd + bwd) / 2), abs=1e-5)
