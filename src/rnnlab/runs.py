"""Run folders and checkpoints.

A run folder ``runs/<task>-<cell>-<time>/`` holds::

    config.json      the resolved configuration (task, model, training), written once
    metrics.jsonl    one JSON object per epoch, appended as training goes
    model.txt        print(model) and the parameter count
    best.pt last.pt  checkpoints (last.pt also holds the optimizer state, for --resume)
    summary.json     the data report and the final test metrics
    *.png report.html  plots and the report, made from the files above by rnnlab.report

A checkpoint alone rebuilds the model: it is a ``torch.save`` of plain tensors, numbers and JSON
strings (model config, task state such as the vocabulary), loaded with ``weights_only=True`` so
that no code is unpickled. Every write is atomic (temporary file, then rename): an interrupted
run never leaves a half-written checkpoint or config behind, and a failed write (no space left)
removes its temporary file.

While a process trains into a folder it holds ``.lock`` (``RunLock``: the owner's PID, host and
start time, created with O_EXCL), so a second training or resume into the same folder is refused
with a message naming the owner; the lock of a process that died (kill -9, a power cut) is taken
over by the next one, which says so.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .files import atomic_write_bytes, pid_alive
from .errors import UserError

CHECKPOINT_FORMAT = "rnnlab-checkpoint-1"


# A --folds / --seeds folder's plan (rnnlab.repeats): beside its runs fold-1 ... or seed-S ...
REPEATS_FILE = "repeats.json"


def new_run_dir(root: str | Path, *parts: str) -> Path:
    """A fresh folder ``root/<parts>-<YYYYmmdd-HHMMSS>`` (a suffix is added if it exists; two processes
    starting in the same second get different folders)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / "-".join([*parts, stamp])
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{root}: cannot create the runs folder ({e.strerror})") from None
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        except OSError as e:
            raise UserError(f"{path}: cannot create the run folder ({e.strerror})") from None


_HELD: set[str] = set()  # lock files this process holds


