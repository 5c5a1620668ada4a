"""Each task's lane: where the server's requests wait and run -- micro-batching, a bounded queue,
and load shedding.

- **One lane per task**, ``concurrency`` computations wide (worker threads), so that a name typed on
  the page never waits behind a queue of poems or long reviews.
- **Micro-batching** (what TorchServe and Triton call dynamic batching): requests of a verb whose
  input is a list (names, sentiment and poems ``predict``) for the same model with the same options
  that arrive within ``wait`` seconds of the first (5 ms) -- or, when every place of the lane is
  taken, until a place frees -- up to ``max_items`` inputs, run as one call of the predictor -- one
  forward pass -- and each gets its own slice of the answer, the same as it would have alone (a
  test). So the busier the lane, the larger its batches, as in Triton's queue of a model. When the
  joint call fails (a batch-mate's input is refused), each request runs again alone, so each gets
  its own answer or its own error. A request whose client has gone before its batch runs is left
  out of it. Poems ``generate`` joins the same way the requests that differ only in their seed and
  number of poems (the verb's ``joined_by``): their poems decode as one batch, each request's with
  its own random generator, each the poems it would get alone.
- **Short jobs first**: a task that declares ``serve_nice`` (poems: a poem takes 40-60 ms of CPU, a
  name a few) computes in threads of its own that many nice steps below the server (Linux), so that
  under load the OS gives the cores to the names and reviews first, and the poems take what is left
  (idle, nice changes nothing).
- **A bounded queue**: at most ``queue`` requests of a task wait beyond those running; past that the
  answer is ``503`` with ``Retry-After`` (seconds) and a one-line JSON error -- the page says
  "busy, retrying" and tries again -- rather than an ever longer wait.

Nothing here touches the event loop's other work: ``/api/health`` never waits behind a lane.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import anyio

from . import QUEUE
from .errors import ApiError

BATCH_WAIT = 0.005  # seconds a batch waits for mates after its first request
MAX_ITEMS = 64  # inputs in one batch


class Busy(ApiError):
    """503: the task's queue is full; ``retry_after`` seconds is a fair time to try again."""

    def __init__(self, task: str, retry_after: int) -> None:
        super().__init__(503, f"busy: the {task} queue is full; try again in {retry_after} s",
                         {"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class ClientGone(ApiError):
    """499 (nginx's "client closed request"): the client left before its turn; nothing was computed
    for it, and nobody reads this answer."""

    def __init__(self) -> None:
        super().__init__(499, "the client closed the connection before its turn")


@dataclass
class _Request:
    values: list
    future: asyncio.Future
    gone: Callable[[], Any] | None  # an awaitable check: has the client disconnected?


@dataclass
class _Batch:
    key: tuple
    requests: list[_Request] = field(default_factory=list)
    items: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False


class Lane:
    """One task's lane. ``run(fn)`` runs ``fn()`` in a worker thread (the server's: model lookup,
    inference mode); ``one(...)`` and ``batched(...)`` are what the routes await."""

    def __init__(self, task: str, run: Callable, concurrency: int, queue: int = QUEUE,
                 wait: float = BATCH_WAIT, max_items: int = MAX_ITEMS, nice: int = 0) -> None:
        self.task, self._run, self.concurrency = task, run, max(1, concurrency)
        # Niced threads of the lane's own (a thread's nice cannot be lowered back without privileges,
        # so they never serve another lane); none: anyio's shared worker threads.
        self._pool = (ThreadPoolExecutor(self.concurrency, f"rnnlab-{task}", initializer=_nice, initargs=(nice,))
                      if nice > 0 else None)
        self.queue, self.wait, self.max_items = max(0, queue), wait, max(1, max_items)
        self.limiter = anyio.CapacityLimiter(self.concurrency)
        self.admitted = 0  # requests in the lane: waiting or running
        self.batches: dict[tuple, _Batch] = {}
        self.seconds = 0.05  # a moving average of one computation's time (for Retry-After)
        self.shed = 0  # requests answered 503 so far
        self.joined = 0  # requests answered as part of a batch of more than one

    def figures(self) -> dict:
        return {"running": self.concurrency - int(self.limiter.available_tokens), "in_lane": self.admitted,
                "queue_limit": self.queue, "shed": self.shed, "joined": self.joined}

    def waiting(self) -> bool:
        """Would a request arriving now wait for a place?"""
        return self.admitted >= self.concurrency

    def _admit(self) -> None:
        if self.admitted >= self.concurrency + self.queue:
            self.shed += 1
            ahead = self.admitted - self.concurrency + 1  # computations to finish before a place is free
            raise Busy(self.task, max(1, min(30, math.ceil(self.seconds * ahead / self.concurrency))))
        self.admitted += 1

    async def _in_thread(self, fn: Callable):
        """``fn()`` in a worker thread (the caller holds a place of the lane's limiter), timed."""
        start = time.perf_counter()
        try:
            if self._pool is None:
                return await anyio.to_thread.run_sync(self._run, fn, abandon_on_cancel=False)
            done = asyncio.wrap_future(self._pool.submit(self._run, fn))
            try:
                return await asyncio.shield(done)
            except asyncio.CancelledError:  # as anyio's abandon_on_cancel=False: the place is held until it ends
                await asyncio.wait([done])
                raise
        finally:
            self.seconds = 0.8 * self.seconds + 0.2 * (time.perf_counter() - start)

    async def one(self, fn: Callable, gone: Callable | None = None):
        """``fn()`` alone, in its turn (a 503 when the queue is full)."""
        self._admit()
        try:
            async with self.limiter:
                if gone is not None and await gone():
                    raise ClientGone()  # the client left while waiting: nothing to compute
                return await self._in_thread(fn)
        finally:
            self.admitted -= 1

    async def batched(self, key: tuple, values: list, call: Callable[[list], list], gone: Callable | None = None):
        """``call(values)`` for this request's ``values``, run together with the other requests of
        the same ``key`` that arrive within ``wait`` (``call`` of their values joined); this
        request's slice of the answer."""
        self._admit()
        try:
            batch = self.batches.get(key)
            if batch is None or batch.closed or batch.items + len(values) > self.max_items:
                batch = _Batch(key)
                self.batches[key] = batch
                asyncio.get_running_loop().create_task(self._close_and_run(batch, call))
            request = _Request(list(values), asyncio.get_running_loop().create_future(), gone)
            batch.requests.append(request)
            batch.items += len(values)
            if batch.items >= self.max_items:
                batch.full.set()
            return await request.future
        finally:
            self.admitted -= 1

    async def _close_and_run(self, batch: _Batch, call: Callable[[list], list]) -> None:
        try:
            await asyncio.wait_for(batch.full.wait(), self.wait)
        except asyncio.TimeoutError:
            pass
        requests: list[_Request] = []
        try:
            async with self.limiter:  # while the batch waits for a place, later requests still join it
                batch.closed = True
                if self.batches.get(batch.key) is batch:
                    del self.batches[batch.key]
                requests = [r for r in batch.requests if not r.future.done()]  # a cancelled request leaves its place
                requests = [r for r in requests if not (r.gone is not None and await r.gone())]
                for r in batch.requests:
                    if r not in requests and not r.future.done():
                        r.future.set_exception(ClientGone())
                if not requests:
                    return
                outcomes = await self._in_thread(lambda: _joint(call, requests))
        except BaseException as e:  # noqa: BLE001 -- every waiting request gets the failure
            for r in requests:
                if not r.future.done():
                    r.future.set_exception(e if isinstance(e, Exception) else RuntimeError("the batch was stopped"))
            return
        if len(requests) > 1:
            self.joined += len(requests)
        for r, (ok, value) in zip(requests, outcomes):
            if not r.future.done():
                r.future.set_result(value) if ok else r.future.set_exception(value)


def _nice(nice: int) -> None:
    """This worker thread ``nice`` steps below the server's priority (at most 19): on Linux a thread
    has its own (elsewhere the call would nice the whole process, so the lane's threads keep the
    server's priority)."""
    if sys.platform.startswith("linux"):
        me = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + nice))
        except OSError:
            pass


def _joint(call: Callable[[list], list], requests: list[_Request]) -> list[tuple[bool, Any]]:
    """(ok, answer or exception) per request: one call of everyone's values, split; if it fails (or
    answers a list of another length), each request alone."""
    if len(requests) > 1:
        joined = [v for r in requests for v in r.values]
        try:
            answer = call(joined)
        except Exception:  # noqa: BLE001 -- a batch-mate's bad input: each alone below
            answer = None
        if isinstance(answer, list) and len(answer) == len(joined):
            out, start = [], 0
            for r in requests:
                out.append((True, answer[start : start + len(r.values)]))
                start += len(r.values)
            return out
    out = []
    for r in requests:
        try:
            out.append((True, call(r.values)))
        except Exception as e:  # noqa: BLE001 -- this request's own error, answered as such
            out.append((False, e))
    return out


__all__ = ["Lane", "Busy", "ClientGone", "BATCH_WAIT", "MAX_ITEMS", "QUEUE"]
