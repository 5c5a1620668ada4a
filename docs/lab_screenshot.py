"""The README's picture of a gradebook: a small class (the key, three typical mistakes, the skeleton)
graded with ``rnnlab lab grade``, its gradebook.html taken in headless Chromium.

    python docs/lab_screenshot.py          # -> docs/img/lab-gradebook.png
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("lab_screenshot: no chromium on PATH (make browser installs it)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from rnnlab.lab.grade import grade
    from rnnlab.lab.mistakes import MISTAKES, apply
    from rnnlab.lab.workspace import new_workspace

    root = Path(tempfile.mkdtemp(prefix="rnnlab-shot-"))
    try:
        key = new_workspace(root / "key", "zh", solution=True)
        subs = root / "class"
        subs.mkdir()
        shutil.copytree(key, subs / "李明")
        for name, i in (("王芳", 3), ("张伟", 8), ("刘洋", 14)):  # gate order, (1-z) swapped, not summed over time
            m = MISTAKES[i]
            shutil.copytree(key, subs / name)
            f = subs / name / f"{m.part}.py"
            f.write_text(apply(f.read_text(encoding="utf-8"), m), encoding="utf-8")
        new_workspace(subs / "陈静", "zh")
        page = grade(subs, root / "book", log=print)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            tab.goto(page.as_uri())
            tab.screenshot(path=str(HERE / "img" / "lab-gradebook.png"), full_page=False)
            browser.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {HERE / 'img' / 'lab-gradebook.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
