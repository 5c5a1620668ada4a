"""Files and processes: where the bundled data is, writing a file atomically, whether a process lives,
and a folder an option names made ready for writing. Used by the importers (rnnlab.bundle), the run
folders (rnnlab.runs) and the commands; nothing here knows a task."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def default_data_dir() -> Path:
    """The bundled ``data/`` folder: $RNNLAB_DATA, else the checkout's data/ beside src/."""
    env = os.environ.get("RNNLAB_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "data" / "SOURCES.md").is_file():
            return parent / "data"
    return Path.cwd() / "data"


def models_dir() -> Path:
    """The bundled models: $RNNLAB_MODELS, else the checkout's models/ beside data/."""
    env = os.environ.get("RNNLAB_MODELS")
    return Path(env) if env else default_data_dir().parent / "models"


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine with that id is running (a zombie counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:
        return False
    return True


def _clean_stale_temps(path: Path) -> None:
    """Remove ``.NAME.tmp-PID`` files that a dead process left beside ``path`` (killed mid-write, disk full)."""
    prefix = f".{path.name}.tmp-"
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(prefix):
            pid = entry.name[len(prefix):]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file. On any
    failure (no space left, a read-only folder) the temporary file is removed and the error names
    ``path``; a temporary file that a dead process left behind is removed on the next write."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale_temps(path)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise UserError(f"{path}: cannot write ({e.strerror or type(e).__name__}); the previous version, if any, "
                            "is unchanged") from None
        raise


def folder_for_writing(path: Path, flag: str = "--out", create: bool = True) -> bool:
    """The folder an option names (``--out``, ``--to``), checked before any work: a file in the way,
    a folder that cannot be created or is not writable is a one-line error naming the option.
    Returns whether the folder was created here (``create``; otherwise only a file in the way is
    refused)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: a file is in the way (give a folder)")
    if not create:
        return False
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot create the folder ({e.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        if created:
            try:
                path.rmdir()
            except OSError:
                pass
        raise UserError(f"{flag} {path}: the folder is not writable")
    return created


def remove_if_empty(folder: Path) -> None:
    """Remove a folder this command made, if nothing was written into it."""
    try:
        Path(folder).rmdir()
    except OSError:
        pass
