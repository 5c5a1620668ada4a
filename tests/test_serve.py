"""The web app's JSON API (FastAPI's TestClient), on tiny runs trained once (``serve_runs`` in
conftest.py): every route with good input, and bad input answered as a 4xx ``{"error": "one line"}``
naming the field -- never a 500, never a traceback, never a file outside the package and the runs."""

import json
import math
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
with warnings.catch_warnings():  # starlette's note that it prefers httpx2 to httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with")
    from fastapi.testclient import TestClient  # noqa: E402

from rnnlab.serve.app import STATIC, create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(serve_runs):
    with TestClient(create_app([serve_runs], bundled=False)) as c:
        yield c


def error_of(response, status) -> str:
    """The one-line error of a 4xx answer, checked to be exactly that."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# --- listing, health, files ----------------------------------------------------------------------
def test_health_and_runs_listing(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["runs"] == 6 and health["threads"] == 1
    listing = client.get("/api/runs").json()
    runs = {r["id"]: r for r in listing["runs"]}
    assert set(runs) == {"names-lstm", "names-gru", "names-rnn", "poems-lstm", "sentiment-gru", "names-compare/gru"}
    assert runs["names-lstm"]["task"] == "names" and runs["names-lstm"]["cell"] == "lstm"
    assert runs["names-lstm"]["done"] and not runs["names-lstm"]["training"] and runs["names-lstm"]["epochs"] == 3
    assert "accuracy" in runs["names-lstm"]["test"] and "test_perplexity" in runs["poems-lstm"]["test"]
    assert "report.html" in runs["names-lstm"]["files"] and not any(f.endswith(".pt") for f in runs["names-lstm"]["files"])
    assert listing["defaults"]["poems"] == "poems-lstm" and listing["defaults"]["sentiment"] == "sentiment-gru"
    info = client.get("/api/runs/names-compare/gru").json()
    assert info["id"] == "names-compare/gru" and info["config"]["task"] == "names"


def test_metrics_and_report_files(client):
    m = client.get("/api/runs/names-lstm/metrics").json()
    assert m["task"] == "names" and [r["epoch"] for r in m["rows"]] == [1, 2, 3] and m["done"]
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(m["rows"][0])
    assert client.get("/api/runs/names-compare/gru/metrics").json()["rows"]
    report = client.get("/api/runs/names-lstm/files/report.html")
    assert report.status_code == 200 and "confusion.png" in report.text
    png = client.get("/api/runs/names-lstm/files/loss.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert "best.pt" in error_of(client.get("/api/runs/names-lstm/files/best.pt"), 404)
    error_of(client.get("/api/runs/names-lstm/files/nothing.html"), 404)


@pytest.mark.parametrize("path", [
    "/api/runs/..%2F..%2Fetc/metrics", "/api/runs/../../etc/passwd/metrics", "/api/runs/%2e%2e/metrics",
    "/api/runs/names-lstm/files/..%2F..%2F..%2Fpyproject.toml", "/api/runs/names-lstm/files/%2e%2e",
    "/api/runs/names-lstm/files/..%2Fnames-gru%2Fbest.pt", "/api/runs/names-lstm/files/%2Fetc%2Fpasswd",
    "/static/../../pyproject.toml", "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml", "/static/..%2F..%2F..%2Fpyproject.toml",
    "/static/%2e%2e/app.py", "/api/runs/%2Fetc/metrics",
])
def test_no_file_outside_the_package_and_the_runs(client, path):
    r = client.get(path)
    assert r.status_code in (400, 404), (path, r.status_code)
    assert "[build-system]" not in r.text and "root:" not in r.text and "create_app" not in r.text
    assert set(r.json()) == {"error"}


def test_raw_dot_segments_are_refused(client, serve_runs):
    """A client that sends '..' unnormalised (curl --path-as-is) reaches neither the checkout nor the runs' checkpoints."""
    import anyio

    async def raw(path: str) -> tuple[int, bytes]:
        out = {}
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
                 "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": [],
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(msg):
            if msg["type"] == "http.response.start":
                out["status"] = msg["status"]
            elif msg["type"] == "http.response.body":
                out["body"] = out.get("body", b"") + msg.get("body", b"")

        await client.app(scope, receive, send)
        return out["status"], out.get("body", b"")

    for path in ("/static/../../../pyproject.toml", "/static/../app.py", "/api/runs/names-lstm/files/../best.pt",
                 "/api/runs/../names-lstm/files/best.pt"):
        status, body = anyio.run(raw, path)
        assert status == 404 and b"[build-system]" not in body and b"create_app" not in body, path


def test_the_page_and_its_files_need_nothing_from_the_internet(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for tab in ("names", "poems", "sentiment", "runs", "gradients"):
        assert f'data-tab="{tab}"' in page.text and f'id="tab-{tab}"' in page.text
    for name in ("app.js", "style.css", "img/gradients_init.png", "img/longrange.png"):
        assert client.get(f"/static/{name}").status_code == 200
    for f in STATIC.rglob("*"):
        if f.suffix in (".html", ".js", ".css"):
            text = f.read_text(encoding="utf-8")
            # No CDN, no web font, no remote script or image: every URL the page loads is its own.
            assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), f
            assert not re.search(r"""(fetch\(|url\()\s*["']?(https?:)?//""", text), f
            assert "@import" not in text and "@font-face" not in text, f


