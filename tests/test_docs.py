"""Every `rnnlab ...` command shown in the READMEs' code blocks is accepted by the real command line:
the command exists, the task exists, every flag and value parses and passes its range check. Nothing
is trained or loaded: the step after parsing is replaced by a stop."""

import re
import shlex
from pathlib import Path

import pytest

import rnnlab.cli as cli
import rnnlab.experiment as experiment
import rnnlab.lab.cli as lab_cli
import rnnlab.serve.cli as serve_cli

ROOT = Path(__file__).resolve().parents[1]
READMES = ["README.md", "README.zh-CN.md"]


def commands(path: Path) -> list[str]:
    """The `rnnlab ...` lines inside ``` blocks (a `$ ` prompt, `echo x |` and comments stripped)."""
    out, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        line = line.strip().removeprefix("$ ")
        line = re.sub(r"^echo .*?\|\s*", "", line)
        if inside and line.startswith("rnnlab "):
            out.append(re.sub(r"\s+#.*$", "", line))
    return out


class Parsed(BaseException):
    """Raised where the command would start working: its arguments were accepted."""


def _stop(*args, **kwargs):
    raise Parsed


def _serve_stop(args):
    serve_cli.check_args(args)  # port, threads, --runs folders: then stop before binding a port
    raise Parsed


CASES = [(name, cmd) for name in READMES if (ROOT / name).is_file() for cmd in commands(ROOT / name)]


def test_the_readmes_show_commands():
    assert len([c for name, c in CASES if name == "README.md"]) >= 20
    assert len([c for name, c in CASES if name == "README.zh-CN.md"]) >= 10


def _task_by_name(spec: str):
    """The README's placeholder runs (runs/names-lstm-..., RUN_DIR) exist nowhere: their task from the name."""
    from rnnlab.tasks import TASKS

    head = Path(spec).name.split("-")[0]
    return TASKS[head if head in TASKS else "sentiment"]


@pytest.mark.parametrize("readme,command", CASES)
def test_readme_command_parses(readme, command, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "_run_task", _task_by_name)
    for target, name in [(experiment, "run_training"), (experiment, "resume_training"), (cli, "_load"),
                         (cli, "cmd_gradients"), (cli, "cmd_longrange"), (cli, "cmd_report"), (cli, "launch")]:
        monkeypatch.setattr(target, name, _stop)
    monkeypatch.setattr(serve_cli, "cmd_serve", _serve_stop)
    monkeypatch.setattr(lab_cli, "cmd_check", _stop)  # a workspace or a class the README's reader has made
    monkeypatch.setattr(lab_cli, "cmd_grade", _stop)
    monkeypatch.chdir(tmp_path)  # relative folders a command names (runs) are made here, not in the checkout
    (tmp_path / "runs").mkdir()
    argv = [a.replace("...", "x") for a in shlex.split(command)[1:]]
    if "--lab" in argv and argv[0] == "serve":  # the workspace the reader made with `rnnlab lab new lab1`
        from rnnlab.lab.workspace import new_workspace

        new_workspace(tmp_path / argv[argv.index("--lab") + 1], "en")
    if argv[:1] == ["compare"]:
        argv += ["--out", str(tmp_path / "compare")]  # compare makes its folder before training
    try:
        rc = cli.main(argv)
    except Parsed:
        return
    err = capsys.readouterr().err
    assert rc == 0, f"{readme}: `{command}` -> {err.strip()}"
