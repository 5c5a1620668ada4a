"""The page as a person uses it: headless Chromium (Playwright's Python package driving the system's
``chromium``; ``make browser`` installs it with apt) opens the page served on a loopback port, types
a name, a first character and a review, and checks what appears. Screenshots go to the test's tmp dir.
Skipped, with the way to enable them, where Chromium or Playwright is missing."""

import json
import shutil
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="Playwright is not installed: pip install -e '.[dev]' "
                       "(make install) to run the browser tests"),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: `make browser` installs it "
                       "(apt-get install chromium fonts-noto-cjk) to run the browser tests"),
]
TIMEOUT = 15_000  # ms for anything to appear

@pytest.fixture(scope="module")
def server(serve_runs):
    from rnnlab.serve.app import create_app
    from rnnlab.serve.background import BackgroundServer

    with BackgroundServer(create_app([serve_runs], bundled=False, concurrency=2)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Watch:
    """What went wrong in the page: script errors, and any request that left the machine."""

    def __init__(self, page, allow_http_errors: bool = False) -> None:
        self.errors, self.external = [], []
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", lambda m: m.type == "error" and not (allow_http_errors and "Failed to load resource" in m.text)
                and self.errors.append(f"console: {m.text}"))
        page.on("request", lambda r: urlparse(r.url).hostname not in ("127.0.0.1", None) and self.external.append(r.url))


@pytest.fixture
def open_page(browser, server, tmp_path):
    contexts = []

    def open_(hash_="", url=None, allow_http_errors=False):
        context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        watch = Watch(page, allow_http_errors)
        page.goto((url or server) + hash_)
        page.wait_for_selector("body[data-ready='1']")
        page.watch = watch
        return page

    yield open_
    for c in contexts:
        for page in c.pages:
            assert not page.watch.errors, page.watch.errors
            assert not page.watch.external, page.watch.external
        c.close()


def shot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"  # look at them with: pytest --basetemp=DIR, then DIR/test_*/
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def test_names_side_by_side_and_step_by_step(open_page, tmp_path):
    page = open_page("#names")
    page.select_option("#names-model", "names-lstm")
    page.fill("#names-input", "Abovic")
    page.press("#names-input", "Enter")
    page.wait_for_selector("#names-cards .card")
    cards = page.locator("#names-cards .card")
    assert cards.count() == 4  # the selected model and the other names runs, side by side
    assert "Ovic" in cards.first.inner_text() and cards.first.get_attribute("data-run") == "names-lstm"
    page.wait_for_selector("#names-trace:not([hidden])")
    gates = page.locator("#names-gates canvas").evaluate_all("cs => cs.map(c => [c.dataset.gate, c.width])")
    assert [g for g, _ in gates] == ["input", "forget", "output", "cell", "hidden"] and all(w > 100 for _, w in gates)
    assert page.locator("#names-gates .colorbar").count() == 5 and page.locator("#names-trace .colorbar").count() == 6
    # each model's saliency: one shaded letter per character of the name
    assert page.locator("#names-cards .card .saliency").count() == 4
    assert page.locator("#names-cards .card").first.locator(".sal").count() == 6
    assert page.locator("#names-probs").evaluate("c => c.width") > 200
    shot(page, tmp_path, "names")
    page.locator("#names-cards .card[data-run='names-gru']").click()  # a card picks the model to trace
    page.wait_for_selector("#names-gates canvas[data-gate='update']")
    assert page.locator("#names-trace-model").inner_text().startswith("names-gru")
    page.locator("#names-cards .card[data-run='names-rnn']").click()
    page.wait_for_selector("#names-gates canvas[data-gate='hidden']:only-of-type")
    page.wait_for_function("document.getElementById('names-trace-model').textContent.startsWith('names-rnn')")
    assert "no gates" in page.locator("#names-gates").inner_text()


def test_language_toggle(open_page):
    page = open_page("#names")
    assert page.locator("nav [data-tab='names']").inner_text() == "Names"
    page.click("#lang")
    assert page.locator("nav [data-tab='names']").inner_text() == "姓名"
    assert page.locator("#names-form button[type=submit]").inner_text() == "预测"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("nav [data-tab='poems']").inner_text() == "写诗"  # the choice is remembered
    page.click("#lang")
    assert page.locator("nav [data-tab='poems']").inner_text() == "Poems"