# --- names ---------------------------------------------------------------------------------------
def test_names_predict(client):
    r = client.post("/api/names/predict", json={"names": ["Abovic", "Telsonne", "Øvic😀"], "top": 2, "run": "names-lstm"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run"] == "names-lstm" and body["cell"] == "lstm" and len(body["results"]) == 3
    first = body["results"][0]
    assert first["name"] == "Abovic" and [t["label"] for t in first["top"]] in (["Ovic", "Sonne"], ["Sonne", "Ovic"])
    assert abs(sum(t["probability"] for t in first["top"]) - 1) < 1e-3
    assert set(body["results"][2]["unknown_characters"]) >= {"Ø", "😀"}
    default = client.post("/api/names/predict", json={"names": ["Abovic"]}).json()
    assert default["run"].startswith("names-") and len(default["results"][0]["top"]) == 2  # 2 labels in all


@pytest.mark.parametrize("run,gates", [("names-lstm", {"input", "forget", "output"}), ("names-gru", {"reset", "update"}),
                                       ("names-rnn", set())])
def test_names_trace_shows_each_step(client, run, gates):
    r = client.post("/api/names/trace", json={"name": "Abovic", "run": run})
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["chars"] == list("Abovic") and t["cell"] == run.split("-")[1] and set(t["gates"]) == gates
    assert len(t["probabilities"]) == 6 and all(abs(sum(row) - 1) < 1e-3 for row in t["probabilities"])
    hidden = 16 if run == "names-lstm" else 12
    assert len(t["hidden"]) == 6 and {len(h) for h in t["hidden"]} == {hidden}
    for g in gates:
        assert len(t["gates"][g]) == 6 and all(0 <= v <= 1 for row in t["gates"][g] for v in row)
    # What the page's step through time writes into the equations: the candidate (g / n) and c_t.
    assert ("candidate" in t) == (run != "names-rnn") and ("cell_state" in t) == (run == "names-lstm")
    if run == "names-lstm":  # c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t), in the trace's own numbers
        g, c, h = t["gates"], t["cell_state"], t["hidden"]
        for k in range(3):
            assert abs(g["forget"][2][k] * c[1][k] + g["input"][2][k] * t["candidate"][2][k] - c[2][k]) < 1e-3
            assert abs(g["output"][2][k] * math.tanh(c[2][k]) - h[2][k]) < 1e-3


@pytest.mark.parametrize("run", ["names-lstm", "names-gru", "names-rnn"])
def test_names_saliency_per_character(client, run):
    r = client.post("/api/names/saliency", json={"name": "Abovic", "run": run})
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["chars"] == list("Abovic") and len(s["saliency"]) == 6 and all(v >= 0 for v in s["saliency"])
    assert max(s["saliency"]) > 0 and 0 < s["probability"] <= 1 and s["cell"] == run.split("-")[1]
    predicted = client.post("/api/names/predict", json={"names": ["Abovic"], "top": 1, "run": run}).json()
    assert s["label"] == predicted["results"][0]["top"][0]["label"]


@pytest.mark.parametrize("body,status,says", [
    ({"name": "12345"}, 422, "has no letter"), ({"name": "x" * 101}, 422, "at most 100"), ({}, 422, "name"),
    ({"name": ["Anna"]}, 422, "name"), ({"name": "Anna", "top": 3}, 422, "top: unknown field"),
    ({"name": "Anna", "run": "poems-lstm"}, 400, "poems")])
def test_bad_saliency_requests(client, body, status, says):
    assert says in error_of(client.post("/api/names/saliency", json=body), status)


# --- the gradient flow, measured live ------------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn-tanh", "rnn-sigmoid", "rnn-relu", "lstm", "lstm-f2", "lstm-chrono", "gru"])
def test_gradient_flow_live(client, cell):
    start = time.perf_counter()
    r = client.post("/api/gradients/flow", json={"cell": cell, "T": 200, "radius": 1.0, "hidden": 64, "seed": 1})
    took = time.perf_counter() - start
    assert r.status_code == 200, r.text
    f = r.json()
    assert len(f["h"]) == 201 and f["distance"][0] == 200 and f["distance"][-1] == 0 and all(v >= 0 for v in f["h"])
    assert ("C" in f) == cell.startswith("lstm") and f["verdict"] in ("vanishes", "explodes", "keeps")
    assert took < 3  # about 0.1 s on one thread; generous for a shared machine
    again = client.post("/api/gradients/flow", json={"cell": cell, "T": 200, "radius": 1.0, "hidden": 64, "seed": 1}).json()
    assert again["h"] == f["h"]  # the seed fixes the measurement


def test_gradient_flow_reads_as_the_lesson_says(client):
    flow = lambda **body: client.post("/api/gradients/flow", json={"T": 100, "hidden": 32, **body}).json()  # noqa: E731
    assert flow(cell="rnn-sigmoid")["verdict"] == "vanishes"
    assert flow(cell="rnn-tanh", radius=0.5)["verdict"] == "vanishes"
    assert flow(cell="lstm-f2")["rate_C"] > flow(cell="lstm")["rate_C"]


def test_gradient_options_are_declared_once(client):
    from rnnlab.serve.lab_routes import FlowOptions

    listed = {o["name"]: o for o in client.get("/api/gradients").json()["options"]}
    assert list(listed) == ["cell", "T", "radius", "hidden", "seed"]
    assert listed["T"]["max"] == 200 and listed["hidden"]["max"] == 64 and listed["T"]["default"] == FlowOptions().T
    assert listed["cell"]["choices"][0] == FlowOptions().cell and all(o["zh"] for o in listed.values())


@pytest.mark.parametrize("body,says", [
    ({"T": 201}, "T: should be less than or equal to 200"), ({"T": 1}, "T"), ({"hidden": 65}, "hidden"),
    ({"hidden": 0}, "hidden"), ({"radius": 0}, "radius"), ({"radius": 3.5}, "radius"), ({"cell": "lstm2"}, "cell"),
    ({"T": "100"}, "T"), ({"seed": -1}, "seed"), ({"steps": 10}, "steps: unknown field"), ({"T": 2.5}, "T")])
def test_bad_gradient_flow_requests(client, body, says):
    assert says in error_of(client.post("/api/gradients/flow", json=body), 422)


BAD_NAMES = [
    ({"names": []}, 422, "names"),
    ({}, 422, "names: required"),
    ({"names": "Satoshi"}, 422, "names"),
    ({"names": [""]}, 422, "names[0]"),
    ({"names": ["x" * 100_000]}, 422, "names[0]: at most 100 characters (got 100,000)"),
    ({"names": ["😀😀"]}, 422, "names[0]"),
    ({"names": ["Anna", 7]}, 422, "names[1]"),
    ({"names": ["Anna"] * 65}, 422, "names: at most 64"),
    ({"names": ["Anna"], "top": 0}, 422, "top"),
    ({"names": ["Anna"], "top": "3"}, 422, "top"),
    ({"names": ["Anna"], "top": 2.5}, 422, "top"),
    ({"names": ["Anna"], "nmaes": ["x"]}, 422, "nmaes: unknown field"),
    ({"names": ["Anna"], "run": "no-such-run"}, 404, "no-such-run"),
    ({"names": ["Anna"], "run": "../names-lstm"}, 404, "../names-lstm"),
    ({"names": ["Anna"], "run": "poems-lstm"}, 400, "poems"),
    ({"names": ["   "]}, 422, "has no letter"),
]


@pytest.mark.parametrize("body,status,says", BAD_NAMES)
def test_bad_names_requests(client, body, status, says):
    assert says in error_of(client.post("/api/names/predict", json=body), status)


@pytest.mark.parametrize("content,headers,status,says", [
    (b"Satoshi", {"content-type": "application/json"}, 400, "not valid JSON"),
    (b'["Satoshi"]', {"content-type": "application/json"}, 400, "JSON object"),
    (b'{"names": ["Satoshi"]', {"content-type": "application/json"}, 400, "not valid JSON"),
    (b'{"names": ["Satoshi"]}', {"content-type": "text/plain"}, 415, "application/json"),
    (b"", {}, 400, "JSON object"),
    (b'{"names": ["\\ud800"]}', {"content-type": "application/json"}, 422, "names[0]"),
    (b'{"names": ["' + b"x" * 3_000_000 + b'"]}', {"content-type": "application/json"}, 413, "limit"),
])
def test_bodies_that_are_not_json_objects(client, content, headers, status, says):
    assert says in error_of(client.post("/api/names/predict", content=content, headers=headers), status)


def test_unknown_routes_and_methods_answer_json(client):
    assert "not found" in error_of(client.get("/api/nothing"), 404)
    assert "not allowed" in error_of(client.get("/api/names/predict"), 405)
    assert "not found" in error_of(client.post("/api/names/train", json={}), 404)


# --- poems ---------------------------------------------------------------------------------------
def poem(client, **body):
    """One poem written with its details and alternatives, as the page asks."""
    r = client.post("/api/poems/generate", json={"details": True, "top": 4, **body})
    assert r.status_code == 200, r.text
    return {"run": r.json()["run"], **r.json()["results"][0]}


def test_poems_generate_with_alternatives(client):
    p = poem(client, begin="床", form="5x4", temperature=0.8, seed=3)
    assert p["run"] == "poems-lstm" and p["poem"].startswith("床") and len(p["lines"]) == 4
    assert "".join(p["lines"]) == p["poem"] and all(len(line) == 6 and line[-1] in "，。" for line in p["lines"])
    assert [len(row) for row in p["chars"]] == [6, 6, 6, 6] and p["chars"][0][0]["char"] == "床"
    first = p["chars"][0][1]
    assert 0 < first["probability"] <= 1 and 1 <= len(first["alternatives"]) <= 4
    again = client.post("/api/poems/generate", json={"begin": "床", "form": "5x4", "temperature": 0.8, "seed": 3})
    assert again.json()["results"] == [p["poem"]]  # the seed decides; without details, the poems' text
    acrostic = poem(client, acrostic="床疑举低", form="5x4", seed=1)
    assert [line[0] for line in acrostic["lines"]] == list("床疑举低")
    free = poem(client, top_k=5, top_p=0.9, seed=2)
    assert free["poem"] and free["lines"]
    several = client.post("/api/poems/generate", json={"form": "5x4", "n": 3, "seed": 2}).json()["results"]
    assert len(several) == 3 and len(set(several)) == 3


BAD_POEMS = [
    ({"begin": "書"}, 400, "begin character '書'"),
    ({"begin": "😀"}, 400, "begin character"),
    ({"begin": "床前"}, 422, "begin: at most 1 character"),
    ({"begin": "，"}, 400, "begin"),
    ({"acrostic": "春夏", "form": "5x4"}, 400, "acrostic '春夏' has 2 characters but form 5x4 has 4 lines"),
    ({"acrostic": "床疑举低", "begin": "月", "form": "5x4"}, 400, "disagree"),
    ({"acrostic": "床疑举低床疑举低床"}, 422, "acrostic"),
    ({"form": "6x4"}, 422, "form"),
    ({"temperature": 0}, 422, "temperature"),
    ({"temperature": 11}, 422, "temperature"),
    ({"temperature": "hot"}, 422, "temperature"),
    ({"top_p": 0}, 422, "top_p"),
    ({"top_k": -1}, 422, "top_k"),
    ({"seed": -1}, 422, "seed"),
    ({"seed": 1.5}, 422, "seed"),
    ({"run": "names-lstm"}, 400, "names"),
]


@pytest.mark.parametrize("body,status,says", BAD_POEMS)
def test_bad_poem_requests(client, body, status, says):
    assert says in error_of(client.post("/api/poems/generate", json=body), status)


def test_poems_score_an_edited_poem(client):
    r = client.post("/api/poems/score", json={"poem": "床前明月光，疑是地上霜。", "top": 3})
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["lines"] == ["床前明月光，", "疑是地上霜。"] and s["perplexity"] > 1 and s["form"] is None
    assert [c["char"] for c in s["chars"][1]] == list("疑是地上霜。")
    regular = client.post("/api/poems/score", json={"poem": "春风吹断续，含笑动轻尘。日暮逢花落，新秋泪满巾。"}).json()
    assert regular["form"] == "5x4" and regular["rhymes"] and regular["pattern"] == "平起首句不入韵"
    assert regular["char_tones"][3] == "平平仄仄平"  # each character's own tone: what the page checks an edit by
    off = client.post("/api/poems/score", json={"poem": "春风吹断续，含笑动轻尘。日暮逢花落，新秋泪满山。"}).json()
    assert not off["rhymes"] and off["rhyme_group"] is None
    assert "poem" in error_of(client.post("/api/poems/score", json={"poem": "床" * 201}), 422)
    assert "poem" in error_of(client.post("/api/poems/score", json={"poem": ""}), 422)


def test_poems_regenerate_one_line_keeps_the_others(client):
    p = poem(client, acrostic="床疑举低", form="5x4", seed=4)
    changed = None
    for seed in range(1, 8):  # a tiny model may write the same line again: try a few seeds
        r = client.post("/api/poems/regenerate", json={"lines": p["lines"], "line": 2, "acrostic": "床疑举低",
                                                       "form": "5x4", "seed": seed})
        assert r.status_code == 200, r.text
        new = r.json()
        assert new["lines"][:2] == p["lines"][:2] and new["lines"][3] == p["lines"][3]
        assert new["lines"][2][0] == "举" and len(new["lines"][2]) == 6 and new["line"] == 2
        if new["lines"][2] != p["lines"][2]:
            changed = new
            break
    assert changed is not None


def test_bad_regenerate_requests(client):
    lines = ["床前明月光，", "疑是地上霜。"]
    assert "line: 2 is past" in error_of(client.post("/api/poems/regenerate", json={"lines": lines, "line": 2}), 400)
    assert "line" in error_of(client.post("/api/poems/regenerate", json={"lines": lines, "line": 16}), 422)
    assert "lines[1]" in error_of(client.post("/api/poems/regenerate", json={"lines": ["床前明月光，", "疑是，地上霜。"],
                                                                             "line": 0}), 400)
    assert "lines" in error_of(client.post("/api/poems/regenerate", json={"lines": [], "line": 0}), 422)


# --- sentiment -----------------------------------------------------------------------------------
def test_sentiment_predict_explains(client):
    r = client.post("/api/sentiment/predict", json={"texts": ["房间很干净，服务也很热情", "隔音太差，一晚没睡好"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run"] == "sentiment-gru" and body["labels"] == ["0", "1"] and len(body["results"]) == 2
    first = body["results"][0]
    assert first["label"] in ("0", "1") and 0.5 <= first["probability"] <= 1
    words = {w["word"] for w in first["words"]}
    assert {"房间", "干净", "热情"} <= words and all(isinstance(w["effect"], float) for w in first["words"])
    emoji = client.post("/api/sentiment/predict", json={"texts": ["😀😀 很好"]})
    assert emoji.status_code == 200 and any(w["unknown"] for w in emoji.json()["results"][0]["words"])


@pytest.mark.parametrize("body,status,says", [
    ({"texts": []}, 422, "texts"),
    ({"texts": ["好" * 100_000]}, 422, "texts[0]: at most 20,000 characters (got 100,000)"),
    ({"texts": [""]}, 422, "texts[0]"),
    ({"texts": ["   "]}, 400, "empty"),
    ({"texts": ["的了"]}, 400, "nothing left to classify"),
    ({"texts": "房间很干净"}, 422, "texts"),
    ({"texts": ["好"], "run": "names-gru"}, 400, "names"),
    ({"texts": ["好"], "run": "sentiment-x"}, 404, "sentiment-x"),
])
def test_bad_sentiment_requests(client, body, status, says):
    assert says in error_of(client.post("/api/sentiment/predict", json=body), status)


# --- the registry: load once, serve concurrently, folders that change ---------------------------
def test_models_load_once_and_requests_run_concurrently(serve_runs, monkeypatch):
    import rnnlab

    calls = []
    real = rnnlab.load_run

    def counting(spec, device="cpu"):
        calls.append(spec)
        return real(spec, device)

    monkeypatch.setattr(rnnlab, "load_run", counting)
    with TestClient(create_app([serve_runs], bundled=False, concurrency=4)) as c:
        answers = []

        def ask(i):
            if i % 2:
                answers.append(c.post("/api/names/predict", json={"names": ["Abovic"], "run": "names-gru"}).status_code)
            else:
                answers.append(c.post("/api/sentiment/predict", json={"texts": ["房间很干净"]}).status_code)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [200] * 12
        assert sorted(Path(p).name for p in calls) == ["names-gru", "sentiment-gru"]  # each loaded once
        assert sorted(c.get("/api/health").json()["loaded"]) == ["names-gru", "sentiment-gru"]


def test_a_run_folder_deleted_or_added_while_serving(serve_runs, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(serve_runs / "names-gru", runs / "mine")
    with TestClient(create_app([runs], bundled=False)) as c:
        assert c.post("/api/names/predict", json={"names": ["Abovic"], "run": "mine"}).status_code == 200
        shutil.rmtree(runs / "mine")
        assert "mine" in error_of(c.post("/api/names/predict", json={"names": ["Abovic"], "run": "mine"}), 404)
        assert "mine" in error_of(c.get("/api/runs/mine/metrics"), 404)
        assert "no names model" in error_of(c.post("/api/names/predict", json={"names": ["Abovic"]}), 404)
        shutil.copytree(serve_runs / "names-rnn", runs / "new")  # a run that appears is served at once
        assert [r["id"] for r in c.get("/api/runs").json()["runs"]] == ["new"]
        assert c.post("/api/names/predict", json={"names": ["Abovic"]}).json()["run"] == "new"


def test_a_run_that_is_training_shows_live_metrics(serve_runs, tmp_path):
    run = tmp_path / "runs" / "names-live"
    run.mkdir(parents=True)
    shutil.copy(serve_runs / "names-gru" / "config.json", run / "config.json")
    rows = [json.loads(line) for line in (serve_runs / "names-gru" / "metrics.jsonl").read_text().splitlines()]
    (run / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1])[:20])  # a line being written
    with TestClient(create_app([run.parent], bundled=False)) as c:
        m = c.get("/api/runs/names-live/metrics").json()
        assert [r["epoch"] for r in m["rows"]] == [1] and m["training"] and not m["done"]
        # No checkpoint yet: asking it to predict is a clear 409, not a 500.
        assert "names-live" in error_of(c.post("/api/names/predict", json={"names": ["Abovic"], "run": "names-live"}), 409)


def test_a_bug_is_a_500_without_a_traceback(serve_runs, monkeypatch):
    with TestClient(create_app([serve_runs], bundled=False), raise_server_exceptions=False) as c:
        _, run = c.app.state.registry.get("names-gru", "names")
        monkeypatch.setattr(run.predictor, "predict", lambda *a, **k: 1 / 0)
        message = error_of(c.post("/api/names/predict", json={"names": ["Abovic"], "run": "names-gru"}), 500)
        assert "ZeroDivisionError" in message and "line" not in message


# --- bundled models (present once models/ is committed) -----------------------------------------
def bundled_present() -> bool:
    from rnnlab.serve.registry import bundled_models

    return {"names", "poems", "sentiment"} <= {name for name, _ in bundled_models()}


@pytest.mark.skipif(not bundled_present(), reason="no bundled models (models/) in this checkout")
def test_bundled_models_answer_every_task():
    with TestClient(create_app(bundled=True)) as c:
        listing = c.get("/api/runs").json()
        assert listing["defaults"] == {"names": "names", "poems": "poems", "sentiment": "sentiment"}
        names = c.post("/api/names/predict", json={"names": ["Satoshi", "Jackson"]}).json()
        assert names["run"] == "names" and names["results"][0]["top"][0]["label"] == "Japanese"
        for run in ("names-rnn", "names-gru"):
            assert c.post("/api/names/trace", json={"name": "Nguyen", "run": run}).status_code == 200
        poem = c.post("/api/poems/generate", json={"begin": "山", "form": "7x4", "seed": 1, "details": True}).json()
        poem = poem["results"][0]
        assert poem["poem"].startswith("山") and len(poem["lines"]) == 4
        assert "simplified" in error_of(c.post("/api/poems/generate", json={"begin": "書", "form": "7x4"}), 400)
        review = c.post("/api/sentiment/predict", json={"texts": ["房间很干净，服务也很热情"]}).json()
        assert review["results"][0]["label"] == "1"


# --- the command ---------------------------------------------------------------------------------
def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rnnlab.cli", *args], capture_output=True, text=True, timeout=60)


def test_serve_command_checks_its_options(tmp_path):
    out = run_cli("serve", "--help")
    assert out.returncode == 0 and "--runs DIR" in out.stdout and "127.0.0.1" in out.stdout
    bad = run_cli("serve", "--runs", str(tmp_path / "missing"))
    assert bad.returncode == 2 and "--runs" in bad.stderr and "no such folder" in bad.stderr
    assert "Traceback" not in bad.stderr
    port = run_cli("serve", "--port", "70000")
    assert port.returncode == 2 and "--port 70000" in port.stderr
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = run_cli("serve", "--port", str(taken.getsockname()[1]), "--no-bundled")
    assert busy.returncode == 2 and "cannot listen there" in busy.stderr and "Traceback" not in busy.stderr


def test_chunked_bodies_over_the_limit_and_foreign_host_names(serve_runs):
    with TestClient(create_app([serve_runs], bundled=False, hosts=("127.0.0.1", "localhost", "::1")),
                    base_url="http://127.0.0.1:8000") as c:
        def chunks():  # no Content-Length: the guard counts the bytes as they come
            yield b'{"names": ["'
            for _ in range(40):
                yield b"x" * 100_000
            yield b'"]}'

        r = c.post("/api/names/predict", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "limit" in r.json()["error"]
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"host": "localhost:8000"}).status_code == 200
        assert c.get("/api/health", headers={"host": "[::1]:8000"}).status_code == 200
        assert "Host header" in error_of(c.get("/api/health", headers={"host": "evil.example:8000"}), 400)


def test_the_runs_of_a_folds_folder_are_listed(tmp_path):
    """A --folds / --seeds folder (repeats.json beside fold-1 ...) lists its runs as a comparison's."""
    from rnnlab.serve.registry import _run_folders

    for name in ("fold-1", "fold-2"):
        (tmp_path / "names-cv" / name).mkdir(parents=True)
        (tmp_path / "names-cv" / name / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "names-cv" / "repeats.json").write_text("{}", encoding="utf-8")
    assert [i for i, _ in _run_folders(tmp_path)] == ["names-cv/fold-1", "names-cv/fold-2"]
    assert [i for i, _ in _run_folders(tmp_path / "names-cv")] == ["fold-1", "fold-2"]


# --- hostile use (#29): planted files, checkpoints, bodies, hosts, field errors, unknown text ------
SECRET = "SECRET-29-do-not-serve"


def plant(serve_runs, tmp_path) -> Path:
    """A copy of names-gru (id "mine") with files planted beside the report: a hard link and symbolic
    links to a file outside the run, a FIFO, a report file replaced by a hard link, a sub-folder."""
    import os

    runs = tmp_path / "runs"
    run = runs / "mine"
    shutil.copytree(serve_runs / "names-gru", run)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"test": {"accuracy": 0.5}, "secret": SECRET}), encoding="utf-8")
    os.link(secret, run / "hard.txt")  # not a report file's name
    (run / "report.html").unlink()
    os.link(secret, run / "report.html")  # a report file's name, but a hard link to a file elsewhere
    (run / "loss.png").unlink()
    (run / "loss.png").symlink_to(secret)
    (run / "summary.json").unlink()
    (run / "summary.json").symlink_to(secret)
    (run / "model.txt").unlink()
    os.mkfifo(run / "model.txt")  # opening it for reading would block a server that follows names blindly
    (run / "sub").mkdir()
    (run / "sub" / "report.html").write_text(SECRET, encoding="utf-8")
    return runs


