"""Running a student's code in a box: its own process, on a scratch copy of the workspace, with
limits on time (CPU and wall clock, the whole process group killed), memory, processes, file size
and open files; as an unprivileged user when started as root; with an environment of its own.

Where the kernel has Landlock (Linux 5.13 and later, enabled), the box may write only inside its
scratch folder and (ABI 4 and later) may not open or accept TCP connections: a submission cannot
change another's files, the gradebook or the teacher's, whoever runs the grading.

What this does not protect against (say it to teachers): code that reads files the box's user may
read, uses the network where Landlock is missing, or exploits the kernel; without Landlock, code run
as the teacher's user can write what that user can. Grade untrusted code in a container or a virtual
machine without network when that matters.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    wall: float = 240.0  # seconds for the whole check
    cpu: int = 300  # CPU seconds
    memory: int = 6 * 2**30  # bytes of address space (torch maps a lot it never touches)
    processes: int = 64  # processes and threads of the box's user
    file_size: int = 32 * 2**20  # bytes of any file written
    open_files: int = 256


# Landlock (linux/landlock.h): the write-like file system rights, and TCP bind/connect.
_FS_WRITE = sum(1 << b for b in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12))  # write file, remove, make dir/reg/sock/fifo/...
_FS_LATER = {2: 1 << 13, 3: 1 << 14}  # refer (ABI 2), truncate (ABI 3)
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT, _PR_SET_NO_NEW_PRIVS = 444, 445, 446, 38


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return max(0, libc.syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
    except (OSError, AttributeError):
        return 0


def _confine(box: Path, abi: int) -> None:
    """In the child, before exec: writes only beneath ``box``; no TCP (ABI >= 4). Raises OSError if the
    kernel refuses (then the child does not run)."""
    libc = ctypes.CDLL(None, use_errno=True)
    rights = _FS_WRITE + sum(v for k, v in _FS_LATER.items() if abi >= k)
    attr = (ctypes.c_uint64 * 2)(rights, 3 if abi >= 4 else 0)  # handled fs rights; handled net: bind + connect TCP
    fd = libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.c_size_t(16 if abi >= 4 else 8), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")

    class Beneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    parent = os.open(box, os.O_PATH | os.O_DIRECTORY)
    rule = Beneath(rights, parent)
    if libc.syscall(_SYS_ADD_RULE, fd, 1, ctypes.byref(rule), 0) < 0:
        raise OSError(ctypes.get_errno(), "landlock_add_rule")
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 or libc.syscall(_SYS_RESTRICT, fd, 0) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(parent)
    os.close(fd)


def _limit(limits: Limits, drop: bool, box: Path, abi: int):
    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu, limits.cpu))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size, limits.file_size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if drop:  # root: become nobody, whose processes RLIMIT_NPROC counts (root's it does not)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        if abi:
            _confine(box, abi)
    return apply


def scratch_copy(workspace: Path, files: list[str]) -> Path:
    """A new folder holding copies of the workspace's ``files`` (never links), for one run."""
    box = Path(tempfile.mkdtemp(prefix="rnnlab-lab-"))
    for name in files:
        src = workspace / name
        if src.is_file() and not src.is_symlink():
            shutil.copyfile(src, box / name)
    return box


def _others_can_run() -> bool:
    """Whether a user without rights can run this Python and read rnnlab and its packages (every folder
    above them searchable by others): then a box started as root runs as nobody."""
    import stat
    import sysconfig

    for target in (os.path.realpath(sys.executable), _rnnlab_path(), sysconfig.get_paths()["purelib"]):
        path = Path(target)
        for folder in [path, *path.parents] if path.is_dir() else list(path.parents):
            try:
                if not folder.stat().st_mode & stat.S_IXOTH:
                    return False
            except OSError:
                return False
    return True


def run(box: Path, args: list[str], limits: Limits = Limits()) -> tuple[int | None, str]:
    """``python -m rnnlab.lab.child ARGS`` in ``box`` under ``limits`` -> (exit code, None when killed for
    time; the last lines of its stderr). Started as root, the box runs as nobody where nobody can run
    this Python; else as root, where Linux does not apply the process limit (a fork bomb is then
    stopped by the time limit and the process group's kill only: grade as an ordinary user or in a
    container)."""
    drop = os.geteuid() == 0 and _others_can_run()
    if drop:
        os.chown(box, NOBODY, NOBODY)
        for f in box.iterdir():
            os.chown(f, NOBODY, NOBODY)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(box), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": _rnnlab_path(),
           "LANG": "C.UTF-8", "TMPDIR": str(box)}
    err = box / "stderr.txt"
    with open(err, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "rnnlab.lab.child", *args], cwd=box, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=fh,
                                preexec_fn=_limit(limits, drop, box, landlock_abi()))
        try:
            code = proc.wait(timeout=limits.wall)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it started
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    tail = err.read_bytes()[-2000:].decode("utf-8", "replace") if err.is_file() else ""
    return code, tail


def _rnnlab_path() -> str:
    """The folder holding the rnnlab package (so that the box imports this very rnnlab)."""
    return str(Path(__file__).resolve().parents[2])


def remove(box: Path) -> None:
    shutil.rmtree(box, ignore_errors=True)
