"""More than one process: torchrun (gloo, 2 CPU processes, 1 thread each) trains the same model as one
process at the same global batch size; a resumed 2-process run equals an uninterrupted one; rank 0
alone writes one run folder; bad input and a dead rank end in one line, not a hang. Tiny data."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.distributed import Dist, row_range
from rnnlab.errors import UserError
from rnnlab.experiment import resume_training
from rnnlab.runs import load_checkpoint, read_jsonl

from test_names import tiny_folder
from test_poems import poem_folder
from test_sentiment import review_csv

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")

SRC = str(Path(rnnlab.__file__).resolve().parents[1])
QUIET = dict(log=lambda *a: None)
TIMING = {"epoch_time", "elapsed"}
# Dropout 0: each rank draws its own masks, so only a run without dropout can equal one process exactly.
NAMES = ["--cell", "gru", "--bidirectional", "--hidden", "16", "--embed-dim", "8", "--dropout", "0",
         "--token-dropout", "0", "--batch-size", "11", "--schedule", "plateau", "--patience", "0", "--no-progress",
         "--no-baseline"]


def env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "RNNLAB_DIST_TIMEOUT": "60",
            "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra}


def torchrun(*args, cwd, nproc=2, timeout=240):
    """``torchrun --standalone --nproc_per_node=2 -m rnnlab train ...``"""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           "-m", "rnnlab", "train", *map(str, args)], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def assert_same_figures(rows_a, rows_b, rel=1e-4):
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b]
    for a, b in zip(rows_a, rows_b):
        assert a.keys() == b.keys()
        for k in a.keys() - TIMING:
            assert a[k] == pytest.approx(b[k], rel=rel, abs=1e-7), (a["epoch"], k)


def max_weight_difference(run_a: Path, run_b: Path, name="last.pt") -> float:
    a, b = load_checkpoint(run_a / name)["model"], load_checkpoint(run_b / name)["model"]
    assert a.keys() == b.keys() and not any(k.startswith("module.") for k in a)
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def names_runs(tmp_path_factory):
    """The names data, and an uninterrupted 2-epoch run on 2 processes (no --out: rank 0 names the folder)."""
    base = tmp_path_factory.mktemp("ddp")
    data = tiny_folder(base / "data", per_label=40)  # 56 training names: batches of 11, the last of 1
    (base / "two").mkdir()
    r = torchrun("names", "--data", data, *NAMES, "--epochs", "2", cwd=base / "two")
    assert r.returncode == 0, r.stderr
    return base, data, r


def test_names_on_two_processes_equals_one_process(names_runs, capsys):
    base, data, r = names_runs
    runs = list((base / "two" / "runs").iterdir())
    assert len(runs) == 1  # one run folder, made by rank 0
    two = runs[0]
    rows = read_jsonl(two / "metrics.jsonl")
    assert [row["epoch"] for row in rows] == [1, 2]  # no duplicate rows
    # Rank 0 alone prints: each line once.
    assert r.stdout.count("run folder:") == 1 and r.stdout.count("epoch   2") == 1 and "test accuracy" in r.stdout
    assert "rank1" not in r.stderr and "Warning" not in r.stderr
    for f in ("config.json", "model.txt", "best.pt", "last.pt", "summary.json", "train_summary.json", "report.html"):
        assert (two / f).is_file(), f

    assert main(["train", "names", "--data", str(data), *NAMES, "--epochs", "2", "--out", str(base / "one")]) == 0
    capsys.readouterr()
    assert_same_figures(rows, read_jsonl(base / "one" / "metrics.jsonl"))
    assert max_weight_difference(two, base / "one") < 1e-5
    s2, s1 = (json.loads((p / "summary.json").read_text())["test"] for p in (two, base / "one"))
    assert s2["accuracy"] == s1["accuracy"] and s2["loss"] == pytest.approx(s1["loss"], rel=1e-4)
    assert rnnlab.load_run(two).predict(["Abaovic"])[0]["top"][0]["label"]  # the checkpoint loads as usual


def test_a_resumed_two_process_run_equals_an_uninterrupted_one(names_runs, tmp_path):
    base, data, _ = names_runs
    straight = next((base / "two" / "runs").iterdir())
    part = tmp_path / "part"
    # The first epoch through the convenience launcher (torch's elastic launcher underneath) ...
    r = subprocess.run([sys.executable, "-m", "rnnlab", "train", "names", "--data", str(data), *NAMES, "--epochs", "1",
                        "--out", str(part), "--nproc", "2"], env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    shutil.copytree(part, tmp_path / "part_on_one")
    # ... the second after a resume on 2 processes: bit for bit the uninterrupted run.
    r = torchrun("names", "--resume", part, "--epochs", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(part / "last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    strip = lambda rows: [{k: v for k, v in row.items() if k not in TIMING} for row in rows]  # noqa: E731
    assert strip(read_jsonl(straight / "metrics.jsonl")) == strip(read_jsonl(part / "metrics.jsonl"))
    # Resumed on another number of processes (here 1): the same model within rounding.
    resume_training(tmp_path / "part_on_one", epochs=2, **QUIET)
    assert max_weight_difference(straight, tmp_path / "part_on_one") < 1e-5
    assert_same_figures(read_jsonl(straight / "metrics.jsonl"), read_jsonl(tmp_path / "part_on_one" / "metrics.jsonl"))


def test_poems_token_weighted_loss_on_two_processes_equals_one_process(tmp_path, capsys):
    """Language model: ranks hold different numbers of real tokens; torch's fused LSTM; adaptive softmax
    (clusters a rank may not use in a step)."""
    data = poem_folder(tmp_path / "poems")
    args = ["--data", str(data), "--backend", "torch", "--softmax", "adaptive", "--hidden", "16",
            "--embed-dim", "8", "--dropout", "0", "--batch-size", "9", "--epochs", "2", "--samples", "0",
            "--schedule", "cosine", "--patience", "0", "--no-progress", "--no-baseline"]
    r = torchrun("poems", *args, "--out", tmp_path / "two", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert main(["train", "poems", *args, "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert_same_figures(read_jsonl(tmp_path / "two" / "metrics.jsonl"), read_jsonl(tmp_path / "one" / "metrics.jsonl"))
    assert max_weight_difference(tmp_path / "two", tmp_path / "one") < 1e-5


def test_sentiment_two_view_ensemble_with_word2vec_on_two_processes_equals_one_process(tmp_path, capsys):
    """word2vec is trained once, by rank 0; DDP starts rank 1 from rank 0's weights."""
    data = review_csv(tmp_path / "r.csv")
    args = ["--data", str(data), "--tokenizer", "jieba+char", "--ensemble", "2", "--vectors", "word2vec",
            "--w2v-epochs", "2", "--embed-dim", "8", "--hidden", "8", "--pool", "attention", "--dropout", "0",
            "--token-dropout", "0", "--batch-size", "7", "--epochs", "2", "--patience", "0", "--no-progress",
            "--no-baseline"]
    r = torchrun("sentiment", *args, "--out", tmp_path / "two", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert main(["train", "sentiment", *args, "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert_same_figures(read_jsonl(tmp_path / "two" / "metrics.jsonl"), read_jsonl(tmp_path / "one" / "metrics.jsonl"))
    assert max_weight_difference(tmp_path / "two", tmp_path / "one") < 1e-5
    vectors = json.loads((tmp_path / "two" / "summary.json").read_text())["data"]["vectors"]
    assert vectors["source"] == "word2vec" and vectors["vocabulary_coverage"] > 0.5


def test_rows_are_split_in_order_and_the_environment_is_read():
    for rows in (0, 1, 5, 11, 64):
        for world in (1, 2, 3, 4):
            shares = [row_range(rows, world, r) for r in range(world)]
            assert shares[0][0] == 0 and shares[-1][1] == rows
            assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
            assert max(h - lo for lo, h in shares) - min(h - lo for lo, h in shares) <= 1
    assert Dist.from_env({}) == Dist()
    d = Dist.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert (d.rank, d.world_size, d.local_rank, d.is_main, d.enabled) == (3, 4, 1, False, True)
    with pytest.raises(UserError, match="MASTER_ADDR, MASTER_PORT not set"):
        Dist.from_env({"WORLD_SIZE": "2", "RANK": "0"})


def test_nproc_beyond_the_machine_is_one_line(tmp_path, capsys):
    assert main(["train", "names", "--data", str(tiny_folder(tmp_path / "d")), "--nproc", "999"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnlab: error: --nproc 999: this machine has") and len(err.splitlines()) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, port: int, **extra) -> dict:
    return env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port), **extra)


def test_a_missing_rendezvous_is_one_line_and_no_hang(tmp_path):
    """Rank 0 of 2 alone: the other never comes."""
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "rnnlab", "train", "names", "--data", str(tiny_folder(tmp_path / "d"))],
                       env=rank_env(0, free_port(), RNNLAB_DIST_TIMEOUT="3"), cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and time.perf_counter() - start < 60
    assert r.stderr.strip().splitlines()[-1].startswith("rnnlab: error: rank 0 of 2: no rendezvous")
    assert "Traceback" not in r.stderr and not (tmp_path / "runs").exists()


def test_a_rank_that_dies_mid_run_ends_the_other_with_one_line(tmp_path):
    """No launcher to clean up (as when a machine of several goes down): the survivor notices at its next
    collective and says so within the timeout; the last checkpoint stays good."""
    data, port, out = tiny_folder(tmp_path / "d"), free_port(), tmp_path / "run"
    cmd = [sys.executable, "-m", "rnnlab", "train", "names", "--data", str(data), *NAMES, "--epochs", "10000",
           "--batch-size", "2", "--out", str(out)]
    procs = [subprocess.Popen(cmd, env=rank_env(rank, port, RNNLAB_DIST_TIMEOUT="20"), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    try:
        deadline = time.time() + 120
        while not read_jsonl_safe(out / "metrics.jsonl") and time.time() < deadline:
            assert procs[0].poll() is None, procs[0].communicate()
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)  # mid-epoch 2 (or later)
        killed = time.perf_counter()
        _, err = procs[0].communicate(timeout=60)
        assert time.perf_counter() - killed < 40
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert procs[0].returncode != 0
    last = err.strip().splitlines()[-1]
    assert last.startswith("rnnlab: error: rank 0 of 2: lost the other processes") and "--resume" in last, err
    assert "Traceback" not in err
    ckpt = load_checkpoint(out / "last.pt")  # intact
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1)) == [r["epoch"] for r in ckpt["meta"]["history"]]


def read_jsonl_safe(path: Path) -> list:
    try:
        return read_jsonl(path)
    except (OSError, ValueError):
        return []


def test_resume_of_a_run_whose_data_changed_is_one_line_and_keeps_the_checkpoint(tmp_path, capsys):
    data = tiny_folder(tmp_path / "d")
    assert main(["train", "names", "--data", str(data), *NAMES, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    before = (tmp_path / "run" / "last.pt").read_bytes()
    (data / "Zed.txt").write_text("Zedman\nZedson\n", encoding="utf-8")  # a third label
    r = torchrun("names", "--resume", tmp_path / "run", "--epochs", "2", cwd=tmp_path)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("rnnlab: error")]
    assert len(errors) == 1 and "labels differ" in errors[0], r.stderr  # said once, by rank 0
    assert (tmp_path / "run" / "last.pt").read_bytes() == before