def test_poems_write_and_look_at_alternatives(open_page, tmp_path):
    page = open_page("#poems")
    page.fill("#poems-begin", "床")
    page.select_option("#poems-form-select", "5x4")
    page.fill("#poems-seed", "3")
    page.click("#poems-form button[type=submit]")
    page.wait_for_selector("#poem .line")
    lines = page.locator("#poem .line")
    assert lines.count() == 4
    assert page.locator("#poem .ch").first.inner_text() == "床"
    assert page.locator("#poem .line").nth(0).locator(".ch").count() == 5
    page.locator("#poem .line").nth(1).locator(".ch").nth(2).click()
    page.wait_for_selector("#poem-side:not([hidden]) .pbar")
    options = page.locator("#poem-alternatives .pbar:not(.current)")
    assert options.count() >= 1
    choice = options.first.locator(".label").inner_text()
    options.first.click()  # put the alternative into the poem: the poem is scored again
    page.wait_for_function(f"document.querySelectorAll('#poem .line')[1].querySelectorAll('.ch')[2].textContent === {json.dumps(choice)}")
    assert page.locator("#poem .line").count() == 4 and "perplexity" in page.locator("#poem-meta").inner_text()
    # the pattern's tone under every character (from generate's answer), the rhyme at the even lines' ends
    assert page.locator("#poem .ch[data-tone]").count() == 20
    assert page.locator("#poem .line").nth(1).locator(".ch").nth(4).get_attribute("class").count("rhyme") == 1
    shot(page, tmp_path, "poems")


def test_poems_keywords(open_page):
    page = open_page("#poems", allow_http_errors=True)
    assert page.locator("#poems-keywords").get_attribute("maxlength") == "40"  # from the option's declaration
    page.fill("#poems-keywords", "明月")
    page.select_option("#poems-form-select", "5x4")
    with page.expect_response("**/api/poems/generate") as answer:
        page.click("#poems-form button[type=submit]")
    assert answer.value.request.post_data_json["keywords"] == "明月"
    page.wait_for_selector("#poem .line")
    assert "明月" in page.locator("#poem").inner_text().replace("\n", "")
    page.fill("#poems-keywords", "明月")
    page.select_option("#poems-form-select", "free")  # keywords need a form: the server's line, in place of the poem
    page.click("#poems-form button[type=submit]")
    page.wait_for_function("document.getElementById('poems-error').textContent.includes('keywords need a form')")
    assert page.locator("#poem .line").count() == 0


def test_poems_rewrite_one_line(open_page):
    page = open_page("#poems", allow_http_errors=True)
    page.fill("#poems-acrostic", "床疑举低")
    page.select_option("#poems-form-select", "5x4")
    page.click("#poems-form button[type=submit]")
    page.wait_for_selector("#poem .line")
    before = page.locator("#poem .line").evaluate_all("ls => ls.map(l => [...l.querySelectorAll('.ch,.mark')].map(c => c.textContent).join(''))")
    with page.expect_response("**/api/poems/regenerate") as answer:
        page.locator("#poem .regen[data-line='2']").click()
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_selector("#poem .line.fresh")
    text = "ls => ls.map(l => [...l.querySelectorAll('.ch,.mark')].map(c => c.textContent).join(''))"
    after = page.locator("#poem .line").evaluate_all(text)
    assert after[:2] == before[:2] and after[3] == before[3] and after[2][0] == "举"
    # the other rewrites the model offers: the one put in is marked; a tap puts another in and scores it
    choices = page.locator("#poem .choices[data-line='2'] .choice")
    offered = choices.evaluate_all("bs => bs.map(b => b.textContent)")
    assert len(offered) >= 2 and after[2] == offered[0] and "chosen" in choices.first.get_attribute("class")
    with page.expect_response("**/api/poems/score"):
        choices.nth(1).click()
    page.wait_for_selector("#poem .choices[data-line='2'] .choice.chosen >> nth=0")
    page.wait_for_function(f"[...document.querySelectorAll('#poem .line')][2].textContent.includes({json.dumps(offered[1])})")
    final = page.locator("#poem .line").evaluate_all(text)
    assert final[2] == offered[1] and final[:2] == before[:2] and final[3] == before[3]