def test_planted_links_and_hard_links_are_never_served(serve_runs, tmp_path):
    runs = plant(serve_runs, tmp_path)
    with TestClient(create_app([runs], bundled=False)) as c:
        listed = {r["id"]: r for r in c.get("/api/runs").json()["runs"]}["mine"]
        assert listed["files"] == ["accuracy.png", "config.json", "confusion.png", "metrics.jsonl", "train_summary.json"]
        assert listed["test"] == {}  # the summary.json link is not read either
        for name in ("hard.txt", "report.html", "loss.png", "summary.json", "model.txt", "sub", "best.pt", "last.pt"):
            r = c.get(f"/api/runs/mine/files/{name}")
            assert r.status_code == 404 and SECRET not in r.text, name
        info = c.get("/api/runs/mine")
        assert info.status_code == 200 and SECRET not in info.text
        png = c.get("/api/runs/mine/files/confusion.png")
        assert png.status_code == 200 and png.content == (runs / "mine" / "confusion.png").read_bytes()


@pytest.mark.parametrize("damage, says", [
    (lambda r: (r / "best.pt").unlink() or (r / "best.pt").symlink_to("/etc/passwd"), "best.pt is a link"),
    (lambda r: (r / "best.pt").unlink() or (r / "best.pt").mkdir(), "best.pt is not a regular file"),
    (lambda r: (r / "best.pt").write_bytes(b"root:x:0:0:root:/root:/bin/bash\n"), "best.pt: corrupted"),
    (lambda r: (r / "best.pt").unlink() or (r / "best.pt").symlink_to(r / "nothing.pt"), "best.pt is a link"),
])
def test_planted_or_broken_checkpoints_are_a_409_naming_the_file(serve_runs, tmp_path, damage, says):
    run = tmp_path / "runs" / "mine"
    shutil.copytree(serve_runs / "names-gru", run)
    damage(run)
    with TestClient(create_app([run.parent], bundled=False)) as c:
        message = error_of(c.post("/api/names/predict", json={"names": ["Abovic"], "run": "mine"}), 409)
        assert says in message and "mine" in message and "root:" not in message


