"""A contributor's fourth task, written against the documented contract (rnnlab.tasks.base) and
nothing else: "which digit does this string end with, read backwards" -- the label of a digit string
is its first digit, so the model must carry it to the end. The command line's train, predict,
report and compare paths run it like the bundled tasks; its one declared verb shows up in
``rnnlab predict --help``, the Python API, a served route and a tab of the page."""

import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from rnnlab import load_run
from rnnlab.cli import main
from rnnlab.models import ClassifierConfig, build_classifier
from rnnlab.options import Options, option
from rnnlab.tasks import TASKS
from rnnlab.tasks.base import Task, register
from rnnlab.train import TrainConfig
from rnnlab.verbs import Input, Verb
from rnnlab.vocab import Vocab

DIGITS = "012"


@dataclass(frozen=True)
class DigitsConfig(Options):
    items: int = option(240, "how many digit strings to make", min=30, max=10_000)
    length: int = option(5, "digits per string", min=2, max=20)


@dataclass(frozen=True)
class DigitsOptions(Options):
    top: int = option(2, "how many digits to show", min=1, max=3, zh="显示几个数字")


class DigitsPredictor:
    verbs = (Verb("predict", "the first digit of each string", DigitsOptions, Input("texts", "digit strings", max_chars=20),
                  text="format"),)

    def __init__(self, model, model_cfg, task_cfg, state, device):
        self.model, self.device, self.labels = model, device, state["labels"]
        self.vocab = Vocab(state["chars"])

    @torch.no_grad()
    def predict(self, texts, opts):
        top = opts.top
        if any(set(t) - set(DIGITS) for t in texts):
            raise ValueError(f"give strings of the digits {DIGITS}")
        ids = torch.tensor([self.vocab.encode(t) for t in texts])
        lengths = torch.tensor([len(t) for t in texts])
        probs = self.model(ids, lengths)[0].softmax(-1)
        return [{"text": t, "top": [{"label": self.labels[int(i)], "probability": round(float(p), 4)}
                                    for p, i in zip(*row.topk(min(top, len(self.labels))))]}
                for t, row in zip(texts, probs)]

    @staticmethod
    def format(r):
        return f"{r['text']}: {r['top'][0]['label']} {r['top'][0]['probability']:.3f}"


