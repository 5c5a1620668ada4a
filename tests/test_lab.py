"""The lab: a workspace never holds the answers; the key passes every check; each typical mistake is
caught by its part with a hint that names it; the skeleton scores zero without a traceback; grading
survives what students hand in (endless loops, crashes, forks, writes outside, zip-slip) and writes
the gradebook."""

import csv
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.lab.checks import run_checks, run_here
from rnnlab.lab.grade import grade
from rnnlab.lab.mistakes import MISTAKES, apply
from rnnlab.lab.parts import PARTS, source
from rnnlab.lab.sandbox import landlock_abi
from rnnlab.lab.workspace import new_workspace

QUICK = ["rnn_cell", "bptt_rnn", "sampling"]  # the parts the grading test checks (all parts: the key test)


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return new_workspace(tmp_path_factory.mktemp("lab") / "key", "en", solution=True)


def test_the_workspace_holds_no_answers_and_the_key_is_rnnlab_s_own_code(tmp_path, key):
    ws = new_workspace(tmp_path / "ws", "zh", notebook=True)
    for part in PARTS.values():
        text = (ws / f"{part.name}.py").read_text(encoding="utf-8")
        for name in part.blank:  # every function to write raises, and its docstring (the equations) is there
            assert text.count("raise NotImplementedError") >= 1
        assert "F.linear(h, w_hh" not in text and "np.outer(delta" not in text  # no solution line leaks
        assert (key / f"{part.name}.py").read_text(encoding="utf-8") == source(part, True)
    import rnnlab.nn.lstm as lstm

    assert "c = f * c + i * g" in (key / "lstm_cell.py").read_text() and "c = f * c + i * g" in Path(lstm.__file__).read_text()
    assert "循环神经网络实验" in (ws / "README.md").read_text(encoding="utf-8") and (ws / "lab.ipynb").is_file()
    assert (ws / "answers.md").is_file() and json.loads((ws / ".rnnlab-lab.json").read_text())["format"] == "rnnlab-lab-1"


def test_the_key_passes_every_part_and_the_skeleton_scores_zero(tmp_path, key, capsys):
    verdicts = run_checks(key, list(PARTS), seed=11)
    assert all(v.ok for v in verdicts), [(v.part, v.lines) for v in verdicts]
    assert any("names training" in line for v in verdicts for line in v.lines)
    new_workspace(tmp_path / "ws", "en")
    assert main(["lab", "check", str(tmp_path / "ws"), "--json", "--seed", "5"]) == 1
    said = json.loads(capsys.readouterr().out)
    assert all(p["score"] == 0 and "not written yet" in p["feedback"][0] for p in said["parts"])
    assert "Traceback" not in json.dumps(said)


@pytest.mark.parametrize("mistake", MISTAKES, ids=[f"{m.part}-{m.name}" for m in MISTAKES])
def test_each_mistake_is_caught_and_named(tmp_path, key, mistake):
    ws = tmp_path / "ws"
    shutil.copytree(key, ws)
    f = ws / f"{mistake.part}.py"
    f.write_text(apply(f.read_text(encoding="utf-8"), mistake), encoding="utf-8")
    (v,) = run_checks(ws, [mistake.part], seed=7, runner=run_here)
    assert not v.ok and v.mistake == mistake.name, v.lines
    assert any(mistake.en in line for line in v.lines)


@pytest.mark.parametrize("edit, says", [
    (lambda t: t.replace("def lstm_cell(", "def lstm_cel("), "has no attribute 'lstm_cell'"),
    (lambda t: t + "\ndef broken(:\n", "line"),
    (lambda t: t.replace("return (s[\"h\"]", "return (s[\"h\"][:, :1]"), "shape"),
    (lambda t: t.replace("c = f * c + i * g", "c = f * c + i * g * float('nan')"), "NaN"),
    (lambda t: t.replace("import torch\n", "import torch\nimport rnnlab.nn\n", 1), "imports rnnlab"),
    (lambda t: t.replace("gates = xg + F.linear(h, w_hh, b_hh)", "gates = torch.nn.LSTM(2, 2) and xg + F.linear(h, w_hh, b_hh)"),
     "ready-made recurrent layer"),
])
def test_bad_parts_get_one_line_naming_the_part(tmp_path, key, capsys, edit, says):
    ws = tmp_path / "ws"
    shutil.copytree(key, ws)
    f = ws / "lstm_cell.py"
    f.write_text(edit(f.read_text(encoding="utf-8")), encoding="utf-8")
    assert main(["lab", "check", str(ws), "lstm_cell", "--seed", "3"]) == 1
    out = capsys.readouterr().out
    assert "FAIL lstm_cell" in out and says in out and "Traceback" not in out


