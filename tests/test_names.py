"""Names task and the shared loop: splits, overfitting, checkpoints, resume, predict, compare, bad input.
Every training here is tiny (a few hundred items, a few epochs)."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rnnlab.cli import main
from rnnlab.errors import UserError
from rnnlab.experiment import resume_training, run_training
from rnnlab.models import ClassifierConfig
from rnnlab.runs import load_checkpoint, read_jsonl
from rnnlab.tasks.classify import split_items
from rnnlab import load_run
from rnnlab.tasks.names import NamesConfig, NamesTask, read_label_folder
from rnnlab.train import TrainConfig

QUIET = dict(log=lambda *a: None)


def tiny_folder(root: Path, per_label: int = 40) -> Path:
    """Two made-up 'languages' that a model can tell apart by their endings (up to 50 names each)."""
    root.mkdir(parents=True, exist_ok=True)
    stems = ["Ab", "Ka", "Mor", "Tel", "Sin", "Dru", "Pal", "Ven", "Gor", "Lis"]
    for label, ending in (("Ovic", "ovic"), ("Sonne", "sonne")):
        names = [f"{stems[i % 10]}{'aeiou'[i // 10 % 5]}{ending}" for i in range(per_label)]
        (root / f"{label}.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return root


def test_grouped_split_keeps_every_name_in_one_split_and_random_does_not():
    task = NamesTask(NamesConfig(), seed=0)
    names = {s: {t for t, _ in task.splits[s]} for s in ("train", "val", "test")}
    assert not names["train"] & names["test"] and not names["train"] & names["val"] and not names["val"] & names["test"]
    assert task.data_report["junk"] == 32  # 24 "To The First Page" lines + 8 with digits or punctuation
    assert task.data_report["duplicates_dropped"] > 1000
    assert len(task.labels) == 18
    rand = NamesTask(NamesConfig(split="random"), seed=0)
    leaked = {t for t, _ in rand.splits["train"]} & {t for t, _ in rand.splits["test"]}
    assert len(leaked) > 200  # 296 names here: the leak that the grouped protocol exists to prevent


def test_splits_are_stratified_and_seeded():
    items = [(f"n{i}", i % 3) for i in range(300)]
    a, _ = split_items(items, "grouped", 0.1, 0.2, seed=1)
    b, _ = split_items(items, "grouped", 0.1, 0.2, seed=1)
    c, _ = split_items(items, "grouped", 0.1, 0.2, seed=2)
    assert a == b and a != c
    assert [sum(1 for _, y in a["test"] if y == k) for k in range(3)] == [20, 20, 20]


def test_loop_overfits_a_tiny_set(tmp_path):
    data = tiny_folder(tmp_path / "data")
    run = run_training("names", NamesConfig(data=str(data), val_fraction=0.2, test_fraction=0.2),
                       ClassifierConfig(cell="gru", hidden=32, embed_dim=16),
                       TrainConfig(epochs=25, batch_size=8, lr=0.02, patience=0, schedule="none", progress=False),
                       out=tmp_path / "run", **QUIET)
    rows = read_jsonl(run / "metrics.jsonl")
    assert rows[-1]["train_accuracy"] == 1.0 and rows[-1]["train_loss"] < 0.05
    for f in ("config.json", "metrics.jsonl", "model.txt", "best.pt", "last.pt", "summary.json", "loss.png",
              "accuracy.png", "confusion.png", "report.html"):
        assert (run / f).is_file(), f
    assert "parameters:" in (run / "model.txt").read_text()
    html = (run / "report.html").read_text()
    assert "confusion.png" in html and "Ovic" in html
    summary = json.loads((run / "summary.json").read_text())  # the classical baseline on the same split
    assert summary["baseline"]["name"].endswith("logistic regression") and 0 <= summary["baseline"]["test"]["accuracy"] <= 1
    lo, hi = summary["versus"]["interval"]
    assert lo <= summary["versus"]["difference"] <= hi and "the noise of this test set" in summary["versus"]["text"]
    assert "Against the classical baseline" in html


def test_checkpoint_alone_rebuilds_the_model(tmp_path):
    data = tiny_folder(tmp_path / "data")
    run = run_training("names", NamesConfig(data=str(data)), ClassifierConfig(cell="lstm", hidden=16, embed_dim=8,
                       bidirectional=True), TrainConfig(epochs=2, progress=False), out=tmp_path / "run", **QUIET)
    ckpt = load_checkpoint(run / "best.pt")
    assert set(ckpt) >= {"model", "meta", "rng", "format"} and ckpt["meta"]["task_state"]["labels"] == ["Ovic", "Sonne"]
    loaded = load_run(run)
    task = NamesTask(NamesConfig(data=str(data)), seed=0)
    test = task.tensors["test"]
    with torch.no_grad():
        direct, _ = loaded.model(test["ids"], test["lengths"])
    texts = [t for t, _ in task.splits["test"]]
    res = loaded.predict(texts, top=2)
    probs = direct.softmax(-1)
    for r, p in zip(res, probs):
        assert r["top"][0]["probability"] == pytest.approx(float(p.max()), abs=1e-4)


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    data = tiny_folder(tmp_path / "data")
    args = (NamesConfig(data=str(data)), ClassifierConfig(cell="gru", hidden=16, embed_dim=8, dropout=0.2),
            TrainConfig(epochs=5, batch_size=8, patience=0, progress=False))
    straight = run_training("names", *args, out=tmp_path / "straight", **QUIET)

    calls = {"n": 0}
    original = NamesTask.evaluate

    def crash_in_epoch_3(self, model, split, device):
        calls["n"] += 1
        if calls["n"] == 5:  # train + val per epoch: the 5th evaluation is in epoch 3
            raise KeyboardInterrupt
        return original(self, model, split, device)

    monkeypatch.setattr(NamesTask, "evaluate", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run_training("names", *args, out=tmp_path / "resumed", **QUIET)
    monkeypatch.setattr(NamesTask, "evaluate", original)
    assert len(read_jsonl(tmp_path / "resumed" / "metrics.jsonl")) == 2
    resume_training(tmp_path / "resumed", **QUIET)

    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(tmp_path / "resumed" / "last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    ra, rb = read_jsonl(straight / "metrics.jsonl"), read_jsonl(tmp_path / "resumed" / "metrics.jsonl")
    assert [r["val_loss"] for r in ra] == [r["val_loss"] for r in rb] and len(rb) == 5


@pytest.mark.parametrize("cell,backend", [("tutorial", "scratch")] + [(c, b) for c in ("rnn", "lstm", "gru")
                                                                         for b in ("scratch", "torch")])
def test_every_cell_and_backend_learns(tmp_path, cell, backend):
    """Every cell on both backends trains through the shared loop: the training loss falls and the
    model beats chance on the training names after three epochs."""
    data = tiny_folder(tmp_path / "data", per_label=15)
    model = ClassifierConfig(cell=cell, backend=backend, hidden=8, embed_dim=8, layers=2 if cell != "tutorial" else 1,
                             input="onehot" if cell == "tutorial" else "embedding")
    run = run_training("names", NamesConfig(data=str(data)), model,
                       TrainConfig(epochs=3, batch_size=4, lr=0.02, schedule="none", patience=0, progress=False),
                       out=tmp_path / "run", **QUIET)
    rows = read_jsonl(run / "metrics.jsonl")
    assert rows[-1]["train_loss"] < rows[0]["train_loss"], [r["train_loss"] for r in rows]
    assert rows[-1]["train_accuracy"] > 0.5


def test_tutorial_cell_trains_the_tutorials_way(tmp_path):
    data = tiny_folder(tmp_path / "data", per_label=10)
    run = run_training("names", NamesConfig(data=str(data)), ClassifierConfig(cell="tutorial", input="onehot", hidden=16),
                       TrainConfig(epochs=1, batch_size=1, optimizer="sgd", lr=0.005, progress=False),
                       out=tmp_path / "run", **QUIET)
    assert read_jsonl(run / "metrics.jsonl")[0]["step"] == len(NamesTask(NamesConfig(data=str(data)), 0).splits["train"])
    assert "(i2h): Linear" in (run / "model.txt").read_text()


def test_out_folder_with_a_run_is_not_overwritten(tmp_path):
    data = tiny_folder(tmp_path / "data", per_label=10)
    cfgs = (NamesConfig(data=str(data)), ClassifierConfig(hidden=8, embed_dim=8), TrainConfig(epochs=1, progress=False))
    run_training("names", *cfgs, out=tmp_path / "run", **QUIET)
    with pytest.raises(UserError, match="already holds a run"):
        run_training("names", *cfgs, out=tmp_path / "run", **QUIET)


def test_bad_data_folders_give_clear_errors(tmp_path):
    with pytest.raises(UserError, match="data folder not found"):
        read_label_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no <label>.txt files"):
        read_label_folder(tmp_path / "empty")
    one = tmp_path / "one"
    one.mkdir()
    (one / "Only.txt").write_text("Abe\nBob\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"need at least 2 labels .* found 1 \(Only\)"):
        read_label_folder(one)
    bad = tiny_folder(tmp_path / "bad", per_label=5)
    (bad / "Latin1.txt").write_bytes("Abe\nM\xfcller\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"Latin1\.txt:2: not UTF-8"):
        read_label_folder(bad)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    data = tiny_folder(root / "data")
    return run_training("names", NamesConfig(data=str(data)), ClassifierConfig(cell="gru", hidden=16, embed_dim=8),
                        TrainConfig(epochs=3, progress=False), out=root / "run", **QUIET)


def cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "rnnlab.cli", *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=120)


def test_predict_prints_top3_reads_stdin_and_answers_unseen_characters(trained_run, capsys):
    assert main(["predict", "--run", str(trained_run), "Kaovic", "Ζωήvic"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Kaovic: ") and "unseen characters" in out[1]
    # A name of nothing but unseen characters has no answer but the prior's: refused, naming them.
    assert main(["predict", "--run", str(trained_run), "Ζωή"]) == 2
    assert "none of its characters is in the model's alphabet (unknown: Ζήω)" in capsys.readouterr().err
    r = cli("predict", "--run", trained_run, "--json", stdin="Telasonne\n\nMorovic\n")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert [x["name"] for x in res] == ["Telasonne", "Morovic"] and len(res[0]["top"]) == 2
    assert abs(sum(t["probability"] for t in res[0]["top"]) - 1) < 1e-3


@pytest.mark.parametrize("args,message", [
    (["predict", "--run", "{run}", ""], "names[0]: empty"),
    (["predict", "--run", "{run}", "x" * 10_000], "names[0]: at most 100 characters"),
    (["predict", "--run", "{empty}", "Abe"], "no checkpoint in this run folder"),
    (["predict", "--run", "{corrupt}", "Abe"], "corrupted or not an rnnlab checkpoint"),
    (["train", "names", "--data", "{empty}", "--epochs", "1"], "no <label>.txt files"),
])
def test_bad_input_exits_2_with_one_line(trained_run, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "best.pt").write_bytes(b"\x00garbage" * 10)
    fill = {"run": trained_run, "empty": tmp_path / "empty", "corrupt": tmp_path / "corrupt"}
    r = cli(*[a.format(**fill) for a in args])
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_compare_writes_one_side_by_side_report(tmp_path):
    data = tiny_folder(tmp_path / "data", per_label=15)
    code = main(["compare", "names", "--cells", "tutorial,gru", "--data", str(data), "--epochs", "1", "--hidden", "8",
                 "--embed-dim", "8", "--out", str(tmp_path / "cmp"), "--no-progress"])
    assert code == 0
    html = (tmp_path / "cmp" / "report.html").read_text()
    for f in ("compare_loss.png", "compare_accuracy.png", "compare_confusion.png"):
        assert (tmp_path / "cmp" / f).is_file() and f in html
    assert "tutorial" in html and "gru" in html
    assert main(["report", str(tmp_path / "cmp")]) == 0


def test_class_weights_and_pooling_options_build(tmp_path):
    data = tiny_folder(tmp_path / "data", per_label=10)
    task = NamesTask(NamesConfig(data=str(data), class_weights="balanced"), seed=0)
    for pool in ("last", "max", "mean"):
        cfg = task.model_config(replace(ClassifierConfig(hidden=8, embed_dim=8, bidirectional=True), pool=pool))
        model = task.build_model(cfg)
        batch = next(task.batches("train", 4, shuffle=False))
        logits, loss = model(**batch)
        assert logits.shape == (4, 2) and loss.item() > 0


def test_resume_a_finished_run_with_more_epochs(tmp_path):
    data = tiny_folder(tmp_path / "data", per_label=10)
    run = run_training("names", NamesConfig(data=str(data)), ClassifierConfig(hidden=8, embed_dim=8),
                       TrainConfig(epochs=2, patience=0, progress=False), out=tmp_path / "run", **QUIET)
    resume_training(run, epochs=4, **QUIET)
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3, 4]
    assert json.loads((run / "config.json").read_text())["train_config"]["epochs"] == 4


def test_ensemble_averages_member_probabilities_and_token_dropout_only_in_training(tmp_path):
    data = tiny_folder(tmp_path / "data", per_label=10)
    task = NamesTask(NamesConfig(data=str(data)), seed=0)
    cfg = task.model_config(ClassifierConfig(hidden=8, embed_dim=8, ensemble=3, token_dropout=0.5))
    model = task.build_model(cfg)
    batch = next(task.batches("train", 6, shuffle=False))
    model.eval()
    logits, _ = model(batch["ids"], batch["lengths"])
    members = torch.stack([m(batch["ids"], batch["lengths"])[0].softmax(-1) for m in model.members])
    assert torch.allclose(logits.exp(), members.mean(0), atol=1e-6)
    assert torch.equal(model(batch["ids"], batch["lengths"])[0], logits)  # no token dropout in eval
    model.train()
    torch.manual_seed(0)
    a = model.members[0].inputs(batch["ids"])
    assert not torch.equal(a, model.members[0].embed(batch["ids"]))  # some characters hidden


def test_a_small_class_is_warned_about_by_its_examples_not_its_strata():
    """A name listed under two labels is stratified under the first; the second label still has it."""
    from rnnlab.tasks.classify import split_items

    items = [(f"n{i}", 0) for i in range(30)] + [(f"n{i}", 1) for i in range(5)] + [("solo", 2)]
    _, report = split_items(items, "grouped", 0.1, 0.2, seed=0)
    assert report["small_classes"] == {2: 1}  # label 1 has 5 examples, all names shared with label 0


def test_folds_split_grouped_names_into_k_disjoint_test_sets():
    """K stratified folds of the distinct names: every name is tested once, no name is in two splits of
    a fold (a name under two labels travels with both), validation is --val-fraction of the names."""
    items = [(f"n{i}", i % 3) for i in range(100)] + [("n1", 0), ("n1", 1), ("n2", 2)]  # a duplicate, a shared name
    folds = [split_items(items, "grouped", 0.1, 0.2, seed=3, folds=4, fold=k)[0] for k in range(1, 5)]
    tested = [name for f in folds for name, _ in f["test"]]
    assert sorted(set(tested)) == sorted({name for name, _ in items}) and tested.count("n1") == 2  # both labels
    assert len(set(tested)) == len(tested) - 1  # every name once (n1 twice, with its two labels)
    for f in folds:
        names = [{n for n, _ in f[s]} for s in ("train", "val", "test")]
        assert not names[0] & names[1] and not names[0] & names[2] and not names[1] & names[2]
        assert len(names[1]) == 10 and 24 <= len(names[2]) <= 26
    assert folds[0] == split_items(items, "grouped", 0.1, 0.2, seed=3, folds=4, fold=1)[0]  # seeded
    with pytest.raises(ValueError, match="fold 5 of --folds 4"):
        split_items(items, "grouped", 0.1, 0.2, seed=3, folds=4, fold=5)


def test_folds_train_member_runs_and_summarise_them(tmp_path):
    """--folds 3 through the Python API: three ordinary run folders, each testing on its own third, a
    summary whose mean and sample std are the members' figures'; --resume finishes what is missing."""
    import shutil
    import statistics

    from rnnlab import train_task
    from rnnlab.repeats import resume_job

    data = tiny_folder(tmp_path / "names", per_label=30)
    parent = train_task("names", out=tmp_path / "cv", data=data, folds=3, epochs=1, hidden=8, embed_dim=8,
                        bidirectional=False, progress=False, log=lambda *a: None)
    summary = json.loads((parent / "summary.json").read_text(encoding="utf-8"))
    members = [parent / f"fold-{k}" for k in (1, 2, 3)]
    assert summary["kind"] == "folds" and summary["members"] == [m.name for m in members]
    tests = []
    for k, member in enumerate(members, 1):
        config = json.loads((member / "config.json").read_text(encoding="utf-8"))
        assert config["task_config"]["folds"] == 3 and config["task_config"]["fold"] == k
        task = NamesTask(NamesConfig.from_dict(config["task_config"]), seed=0)
        tests.append({name for name, _ in task.splits["test"]})
        assert task.data_report["fold"] == f"{k} of 3"
    assert sum(map(len, tests)) == len(set().union(*tests)) == 60  # every name tested once
    runs = [json.loads((m / "summary.json").read_text(encoding="utf-8")) for m in members]
    for key in ("accuracy", "macro_f1", "loss"):
        values = [r["test"][key] for r in runs]
        assert summary["model"][key]["mean"] == pytest.approx(statistics.mean(values))
        assert summary["model"][key]["std"] == pytest.approx(statistics.stdev(values))
    base = [r["baseline"]["test"]["accuracy"] for r in runs]
    assert summary["baseline"]["accuracy"]["std"] == pytest.approx(statistics.stdev(base))
    assert summary["versus"]["model_better"] == sum(r["versus"]["difference"] > 0 for r in runs)
    assert "mean ± sample standard deviation" in (parent / "report.html").read_text(encoding="utf-8")
    assert load_run(members[1]).predict(["Abovic"])[0]["top"]
    with pytest.raises(UserError, match=r"a --folds/--seeds run of several models; give one of its runs, e\.g\. .*fold-1"):
        load_run(parent)
    # Interrupted: fold-2 never began, fold-3 stopped before its report; the resume finishes both.
    shutil.rmtree(members[1])
    (members[2] / "summary.json").unlink()
    with pytest.raises(UserError, match="a --folds/--seeds folder of several runs"):
        resume_training(parent, epochs=2, log=lambda *a: None)
    resume_job(parent, epochs=2, log=lambda *a: None)
    assert [len(read_jsonl(m / "metrics.jsonl")) for m in members] == [1, 2, 2]
    again = json.loads((parent / "summary.json").read_text(encoding="utf-8"))
    assert again["per_run"]["fold-1"] == summary["per_run"]["fold-1"] and again["runs"] == 3