def test_bad_input_shows_the_servers_one_line(open_page):
    page = open_page("#poems", allow_http_errors=True)
    page.fill("#poems-begin", "書")
    page.click("#poems-form button[type=submit]")
    page.wait_for_function("document.getElementById('poems-error').textContent.length > 0")
    assert "not in the model's vocabulary" in page.locator("#poems-error").inner_text()
    page.click("nav [data-tab='names']")
    page.fill("#names-input", "Abovic")
    page.press("#names-input", "Enter")
    page.wait_for_selector("#names-cards .card")
    page.fill("#names-input", "12345")
    page.press("#names-input", "Enter")
    page.wait_for_function("document.getElementById('names-error').textContent.length > 0")
    assert "has no letter" in page.locator("#names-error").inner_text()
    # the error replaces the previous answer: no answer to a question that was not this one stays on screen
    assert page.locator("#names-cards .card").count() == 0 and page.locator("#names-trace").is_hidden()
    page.click("#lang")  # the server's message, in Chinese
    page.press("#names-input", "Enter")
    page.wait_for_function("document.getElementById('names-error').textContent.includes('没有字母')")


def test_sentiment_shades_every_word(open_page, tmp_path):
    page = open_page("#sentiment")
    page.fill("#sentiment-input", "房间很干净，服务也很热情，下次还来")
    page.click("#sentiment-form button[type=submit]")
    page.wait_for_selector("#sentiment-result:not([hidden])")
    assert page.locator("#sentiment-label").get_attribute("data-label") in ("0", "1")
    assert page.locator("#sentiment-label").inner_text().split()[0] in ("positive", "negative")
    words = page.locator("#sentiment-words .w")
    assert words.count() >= 5 and "干净" in page.locator("#sentiment-words").inner_text()
    shades = words.evaluate_all("ws => ws.map(w => getComputedStyle(w).backgroundColor)")
    assert any(s not in ("rgba(0, 0, 0, 0)", "transparent") for s in shades)
    assert page.locator("#sentiment-drivers li").count() >= 3
    shot(page, tmp_path, "sentiment")
    page.click(".example >> nth=1")  # the example buttons fill the box and analyse at once
    page.wait_for_function("document.getElementById('sentiment-words').textContent.includes('隔音')")
    # the review as typed: every character kept, the ones not scored (punctuation) greyed
    assert page.locator("#sentiment-words").inner_text().replace("\n", "") == "隔音太差，一晚没睡好，前台态度也不好，不推荐。"
    assert page.locator("#sentiment-words .skipped").count() >= 3
    assert page.locator("#sentiment-oov").is_hidden()
    page.fill("#sentiment-input", "   ")  # a review of spaces says so, and the old answer goes
    page.click("#sentiment-form button[type=submit]")
    assert "empty" in page.locator("#sentiment-error").inner_text() and page.locator("#sentiment-result").is_hidden()


def test_runs_and_gradients(open_page, tmp_path):
    page = open_page("#runs")
    page.wait_for_selector("#runs-table tbody tr[data-run]")
    rows = page.locator("#runs-table tbody tr[data-run]")
    assert rows.count() == 6
    page.locator("#runs-table tbody tr[data-run='names-lstm']").click()
    # The page has already shown the run it picked first (3 points too): wait for the clicked one.
    page.wait_for_function("document.getElementById('run-title').textContent.startsWith('names-lstm')")
    page.wait_for_function("document.getElementById('run-loss').dataset.points === '3'")
    assert page.locator("#run-title").inner_text().startswith("names-lstm")
    assert page.locator("#run-metric-title").inner_text() == "accuracy"  # the task's own metric
    assert page.locator("#runs-table tbody tr[data-run='names-lstm'] td.epochs").inner_text() == "3/3"
    link = page.locator("#runs-table tbody tr[data-run='names-lstm'] a")
    assert link.get_attribute("href") == "/api/runs/names-lstm/files/report.html"
    shot(page, tmp_path, "runs")
    page.click("nav [data-tab='gradients']")
    assert page.locator("#tab-gradients img").count() == 2  # the full measurement's figures, under the live one
    page.click("#tab-gradients summary >> nth=0")
    page.wait_for_function("[...document.querySelectorAll('#tab-gradients img')].every(i => i.complete && i.naturalWidth > 0)")
    shot(page, tmp_path, "gradients")


