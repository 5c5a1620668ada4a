"""The server's lanes (rnnlab.serve.lanes): requests that arrive together run as one batch and each
gets the answer it would have had alone; a batch-mate's bad input is its own error; a client gone
before its batch runs leaves it; a full queue answers 503 with Retry-After while health still
answers; and ``rnnlab serve --workers 2`` answers the API as one process does."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with")
    from fastapi.testclient import TestClient  # noqa: E402

from rnnlab.serve.app import create_app  # noqa: E402
from rnnlab.serve.lanes import Busy, ClientGone, Lane  # noqa: E402
from rnnlab.tasks import TASKS  # noqa: E402
from rnnlab.verbs import verbs_of  # noqa: E402


def run_now(fn):
    return fn()


def gather(app, requests: list[tuple[str, dict]]) -> list[httpx.Response]:
    """The requests sent at once (one event loop, as concurrent clients)."""
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await asyncio.gather(*(c.post(path, json=body) for path, body in requests))

    return asyncio.run(go())


@pytest.fixture(scope="module")
def app(serve_runs):
    return create_app([serve_runs], bundled=False, concurrency=1)


NAMES = ["Nguyen", "Rossi", "Abovic", "Schmidt", "Satoshi", "Kowalski", "Dubois", "Jackson", "O'Neil", "Li"]


def test_requests_that_arrive_together_run_as_one_batch_with_the_answers_they_would_have_alone(app, serve_runs):
    alone = TestClient(create_app([serve_runs], bundled=False))
    expected = [alone.post("/api/names/predict", json={"names": [n], "top": 3}).json() for n in NAMES]
    before = alone.app.state  # (a separate app: its lanes saw one request at a time)
    assert before is not None
    answers = gather(app, [("/api/names/predict", {"names": [n], "top": 3}) for n in NAMES])
    assert [a.status_code for a in answers] == [200] * len(NAMES)
    assert [a.json() for a in answers] == expected
    lanes = TestClient(app).get("/api/health").json()["lanes"]
    assert lanes["names"]["joined"] >= 2  # at least two of them shared a forward pass


def test_only_requests_with_the_same_options_are_joined(app):
    answers = gather(app, [("/api/names/predict", {"names": ["Rossi"], "top": k}) for k in (1, 2, 1, 2)])
    assert [len(a.json()["results"][0]["top"]) for a in answers] == [1, 2, 1, 2]


def test_a_batch_mates_bad_input_is_its_own_error(app):
    answers = gather(app, [("/api/names/predict", {"names": ["Rossi"]}), ("/api/names/predict", {"names": ["Ωμέγα"]}),
                           ("/api/names/predict", {"names": ["Nguyen", "Li"]})])
    assert [a.status_code for a in answers] == [200, 400, 200]
    assert "alphabet" in answers[1].json()["error"]
    assert [r["name"] for r in answers[2].json()["results"]] == ["Nguyen", "Li"]
    assert answers[0].json()["results"][0]["name"] == "Rossi"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_per_item_verb_answers_each_item_as_it_would_alone(task, serve_runs):
    """What lets the server join requests: a per_item verb's answer for an item does not depend on the
    other items of the call (padding, batch size)."""
    from rnnlab.serve.registry import Registry

    registry = Registry([serve_runs], bundled=False)
    per_item = [v for v in verbs_of(TASKS[task]).values() if v.per_item]
    if not per_item:
        pytest.skip(f"{task} has no per-item verb")
    _, run = registry.get(None, task)
    items = {"names": NAMES[:6], "poems": ["床前明月光，", "春眠不觉晓，处处闻啼鸟。", "白日依山尽"],
             "sentiment": ["房间很干净，服务也很热情", "隔音太差，一晚没睡好，前台态度也不好。", "早餐一般"]}.get(task)
    if items is None:
        pytest.skip(f"no example items for {task}")
    for verb in per_item:
        together = run.call(verb.name, items)
        assert together == [run.call(verb.name, [x])[0] for x in items], verb.name


def test_a_request_whose_client_is_gone_leaves_its_batch():
    calls = []

    def call(values):
        calls.append(list(values))
        return [v.upper() for v in values]

    async def go():
        lane = Lane("t", run_now, concurrency=1, wait=0.05)
        async def gone():
            return True

        async def here():
            return False

        a = asyncio.create_task(lane.batched("k", ["a"], call, here))
        b = asyncio.create_task(lane.batched("k", ["b"], call, here))
        c = asyncio.create_task(lane.batched("k", ["c"], call, gone))  # its client disconnected
        await asyncio.sleep(0.01)
        b.cancel()  # its handler was cancelled before the batch ran
        results = await asyncio.gather(a, b, c, return_exceptions=True)
        return results, lane.admitted

    results, admitted = asyncio.run(go())
    assert calls == [["a"]] and results[0] == ["A"]

    async def alone():  # a request computed alone whose client has gone: not computed
        async def gone():
            return True

        with pytest.raises(ClientGone):
            await Lane("t", run_now, concurrency=1).one(lambda: calls.append("computed"), gone)

    asyncio.run(alone())
    assert calls == [["a"]]
    assert isinstance(results[1], asyncio.CancelledError) and isinstance(results[2], ClientGone)
    assert admitted == 0  # every place freed


def test_requests_that_wait_for_a_place_join_one_batch():
    """Dynamic batching as Triton's queue does it: while every place of the lane is taken, the
    requests that arrive (long after the 5 ms window) join the batch waiting for the next place, so
    a busy lane runs few large batches instead of many small ones."""
    calls, release = [], threading.Event()

    def call(values):
        calls.append(list(values))
        if values == ["first"]:
            release.wait(10)  # keeps the lane's one place taken
        return [v.upper() for v in values]

    def run_in_thread(fn):
        return fn()

    async def go():
        lane = Lane("t", run_in_thread, concurrency=1, wait=0.005)
        first = asyncio.create_task(lane.batched("k", ["first"], call))
        await asyncio.sleep(0.05)  # the first batch runs and holds the place
        later = []
        for v in "abcde":
            later.append(asyncio.create_task(lane.batched("k", [v], call)))
            await asyncio.sleep(0.02)  # each long after the one before: 4x the batching window
        release.set()
        return await asyncio.gather(first, *later), lane.admitted, lane.joined

    results, admitted, joined = asyncio.run(go())
    assert calls == [["first"], list("abcde")] and results == [["FIRST"]] + [[v.upper()] for v in "abcde"]
    assert admitted == 0 and joined == 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_a_niced_lane_computes_at_its_nice_and_the_others_do_not():
    """Short jobs first: the poems lane (its task's serve_nice) computes in threads of its own at that
    nice value; a lane without one in the server's ordinary threads, at the server's priority."""
    from rnnlab.tasks.poems import PoemsTask

    def niceness():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = os.getpriority(os.PRIO_PROCESS, 0)
    niced, plain = Lane("poems", run_now, 2, nice=PoemsTask.serve_nice), Lane("names", run_now, 2)

    async def go():
        return await niced.one(niceness), await plain.one(niceness), await niced.batched("k", [1], lambda v: [niceness()])

    in_niced, in_plain, batched = asyncio.run(go())
    assert PoemsTask.serve_nice > 0
    assert in_niced == min(19, base + PoemsTask.serve_nice) and batched == [in_niced] and in_plain == base
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the server's own thread is untouched


def held(monkeypatch, cls, verb: str) -> tuple[threading.Event, threading.Event]:
    """The predictor's verb made to wait (in its worker thread) until ``hold`` is set; ``entered`` is
    set when a call has started: a lane kept busy for as long as a test needs."""
    hold, entered = threading.Event(), threading.Event()
    real = getattr(cls, verb)

    def waiting(self, value, opts):
        entered.set()
        hold.wait(30)
        return real(self, value, opts)

    monkeypatch.setattr(cls, verb, waiting)
    return hold, entered


def test_a_full_queue_answers_503_with_retry_after_and_health_still_answers(serve_runs, monkeypatch):
    """One computation at a time, none waiting: while a trace is held, the next request of the names
    lane is shed at once (503, Retry-After, one line), another task's lane and health still answer."""
    from rnnlab.tasks.names import NamesPredictor

    hold, entered = held(monkeypatch, NamesPredictor, "trace")
    app = create_app([serve_runs], bundled=False, concurrency=1, queue=0)

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60) as c:
            first = asyncio.create_task(c.post("/api/names/trace", json={"name": "Rossi"}))
            while not entered.is_set():
                await asyncio.sleep(0.01)
            shed = await c.post("/api/names/predict", json={"names": ["Li"]})
            start = time.perf_counter()
            health = await c.get("/api/health")
            health_s = time.perf_counter() - start
            poem = await c.post("/api/poems/predict", json={"texts": ["床前明月光"]})
            hold.set()
            return await first, shed, health, health_s, poem

    first, shed, health, health_s, poem = asyncio.run(go())
    assert first.status_code == 200 and first.json()["name"] == "Rossi"
    assert shed.status_code == 503 and shed.headers["retry-after"].isdigit() and int(shed.headers["retry-after"]) >= 1
    assert set(shed.json()) == {"error"} and shed.json()["error"].startswith("busy: the names queue is full")
    assert health.status_code == 200 and health.json()["lanes"]["names"]["shed"] == 1 and health_s < 5
    assert poem.status_code == 200