def test_run_files_of_the_wrong_shape_are_skipped_in_the_listing(serve_runs, tmp_path):
    runs = tmp_path / "runs"
    for name, config in (("a-list", b"[1, 2]"), ("a-string", b'"names"'), ("deep", b"[" * 100_000 + b"]" * 100_000),
                         ("not-utf8", b"\xff\xfe{"), ("ok", None)):
        shutil.copytree(serve_runs / "names-rnn", runs / name)
        if config is not None:
            (runs / name / "config.json").write_bytes(config)
    (runs / "ok" / "summary.json").write_bytes(b"[" * 100_000)
    (runs / "ok" / "metrics.jsonl").write_bytes(b"[" * 100_000 + b"\n{}\n")
    with TestClient(create_app([runs], bundled=False)) as c:
        listing = c.get("/api/runs")
        assert listing.status_code == 200 and [r["id"] for r in listing.json()["runs"]] == ["ok"]
        assert c.get("/api/runs/ok/metrics").json()["rows"] == [{}]
        assert "a-list" in error_of(c.post("/api/names/predict", json={"names": ["Abe"], "run": "a-list"}), 404)


def test_every_field_error_is_named(client):
    said = error_of(client.post("/api/names/predict", json={"name": "Satoshi"}), 422)
    assert said == "name: unknown field; names: required"
    said = error_of(client.post("/api/poems/generate", json={"temprature": 1, "top_k": -1, "form": "9x9"}), 422)
    assert said.startswith("temprature: unknown field; ") and "top_k:" in said and "form:" in said