def test_a_workspace_of_another_version_or_none_is_one_line(tmp_path, capsys):
    assert main(["lab", "check", str(tmp_path)]) == 2
    assert "not an rnnlab lab workspace" in capsys.readouterr().err
    ws = new_workspace(tmp_path / "ws", "en", parts=["sampling"])
    (ws / ".rnnlab-lab.json").write_text(json.dumps({"format": "rnnlab-lab-0", "parts": ["sampling"]}))
    assert main(["lab", "check", str(ws)]) == 2
    assert "another version" in capsys.readouterr().err
    (ws / "sampling.py").unlink()
    (ws / ".rnnlab-lab.json").write_text(json.dumps({"format": "rnnlab-lab-1", "parts": ["sampling"]}))
    assert main(["lab", "check", str(ws)]) == 1
    assert "sampling.py: missing" in capsys.readouterr().out


def _submission(root: Path, key: Path, name: str, edit=None, part="rnn_cell") -> Path:
    ws = root / name
    shutil.copytree(key, ws)
    if edit:
        (ws / f"{part}.py").write_text(edit((ws / f"{part}.py").read_text(encoding="utf-8")), encoding="utf-8")
    return ws


def test_grading_a_class_survives_what_students_hand_in(tmp_path, key):
    subs, outside = tmp_path / "subs", tmp_path / "outside.txt"
    subs.mkdir()
    _submission(subs, key, "alice")
    _submission(subs, key, "bob", lambda t: apply(t, MISTAKES[1]))  # no bias_hh
    new_workspace(subs / "carol", "en")  # the skeleton
    _submission(subs, key, "dave", lambda t: t.replace('"""One step, written', 'while True:\n        pass\n    """'))
    _submission(subs, key, "erin", lambda t: t + "\nimport os\nos._exit(3)\n")  # the process dies on import
    _submission(subs, key, "frank", lambda t: t + f"\nopen({str(outside)!r}, 'w').write('x')\n"
                "import os\nfor _ in range(3):\n    os.fork() or os._exit(0)\n")
    with zipfile.ZipFile(subs / "grace.zip", "w") as z:  # zip-slip
        z.writestr("../../evil.py", "x = 1")
    with zipfile.ZipFile(subs / "heidi.zip", "w") as z:  # a good zip, its folder inside
        for f in key.iterdir():
            z.write(f, f"heidi/{f.name}")
    page = grade(subs, tmp_path / "book", jobs=2, parts=QUICK, log=lambda *a: None, part_seconds=5)
    rows = {r["student"]: r for r in csv.DictReader(open(tmp_path / "book" / "gradebook.csv", encoding="utf-8"))}
    assert set(rows) == {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
    assert rows["alice"]["total"] == rows["heidi"]["total"] == "3.00"
    assert float(rows["bob"]["rnn_cell"]) < 1 and "bias_hh is missing" in rows["bob"]["rnn_cell feedback"]
    assert rows["carol"]["total"] == "0.00" and "not written yet" in rows["carol"]["rnn_cell feedback"]
    assert "longer than" in rows["dave"]["rnn_cell feedback"] and rows["dave"]["sampling"] == "1.00"
    assert rows["erin"]["total"] == "0.00" and "exit code" in rows["erin"]["rnn_cell feedback"]
    assert "points outside the submission" in rows["grace"]["rnn_cell feedback"]
    if landlock_abi():  # the box writes only inside its scratch folder
        assert not outside.exists() and "Permission denied" in rows["frank"]["rnn_cell feedback"]
    html = page.read_text(encoding="utf-8")
    assert "Most common mistakes" in html and "rnn_cell: no bias_hh" in html and "Answers" in html


def test_the_commands_refuse_bad_input_in_one_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "rnnlab.cli", "lab", *args], capture_output=True, text=True,
                              timeout=120)

    (tmp_path / "empty").mkdir()
    for args, says in [(("grade", str(tmp_path / "empty"), "--out", str(tmp_path / "b")), "no submissions"),
                       (("grade", str(tmp_path / "nope"), "--out", str(tmp_path / "b")), "no such folder"),
                       (("new", str(tmp_path / "w"), "--parts", "lstm,gru"), "--parts"),
                       (("check", str(tmp_path / "empty"), "--seed", "-1"), "not an rnnlab lab workspace")]:
        r = run(*args)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_student_s_cell_trains_in_rnnlab_s_layers(tmp_path, key):
    """train --lab DIR: the workspace's lstm_step inside rnnlab.nn's layer (both directions), an ordinary
    run folder; a cell that does not pass its check is refused in one line."""
    from rnnlab import load_run, train_task
    from rnnlab.errors import UserError
    from test_names import tiny_folder

    data = tiny_folder(tmp_path / "names")
    run = train_task("names", out=tmp_path / "run", data=str(data), lab=str(key), cell="lstm", bidirectional=True,
                     hidden=8, embed_dim=8, ensemble=1, epochs=2, log=lambda *a: None, progress=False, baseline=False)
    loaded = load_run(run)
    assert type(loaded.model.rnn).__name__ == "LabLSTM" and loaded.predict(["Abe"])[0]["top"]
    bad = tmp_path / "bad"
    shutil.copytree(key, bad)
    (bad / "lstm_cell.py").write_text(apply((bad / "lstm_cell.py").read_text(encoding="utf-8"), MISTAKES[6]),
                                      encoding="utf-8")
    with pytest.raises(UserError, match="lstm_cell.py does not pass its check yet"):
        train_task("names", out=tmp_path / "run2", data=str(data), lab=str(bad), cell="lstm", ensemble=1, epochs=1,
                   log=lambda *a: None, progress=False, baseline=False)


