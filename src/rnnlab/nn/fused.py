"""The LSTM's and the GRU's pointwise work of a step in one pass of C: an optional speed-up of
rnnlab.nn.lstm and rnnlab.nn.gru.

Why: per time step the eager code in lstm.py runs six pointwise operations in the forward pass
(sigmoid, tanh, mul, addcmul, tanh, mul) and five in the backward pass, gru.py about as many, each a
separate pass over memory and a separate dispatch through PyTorch, where torch's oneDNN layers make
one. The matrix products are already at this CPU's peak in both; the pointwise passes are the gap
(benchmarks/cells.py). ``fused_steps.c`` computes the same equations in one loop per step.

How: compiled at first use with the system's C compiler (about 0.2 s; ``-O3 -march=native``, exp
vectorised through glibc's libmvec where it is there), cached per machine and source under
``$XDG_CACHE_HOME/rnnlab`` (``~/.cache/rnnlab``), and called through ctypes on the tensors' memory.
Not torch.utils.cpp_extension: that compiles against torch's headers (about 35 s, and ninja) for two
loops that need nothing of torch.

When: float32 tensors on the CPU, contiguous, and a compiler that built the file. Otherwise -- and
always with ``RNNLAB_FUSED=0`` -- the eager PyTorch code in lstm.py and gru.py runs. That code is the
reference: tests/test_fused.py checks the two give the same outputs and gradients (to float32
rounding), and the double backward always replays the eager equations.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

SOURCE = Path(__file__).with_name("fused_steps.c")
# Tried in order: vectorised exp (glibc libmvec), plain -O3 for this CPU, plain -O3.
FLAG_SETS = (
    ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-DRNNLAB_VECTOR_EXP", "-lmvec"],
    ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math"],
    ["-O3", "-fno-math-errno"],
)
_P, _I = ctypes.c_void_p, ctypes.c_int64


def enabled() -> bool:
    return os.environ.get("RNNLAB_FUSED", "1") != "0"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnlab"


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU's model and flags (a cache shared between machines stays right)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return platform.machine() + "".join(lines)


def _build(compiler: str, flags: list[str], target: Path) -> bool:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    libs = [f for f in flags if f.startswith("-l")]
    cmd = [compiler, *[f for f in flags if not f.startswith("-l")], "-shared", "-fPIC", str(SOURCE), "-o", tmp, *libs, "-lm"]
    try:
        ok = subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
        if ok:
            os.replace(tmp, target)  # atomic: a process building beside us never loads half a file
        return ok
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Kernels:
    """The compiled steps, called on tensors (no checks here: ``step_kernels`` decides eligibility)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._fwd, self._bwd = lib.lstm_forward_step, lib.lstm_backward_step
        self._gru_fwd, self._gru_bwd = lib.gru_forward_step, lib.gru_backward_step
        self._fwd.argtypes = [_P] * 7 + [_I, _I]
        self._bwd.argtypes = [_P] * 8 + [_I, _I]
        self._gru_fwd.argtypes = [_P] * 7 + [_I, _I]
        self._gru_bwd.argtypes = [_P] * 8 + [_I, _I]
        for f in (self._fwd, self._bwd, self._gru_fwd, self._gru_bwd):
            f.restype = None

    def forward_step(self, gates, c_prev, h_prev, keep, c, h, tanh_c) -> None:
        """``gates`` (B, 4H): pre-activations in, activations i, f, g, o out; c, h, tanh_c (B, H) written."""
        B, H = c.shape
        self._fwd(gates.data_ptr(), c_prev.data_ptr(), h_prev.data_ptr(), keep.data_ptr() if keep is not None else None,
                  c.data_ptr(), h.data_ptr(), tanh_c.data_ptr(), B, H)

    def backward_step(self, act, c_prev, tanh_c, dh, dc, keep, dg, dc_prev) -> None:
        """dL/d(pre-activations) into ``dg`` (B, 4H) and dL/dc_{t-1} into ``dc_prev`` (B, H)."""
        B, H = dc.shape
        self._bwd(act.data_ptr(), c_prev.data_ptr(), tanh_c.data_ptr(), dh.data_ptr(), dc.data_ptr(),
                  keep.data_ptr() if keep is not None else None, dg.data_ptr(), dc_prev.data_ptr(), B, H)

    def gru_forward_step(self, xg, hg, h_prev, keep, act, hn, h) -> None:
        """The GRU: r, z, n into ``act`` (B, 3H), W_hn h + b_hn into ``hn`` and h_t into ``h`` (B, H),
        from ``xg`` and ``hg`` (B, 3H: the input's and the state's projections)."""
        B, H = h.shape
        self._gru_fwd(xg.data_ptr(), hg.data_ptr(), h_prev.data_ptr(), keep.data_ptr() if keep is not None else None,
                      act.data_ptr(), hn.data_ptr(), h.data_ptr(), B, H)

    def gru_backward_step(self, act, hn, h_prev, dh, keep, dhg, dpn, dh_direct) -> None:
        """dL/d(W_hh h + b_hh) into ``dhg`` (B, 3H), dL/d(the candidate's pre-activation) into ``dpn`` and
        the direct path dL/dh_t * z into ``dh_direct`` (B, H)."""
        B, H = dh.shape
        self._gru_bwd(act.data_ptr(), hn.data_ptr(), h_prev.data_ptr(), dh.data_ptr(),
                      keep.data_ptr() if keep is not None else None, dhg.data_ptr(), dpn.data_ptr(),
                      dh_direct.data_ptr(), B, H)


@lru_cache(maxsize=1)
def _load() -> Kernels | None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler or not SOURCE.is_file():
        return None
    source = SOURCE.read_bytes()
    for flags in FLAG_SETS:
        key = hashlib.sha256(source + repr(flags).encode() + _cpu_signature().encode() + compiler.encode()).hexdigest()[:16]
        for root in (_cache_dir(), Path(tempfile.gettempdir()) / f"rnnlab-{os.getuid() if hasattr(os, 'getuid') else 0}"):
            target = root / f"fused_steps-{key}.so"
            try:
                if not target.is_file() and not _build(compiler, flags, target):
                    break  # these flags do not compile here: try the next set
                return Kernels(ctypes.CDLL(str(target)))
            except OSError:
                continue  # an unwritable cache folder, or a file that does not load: the next place
    return None


def step_kernels(*tensors):
    """The compiled kernels when they apply to ``tensors`` (float32, CPU, contiguous), else None."""
    if not enabled():
        return None
    import torch

    for t in tensors:
        if t is not None and (t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous()):
            return None
    return _load()


def keep_bytes(mask):
    """A (T, B, 1) padding mask (bool or float, 1 where the step is real) as the kernels read it:
    (T, B) contiguous bytes; None stays None."""
    import torch

    return mask.squeeze(-1).to(torch.uint8).contiguous() if mask is not None else None


def output_grads(d_out, mask):
    """dL/dh_t from the outputs (T, B, H) as a contiguous copy of the backward's own (zero on padding),
    which each step of a fused backward adds the path from step t+1 into, in place."""
    import torch

    d_acc = torch.empty(d_out.shape, dtype=d_out.dtype).copy_(d_out)
    return d_acc.mul_(mask) if mask is not None else d_acc

