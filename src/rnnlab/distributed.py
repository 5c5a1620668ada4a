"""More than one process: data-parallel training on torch.distributed, as torchrun launches it.

``torchrun --standalone --nproc_per_node=2 -m rnnlab train names`` (or ``rnnlab train names --nproc 2``,
which calls torch's own launcher) starts one process per core or GPU. Each reads torchrun's
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) through
``Dist``; the rest of rnnlab asks ``current()`` rather than reading environment variables::

    d = current()          # Dist(rank=0, world_size=1, ...) in a plain process: every helper is a no-op
    d.is_main              # rank 0: the only one that writes the run folder and prints
    d.on_main(fn, ...)     # fn runs on rank 0; its result (or its error) reaches every rank
    d.broadcast_object(x)  # rank 0's x on every rank

Two process groups:

* the *control* group (gloo, objects and barriers) waits for work that rank 0 does alone -- making
  the run folder, word2vec, evaluation, checkpoints -- with a long timeout: ``WAIT_FACTOR`` times the
  step timeout;
* the *compute* group (gloo on CPU, nccl on CUDA, each rank on ``cuda:LOCAL_RANK``) carries DDP's
  gradient all-reduce and the loop's per-step reduction, with the step timeout
  (``RNNLAB_DIST_TIMEOUT`` seconds, default 120).

A process that dies closes its sockets, and the others fail at their next collective at once; one
that hangs is given up after the timeout. Either way each survivor ends with one line
(``DistributedError``) instead of waiting for ever; the last checkpoint, written atomically by rank 0,
is intact.

Torch-free at import (``rnnlab --help`` must not import torch).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any, Callable

from .errors import UserError

TIMEOUT_ENV = "RNNLAB_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 120.0  # seconds a training step's collective may wait for the other processes
WAIT_FACTOR = 10  # rank-0-only work (evaluation, checkpoints, word2vec) may take this many times longer


class DistributedError(UserError):
    """One process lost the others (died, hung, never came): said in one line by the rank that saw it."""

    def __init__(self, message: str, checkpoint_said: bool = False) -> None:
        super().__init__(message)
        self.checkpoint_said = checkpoint_said


@dataclass(frozen=True)
class Dist:
    """Where this process stands among the training processes (from torchrun's environment)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    timeout: float = DEFAULT_TIMEOUT

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def who(self) -> str:
        return f"rank {self.rank} of {self.world_size}"

    @classmethod
    def from_env(cls, env=None) -> "Dist":
        """The process's place from torchrun's variables; a plain process (no WORLD_SIZE, or 1) is rank 0 of 1."""
        env = os.environ if env is None else env
        world = _number(env, "WORLD_SIZE", 1, int)
        if world <= 1:
            return cls()
        timeout = _number(env, TIMEOUT_ENV, DEFAULT_TIMEOUT, float)
        if timeout <= 0:
            raise UserError(f"{TIMEOUT_ENV}={env[TIMEOUT_ENV]}: give a number of seconds above 0")
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not env.get(k)]
        if missing:
            raise UserError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with torchrun "
                            "(or rnnlab train ... --nproc N), which sets them")
        rank = _number(env, "RANK", 0, int)
        if not 0 <= rank < world:
            raise UserError(f"RANK={rank}: must be from 0 to WORLD_SIZE-1 ({world - 1})")
        return cls(rank=rank, world_size=world, local_rank=_number(env, "LOCAL_RANK", rank, int),
                   local_world_size=_number(env, "LOCAL_WORLD_SIZE", world, int), timeout=timeout)

    # --- devices and groups -----------------------------------------------------------------------
    def device(self, name: str = "auto"):
        """The torch device for ``--device name``: on CUDA with several processes, this rank's own GPU."""
        import torch

        from .device import resolve_device

        device = resolve_device(name)
        if not self.enabled or device.type != "cuda":
            return device
        count = torch.cuda.device_count()
        if self.local_rank >= count:
            raise DistributedError(f"{self.who}: local rank {self.local_rank} needs GPU {self.local_rank}, but this "
                                   f"machine has {count}: run at most {count} processes per machine")
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def compute_group(self, device):
        """The group for gradients and per-step reductions: nccl for CUDA tensors, gloo otherwise."""
        if not self.enabled:
            return None
        import torch.distributed as dist

        if device.type != "cuda":
            return dist.group.WORLD
        if "nccl" not in _groups:
            _groups["nccl"] = dist.new_group(backend="nccl", timeout=_delta(self.timeout))
        return _groups["nccl"]

    def wrap(self, model, device):
        """``model`` in DistributedDataParallel (itself in one process). A model some of whose parameters
        may go unused in a step -- an adaptive softmax's rare-word clusters see no target in some batches,
        or a model that says so with ``unused_parameters = True`` -- gets DDP's search for them; a
        parameter that no rank used keeps no gradient, as in one process, so the optimizer skips it alike."""
        if not self.enabled:
            return model
        import inspect

        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP

        unused = bool(getattr(model, "unused_parameters", False)) or any(
            isinstance(m, torch.nn.AdaptiveLogSoftmaxWithLoss) for m in model.modules())
        kwargs: dict[str, Any] = dict(process_group=self.compute_group(device), find_unused_parameters=unused)
        if device.type == "cuda":
            kwargs.update(device_ids=[device.index], output_device=device.index)
        # Buffers (class weights) are equal everywhere: synced once at construction, not every step.
        if "forward_sync_buffers" in inspect.signature(DDP).parameters:
            kwargs["forward_sync_buffers"] = False
        else:
            kwargs["broadcast_buffers"] = False
        return DDP(model, **kwargs)

    # --- collectives (no-ops in one process) ------------------------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            with self.guard("waiting for the other processes"):
                dist.barrier(group=_groups["control"])

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` (picklable: tensors go as CPU tensors) on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == src else None]
        with self.guard(f"waiting for rank {src}"):
            dist.broadcast_object_list(box, src=src, group=_groups["control"])
        return box[0]

    def gather_objects(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.world_size
        with self.guard("gathering from the other processes"):
            dist.all_gather_object(out, obj, group=_groups["control"])
        return out

    def all_reduce_sum(self, tensor, group=None):
        """Sum ``tensor`` over the ranks in place (compute group; ``group`` from compute_group)."""
        if self.enabled:
            import torch.distributed as dist

            with self.guard("in a training step"):
                dist.all_reduce(tensor, group=group)
        return tensor

    def on_main(self, fn: Callable, *args, **kwargs) -> Any:
        """``fn(*args, **kwargs)`` on rank 0 alone (writing the run folder, reading a checkpoint ...);
        its result reaches every rank. Its error too: every rank raises it, rank 0 the original, so
        that no rank waits for a result that will not come."""
        if not self.enabled:
            return fn(*args, **kwargs)
        result = None
        if self.is_main:
            try:
                result = fn(*args, **kwargs)
            except (ValueError, TypeError, OSError) as e:  # what the command line reports in one line
                self.broadcast_object(("error", type(e).__name__, str(e)))
                raise
            except BaseException:
                self.broadcast_object(("error", "", "rank 0 failed (see its message)"))
                raise
        status = self.broadcast_object(("ok", result) if self.is_main else None)
        if status[0] == "error":
            raise (UserError if status[1] != "" else DistributedError)(status[2])
        return status[1] if not self.is_main else result

    # --- errors --------------------------------------------------------------------------------
    def guard(self, doing: str, run_dir=None):
        """A context that turns a lost peer (connection closed, timeout) into one DistributedError line."""
        return _Guard(self, doing, run_dir)


class _Guard:
    def __init__(self, d: Dist, doing: str, run_dir) -> None:
        self.d, self.doing, self.run_dir = d, doing, run_dir

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not self.d.enabled:
            return False
        if isinstance(exc, DistributedError):  # said by an inner guard: add where the checkpoint is
            if self.run_dir is not None and not exc.checkpoint_said:
                raise DistributedError(str(exc) + checkpoint_note(self.run_dir), checkpoint_said=True) from None
            return False
        if isinstance(exc, UserError) or not is_comm_error(exc):
            return False
        raise DistributedError(lost_message(self.d, exc, self.doing, self.run_dir),
                               checkpoint_said=self.run_dir is not None) from None


def is_comm_error(exc: BaseException) -> bool:
    """Whether ``exc`` says that another process is gone or silent (gloo/nccl/store errors)."""
    if not isinstance(exc, RuntimeError):
        return False
    try:
        import torch.distributed as dist

        if isinstance(exc, (getattr(dist, "DistError", ()), getattr(dist, "DistBackendError", ()))):
            return True
    except ImportError:
        pass
    text = str(exc).lower()
    return any(k in text for k in ("connection closed", "connection reset", "timed out", "timeout", "gloo",
                                   "nccl", "broken pipe", "socket", "peer"))


def lost_message(d: Dist, exc: BaseException, doing: str, run_dir=None) -> str:
    text = str(exc).lower()
    if "timed out" in text or "timeout" in text:
        why = f"no answer within the {d.timeout:g} s timeout ({TIMEOUT_ENV})"
    elif "closed" in text or "reset" in text or "broken pipe" in text or "peer" in text:
        why = "another process died"
    else:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        why = first[:160]
    note = checkpoint_note(run_dir) if run_dir is not None else ""
    return f"{d.who}: lost the other processes {doing}: {why}{note}"


def checkpoint_note(run_dir) -> str:
    if os.path.isfile(os.path.join(str(run_dir), "last.pt")):
        return f"; the last checkpoint {run_dir}/last.pt is intact: continue with --resume {run_dir}"
    return "; no checkpoint was written yet"


# --- the process's state ---------------------------------------------------------------------------
_current = Dist()
_groups: dict[str, Any] = {}


def current() -> Dist:
    """This process's Dist: rank 0 of 1 unless ``setup()`` joined a process group."""
    return _current


def setup() -> Dist:
    """Join the process group that torchrun's environment describes (once; later calls return the
    same Dist). In a plain process: rank 0 of 1, nothing to join."""
    global _current
    if _current.enabled:
        return _current
    d = Dist.from_env()
    if not d.enabled:
        return d
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        raise UserError("this torch build has no torch.distributed with gloo: cannot train on several processes")
    if not dist.is_initialized():
        try:
            # The default group (gloo) also carries CPU training; its timeout bounds the rendezvous.
            dist.init_process_group("gloo", rank=d.rank, world_size=d.world_size, timeout=_delta(d.timeout))
        except (RuntimeError, ValueError, OSError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise DistributedError(f"{d.who}: no rendezvous with the other {d.world_size - 1} process(es) at "
                                   f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} within "
                                   f"{d.timeout:g} s ({first})") from None
        atexit.register(shutdown)
    if not d.is_main:  # rank 0 alone speaks
        import warnings

        warnings.filterwarnings("ignore")
    try:
        _groups["control"] = dist.new_group(backend="gloo", timeout=_delta(d.timeout * WAIT_FACTOR))
    except RuntimeError as e:
        raise DistributedError(lost_message(d, e, "while starting")) from None
    _current = d
    return d


def shutdown() -> None:
    """Leave the process group (at exit)."""
    global _current
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 -- leaving anyway
        pass
    _groups.clear()
    _current = Dist()


def _delta(seconds: float):
    from datetime import timedelta

    return timedelta(seconds=seconds)


def _number(env, key: str, default, kind):
    text = env.get(key)
    if text in (None, ""):
        return default
    try:
        return kind(text)
    except ValueError:
        raise UserError(f"{key}={text!r}: expected {'an integer' if kind is int else 'a number'}") from None


def row_range(rows: int, world_size: int, rank: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share [lo, hi) of ``rows`` rows: equal parts, the first ``rows % world_size``
    ranks one row more, so the shares in rank order are exactly the rows in order."""
    base, extra = divmod(rows, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


__all__ = ["Dist", "DistributedError", "current", "setup", "shutdown", "row_range", "cpu_count", "is_comm_error",
           "TIMEOUT_ENV", "DEFAULT_TIMEOUT", "WAIT_FACTOR"]