JOINED_POEMS = [dict(form="7x4"), dict(form="5x4", details=True, top=2), dict(form="free"), dict(acrostic="床疑举低"),
                dict(form="5x4", keywords="明月"), dict(form="5x4", candidates=64)]  # 64: 8 poems a batch


@pytest.mark.parametrize("options", JOINED_POEMS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_poems_joined_are_the_poems_each_request_gets_alone(options, serve_runs):
    """What lets the server join poem requests: decoded as one batch, each request (its own seed and
    number of poems) gets the poems it would get alone -- also a request larger than one batch."""
    from rnnlab.serve.registry import Registry
    from rnnlab.tasks.poems import GenerateOptions

    _, run = Registry([serve_runs], bundled=False).get(None, "poems")
    requests = [GenerateOptions(**options, seed=seed, n=n) for seed, n in ((1, 1), (7, 2), (3, 10), (11, 1))]
    alone = [run.predictor.generate(o) for o in requests]
    assert run.predictor.generate_joined(requests) == alone
    assert len({json.dumps(a, ensure_ascii=False) for a in alone}) == len(alone)  # the seeds matter


def test_poem_requests_that_arrive_together_are_decoded_together(serve_runs):
    """Through the API: poem requests that differ only in seed and n are answered from one call, each
    as alone; those with other options are not joined with them."""
    bodies = [{"form": "5x4", "seed": s, "n": n, "candidates": 8} for s, n in ((1, 1), (2, 2), (3, 1), (4, 1))]
    bodies.append({"form": "7x4", "seed": 5, "candidates": 8})
    calm = TestClient(create_app([serve_runs], bundled=False))
    expected = [calm.post("/api/poems/generate", json=b).json() for b in bodies]
    app = create_app([serve_runs], bundled=False, concurrency=1)
    answers = gather(app, [("/api/poems/generate", b) for b in bodies])
    assert [a.status_code for a in answers] == [200] * len(bodies)
    assert [a.json() for a in answers] == expected
    assert [len(a.json()["results"]) for a in answers] == [1, 2, 1, 1, 1]
    assert TestClient(app).get("/api/health").json()["lanes"]["poems"]["joined"] >= 2


def test_poems_under_load_draw_fewer_candidates_and_say_so(serve_runs, monkeypatch):
    """While a poem is computed, a poem that must wait draws half the candidate lines (the verb's
    under_load) and says so; one that asks for its number of candidates keeps it."""
    from rnnlab.tasks.poems import PoemsPredictor

    hold, entered = held(monkeypatch, PoemsPredictor, "score")
    app = create_app([serve_runs], bundled=False, concurrency=1)

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60) as c:
            first = asyncio.create_task(c.post("/api/poems/score", json={"poem": "床前明月光，疑是地上霜。"}))
            while not entered.is_set():
                await asyncio.sleep(0.01)
            lighter = asyncio.create_task(c.post("/api/poems/generate", json={"form": "5x4", "seed": 1}))
            asked = asyncio.create_task(c.post("/api/poems/generate", json={"form": "5x4", "seed": 1, "candidates": 8}))
            await asyncio.sleep(0.05)
            hold.set()
            return await first, await lighter, await asked

    first, lighter, asked = asyncio.run(go())
    assert first.status_code == lighter.status_code == asked.status_code == 200
    assert lighter.json()["under_load"] == {"candidates": 4} and "under_load" not in asked.json()
    calm = TestClient(app).post("/api/poems/generate", json={"form": "5x4", "seed": 1}).json()
    assert "under_load" not in calm and calm["results"] == asked.json()["results"]