def test_live_curves_of_a_run_that_is_training(browser, open_page, serve_runs, tmp_path):
    """A run folder whose metrics.jsonl grows while the page watches: the curve gains the new epoch."""
    from rnnlab.serve.app import create_app
    from rnnlab.serve.background import BackgroundServer

    run = tmp_path / "runs" / "names-training"
    run.mkdir(parents=True)
    shutil.copy(serve_runs / "names-gru" / "config.json", run / "config.json")
    rows = (serve_runs / "names-gru" / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(rows[0] + "\n")
    with BackgroundServer(create_app([run.parent], bundled=False)) as url:
        page = open_page("#runs", url=url)
        page.wait_for_function("document.getElementById('run-loss').dataset.points === '1'")
        assert "training" in page.locator("#runs-table tbody tr[data-run='names-training']").inner_text()
        assert "live" in page.locator("#run-live").inner_text()
        with open(run / "metrics.jsonl", "a") as f:
            f.write(rows[1] + "\n")
        page.wait_for_function("document.getElementById('run-loss').dataset.points === '2'")
        # the table refreshes too: the row's epochs
        page.wait_for_function("document.querySelector(\"tr[data-run='names-training'] td.epochs\").textContent.startsWith('2')")


# --- phones and projectors ------------------------------------------------------------------------
# Each tab at a phone's and a laptop's size, in both languages: no horizontal scroll, tab labels on
# one line, and a real tap (touch, where the page is a phone's) on each main button lands.
TABS = [("names", "#names-form button[type=submit]", "#names-trace:not([hidden])"),
        ("poems", "#poems-form button[type=submit]", "#poem .line"),
        ("sentiment", ".example >> nth=0", "#sentiment-result:not([hidden])"),
        ("runs", "#runs-table tbody tr[data-run='names-gru']", "#run-title:has-text('names-gru')"),
        ("gradients", "#flow-measure", "#flow-chart[data-curves='1']")]


@contextmanager
def on_device(browser, url, size, lang, allow_http_errors=False, routes=None):
    """``with on_device(...) as (page, press)``: ``url`` open and ready on a phone (under 600 px wide:
    touch, ``press`` taps) or a laptop (``press`` clicks), the page's language set, ``routes``
    (pattern -> handler) in place before it loads; when the block ends, nothing went wrong in the
    page (no error, nothing fetched from outside) and its context is closed."""
    phone = size[0] < 600
    context = browser.new_context(locale="en-US", viewport={"width": size[0], "height": size[1]},
                                  has_touch=phone, is_mobile=phone)
    context.add_init_script(f"localStorage.setItem('rnnlab-lang', '{lang}')")
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        watch = Watch(page, allow_http_errors)
        for pattern, handler in (routes or {}).items():
            page.route(pattern, handler)
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        yield page, page.tap if phone else page.click
        assert not watch.errors and not watch.external, (watch.errors, watch.external)
    finally:
        context.close()


@pytest.mark.parametrize("size,lang", [((390, 844), "en"), ((390, 844), "zh"), ((1366, 800), "en"), ((1366, 800), "zh")])
def test_every_tab_fits_and_taps_land(browser, server, size, lang, tmp_path):
    phone = size[0] < 600
    with on_device(browser, server + "#names", size, lang) as (page, press):
        page.fill("#names-input", "Abovic")
        for tab, button, answer in TABS:
            press(f"nav [data-tab='{tab}']")
            assert page.locator(f"#tab-{tab}").is_visible()
            press(button)
            page.wait_for_selector(answer)
            page.wait_for_timeout(50)
            width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
            assert width[0] <= width[1], (tab, width)
            heights = page.locator("nav button").evaluate_all("bs => bs.map(b => b.getBoundingClientRect().height)")
            assert max(heights) < 50, heights  # one line each: no label broken a character per line
        if phone:  # the header scrolls away on a phone instead of covering the content
            assert page.evaluate("getComputedStyle(document.querySelector('header')).position") == "static"
        shot(page, tmp_path, f"gradients-{size[0]}-{lang}")


@pytest.mark.parametrize("size,lang", [((390, 844), "zh"), ((1366, 800), "en")])
def test_step_through_a_poem(browser, server, size, lang):
    """The poem's first couplet, step by step: <s> then each character, the equations with the server's
    numbers, the next characters the model expects; on a phone with taps, in either language."""
    with on_device(browser, server + "#poems", size, lang) as (page, press):
        page.select_option("#poems-form-select", "5x4")
        press("#poems-form button[type=submit]")
        page.wait_for_selector("#poem .line")
        lines = page.locator("#poem .line").evaluate_all(
            "ls => ls.map(l => [...l.querySelectorAll('.ch,.mark')].map(c => c.textContent).join(''))")
        with page.expect_response("**/api/poems/trace") as answer:
            press("#poem-step-button")
        trace = answer.value.json()
        page.wait_for_selector("#poem-trace:not([hidden]) #pstep-equations .unit-card")
        assert trace["chars"] == ["<s>", *(lines[0] + lines[1])]
        chars = page.locator("#pstep-chars .step-ch").evaluate_all("cs => cs.map(c => c.textContent)")
        assert chars == trace["chars"] and page.locator("#pstep-chars .step-ch.now").inner_text() == "<s>"
        press("#pstep-next")
        assert page.locator("#pstep-chars .step-ch.now").inner_text() == lines[0][0]
        card = page.locator("#pstep-equations .unit-card[data-unit='0']")
        assert card.locator(".eq[data-q='c'] .val").inner_text() == f"{trace['cell_state'][1][0]:.3f}"
        assert f"{trace['cell_state'][0][0]:.3f}" in card.locator(".eq[data-q='c']").inner_text()  # c_{t-1}
        bars = page.locator("#pstep-next-chars .pbar")
        assert bars.count() == 5 and trace["next"][1][0]["char"] in bars.first.inner_text()
        assert page.locator("#pstep-gates canvas[data-gate='cell']").count() == 1  # c_t beside h_t
        width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], width
        assert (lang == "zh") == ("读完" in page.locator("#pstep-next-chars").inner_text())
        page.fill("#poems-seed", "7")
        press("#poems-form button[type=submit]")  # another poem: the old poem's steps go
        page.wait_for_selector("#poem-trace", state="hidden")


