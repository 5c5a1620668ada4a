"""The project's bundled data: import from the raw sets, find it, summarise it.

``rnnlab data import --from ../shared/data --to data`` turns the raw sets into ``data/``:

* ``names/<Language>.txt``        copied byte for byte (quirks kept, see SOURCES.md);
* ``poems/tang.jsonl.gz``         every Tang poem, converted to simplified characters with OpenCC
                                  ``t2s``, one JSON object ``{"author", "title", "paragraphs"}`` a line,
                                  in file order; no filtering (that is a task option);
* ``sentiment/<name>.csv``        copied byte for byte;
* ``SOURCES.md``                  provenance, licences, every step, counts and SHA-256 of each file.

The import is deterministic: gzip is written with a zero timestamp and no file name, JSON with
sorted keys, so running it twice gives byte-identical files.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
from pathlib import Path

from .errors import UserError

POEMS_FILE = "poems/tang.jsonl.gz"


def default_data_dir() -> Path:
    """The bundled ``data/`` folder: $RNNLAB_DATA, else the checkout's data/ beside src/."""
    env = os.environ.get("RNNLAB_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "data" / "SOURCES.md").is_file():
            return parent / "data"
    return Path.cwd() / "data"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _numbered(path: Path) -> tuple:
    """Sort key that puts poet.tang.2000.json before poet.tang.10000.json."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name))


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise UserError(f"{what} folder not found: {path}")
    return path


def _copy_files(src: Path, what: str, pattern: str, dst: Path, count) -> dict:
    """Copy every ``pattern`` file of ``src`` byte for byte; ``count(text)`` gives its items."""
    files = sorted(_require_dir(src, what).glob(pattern))
    if not files:
        raise UserError(f"no {pattern} files in {src}")
    items = 0
    for f in files:
        data = f.read_bytes()
        items += count(data.decode("utf-8-sig"))
        atomic_write_bytes(dst / f.name, data)
    return {"files": len(files), "items": items}


def import_names(src: Path, dst: Path) -> dict:
    return _copy_files(src, "names", "*.txt", dst, lambda text: text.count("\n"))


def read_poem_json(path: Path) -> list[dict]:
    """Read one chinese-poetry JSON file (a list of {author, title, paragraphs}); clear errors."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of poems, got {type(data).__name__}")
    return data