def test_busy_retry_after_is_bounded():
    async def go():
        lane = Lane("t", run_now, concurrency=1, queue=0)
        lane.admitted, lane.seconds = 1, 1000.0
        with pytest.raises(Busy) as e:
            await lane.one(lambda: None)
        return e.value

    busy = asyncio.run(go())
    assert busy.status == 503 and busy.headers == {"Retry-After": "30"}


# --- more than one process ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_with_two_workers_answers_as_one_process(serve_runs):
    """``rnnlab serve --workers 2``: two processes on one port (uvicorn's workers), each with its own
    models, give the answers one in-process app gives (same seeds), refuse bad input the same way,
    and bound bodies on the wire the same way."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab.cli", "serve", "--workers", "2", "--port", str(port),
                             "--runs", str(serve_runs), "--no-bundled", "--no-preload", "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if http(port, "/api/health")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        alone = TestClient(create_app([serve_runs], bundled=False))
        requests = [("/api/names/predict", {"names": ["Nguyen", "Rossi"], "top": 2}),
                    ("/api/names/trace", {"name": "Abovic"}),
                    ("/api/poems/generate", {"form": "5x4", "seed": 3}),
                    ("/api/sentiment/predict", {"texts": ["房间很干净，服务也很热情"]}),
                    ("/api/names/predict", {"names": ["Ωμέγα"]}),
                    ("/api/names/predict", {"names": ["Li"], "top": 0}),
                    ("/api/poems/generate", {"form": "5x4", "temperature": 99})]
        for path, body in requests:
            status, answer = http(port, path, body)
            want = alone.post(path, json=body)
            assert (status, answer) == (want.status_code, want.json()), path
        pids = {http(port, "/api/health")[1]["pid"] for _ in range(12)}
        assert os.getpid() not in pids and len(pids) >= 1
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:  # a body over the 2 MB limit
            s.sendall(b"POST /api/names/predict HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 3000000\r\n\r\n{\"names\": [\"" % port)
            assert s.recv(200).startswith(b"HTTP/1.1 413")  # refused before the body is read
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_explanations_and_saliency_in_threads_at_once_answer_as_alone(serve_runs):
    """Gradients of the input vectors (sentiment's gradient x input and ranking of long reviews, names' saliency) while other
    threads run the same models: each answer as it is alone (the input hooks act per thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from rnnlab.serve.registry import Registry

    registry = Registry([serve_runs], bundled=False)
    _, sentiment = registry.get(None, "sentiment")
    _, names = registry.get(None, "names")
    long_review = "，".join(["房间很干净服务也很热情", "隔音太差一晚没睡好前台态度也不好", "早餐一般"] * 12)
    jobs = [lambda: sentiment.call("predict", [long_review]), lambda: sentiment.call("predict", ["早餐一般"]),
            lambda: sentiment.call("predict", [long_review], explain="gradient"),
            lambda: names.call("saliency", "Abovic"), lambda: names.call("predict", ["Rossi", "Nguyen"])] * 6
    alone = [job() for job in jobs]
    assert alone[0][0]["measured"] < len(alone[0][0]["words"])  # the long review was ranked by its gradient
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda job: job(), jobs))
    assert together == alone
