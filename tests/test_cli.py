"""The command line: fast help, clear one-line errors with a non-zero exit, never a traceback."""

import subprocess
import sys
import time

from rnnlab.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rnnlab.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_is_fast_and_does_not_import_torch():
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", "import sys; from rnnlab.cli import main; "
                        "sys.argv=['rnnlab','--help']\ntry: main()\nexcept SystemExit: pass\n"
                        "print('torch' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().endswith("False")
    assert time.perf_counter() - start < 5


def test_data_summary(capsys):
    assert main(["data", "summary"]) == 0
    out = capsys.readouterr().out
    assert "18 languages" in out and "57,607 Tang poems" in out


def test_bad_input_gives_one_line_error_and_exit_2(tmp_path):
    r = run_cli("data", "import", "--from", str(tmp_path / "nope"), "--to", str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("rnnlab: error: raw data folder not found")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
