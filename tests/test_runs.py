"""Run folders you can trust: one writer at a time (a second training or resume is refused, a dead
writer's lock is taken over), a kill -9 at any moment resumes to the same weights and metrics as an
uninterrupted run, and a failed write (disk full) leaves no temporary file behind."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnlab.bundle import atomic_write_bytes
from rnnlab.cli import main
from rnnlab.errors import UserError
from rnnlab.experiment import resume_training, run_training
from rnnlab.models import ClassifierConfig
from rnnlab.runs import RunLock, load_checkpoint, read_jsonl
from rnnlab.tasks.names import NamesConfig
from rnnlab.train import TrainConfig

from test_names import tiny_folder

SRC = str(Path(__file__).resolve().parents[1] / "src")
QUIET = dict(log=lambda *a: None)


def child(code: str, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, "timed out"
        time.sleep(0.005)


SLOW_TRAINING = """
import sys, time
from rnnlab.cli import main
from rnnlab.train import Trainer
original = Trainer.evaluate_and_checkpoint
def slow(self, *args):
    time.sleep(0.4)  # long enough for a second writer to come along
    return original(self, *args)
Trainer.evaluate_and_checkpoint = slow
sys.exit(main(["train", "names", "--data", sys.argv[1], "--out", sys.argv[2], "--epochs", "3", "--hidden", "8",
               "--embed-dim", "8", "--patience", "0", "--no-progress", "--no-baseline", "--threads", "1"]))
"""


def test_two_trainings_into_one_folder_give_one_refusal_and_a_clean_history(tmp_path, capsys):
    data, out = tiny_folder(tmp_path / "data", per_label=10), tmp_path / "run"
    first = child(SLOW_TRAINING, data, out)
    wait_for(lambda: (out / ".lock").is_file() and (out / ".lock").stat().st_size > 0, first)
    args = ["--data", data, "--out", out, "--epochs", "2", "--hidden", "8", "--embed-dim", "8", "--no-progress"]
    assert main(["train", "names", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out} is being written by process {first.pid}" in err, err
    assert main(["train", "names", "--resume", out]) == 2  # a resume is refused as well
    assert f"being written by process {first.pid}" in capsys.readouterr().err
    _, child_err = first.communicate(timeout=300)
    assert first.returncode == 0, child_err
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3]  # one writer's history, once
    assert json.loads((out / "config.json").read_text())["train_config"]["epochs"] == 3
    assert not (out / ".lock").exists()


def test_a_dead_writer_s_lock_is_taken_over_and_a_live_one_is_not(tmp_path):
    data, out = tiny_folder(tmp_path / "data", per_label=10), tmp_path / "run"
    out.mkdir()
    pid = dead_pid()
    (out / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))
    said = []
    run_training("names", NamesConfig(data=str(data)), ClassifierConfig(hidden=8, embed_dim=8),
                 TrainConfig(epochs=1, progress=False, baseline=False), out=out, log=said.append)
    assert any(f"taking over the lock of process {pid}" in line for line in said)
    assert (out / "best.pt").is_file() and not (out / ".lock").exists()
    with RunLock(out):  # held by this process: a second holder in the same process is refused too
        with pytest.raises(UserError, match=f"being written by process {os.getpid()}"):
            RunLock(out).acquire()
    assert not (out / ".lock").exists()


TRAIN = ["train", "names", "--epochs", "4", "--batch-size", "4", "--hidden", "8", "--embed-dim", "8", "--dropout", "0.2",
         "--patience", "0", "--no-progress", "--no-baseline", "--threads", "1"]
KILLED_TRAINING = f"""
import sys
from rnnlab.cli import main
sys.exit(main({TRAIN!r} + ["--data", sys.argv[1], "--out", sys.argv[2]]))
"""


def without_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("epoch_time", "elapsed")} for r in rows]


@pytest.mark.parametrize("checkpoints_before_kill", [1, 2])
def test_kill_9_after_a_checkpoint_resumes_to_the_uninterrupted_run(tmp_path, checkpoints_before_kill):
    """SIGKILL right after last.pt is renamed into place (possibly before its metrics line is appended),
    then resume: the same weights, metrics.jsonl and checkpoints as a run that was never interrupted."""
    data = tiny_folder(tmp_path / "data", per_label=10)
    straight = tmp_path / "straight"
    assert main([*TRAIN, "--data", str(data), "--out", str(straight)]) == 0
    out = tmp_path / "killed"
    proc = child(KILLED_TRAINING, data, out)
    seen = {"n": 0, "mtime": None}

    def checkpoint_written():
        try:
            mtime = (out / "last.pt").stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if mtime != seen["mtime"]:
            seen["n"], seen["mtime"] = seen["n"] + 1, mtime
        return seen["n"] >= checkpoints_before_kill

    wait_for(checkpoint_written, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert (out / ".lock").exists()  # left by the killed process
    resume_training(out, **QUIET)
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(out / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert without_times(read_jsonl(out / "metrics.jsonl")) == without_times(read_jsonl(straight / "metrics.jsonl"))
    assert without_times(b["meta"]["history"]) == without_times(a["meta"]["history"])
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no lock, no temporary file


def test_a_failed_write_leaves_no_temporary_file_and_a_dead_writer_s_is_cleaned(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    target.write_bytes(b"before")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(UserError, match=r"last\.pt: cannot write \(No space left on device\)"):
        atomic_write_bytes(target, b"after")
    monkeypatch.undo()
    assert target.read_bytes() == b"before" and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    stale, live = tmp_path / f".last.pt.tmp-{dead_pid()}", tmp_path / f".last.pt.tmp-{os.getppid()}"
    stale.write_bytes(b"half")
    live.write_bytes(b"someone else's, still writing")
    atomic_write_bytes(target, b"after")
    assert target.read_bytes() == b"after" and not stale.exists() and live.exists()


def test_disk_full_during_training_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    data = tiny_folder(tmp_path / "data", per_label=10)
    real = os.fsync
    calls = {"n": 0}

    def fill_up(fd):
        calls["n"] += 1
        if calls["n"] > 2:  # config.json and best.pt fit; last.pt does not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fill_up)
    code = main(["train", "names", "--data", data, "--out", tmp_path / "run", "--epochs", "2", "--hidden", "8",
                 "--embed-dim", "8", "--no-progress", "--no-baseline"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err, err
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []
