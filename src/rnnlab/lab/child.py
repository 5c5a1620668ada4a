"""The sandboxed side of a check: ``python -m rnnlab.lab.child REQUEST.npz`` in a scratch copy of the
student's workspace. It imports each part's file, runs its probe on the inputs it was given (never the
expected answers: the parent holds those), and writes what came out to ``result.npz`` and
``result.json`` (errors, with the traceback cut to the student's own file and line).

rnnlab's models are not importable from the student's files (a part that calls them is refused
before it runs, and an import of ``rnnlab`` from a student's file fails here too); each part has a
time budget of its own (SIGALRM), the process as a whole the limits the parent set (rnnlab.lab.sandbox).
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import signal
import sys
import traceback
from pathlib import Path

import numpy as np

HERE = Path.cwd().resolve()


class TooLong(BaseException):
    """A part ran past its time budget (BaseException: ``except Exception`` in the student's code
    does not swallow it)."""


def _guard_imports() -> None:
    real = builtins.__import__

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        where = (globals or {}).get("__file__") or ""
        if name.split(".")[0] == "rnnlab" and where and Path(where).resolve().parent == HERE:
            raise ImportError(f"{name}: rnnlab's own implementation may not be imported in the lab; write the "
                              "equations yourself")
        return real(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded


def _student_trace(exc: BaseException) -> str:
    """The error as the student's own file and line: the frames of their files only."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve().parent == HERE]
    where = f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
    message = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {message}{where}"


def _load(part: str):
    spec = importlib.util.spec_from_file_location(f"student_{part}", HERE / f"{part}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(request: str) -> int:
    from . import probes

    torch_threads()
    _guard_imports()
    plan = json.loads((HERE / Path(request).with_suffix(".json").name).read_text())
    data = np.load(HERE / Path(request).name, allow_pickle=False)
    arrays, errors = {}, {}
    signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TooLong()))
    for job in plan["jobs"]:  # {"part", "kind": "probe" | "train", "prefix", "seconds"}
        part, prefix = job["part"], job["prefix"]
        x = {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}
        signal.alarm(int(job["seconds"]))
        try:
            mod = _load(part)
            run = {"probe": lambda: probes.probe(part, mod, x), "train": lambda: probes.train_names(part, mod, x),
                   "poem": lambda: probes.write_poem(mod, x)}[job["kind"]]
            got = run()
            arrays.update({prefix + k: np.asarray(v, dtype=np.float64) for k, v in got.items()})
        except TooLong:
            errors[prefix] = f"took longer than {job['seconds']} s (an endless loop?)"
        except BaseException as e:  # noqa: BLE001 -- the student's code may raise anything
            errors[prefix] = _student_trace(e)
        finally:
            signal.alarm(0)
    np.savez(HERE / "result.npz", **arrays)
    (HERE / "result.json").write_text(json.dumps({"errors": errors}))
    return 0


def torch_threads() -> None:
    import torch

    torch.set_num_threads(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