def test_serve_lab_shows_the_student_s_cells_and_runs(tmp_path, key):
    """rnnlab serve --lab DIR: the Gradients tab offers the workspace's cells (the key's measure exactly
    what rnnlab's do; a cell failing its check is a 400 naming it), the runs in DIR/runs are listed and
    their trace steps through the student's own gate functions."""
    import warnings

    from rnnlab import train_task
    from test_names import tiny_folder

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with")
        from fastapi.testclient import TestClient
    from rnnlab.serve.app import create_app

    ws = tmp_path / "ws"
    shutil.copytree(key, ws)
    train_task("names", out=ws / "runs" / "mine", data=str(tiny_folder(tmp_path / "names")), lab=str(ws), cell="lstm",
               hidden=8, embed_dim=8, ensemble=1, epochs=1, log=lambda *a: None, progress=False, baseline=False)
    calls = []
    with TestClient(create_app(bundled=False, lab=str(ws))) as c:
        described = c.get("/api/gradients").json()
        assert described["lab"] == str(ws) and {"lab-lstm", "lab-gru", "lab-rnn-relu"} <= set(described["cells"])
        body = {"T": 30, "hidden": 8, "seed": 2, "radius": 1.0}
        mine = c.post("/api/gradients/flow", json={**body, "cell": "lab-lstm"}).json()
        ours = c.post("/api/gradients/flow", json={**body, "cell": "lstm"}).json()
        assert mine["cell"] == "lab-lstm" and mine["h"] == ours["h"] and mine["C"] == ours["C"]
        assert [r["id"] for r in c.get("/api/runs").json()["runs"]] == ["mine"]
        import rnnlab.nn.trace as trace_module
        real = trace_module.step_through

        def spy(*args, **kwargs):
            calls.append(kwargs.get("functions"))
            return real(*args, **kwargs)

        import rnnlab.tasks.names as names_module
        names_module.step_through = spy
        try:
            traced = c.post("/api/names/trace", json={"name": "Abe", "run": "mine"}).json()
        finally:
            names_module.step_through = real
        assert "forget" in traced["gates"] and calls and calls[0].__file__ == str(ws / "lstm_cell.py")
        (ws / "gru_cell.py").write_text(apply((ws / "gru_cell.py").read_text(encoding="utf-8"),
                                              next(m for m in MISTAKES if m.part == "gru_cell")), encoding="utf-8")
        r = c.post("/api/gradients/flow", json={**body, "cell": "lab-gru"})
        assert r.status_code == 400 and "gru_cell.py does not pass its check yet" in r.json()["error"]
    with TestClient(create_app(bundled=False)) as c:
        r = c.post("/api/gradients/flow", json={"cell": "lab-lstm"})
        assert r.status_code == 400 and "rnnlab serve --lab" in r.json()["error"]
        assert not any(x.startswith("lab-") for x in c.get("/api/gradients").json()["cells"])
    out = subprocess.run([sys.executable, "-m", "rnnlab.cli", "serve", "--lab", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--lab" in out.stderr and "no such folder" in out.stderr


def test_lab_folder_is_kept_as_an_absolute_path(tmp_path, monkeypatch):
    """A run trained with --lab . loads the student's cells from the same folder when served elsewhere."""
    from rnnlab.cli import task_parser
    from rnnlab.tasks import TASKS

    monkeypatch.chdir(tmp_path)
    args = task_parser("train", TASKS["names"]).parse_args(["--lab", ".", "--cell", "lstm"])
    assert args.lab == str(tmp_path.resolve())
