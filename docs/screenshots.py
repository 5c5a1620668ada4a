"""The README's screenshots of ``rnnlab serve``: one per tab, taken in headless Chromium.

    python docs/screenshots.py                    # the bundled models -> docs/img/serve-*.png
    python docs/screenshots.py --runs runs --no-bundled --out /tmp/shots    # other models

Needs Playwright (``pip install -e '.[dev]'``) and the system's ``chromium`` (``make browser``).
The server runs in this process on a free loopback port; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", action="append", default=[], metavar="DIR", help="run folders served beside the bundled models")
    p.add_argument("--no-bundled", action="store_true")
    p.add_argument("--out", default=str(HERE / "img"), help="folder for serve-*.png (default: docs/img)")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="the page's language")
    p.add_argument("--name", default="Nguyen")
    p.add_argument("--begin", default="山")
    p.add_argument("--form", default="7x4")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--review", default="房间很干净，服务也很热情，就是隔音有点差，下次还会再来。")
    args = p.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("screenshots: no chromium on PATH (make browser installs it)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from rnnlab.serve.app import create_app
    from rnnlab.serve.background import BackgroundServer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = create_app([Path(d) for d in args.runs], bundled=not args.no_bundled)
    with BackgroundServer(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(locale="zh-CN" if args.lang == "zh" else "en-US",
                                      viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.add_init_script(f"localStorage.setItem('rnnlab-lang', '{args.lang}')")

        def save(name: str) -> None:
            page.mouse.move(0, 0)
            path = out / f"serve-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            print(path)

        page.goto(url + "#names")
        page.wait_for_selector("body[data-ready='1']")
        page.fill("#names-input", args.name)
        page.press("#names-input", "Enter")
        page.wait_for_selector("#names-trace:not([hidden]) #names-gates canvas")
        save("names")

        page.click("nav [data-tab='poems']")
        page.fill("#poems-begin", args.begin)
        page.select_option("#poems-form-select", args.form)
        page.fill("#poems-seed", str(args.seed))
        page.click("#poems-form button[type=submit]")
        page.wait_for_selector("#poem .line")
        page.locator("#poem .line").nth(1).locator(".ch").nth(3).click()
        page.wait_for_selector("#poem-side:not([hidden]) .pbar")
        save("poems")
        page.click("#poem-step-button")  # the first couplet step by step, at its third character
        page.wait_for_selector("#poem-trace:not([hidden]) #pstep-equations .unit-card")
        for _ in range(3):
            page.click("#pstep-next")
        page.mouse.move(0, 0)
        page.evaluate("window.scrollTo(0, 0)")  # the sticky header back at the top, off the clip
        top = page.locator("#poem-trace").bounding_box()
        units = page.locator("#pstep-units-list").bounding_box()  # the steps and the units, not the 384-unit maps
        page.screenshot(path=str(out / "serve-poems-step.png"), full_page=True,
                        clip={"x": 0, "y": top["y"], "width": 1280, "height": units["y"] + units["height"] + 12 - top["y"]})
        print(out / "serve-poems-step.png")

        page.click("nav [data-tab='sentiment']")
        page.fill("#sentiment-input", args.review)
        page.click("#sentiment-form button[type=submit]")
        page.wait_for_selector("#sentiment-result:not([hidden])")
        save("sentiment")

        page.click("nav [data-tab='runs']")
        page.wait_for_selector("#runs-table tbody tr")
        if page.locator("#runs-table tbody tr[data-run]").count():
            page.wait_for_function("document.getElementById('run-loss').dataset.points !== undefined")
        save("runs")

        page.click("nav [data-tab='gradients']")
        page.wait_for_selector("#flow-chart[data-curves='1']")
        for k, cell in enumerate(["rnn-sigmoid", "lstm", "lstm-f2", "gru"], start=2):  # beside the default (tanh RNN)
            page.select_option("#flow-cell", cell)
            page.wait_for_selector(f"#flow-chart[data-curves='{k}']")
        page.wait_for_function("[...document.querySelectorAll('#tab-gradients details[open] img')].every(i => i.complete && i.naturalWidth > 0)")
        save("gradients")
        reading = page.locator("#flow-reading").bounding_box()  # the live view: from the top to its reading
        page.screenshot(path=str(out / "serve-gradients-live.png"),
                        clip={"x": 0, "y": 0, "width": 1280, "height": reading["y"] + reading["height"] + 12})
        print(out / "serve-gradients-live.png")

        # A phone (390 x 844, touch), in Chinese: the Names tab's step through time
        phone = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                    has_touch=True, is_mobile=True)
        phone.add_init_script("localStorage.setItem('rnnlab-lang', 'zh')")
        page = phone.new_page()
        page.set_default_timeout(60_000)
        page.goto(url + "#names")
        page.wait_for_selector("body[data-ready='1']")
        page.fill("#names-input", args.name)
        page.tap("#names-form button[type=submit]")
        page.wait_for_selector("#step-equations .unit-card")
        page.tap("#step-first")
        page.locator("#names-step").scroll_into_view_if_needed()
        page.screenshot(path=str(out / "serve-phone.png"))
        print(out / "serve-phone.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