@pytest.mark.parametrize("poem, status, says", [
    ("helloworld", 400, "unknown: dehlorw"), ("😀🙂", 400, "unknown: 😀🙂"), ("床\x00前", 422, "U+0000"),
    ("，。，。", 400, "only punctuation"), ("!?...", 400, "unknown: !.?"), ("\u202e床前", 422, "U+202E"),
])
def test_a_poem_the_model_cannot_read_is_refused_naming_it(client, poem, status, says):
    """Characters no text may hold are refused with the field (422), text the model cannot read by it (400)."""
    message = error_of(client.post("/api/poems/score", json={"poem": poem}), status)
    assert says in message


def test_lines_are_checked_against_the_form(client, serve_runs):
    from rnnlab import load_run
    from rnnlab.errors import UserError

    run = load_run(serve_runs / "poems-lstm")
    good = ["床前明月光，", "疑是地上霜。", "举头望明月，", "低头思故乡。"]
    assert run.predictor.check_lines(good, "5x4") == good and run.predictor.check_lines(good[:3], "free") == good[:3]
    for lines, form, says in [
        (good[:3] + ["低头思故乡"], "5x4", "lines[3]: '低头思故乡' is not one line ending in one of"),
        (good[:3] + ["低" * 39 + "。"], "5x4", "lines[3]: 39 characters; a line of the 5x4 form has 5"),
        (good[:3] + ["低" * 41 + "。"], "free", "at most 40"),
        (good[:3], "5x4", "a 5x4 poem has 4 lines, got 3"),
        (["床前明月光。"] + good[1:], "5x4", "lines[0]: ends with '。' where the 5x4 form puts '，'"),
        (["hello，", "world。"], "free", "no character of it is in the model's vocabulary"),
        (["床前，明月光，"], "free", "not one line"),
    ]:
        with pytest.raises(UserError, match=re.escape(says)):
            run.predictor.check_lines(lines, form)
        with pytest.raises(UserError, match=re.escape(says)):
            run.regenerate(lines, line=0, form=form)
    new = run.regenerate(good, line=2, form="5x4", seed=1)["lines"]
    assert len(new) == 4 and new[:2] == good[:2] and new[3] == good[3] and len(new[2]) == 6
    # Through the route: every line is checked, the ones after the rewritten line too.
    body = {"lines": good[:3] + ["低" * 10 + "。"], "line": 1, "form": "5x4"}
    assert "lines[3]: 10 characters" in error_of(client.post("/api/poems/regenerate", json=body), 400)


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8000", True), ("127.0.0.1", True), ("localhost:8000", True), ("[::1]:8000", True), ("[::1]", True),
    ("127.0.0.1:evil", False), ("127.0.0.1:8001", False), ("127.0.0.1:", False), ("127.0.0.1:8000:1", False),
    ("[::1]:x", False), ("127.0.0.1:٨٠٠٠", False), ("evil.example:8000", False), ("", False), ("127.0.0.1:99999999", False),
])
def test_host_header_names_this_server_and_its_port(serve_runs, host, ok):
    with TestClient(create_app([], bundled=False, hosts=("127.0.0.1", "localhost", "::1"), port=8000),
                    base_url="http://127.0.0.1:8000") as c:
        r = c.get("/api/health", headers={"host": host.encode("utf-8")})  # bytes: httpx sends them as they are
        if ok:
            assert r.status_code == 200, (host, r.text)
        else:
            assert "Host header" in error_of(r, 400), host


