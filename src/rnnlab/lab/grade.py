"""``rnnlab lab grade SUBMISSIONS --out GRADEBOOK``: a class's workspaces checked, each in its own box
(rnnlab.lab.sandbox) on a scratch copy, several at once up to the free cores, with the hidden checks
(other seeds and larger sizes than ``lab check`` uses, drawn afresh for every grading); then the
gradebook: ``gradebook.csv`` and ``gradebook.html`` (a row per student: each part's score and
feedback), the class's most common mistakes, and every ``answers.md`` on one page."""

from __future__ import annotations

import csv
import html
import os
import secrets
import shutil
import stat
import tempfile
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import UserError
from ..files import folder_for_writing
from .checks import Verdict, run_checks
from .parts import PARTS
from .workspace import MANIFEST

MAX_UNZIPPED = 50 * 2**20  # bytes a submission's zip may unpack to
MAX_MEMBERS = 500
KEEP = {f"{p}.py" for p in PARTS} | {"answers.md", MANIFEST}  # the files of a workspace that are read


def submissions(folder: Path) -> list[Path]:
    """The student folders and .zip files of ``folder``, by name."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder of submissions")
    found = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_symlink()
                   and (p.is_dir() or p.suffix.lower() == ".zip"))
    if not found:
        raise UserError(f"{folder}: no submissions (student folders or .zip files) in it")
    return found


def unpack(sub: Path, into: Path) -> Path:
    """A submission's workspace files copied (or unzipped) into ``into``: only the files a workspace
    has, never a link, no path outside the archive (zip-slip), bounded sizes; a one-line error naming
    the student otherwise."""
    into.mkdir(parents=True)
    if sub.is_dir():
        for name in KEEP:
            src = sub / name
            if src.is_file() and not src.is_symlink() and src.stat().st_size <= MAX_UNZIPPED:
                shutil.copyfile(src, into / name)
        return into
    try:
        with zipfile.ZipFile(sub) as z:
            members = z.infolist()
            if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_UNZIPPED:
                raise UserError(f"{sub.name}: the zip is too large ({len(members)} files); submit the workspace only")
            for m in members:
                parts = Path(m.filename).parts
                if m.filename.startswith(("/", "\\")) or ".." in parts or (m.external_attr >> 16) & 0o170000 == stat.S_IFLNK:
                    raise UserError(f"{sub.name}: {m.filename!r} points outside the submission (or is a link): refused")
            for m in members:  # the workspace's files, wherever the student's zip put its folder
                name = Path(m.filename).name
                if name in KEEP and not m.is_dir() and not (into / name).exists():
                    (into / name).write_bytes(z.read(m))
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{sub.name}: not a readable zip ({type(e).__name__})") from None
    return into


def grade(folder: Path, out: Path, jobs: int | None = None, parts: list[str] | None = None, log=print,
          part_seconds: int = 60) -> Path:
    """Check every submission of ``folder`` and write the gradebook into ``out``; returns the HTML page."""
    subs = submissions(Path(folder))
    folder_for_writing(Path(out), "--out")
    parts = parts or list(PARTS)
    seed = secrets.randbelow(2**31)  # the hidden checks' inputs: drawn now, never written anywhere
    jobs = max(1, jobs or min(2, len(os.sched_getaffinity(0))))
    scratch = Path(tempfile.mkdtemp(prefix="rnnlab-grade-"))

    def one(i_sub):
        i, sub = i_sub
        name = sub.stem if sub.suffix.lower() == ".zip" else sub.name
        try:
            work = unpack(sub, scratch / f"s{i}")
            verdicts = run_checks(work, parts, seed, hidden=True, part_seconds=part_seconds)
            answers = (work / "answers.md").read_text(encoding="utf-8", errors="replace")[:20_000] \
                if (work / "answers.md").is_file() else ""
        except UserError as e:
            verdicts, answers = [Verdict(p, 0.0, [str(e)]) for p in parts], ""
        log(f"graded {name}: {sum(v.score for v in verdicts):.2f} of {len(parts)}")
        return name, verdicts, answers

    try:
        with ThreadPoolExecutor(jobs) as pool:
            rows = list(pool.map(one, enumerate(subs)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return write_gradebook(Path(out), parts, rows)


def write_gradebook(out: Path, parts: list[str], rows: list) -> Path:
    with open(out / "gradebook.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["student", *parts, "total", *[f"{p} feedback" for p in parts]])
        for name, verdicts, _ in rows:
            w.writerow([name, *[f"{v.score:.2f}" for v in verdicts], f"{sum(v.score for v in verdicts):.2f}",
                        *[" | ".join(v.lines) for v in verdicts]])
    common = Counter(f"{v.part}: {v.mistake}" for _, verdicts, _ in rows for v in verdicts if v.mistake)
    e = html.escape
    head = "".join(f"<th>{e(p)}</th>" for p in parts)
    body = "".join(
        f"<tr><td class='l'>{e(name)}</td>" + "".join(
            f"<td class='{'ok' if v.ok else 'bad'}' title='{e(' | '.join(v.lines))}'>{v.score:.2f}</td>" for v in verdicts)
        + f"<td><b>{sum(v.score for v in verdicts):.2f}</b></td></tr>" for name, verdicts, _ in rows)
    feedback = "".join(f"<h3>{e(name)}</h3><ul>" + "".join(
        f"<li><b>{e(v.part)}</b> {v.score:.2f}: {e(' | '.join(v.lines))}</li>" for v in verdicts) + "</ul>"
        for name, verdicts, _ in rows)
    mistakes = "".join(f"<li>{e(k)}: {n} student{'s' if n != 1 else ''}</li>" for k, n in common.most_common(10))
    answers = "".join(f"<h3>{e(name)}</h3><pre>{e(text) or '(no answers.md)'}</pre>" for name, _, text in rows)
    page = (f"<!doctype html><meta charset='utf-8'><title>rnnlab gradebook</title><style>{CSS}</style>"
            f"<h1>Gradebook</h1><p>{len(rows)} submissions, {len(parts)} parts (each scored 0 to 1; hover a score "
            f"for its feedback). Also: gradebook.csv.</p><table><tr><th>student</th>{head}<th>total</th></tr>{body}"
            f"</table><h2>Most common mistakes</h2><ul>{mistakes or '<li>none recognised</li>'}</ul>"
            f"<h2>Feedback</h2>{feedback}<h2>Answers</h2>{answers}")
    (out / "gradebook.html").write_text(page, encoding="utf-8")
    return out / "gradebook.html"


CSS = ("body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:2rem;max-width:72rem}table{border-collapse:"
       "collapse}td,th{border:1px solid #d9dee5;padding:.3rem .6rem;text-align:right}td.l{text-align:left}"
       "td.ok{background:#e6f4ea}td.bad{background:#fdecea}pre{white-space:pre-wrap;background:#f6f8fa;padding:.6rem}")