def test_projector_mode_is_remembered_and_requests_show_working(open_page):
    page = open_page("#names")
    page.evaluate("""() => { const b = document.querySelector('#names-form button[type=submit]'); window.seen = [];
        new MutationObserver(() => seen.push(b.textContent)).observe(b, {childList: true, subtree: true}); }""")
    page.fill("#names-input", "Abovic")
    page.press("#names-input", "Enter")
    page.wait_for_selector("#names-trace:not([hidden])")
    assert "working…" in page.evaluate("seen") and page.locator("#names-form button[type=submit]").inner_text() == "Predict"
    assert not page.evaluate("document.body.classList.contains('projector')")
    size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    page.click("#projector")
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") > size * 1.1
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.evaluate("document.body.classList.contains('projector')")
    assert page.locator("#projector").get_attribute("aria-pressed") == "true"


def test_step_through_time_shows_the_servers_numbers(open_page):
    page = open_page("#names")
    page.select_option("#names-model", "names-lstm")
    page.fill("#names-input", "Abovic")
    page.press("#names-input", "Enter")
    page.wait_for_selector("#step-equations .unit-card")
    assert page.locator("#step-equations .unit-card").count() == 3
    assert page.locator("#step-slider").evaluate("s => [s.max, s.value]") == ["5", "5"]
    page.click("#step-first")
    assert page.locator(".step-ch.now").inner_text() == "A"
    trace = page.evaluate("""fetch('/api/names/trace', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({name: 'Abovic', top: 5, run: 'names-lstm'})}).then(r => r.json())""")
    page.fill("#step-units", "4 1")
    page.press("#step-units", "Enter")
    assert page.locator("#step-equations .unit-card").evaluate_all("cs => cs.map(c => c.dataset.unit)") == ["4", "1"]
    card = page.locator("#step-equations .unit-card[data-unit='4']")
    for q, value in [("i", trace["gates"]["input"][0][4]), ("g", trace["candidate"][0][4]), ("c", trace["cell_state"][0][4]),
                     ("h", trace["hidden"][0][4])]:
        assert card.locator(f".eq[data-q='{q}'] .val").inner_text() == f"{value:.3f}", q
    page.click("#step-next")
    assert page.locator(".step-ch.now").inner_text() == "b"
    assert f"{trace['cell_state'][0][4]:.3f}" in card.locator(".eq[data-q='c']").inner_text()  # c_{t-1}, written in
    page.click("#step-play")  # plays to the last character
    page.wait_for_function("document.querySelector('.step-ch.now').textContent === 'c'")
    # a tap on a map follows that unit at that step; the tooltip goes with the map it belonged to
    page.locator("#names-gates canvas[data-gate='forget']").scroll_into_view_if_needed()
    box = page.locator("#names-gates canvas[data-gate='forget']").bounding_box()
    row = (box["height"] - 26) / len(trace["hidden"][0])  # the map: 22 px of letters on top, a row per unit
    x, y = box["x"] + 34 + 22 * 2 + 5, box["y"] + 22 + row * 7.5
    page.mouse.move(x, y)
    assert page.locator("#tooltip").is_visible()
    page.mouse.click(x, y)
    assert page.locator(".step-ch.now").inner_text() == "o"
    assert page.locator("#step-equations .unit-card").first.get_attribute("data-unit") == "7"
    assert page.locator("#tooltip").is_hidden()
    page.locator("#names-cards .card[data-run='names-rnn']").click()
    page.wait_for_function("document.getElementById('names-trace-model').textContent.startsWith('names-rnn')")
    assert page.locator("#step-equations .eq[data-q='h']").count() == 3


