"""The thread policy (rnnlab.threads): --threads auto/N, following the load, and why changing the count
mid-run does not change a seeded run's numbers."""

import json
import os
import subprocess
import sys

import pytest
import torch

from rnnlab import threads
from rnnlab.cli import main
from rnnlab.threads import Sample, ThreadGovernor, fitting, others_load, parse_threads
from rnnlab.train import TrainConfig


@pytest.mark.parametrize("text,value", [("auto", "auto"), ("AUTO", "auto"), ("2", "2"), (" 1 ", "1"), (1024, "1024")])
def test_threads_option_reads_auto_or_a_count(text, value):
    assert parse_threads(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "1025", "two", "", "1.5"])
def test_bad_thread_counts_are_refused(text):
    with pytest.raises(ValueError, match="give auto or a number of threads"):
        parse_threads(text)


def test_train_config_takes_threads_from_python_and_json_and_refuses_nonsense():
    assert TrainConfig(threads=2).threads == "2" and TrainConfig().threads == "auto"
    assert TrainConfig.from_dict({"threads": "auto"}).threads == "auto"
    with pytest.raises(ValueError, match="--threads"):
        TrainConfig(threads="many")
    with pytest.raises(ValueError, match="--threads"):
        TrainConfig(threads=0)


@pytest.mark.parametrize("argv", [["train", "names", "--threads", "0"], ["gradients", "--threads", "x"],
                                  ["compare", "names", "--threads", "-2"]])
def test_bad_threads_flag_is_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads" in err and "give auto or a number" in err, err


@pytest.mark.parametrize("cores,others,want", [(2, 0.0, 2), (2, 0.3, 2), (2, 0.6, 1), (2, 1.9, 1), (2, 5.0, 1),
                                               (4, 1.2, 3), (8, 0.0, 8), (2, None, 2), (1, 0.0, 1)])
def test_one_thread_per_core_left_free(cores, others, want):
    assert fitting(cores, others) == want


def test_others_load_is_the_machine_s_busy_time_minus_our_own():
    a, b = Sample(wall=10.0, busy=100.0, own=5.0), Sample(wall=12.0, busy=103.0, own=6.0)  # 3 s busy, 1 s ours
    assert others_load(a, b) == pytest.approx(1.0)
    assert others_load(a, Sample(12.0, 101.0, 7.0)) == 0.0  # rounding of the tick counts: never negative
    assert others_load(Sample(1.0, None, 0.0), b) is None


def test_the_cap_follows_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.core_cap() == (1, "OMP_NUM_THREADS") or len(threads.usable_cpus()) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    gov = ThreadGovernor("auto")
    assert gov.start() == 1 and torch.get_num_threads() == 1 and gov.others is None  # nothing to choose: no probe
    assert gov.describe() == "threads: 1 (auto: 1 at most, by OMP_NUM_THREADS)" or len(threads.usable_cpus()) == 1


def scripted(monkeypatch, loads: list[float], cores: int = 2):
    """Make the governor see ``loads`` (others' cores), one per window, on a machine of ``cores`` CPUs."""
    clock = {"t": 0.0, "busy": 0.0, "i": 0}

    def fake_sample(cpus):
        clock["t"] += 1.0
        load = loads[min(clock["i"], len(loads) - 1)]
        clock["i"] += 1
        clock["busy"] += load  # our own CPU time stays 0: all busy time is the others'
        return Sample(clock["t"], clock["busy"], 0.0)

    monkeypatch.setattr(threads, "sample", fake_sample)
    monkeypatch.setattr(threads, "core_cap", lambda: (cores, "test"))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["t"] + 0.5)


def test_auto_follows_the_load_when_two_windows_agree(monkeypatch):
    #                     probe     window 1  2    3    4    5    6    7    8
    scripted(monkeypatch, [0.0, 0.0, 0.0, 1.0, 1.0, 0.1, 1.0, 0.1, 0.1, 0.1])
    gov = ThreadGovernor("auto", window=0.0)
    assert gov.start() == 2 and torch.get_num_threads() == 2
    seen = []
    for _ in range(8):
        gov.tick()
        seen.append(gov.threads)
    # a neighbour appears (two windows), pauses for one window (no change), then leaves (two windows)
    assert seen == [2, 2, 1, 1, 1, 1, 2, 2]
    assert [c[1:3] for c in gov.changes] == [(2, 1), (1, 2)] and torch.get_num_threads() == 2
    accounted = dict(gov._seconds)
    summary = gov.summary()
    assert summary["policy"] == "auto" and summary["cores"] == 2 and set(summary["seconds_at"]) == {"1", "2"}
    assert gov._seconds == accounted and gov.summary() == summary  # reading the summary changes nothing
    torch.set_num_threads(1)


def test_a_fixed_count_never_moves(monkeypatch):
    scripted(monkeypatch, [2.0] * 5)
    gov = ThreadGovernor("2", window=0.0)
    assert gov.start() == 2
    for _ in range(3):
        gov.tick()
    assert gov.threads == 2 and not gov.changes and gov.describe() == "threads: 2 (--threads 2)"
    torch.set_num_threads(1)


# Thread counts change a run's numbers unless MKL's strict reproducibility is on (rnnlab turns it on when
# imported). A child process, so that no matrix product ran before rnnlab was imported; the run flips its
# thread count between 1 and 2 every second window, and must end with the weights of a 1-thread run.
FLIPPING = """
import sys
import rnnlab.threads as t
import rnnlab.train as loop
from rnnlab.cli import main
state = {"i": 0}
def flip(cores, others):
    state["i"] += 1
    return (1, 1, 2, 2)[state["i"] % 4]  # each count wanted by two windows in a row
class Flipping(t.ThreadGovernor):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.window = 0.0  # measure after every step
t.fitting = flip
loop.ThreadGovernor = Flipping
sys.exit(main(sys.argv[1:]))
"""
SMALL_RUN = ["train", "names", "--limit", "600", "--epochs", "1",  # the default model: sizes where MKL splits differ
             "--no-progress", "--no-baseline"]


def _run(code: str, out, *extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_CBWR")}
    res = subprocess.run([sys.executable, "-c", code, *SMALL_RUN, "--out", str(out), *extra], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return torch.load(out / "last.pt", map_location="cpu", weights_only=False)["model"]


@pytest.mark.skipif(len(threads.usable_cpus()) < 2, reason="needs 2 cores")
def test_changing_the_thread_count_mid_run_changes_no_number(tmp_path):
    plain = "import sys\nfrom rnnlab.cli import main\nsys.exit(main(sys.argv[1:]))"
    one = _run(plain, tmp_path / "one", "--threads", "1")
    flipped = _run(FLIPPING, tmp_path / "flipped")
    changes = json.loads((tmp_path / "flipped" / "train_summary.json").read_text())["threads"]["changes"]
    assert len(changes) >= 2, changes  # it did run on 1 and on 2 threads
    assert all(torch.equal(one[k], flipped[k]) for k in one)
