"""The shared loop's stopping rules and knobs have effects that can be seen: patience stops early,
--max-time stops mid-epoch, the plateau schedule halves the rate, class weights change the loss,
and an epoch's metrics line survives an interruption between the checkpoint and the append."""

import json

import pytest
import torch

from rnnlab.experiment import resume_training, run_training
from rnnlab.models import ClassifierConfig
from rnnlab.runs import read_jsonl
from rnnlab.tasks.names import NamesConfig, NamesTask
from rnnlab.train import Stop, TrainConfig

from test_names import tiny_folder

QUIET = dict(log=lambda *a: None)
MODEL = ClassifierConfig(cell="gru", hidden=8, embed_dim=8)


@pytest.fixture
def data(tmp_path):
    return NamesConfig(data=str(tiny_folder(tmp_path / "data", per_label=12)))


@pytest.fixture
def flat_validation(monkeypatch):
    """Validation that never improves after the first epoch."""
    original = NamesTask.evaluate

    def evaluate(self, model, split, device):
        out = original(self, model, split, device)
        return {**out, "accuracy": 0.5} if split == "val" else out

    monkeypatch.setattr(NamesTask, "evaluate", evaluate)


def summary(run):
    return json.loads((run / "train_summary.json").read_text())


def test_patience_stops_after_that_many_epochs_without_improvement(tmp_path, data, flat_validation):
    run = run_training("names", data, MODEL, TrainConfig(epochs=10, patience=2, progress=False), out=tmp_path / "r",
                       **QUIET)
    s = summary(run)
    assert s["stopped"] == Stop.EARLY.value and s["epochs_run"] == 3 and s["best_epoch"] == 1
    run0 = run_training("names", data, MODEL, TrainConfig(epochs=4, patience=0, progress=False), out=tmp_path / "r0",
                        **QUIET)
    assert summary(run0)["stopped"] == Stop.EPOCHS.value and summary(run0)["epochs_run"] == 4  # 0: never early


def test_max_time_stops_inside_the_first_epoch(tmp_path, data):
    run = run_training("names", data, MODEL, TrainConfig(epochs=5, batch_size=2, max_time=1e-6, progress=False),
                       out=tmp_path / "r", **QUIET)
    s = summary(run)
    assert s["stopped"] == Stop.TIME.value and s["epochs_run"] == 1 and s["steps"] == 1


def test_plateau_schedule_halves_the_rate_after_two_flat_epochs(tmp_path, data, flat_validation):
    run = run_training("names", data, MODEL, TrainConfig(epochs=4, lr=0.01, schedule="plateau", patience=0,
                                                         progress=False), out=tmp_path / "r", **QUIET)
    assert [r["lr"] for r in read_jsonl(run / "metrics.jsonl")] == [0.01, 0.01, 0.01, 0.005]


def test_class_weights_weigh_the_rare_class_more(tmp_path):
    folder = tiny_folder(tmp_path / "data", per_label=40)
    lines = (folder / "Sonne.txt").read_text().splitlines()[:8]  # make Sonne rare
    (folder / "Sonne.txt").write_text("\n".join(lines) + "\n")
    plain = NamesTask(NamesConfig(data=str(folder)), seed=0)
    weighted = NamesTask(NamesConfig(data=str(folder), class_weights="balanced"), seed=0)
    cfg = plain.model_config(MODEL)
    torch.manual_seed(0)
    a = plain.build_model(cfg)
    b = weighted.build_model(cfg)
    b.load_state_dict(a.state_dict())
    assert b.class_weights[1] > 2 * b.class_weights[0]  # Sonne (label 1) is the rare one
    batch = next(plain.batches("train", 64, shuffle=False))
    assert a(**batch)[1].item() != pytest.approx(b(**batch)[1].item(), rel=1e-3)


def test_a_metrics_line_lost_after_the_checkpoint_comes_back_on_resume(tmp_path, data):
    run = run_training("names", data, MODEL, TrainConfig(epochs=2, patience=0, progress=False), out=tmp_path / "r",
                       **QUIET)
    rows = read_jsonl(run / "metrics.jsonl")
    # As if killed between writing last.pt and appending the line: the file lacks the last epoch.
    (run / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    resume_training(run, epochs=3, **QUIET)
    again = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in again] == [1, 2, 3] and again[1] == rows[1]


def test_resume_refuses_options_that_are_the_run_s_own(tmp_path, data):
    from rnnlab.errors import UserError

    run = run_training("names", data, MODEL, TrainConfig(epochs=1, progress=False), out=tmp_path / "r", **QUIET)
    with pytest.raises(UserError, match="--lr: cannot change when resuming"):
        resume_training(run, lr=5.0, **QUIET)


def test_a_resumed_run_keeps_its_class_weights(tmp_path, data):
    """Loss weights are not in the checkpoint's weights: the resumed model must get them again."""
    import torch
    from dataclasses import replace

    from rnnlab.runs import load_checkpoint

    weighted = replace(data, class_weights="balanced")
    cfg = TrainConfig(epochs=2, patience=0, schedule="none", progress=False)
    straight = run_training("names", weighted, MODEL, cfg, out=tmp_path / "a", **QUIET)
    half = run_training("names", weighted, MODEL, replace(cfg, epochs=1), out=tmp_path / "b", **QUIET)
    resume_training(half, epochs=2, **QUIET)
    a, b = load_checkpoint(straight / "last.pt")["model"], load_checkpoint(half / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_averaged_weights_start_when_validation_stalls_and_are_what_is_saved(tmp_path, data, monkeypatch):
    """--average 1: validation 0.5, 0.5 (stalled: averaging from epoch 3), then 0.6, 0.7. best.pt then
    holds the mean of the weights after every step of epochs 3 and 4 (recorded by an optimizer hook),
    and a run stopped after epoch 3 and resumed ends with the same weights."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from rnnlab import load_run

    script, original = iter([]), NamesTask.evaluate

    def evaluate(self, model, split, device):
        out = original(self, model, split, device)
        return {**out, "accuracy": next(script)} if split == "val" else out

    monkeypatch.setattr(NamesTask, "evaluate", evaluate)
    after = []  # the raw weights after each step
    hook = register_optimizer_step_post_hook(
        lambda opt, *a: after.append([p.detach().clone() for g in opt.param_groups for p in g["params"]]))
    try:
        cfg = dict(patience=0, average=1, schedule="none", progress=False, baseline=False)  # the rate: not by --epochs
        script = iter([0.5, 0.5, 0.6, 0.7])
        run = run_training("names", data, MODEL, TrainConfig(epochs=4, **cfg), out=tmp_path / "a", **QUIET)
        steps = after[:]
        script = iter([0.5, 0.5, 0.6, 0.7])
        split = run_training("names", data, MODEL, TrainConfig(epochs=3, **cfg), out=tmp_path / "b", **QUIET)
        resume_training(split, epochs=4, **QUIET)
    finally:
        hook.remove()
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r.get("averaged", False) for r in rows] == [False, False, True, True]
    assert summary(run)["best_epoch"] == 4
    first = rows[1]["step"]  # the last step before averaging
    mean = [torch.stack(ws).mean(0) for ws in zip(*steps[first:])]
    model = load_run(run).model
    for (name, p), m in zip(model.named_parameters(), mean):
        torch.testing.assert_close(p.detach(), m, msg=name)
    again = load_run(split).model
    for (name, p), q in zip(model.named_parameters(), again.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    with pytest.raises(ValueError, match="--average 5: early stopping"):
        TrainConfig(average=5, patience=4).implied({"average"})