def test_live_gradients(open_page, tmp_path):
    page = open_page("#gradients")
    page.wait_for_selector("#flow-chart[data-curves='1']")
    declared = page.evaluate("fetch('/api/gradients').then(r => r.json())")["options"]
    T = next(o for o in declared if o["name"] == "T")
    assert page.locator("#flow-T").evaluate("i => [i.min, i.max, i.value]") == [str(T["min"]), str(T["max"]), str(T["default"])]
    page.select_option("#flow-cell", "lstm-f2")
    page.wait_for_selector("#flow-chart[data-curves='2']")
    assert "forget bias" in page.locator("#flow-legend .newest").inner_text()
    assert "c_t" in page.locator("#flow-legend .newest").inner_text()  # the LSTM's cell path, dashed
    page.locator("#flow-T").fill("200")
    page.wait_for_function("document.querySelector('#flow-legend .newest').textContent.includes('T 200')")
    assert "×" in page.locator("#flow-reading").inner_text()
    page.click("#flow-clear")
    assert page.locator("#flow-chart").get_attribute("data-curves") == "0"
    page.click("#lang")
    assert page.locator("#flow-measure").inner_text() == "测量"
    page.click("#flow-measure")
    page.wait_for_function("document.getElementById('flow-reading').textContent.includes('每步')")
    shot(page, tmp_path, "live-gradients")