@pytest.fixture()
def live_server():
    """The app under uvicorn with ``rnnlab serve``'s HTTP protocol (``BackgroundServer``), on a free
    port, with a 100 kB wire limit (so that the test is quick): (port, its limit)."""
    from rnnlab.serve.background import BackgroundServer

    limit = 100_000
    with BackgroundServer(create_app([], bundled=False), body_limit=limit) as url:
        yield int(url.rstrip("/").rsplit(":", 1)[1]), limit


def _post_raw(port: int, body_parts, chunked: bool = True, timeout: float = 15.0) -> tuple[bytes, float]:
    """POST /api/names/predict from a raw socket, the body written by another thread; (answer, seconds)."""
    import socket
    import time as _time

    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    head = b"POST /api/names/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    s.sendall(head + (b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"\r\n"))

    def write():
        try:
            for part in body_parts:
                s.sendall(part)
        except OSError:
            pass  # the server closed: it has answered

    started = _time.time()
    threading.Thread(target=write, daemon=True).start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            got = s.recv(65536)
            if not got:
                break
            answer += got
    finally:
        s.close()
    return answer, _time.time() - started


def test_chunked_bodies_in_tiny_chunks_are_refused_on_the_wire(live_server):
    port, limit = live_server
    tiny = (b"1\r\nx\r\n" * 10_000 for _ in range(100))  # 1,000,000 one-byte chunks, 10 x the limit
    answer, seconds = _post_raw(port, tiny)
    assert answer.startswith(b"HTTP/1.1 413") and b"counted as sent" in answer and seconds < 10, (answer[:200], seconds)
    # A body of ordinary chunks within the limit reaches the app (which has no names model here).
    body = b'{"names": ["Abe"]}'
    answer, _ = _post_raw(port, [b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)])
    assert answer.startswith(b"HTTP/1.1 404") and b"no names model" in answer