class DigitsTask(Task):
    name = "digits"
    config_cls = DigitsConfig
    model_config_cls = ClassifierConfig
    default_model = ClassifierConfig(cell="gru", embed_dim=8, hidden=16)
    default_train = TrainConfig(epochs=3, batch_size=16, lr=0.02, schedule="none")
    predictor_cls = DigitsPredictor
    monitor, monitor_mode = "accuracy", "max"

    def __init__(self, cfg, seed, state=None):
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, len(DIGITS), (cfg.items, cfg.length), generator=g)
        texts = ["".join(DIGITS[i] for i in row) for row in ids.tolist()]
        self.labels = list(DIGITS)
        self.vocab = Vocab(state["chars"]) if state else Vocab.build(texts)
        n = len(texts)
        cut = {"train": (0, n * 6 // 10), "val": (n * 6 // 10, n * 8 // 10), "test": (n * 8 // 10, n)}
        self.data = {split: [(t, DIGITS.index(t[0])) for t in texts[a:b]] for split, (a, b) in cut.items()}
        self.data_report = {f"{s}_items": len(v) for s, v in self.data.items()} | {"protocol": "seeded"}

    def model_config(self, model_cfg):
        from dataclasses import replace

        return replace(model_cfg, vocab_size=len(self.vocab), num_classes=len(self.labels))

    @classmethod
    def rebuild_model(cls, model_cfg):
        return build_classifier(model_cfg)

    def state(self):
        return {"labels": self.labels, "chars": self.vocab.tokens}

    def num_batches(self, split, batch_size):
        return -(-len(self.data[split]) // batch_size)

    def batches(self, split, batch_size, shuffle, generator=None):
        rows = self.data[split]
        order = torch.randperm(len(rows), generator=generator).tolist() if shuffle else range(len(rows))
        order = list(order)
        for s in range(0, len(rows), batch_size):
            part = [rows[i] for i in order[s : s + batch_size]]
            yield {"ids": torch.tensor([self.vocab.encode(t) for t, _ in part]),
                   "lengths": torch.tensor([len(t) for t, _ in part]),
                   "targets": torch.tensor([y for _, y in part])}

    @torch.no_grad()
    def evaluate(self, model, split, device):
        model.eval()
        batch = next(self.batches(split, len(self.data[split]), False))
        logits, _ = model(batch["ids"], batch["lengths"])
        return {"loss": F.cross_entropy(logits, batch["targets"]).item(),
                "accuracy": (logits.argmax(1) == batch["targets"]).float().mean().item()}

    def final_report(self, model, device):
        return self.evaluate(model, "test", device)

    @staticmethod
    def headline(test):
        return f"test accuracy {test['accuracy']:.3f}"


@pytest.fixture(scope="module", autouse=True)
def registered():
    """The one registration line, for this module's tests only (other tests see the bundled tasks)."""
    register(DigitsTask)
    yield
    TASKS.pop("digits", None)


def test_a_fourth_task_trains_reports_predicts_and_compares_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "digits", "--epochs", "8", "--items", "300", "--out", str(run), "--no-progress"]) == 0
    for f in ("config.json", "metrics.jsonl", "best.pt", "summary.json", "report.html", "loss.png", "accuracy.png"):
        assert (run / f).is_file(), f
    assert "test accuracy" in capsys.readouterr().out
    assert main(["predict", "--run", str(run), "--json", "21000", "02222"]) == 0
    out = capsys.readouterr().out
    assert '"text": "21000"' in out
    loaded = load_run(run)
    assert loaded.task == "digits" and loaded.evaluate()["accuracy"] > 0.6  # the first digit, carried 4 steps
    assert main(["predict", "--run", str(run), "29"]) == 2  # the task's own error, as one line
    assert "give strings of the digits" in capsys.readouterr().err
    assert main(["predict", "--run", str(run), "--top", "4", "21"]) == 2  # its option's declared range
    assert "--top 4: must be >= 1 and <= 3" in capsys.readouterr().err
    assert [len(r["top"]) for r in loaded.predict(["21000"])] == [2]  # the declared default, in the Python API
    assert main(["compare", "digits", "--cells", "rnn,gru", "--out", str(tmp_path / "cmp"), "--no-progress"]) == 0
    assert (tmp_path / "cmp" / "report.html").is_file()


def test_the_task_s_options_come_from_its_declarations(capsys):
    assert main(["train", "digits", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--items" in text and "--length" in text and "--vectors" not in text and "--forms" not in text
    assert main(["train", "digits", "--length", "1"]) == 2
    assert "--length 1: must be >= 2 and <= 20" in capsys.readouterr().err


def test_the_task_s_verb_is_served_and_gets_a_tab(tmp_path, capsys):
    """One task module plus its registration: a route, /api/tasks, and a tab of the page (in Chromium where
    the system has it) with a form built from the declaration."""
    import shutil

    from fastapi.testclient import TestClient

    from rnnlab.serve.app import create_app

    runs = tmp_path / "runs"
    assert main(["train", "digits", "--epochs", "2", "--out", str(runs / "digits-1"), "--no-progress"]) == 0
    assert main(["predict", "--help", "--run", str(runs / "digits-1")]) == 0
    assert "how many digits to show (default 2; >= 1 and <= 3)" in " ".join(capsys.readouterr().out.split())
    app = create_app([runs], bundled=False)
    with TestClient(app) as c:
        r = c.post("/api/digits/predict", json={"texts": ["210", "021"]})
        assert r.status_code == 200 and r.json()["run"] == "digits-1" and len(r.json()["results"][0]["top"]) == 2
        assert "top" in c.post("/api/digits/predict", json={"texts": ["21"], "top": 9}).json()["error"]
        info = {t["name"]: t for t in c.get("/api/tasks").json()["tasks"]}
        assert info["digits"]["verbs"]["predict"]["options"][0]["default"] == 2
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        pytest.skip("no chromium or Playwright: the page's tab is not checked here (make browser)")
    from rnnlab.serve.background import BackgroundServer

    with BackgroundServer(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
        page.set_default_timeout(15_000)
        page.goto(url + "#digits")
        page.wait_for_selector("body[data-ready='1']")
        page.tap("nav [data-tab='digits']")
        page.fill("#digits-predict-input", "2100\n0122")
        page.tap("#digits-predict-form button[type=submit]")
        page.wait_for_function("document.getElementById('digits-predict-answer').textContent.includes('results')")
        answer = json.loads(page.locator("#digits-predict-answer").inner_text())
        assert [r["text"] for r in answer["results"]] == ["2100", "0122"]
        browser.close()