@pytest.mark.parametrize("size,lang", [((390, 844), "zh"), ((1366, 800), "en")])
def test_sentiment_effects_measured_estimated_or_none(browser, server, size, lang):
    """The effects' measure is a choice built from the verb's declaration (its default first): taking
    the words out (exact), the gradient estimate, then none -- the note says which."""
    with on_device(browser, server + "#sentiment", size, lang) as (page, press):
        choices = page.locator("#sentiment-explain option")
        assert choices.evaluate_all("os => os.map(o => o.value)") == ["auto", "occlusion", "gradient", "none"]
        assert page.locator("#sentiment-explain").input_value() == "auto"
        assert choices.first.inner_text() == ("去词重测（精确；长评论只测最可能的词）" if lang == "zh"
                                              else "taken out (exact; a long review: its likeliest drivers)")
        page.fill("#sentiment-input", "位置不错，但是隔音不好")
        press("#sentiment-form button[type=submit]")
        page.wait_for_selector("#sentiment-result:not([hidden])")
        assert ("去掉" if lang == "zh" else "removed") in page.locator("#sentiment-measure").inner_text()
        measured = page.locator("#sentiment-words .w").evaluate_all("ws => ws.map(w => w.dataset.effect)")
        assert None not in measured and page.locator("#sentiment-drivers li").count() >= 3
        page.select_option("#sentiment-explain", "gradient")
        press("#sentiment-form button[type=submit]")
        page.wait_for_function("document.getElementById('sentiment-measure').textContent.includes("
                               + ("'梯度'" if lang == "zh" else "'gradient'") + ")")
        estimated = page.locator("#sentiment-words .w").evaluate_all("ws => ws.map(w => w.dataset.effect)")
        assert len(estimated) == len(measured) and estimated != measured and None not in estimated
        page.select_option("#sentiment-explain", "none")
        press("#sentiment-form button[type=submit]")
        page.wait_for_function("document.getElementById('sentiment-measure').textContent === ''")
        assert page.locator("#sentiment-words .w.unmeasured").count() == len(measured)
        assert page.locator("#sentiment-drivers-title").is_hidden() and page.locator("#sentiment-label").inner_text()
        width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], width


def test_sentiment_warns_when_the_words_are_unknown(open_page):
    page = open_page("#sentiment")
    page.fill("#sentiment-input", "qwzx plonk frabjous vorpal 房间很干净")  # mostly unknown (all unknown: refused)
    page.click("#sentiment-form button[type=submit]")
    page.wait_for_selector("#sentiment-result:not([hidden])")
    assert page.locator("#sentiment-oov").is_visible()
    assert page.locator("#sentiment-words").inner_text() == "qwzx plonk frabjous vorpal 房间很干净"


def test_bundled_models_show_their_real_epochs_and_curves(open_page):
    """A bundled model ships its training curves (models/NAME/metrics.jsonl): the Runs tab shows the
    epochs it trained and draws them."""
    from rnnlab.serve.app import create_app
    from rnnlab.serve.background import BackgroundServer
    from rnnlab.serve.registry import bundled_models

    folders = dict(bundled_models())
    with BackgroundServer(create_app([], bundled=True)) as url:
        page = open_page("#runs", url=url)
        for name in ("names", "sentiment"):
            epochs = len((folders[name] / "metrics.jsonl").read_text().splitlines())
            page.wait_for_selector(f"#runs-table tbody tr[data-run='{name}'] td.epochs")
            assert page.locator(f"#runs-table tbody tr[data-run='{name}'] td.epochs").inner_text() == str(epochs) != "0"
            page.click(f"#runs-table tbody tr[data-run='{name}']")
            page.wait_for_function(f"document.getElementById('run-loss').dataset.points === '{epochs}'")