def import_poems(src: Path, dst_file: Path) -> dict:
    import opencc

    files = sorted(_require_dir(src, "poems").glob("*.json"), key=_numbered)
    if not files:
        raise UserError(f"no chinese-poetry *.json files in {src}")
    t2s = opencc.OpenCC("t2s")
    buf = io.BytesIO()
    poems = chars = 0
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        for f in files:
            for i, item in enumerate(read_poem_json(f)):
                if not isinstance(item, dict) or not isinstance(item.get("paragraphs"), list):
                    raise UserError(f"{f}: poem {i} has no 'paragraphs' list")
                poem = {
                    "author": t2s.convert(str(item.get("author", ""))),
                    "title": t2s.convert(str(item.get("title", ""))),
                    "paragraphs": [t2s.convert(str(p)) for p in item["paragraphs"]],
                }
                chars += sum(len(p) for p in poem["paragraphs"])
                gz.write((json.dumps(poem, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
                poems += 1
    atomic_write_bytes(dst_file, buf.getvalue())
    licence = src / "LICENSE"
    if licence.is_file():
        atomic_write_bytes(dst_file.parent / "LICENSE.chinese-poetry", licence.read_bytes())
    return {"files": len(files), "poems": poems, "characters": chars}


def import_sentiment(src: Path, dst: Path) -> dict:
    return _copy_files(src, "sentiment", "*.csv", dst, lambda text: sum(1 for _ in csv.reader(io.StringIO(text))) - 1)


SOURCES_TEMPLATE = """# Bundled data

Made by `rnnlab data import --from <raw> --to data` (`make data`) from the raw sets described in
the raw folder's SOURCES.md. Do not edit by hand: re-run the import, which is deterministic
(running it twice gives byte-identical files; the tests check this).

## names/ -- surname -> language ({names_files} files, {names_lines} lines)
Source: the data set of the PyTorch tutorial "NLP From Scratch: Classifying Names with a
Character-Level RNN" (data.zip of the PyTorch tutorials, BSD-style licence).
Steps: none; each `<Language>.txt` is copied byte for byte (UTF-8, one name per line).
Known quirks, kept on purpose (the names task handles them, and reports what it drops):
- `Russian.txt` holds 24 junk lines "To The First Page" (scraping residue);
- many exact duplicates (Arabic: 2,000 lines, about 100 distinct names), and 476 names occur
  under more than one language, so a plain row split leaks test names into training.

## poems/ -- the complete Tang poems ({poem_files} source files, {poems} poems, {poem_chars} characters)
Source: the chinese-poetry project, files `poet.tang.N.json` (MIT licence, copied to
`poems/LICENSE.chinese-poetry`).
Steps: files read in numeric order; author, title and every line converted from traditional to
simplified characters with OpenCC `t2s`; the `id` field dropped; stored as `tang.jsonl.gz`, one
poem `{{"author", "title", "paragraphs"}}` a line (JSON with sorted keys; gzip level 9, zero
timestamp, no file name). No poem is filtered out here: cleaning (brackets, missing-character
marks, lengths, forms) is an option of the poems task.

## sentiment/ -- ChnSentiCorp hotel reviews ({sent_files} file, {sent_rows} rows)
Source: ChnSentiCorp_htl_all from the ChineseNlpCorpus collection (public research corpus by
Tan Songbo et al.). Columns `label,review`; label 1 = positive, 0 = negative.
Steps: none; copied byte for byte (proper CSV quoting; a few empty or very long rows are kept,
the task skips and counts them).

## Checksums (SHA-256)
{checksums}
"""


def import_all(src: Path, dst: Path) -> dict:
    """Import every raw set under ``src`` into ``dst`` and write ``dst/SOURCES.md``."""
    src, dst = Path(src), Path(dst)
    _require_dir(src, "raw data")
    stats = {
        "names": import_names(src / "names", dst / "names"),
        "poems": import_poems(src / "tang-poems-json", dst / POEMS_FILE),
        "sentiment": import_sentiment(src / "sentiment", dst / "sentiment"),
    }
    files = sorted(p for p in dst.rglob("*") if p.is_file() and p.name != "SOURCES.md" and not p.name.startswith("."))
    checksums = "\n".join(f"- `{p.relative_to(dst).as_posix()}` {_sha256(p)}" for p in files)
    text = SOURCES_TEMPLATE.format(
        names_files=stats["names"]["files"], names_lines=f"{stats['names']['items']:,}",
        poem_files=stats["poems"]["files"], poems=f"{stats['poems']['poems']:,}",
        poem_chars=f"{stats['poems']['characters']:,}",
        sent_files=stats["sentiment"]["files"], sent_rows=f"{stats['sentiment']['items']:,}",
        checksums=checksums,
    )
    atomic_write_bytes(dst / "SOURCES.md", text.encode("utf-8"))
    return stats


def summary(data_dir: Path) -> dict:
    """Counts of what the bundled data folder holds (no heavy imports)."""
    data_dir = Path(data_dir)
    out: dict = {"data": str(data_dir)}
    names = sorted((data_dir / "names").glob("*.txt"))
    out["names"] = {f.stem: sum(1 for line in f.read_text(encoding="utf-8").splitlines() if line.strip()) for f in names}
    poems = data_dir / POEMS_FILE
    if poems.is_file():
        with gzip.open(poems, "rt", encoding="utf-8") as f:
            out["poems"] = sum(1 for _ in f)
    out["sentiment"] = [f.name for f in sorted((data_dir / "sentiment").glob("*.csv"))]
    return out