class RunLock:
    """An exclusive lock on a run folder while a process writes into it::

        with RunLock(run_dir, log=print):
            ...  # write config.json, train, checkpoint, report

    ``run_dir/.lock`` is created with O_CREAT|O_EXCL and holds the owner's PID, host and start time.
    If it exists and its process is alive (on this host; on another host we cannot tell) the folder
    is refused with a ``UserError`` naming the owner; if its process is gone, the lock is taken over
    and ``log`` says so. ``hint`` ends the refusal (what the user can do instead).
    """

    NAME = ".lock"

    def __init__(self, run_dir: str | Path, log=print, hint: str = "wait for it or choose another --out") -> None:
        self.run_dir, self.log, self.hint = Path(run_dir), log, hint
        self.path = self.run_dir / self.NAME
        self.held = False

    def _owner(self) -> dict | None:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None

    def acquire(self) -> "RunLock":
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for attempt in range(50):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner == {}:  # released between our two looks
                    continue
                if owner is None:  # being written this instant, or garbage left by a crash
                    try:
                        age = time.time() - self.path.stat().st_mtime
                    except OSError:
                        continue
                    if age < 5:
                        time.sleep(0.1)
                        continue
                    self.log(f"{self.path}: an unreadable lock file from {age:.0f} s ago; taking it over")
                    self._remove_stale()
                    continue
                same_host = owner.get("host") == me["host"]
                mine = owner["pid"] == me["pid"] and str(self.path.resolve()) not in _HELD
                if same_host and (mine or not pid_alive(owner["pid"])):
                    self.log(f"{self.run_dir}: taking over the lock of process {owner['pid']} (started "
                             f"{owner.get('started', '?')}), which is gone")
                    self._remove_stale()
                    continue
                where = "" if same_host else f" on host {owner.get('host', '?')}"
                raise UserError(f"{self.run_dir} is being written by process {owner['pid']}{where} (started "
                                f"{owner.get('started', '?')}); {self.hint}")
            except OSError as e:
                raise UserError(f"{self.run_dir}: cannot create its lock file ({e.strerror}); is the folder "
                                "writable?") from None
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(json.dumps(me) + "\n")
            except OSError as e:
                self.path.unlink(missing_ok=True)
                raise UserError(f"{self.path}: cannot write the lock file ({e.strerror})") from None
            self.held = True
            _HELD.add(str(self.path.resolve()))
            return self
        raise UserError(f"{self.run_dir}: could not take its lock ({self.path}); {self.hint}")

    def _remove_stale(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        _HELD.discard(str(self.path.resolve()))
        owner = self._owner()
        if owner and owner.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8"))


def read_json(path: Path, kind: type | None = None) -> Any:
    """A JSON file of a run folder; with ``kind`` (dict, list) its top level must be that."""
    from .datafiles import MAX_JSON_DEPTH, _depth, too_deep

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if _depth(text) > MAX_JSON_DEPTH:
            raise too_deep(path)
        data = json.loads(text)
    except RecursionError:
        raise too_deep(path) from None
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a JSON file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if kind is not None and not isinstance(data, kind):
        raise UserError(f"{path}: expected a JSON {'object' if kind is dict else kind.__name__}, found "
                        f"{type(data).__name__}")
    return data


def append_jsonl(path: Path, obj: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    """The rows of metrics.jsonl (none if it is missing); each must be a JSON object."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    for n, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                raise UserError(f"{path}:{n}: not valid JSON") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{n}: expected a JSON object, found {type(row).__name__}")
            rows.append(row)
    return rows


def save_checkpoint(path: Path, **payload: Any) -> None:
    """Atomically write a checkpoint. Dict/str values under ``meta`` are stored as JSON text."""
    import torch

    payload = dict(payload)
    payload["format"] = CHECKPOINT_FORMAT
    if "meta" in payload:
        payload["meta"] = json.dumps(payload["meta"], ensure_ascii=False)
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load a checkpoint written by save_checkpoint; a clear error for anything else."""
    import pickle
    import warnings
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles on stderr: the error below says it in one line
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: corrupted or not an rnnlab checkpoint ({first[:120]})") from None
    except (IndexError, KeyError, TypeError, AttributeError, MemoryError, RecursionError) as e:
        # torch's unpickler on text that is not a pickle (a /etc/passwd planted as best.pt: IndexError)
        raise UserError(f"{path}: corrupted or not an rnnlab checkpoint ({type(e).__name__} while reading it)") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an rnnlab checkpoint")
    if "meta" in payload:
        try:
            payload["meta"] = json.loads(payload["meta"])
        except (TypeError, ValueError):
            raise UserError(f"{path}: damaged checkpoint (its meta is not JSON)") from None
    if not isinstance(payload.get("meta"), dict) or not isinstance(payload.get("model"), dict):
        raise UserError(f"{path}: damaged checkpoint (no weights or meta)")
    return payload


RUN_META = {"task": str, "task_config": dict, "model_config": dict, "task_state": dict}


def check_run_meta(meta: Any, where: str | Path) -> dict:
    """The meta of a task's checkpoint (or a model folder's run.json) has what rebuilds the model:
    the task, its configs and its state; else a one-line error naming ``where``."""
    if not isinstance(meta, dict):
        raise UserError(f"{where}: damaged (no run description)")
    for key, kind in RUN_META.items():
        if not isinstance(meta.get(key), kind):
            raise UserError(f"{where}: damaged ({key!r} is missing or not a {'text' if kind is str else 'JSON object'})")
    return meta


def refuse_run_in(out: Path) -> None:
    """``--out`` of a new run: a folder that holds a run already is refused (resume it instead)."""
    if any(Path(out).glob("*.pt")):
        raise UserError(f"{out} already holds a run; use --resume {out} to continue it, or choose another --out")


def find_checkpoint(run_dir: Path, which: str = "best") -> Path:
    """best.pt (or last.pt if there is no best) of a run folder, with clear errors."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run folder not found")
    for name in ((f"{which}.pt", "last.pt") if which == "best" else (f"{which}.pt",)):
        if (run_dir / name).is_file():
            return run_dir / name
    if which == "last" and (run_dir / "best.pt").is_file():
        raise UserError(f"{run_dir}: no last.pt, the checkpoint a run resumes from (best.pt alone has no optimizer "
                        "state); train a new run")
    if which == "last" and (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir}: no last.pt: the run stopped before its first epoch ended; train it again "
                        f"(--out {run_dir}) instead of resuming")
    raise UserError(f"{run_dir}: no checkpoint in this run folder (expected best.pt or last.pt)")