@pytest.mark.parametrize("size,lang", [((390, 844), "zh"), ((1366, 800), "en")])
def test_a_busy_server_is_asked_again(browser, server, size, lang):
    """503 (the server's queue is full): the page says "busy, retrying", asks again after Retry-After
    and shows the answer; when every try is refused, the server's one line is shown, in the page's
    language."""
    refuse = {"times": 2, "sent": 0}
    busy = json.dumps({"error": "busy: the names queue is full; try again in 1 s"})

    def names_predict(route):
        if refuse["sent"] < refuse["times"]:
            refuse["sent"] += 1
            route.fulfill(status=503, headers={"Retry-After": "1"}, content_type="application/json", body=busy)
        else:
            route.continue_()

    with on_device(browser, server + "#names", size, lang, allow_http_errors=True,
                   routes={"**/api/names/predict": names_predict}) as (page, press):
        page.fill("#names-input", "Abovic")
        press("#names-form button[type=submit]")
        note = page.locator("#busy-note")
        note.wait_for(state="visible")
        assert ("服务器忙，正在重试" if lang == "zh" else "The server is busy") in note.inner_text()
        assert "1/5" in note.inner_text() or "2/5" in note.inner_text()
        box, view = note.bounding_box(), page.viewport_size  # on screen whatever the scroll, at phone width too
        assert box and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= view["width"] \
            and box["y"] + box["height"] <= view["height"], (box, view)
        page.wait_for_selector("#names-cards .card")
        note.wait_for(state="hidden")
        assert page.locator("#names-error").inner_text() == "" and refuse["sent"] == 2
        # refused every time: after 5 retries (each request of the tab: one per names model), the server's line
        refuse.update(times=10**6, sent=0)
        page.fill("#names-input", "Rossi")
        press("#names-form button[type=submit]")
        page.wait_for_selector("#busy-note:has-text('5/5')", timeout=20_000)  # counts up to the last retry
        said = "服务器忙：names 的队列已满" if lang == "zh" else "busy: the names queue is full"
        page.wait_for_selector(f"#names-error:has-text('{said}')", timeout=20_000)
        assert refuse["sent"] >= 6  # the first try and 5 retries, at least
        note.wait_for(state="hidden")


def test_the_units_that_react_most_shade_the_name(open_page):
    """Trace a unit: the name's letters shaded by each unit's state, the units that move most first;
    a tap follows the unit in the equations."""
    page = open_page("#names")
    page.select_option("#names-model", "names-lstm")
    page.fill("#names-input", "Abovic")
    page.press("#names-input", "Enter")
    page.wait_for_selector("#units-list .unit-row")
    rows = page.locator("#units-list .unit-row")
    assert rows.count() == 8 and rows.first.locator(".unit-ch").count() == 6
    ranges = [float(r.split()[-1]) for r in rows.evaluate_all("rs => rs.map(r => r.querySelector('.muted').textContent)")]
    assert ranges == sorted(ranges, reverse=True) and ranges[0] > 0
    shades = rows.first.locator(".unit-ch").evaluate_all("cs => cs.map(c => c.style.background)")
    assert len(set(shades)) > 1  # the state changes along the name
    unit = rows.nth(3).get_attribute("data-unit")
    rows.nth(3).click()
    page.wait_for_selector(f"#step-equations .unit-card[data-unit='{unit}']")
    assert page.locator("#step-equations .unit-card").first.get_attribute("data-unit") == unit
    assert page.locator(f"#units-list .unit-row[data-unit='{unit}']").get_attribute("class").endswith("picked")
    page.click("#lang")
    assert "反应最大的单元" in page.locator("#names-units h3").inner_text()


def test_poems_units_that_count(open_page):
    """The units that count: the poem shaded by the units that best track its place in the line and its
    line number, each with its r^2 (best first), in the page's language."""
    page = open_page("#poems")
    page.click("#poems-form button[type=submit]")
    page.wait_for_selector("#poem .line")
    page.click("#poem-units-button")
    page.wait_for_selector("#poem-units:not([hidden]) .counted")
    poem = page.locator("#poem").evaluate("p => [...p.querySelectorAll('.ch, .mark')].length")
    for counts in ("position", "line"):
        rows = page.locator(f"#poem-units-list .counted[data-counts='{counts}'] .unit-row")
        assert rows.count() == 4 and rows.first.locator(".unit-ch").count() == poem
        r2 = [float(x.split()[-1]) for x in rows.evaluate_all("rs => rs.map(r => r.querySelector('.muted').textContent)")]
        assert r2 == sorted(r2, reverse=True) and all(0 <= v <= 1 for v in r2)
    page.click("#lang")
    assert "字在本行中的位置" in page.locator("#poem-units-list").inner_text()
    before = page.locator("#poem").inner_text()
    page.fill("#poems-seed", "4242")
    page.click("#poems-form button[type=submit]")  # another poem: the old poem's units go
    page.wait_for_function(f"document.getElementById('poem').innerText !== {json.dumps(before)}")
    assert page.locator("#poem-units").is_hidden()
