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
run never leaves a half-written checkpoint or config behind.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

from .bundle import atomic_write_bytes
from .errors import UserError

CHECKPOINT_FORMAT = "rnnlab-checkpoint-1"


def new_run_dir(root: str | Path, *parts: str) -> Path:
    """A fresh folder ``root/<parts>-<YYYYmmdd-HHMMSS>`` (a suffix is added if it exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / "-".join([*parts, stamp])
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def append_jsonl(path: Path, obj: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise UserError(f"{path}:{n}: not valid JSON") from None
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
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: corrupted or not an rnnlab checkpoint ({first[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an rnnlab checkpoint")
    if "meta" in payload:
        payload["meta"] = json.loads(payload["meta"])
    return payload


def find_checkpoint(run_dir: Path, which: str = "best") -> Path:
    """best.pt (or last.pt if there is no best) of a run folder, with clear errors."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run folder not found")
    for name in ((f"{which}.pt", "last.pt") if which == "best" else (f"{which}.pt",)):
        if (run_dir / name).is_file():
            return run_dir / name
    raise UserError(f"{run_dir}: no checkpoint in this run folder (expected best.pt or last.pt)")