def test_hostile_requests_never_get_a_500_nor_a_file_the_run_did_not_write(serve_runs, tmp_path):
    """Every class of request at once, on a run folder with files planted in it."""
    from rnnlab.serve.registry import REPORT_FILES

    runs = plant(serve_runs, tmp_path)
    shutil.copytree(serve_runs / "poems-lstm", runs / "poems")
    shutil.copytree(serve_runs / "names-rnn", runs / "broken")
    (runs / "broken" / "best.pt").unlink()
    (runs / "broken" / "best.pt").symlink_to("/etc/passwd")
    names = ["hard.txt", "report.html", "loss.png", "summary.json", "model.txt", "best.pt", "last.pt", "config.json",
             "metrics.jsonl", "confusion.png", "..", "%2e%2e", "..%2Fsecret.json", "sub%2Freport.html", "x" * 300]
    requests = [("get", f"/api/runs/{rid}/files/{n}", None) for rid in ("mine", "broken", "poems", "..", "mine/..")
                for n in names]
    requests += [("get", f"/api/runs/{rid}{tail}", None) for rid in ("mine", "broken", "poems", "nothing", "%2e%2e")
                 for tail in ("", "/metrics")]
    requests += [("post", "/api/names/predict", b) for b in (
        {"names": ["Abe"], "run": "broken"}, {"names": ["Abe"], "run": "mine"}, {"name": "Satoshi"}, {"names": [None]},
        {"names": ["Abe"], "top": 10**30}, {"names": ["\x00"]}, [], "x", {"names": ["Abe"], "run": "poems"})]
    requests += [("post", "/api/poems/score", b) for b in (
        {"poem": "helloworld"}, {"poem": "\x00"}, {"poem": "，。"}, {"poem": "床前明月光，"}, {"poem": "😀" * 200})]
    requests += [("post", "/api/poems/regenerate", b) for b in (
        {"lines": ["床" * 40 + "。"] * 4, "line": 3, "form": "5x4"}, {"lines": ["床前明月光，"], "line": 0, "form": "7x8"},
        {"lines": ["hello。", "world。"], "line": 1}, {"lines": ["床前明月光，"] * 16, "line": 15, "form": "5x4"})]
    requests += [("post", "/api/poems/generate", b) for b in (
        {"begin": "😀"}, {"acrostic": "床前明月光床前明", "form": "5x4"}, {"form": "7x8", "top_k": 1, "seed": 2**31 - 1})]
    requests += [("post", "/api/sentiment/predict", b) for b in ({"texts": ["\x00"]}, {"texts": ["好"], "run": "mine"})]
    served = {}
    with TestClient(create_app([runs], bundled=False, hosts=("127.0.0.1",), port=8000),
                    base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as c:
        for method, url, body in requests:
            r = c.get(url) if method == "get" else c.post(url, json=body)
            assert r.status_code < 500, (url, body, r.status_code, r.text)
            assert SECRET not in r.text and "root:x:" not in r.text, (url, body)
            if "/files/" in r.request.url.path and r.status_code == 200:  # the path as sent ('..' resolved)
                served[r.request.url.path] = r.content
        for host in ("127.0.0.1:evil", "127.0.0.1:1", "evil:8000"):
            assert c.get("/api/health", headers={"host": host}).status_code == 400
        huge = c.post("/api/names/predict", content=b"{" * 3_000_000, headers={"content-type": "application/json"})
        assert huge.status_code == 413
    for url, content in served.items():  # what was served is a report file the run wrote, byte for byte
        rid, name = url.removeprefix("/api/runs/").split("/files/")
        assert name in REPORT_FILES and content == (runs / rid / name).read_bytes(), url
    assert served  # the good report files of the planted run were served


@pytest.mark.parametrize("url, body, status, says", [
    ("/api/names/predict", {"names": ["Abovic", "Ωμέγα"]}, 400,
     "name 'Ωμέγα': none of its characters is in the model's alphabet"),
    ("/api/names/trace", {"name": "Ωμέγα"}, 400, "none of its characters"),
    ("/api/names/predict", {"names": ["Ab\u200bovic"]}, 422, "names[0]: 'Ab\\u200bovic' holds the control"),
    ("/api/sentiment/predict", {"texts": ["😀😀"]}, 400, "none of its words is in the model's vocabulary"),
    ("/api/sentiment/predict", {"texts": ["房间\x00很好"]}, 422, "U+0000"),
])
def test_names_and_reviews_the_model_cannot_read_are_refused(client, url, body, status, says):
    assert says in error_of(client.post(url, json=body), status)


@pytest.mark.parametrize("host, ok", [("example.org:8080", True), ("10.0.0.5", True), ("[fe80::1]:80", True),
                                      ("example.org:evil", False), ("example.org:99999", False), ("a b", False)])
def test_host_ports_are_numbers_on_the_network_too(host, ok):
    """Listening on the network (no Host names fixed, maybe behind a proxy): any name and port
    number, but never a port that is not one."""
    with TestClient(create_app([], bundled=False)) as c:
        r = c.get("/api/health", headers={"host": host})
        assert (r.status_code == 200) if ok else ("Host header" in error_of(r, 400)), host


def test_poems_units_that_count(client):
    r = client.post("/api/poems/units", json={"poem": "床前明月光，疑是地上霜。", "top": 3})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["chars"] == list("床前明月光，疑是地上霜。") and a["state"] in ("c", "h") and a["fitted_on"]["poems"] == 80
    assert [m["counts"] for m in a["measures"]] == ["position", "line"]
    for m in a["measures"]:
        r2 = [u["r2"] for u in m["units"]]
        assert len(r2) == 3 and r2 == sorted(r2, reverse=True) and all(0 <= v <= 1 for v in r2)
        assert all(len(u["values"]) == 12 and u["sign"] in (-1, 0, 1) for u in m["units"])
    assert "poem" in error_of(client.post("/api/poems/units", json={"poem": ""}), 422)
    assert "vocabulary" in error_of(client.post("/api/poems/units", json={"poem": "ΩΩΩ"}), 400)


def test_poems_regenerate_offers_several_rewrites(client):
    p = poem(client, form="5x4", seed=4)
    r = client.post("/api/poems/regenerate", json={"lines": p["lines"], "line": 1, "form": "5x4", "seed": 2, "choices": 4})
    assert r.status_code == 200, r.text
    a = r.json()
    assert 1 <= len(a["choices"]) <= 4 and len(set(a["choices"])) == len(a["choices"]) and a["lines"][1] == a["choices"][0]
    assert a["lines"][0] == p["lines"][0] and a["lines"][2:] == p["lines"][2:]
    alone = client.post("/api/poems/regenerate", json={"lines": p["lines"], "line": 1, "form": "5x4", "seed": 2}).json()
    assert "choices" not in alone  # one rewrite, as before
    assert "choices" in error_of(client.post("/api/poems/regenerate", json={"lines": p["lines"], "line": 1, "choices": 9}), 422)
