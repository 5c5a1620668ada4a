"""Reading the user's data files: every problem is one ``UserError`` that names the file (and the
line, where there is one) -- missing, a folder or a broken link, unreadable, too large, not UTF-8,
not gzip or a truncated gzip, malformed JSON.

The readers of the tasks (names, poems, sentiment) and of ``rnnlab data`` go through these helpers,
so that no decode, gzip, JSON, permission or size problem reaches the user as a traceback.
Torch-free.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import zlib
from pathlib import Path
from typing import Iterator

from .errors import UserError

# The largest data file (and the largest decompressed .gz) read into memory: far above any data set
# of these labs (the bundled Tang poems are 7 MB compressed), far below what would exhaust memory.
MAX_FILE_BYTES = 2 * 1024**3
# The deepest nesting of lists and objects a JSON data or run file may have (a poem record has 2).
MAX_JSON_DEPTH = 64


def _size(n: int) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GiB"
    return f"{n / 1024**2:.1f} MiB" if n >= 1024**2 else f"{n:,} bytes"


def check_file(path: Path, what: str = "data file") -> Path:
    """``path`` is a regular file we may read, else a one-line error saying why not."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise UserError(f"{path}: a broken link (it points to {path.readlink()}, which does not exist)")
    if not path.exists():
        raise UserError(f"{path}: {what} not found")
    if path.is_dir():
        raise UserError(f"{path}: a folder, not a {what}")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file (a {what} must be one)")
    return path


def read_bytes(path: Path, what: str = "data file", limit: int | None = None) -> bytes:
    """The bytes of a data file; missing, unreadable and oversized files are one-line errors."""
    path = check_file(path, what)
    limit = MAX_FILE_BYTES if limit is None else limit
    try:
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{path}: {_size(size)}, more than the {_size(limit)} a {what} may have")
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except PermissionError:
        raise UserError(f"{path}: permission denied (the {what} cannot be read)") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None


def decode_error(raw: bytes, e: UnicodeDecodeError, path: Path, hint: str = "save the file as UTF-8") -> UserError:
    """A UnicodeDecodeError as ``FILE:LINE: not UTF-8 (byte 0x.. at column C); hint``."""
    line = raw[: e.start].count(b"\n") + 1
    column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
    return UserError(f"{path}:{line}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {column}); {hint}")


def decode_utf8(raw: bytes, path: Path) -> str:
    """UTF-8 text (a byte-order mark is dropped; UTF-16 with a byte-order mark is read too), or an
    error naming the line and column; NUL characters are refused."""
    return decode_data(raw, path)[0]


# Byte-order marks, longest first (a UTF-32 LE mark starts with the UTF-16 LE one).
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def detect_encoding(raw: bytes) -> str:
    """The encoding a byte-order mark declares (utf-8-sig, utf-16, utf-32), else utf-8."""
    return next((name for bom, name in BOMS if raw.startswith(bom)), "utf-8")


def decode_data(raw: bytes, path: Path, hint: str = "save the file as UTF-8") -> tuple[str, str]:
    """(text, encoding) of a data file: UTF-8, or the UTF-8/16/32 its byte-order mark declares.
    Anything else -- GBK, Big5, Latin-1, UTF-16 without a mark -- is an error naming the first bad
    line; so is a NUL character (binary data, or UTF-16 without its mark)."""
    encoding = detect_encoding(raw)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        if encoding in ("utf-8", "utf-8-sig"):
            raise decode_error(raw, e, path, hint) from None
        line = raw[: e.start].decode(encoding, errors="replace").count("\n") + 1
        raise UserError(f"{path}:{line}: not valid {encoding.upper()} (its byte-order mark says it is; "
                        f"bytes {e.start:,}-{e.end:,}); {hint}") from None
    text = text.lstrip("\ufeff")
    check_nul(text, path)
    return text, {"utf-8-sig": "utf-8 (with BOM)"}.get(encoding, encoding)


def check_nul(text: str, path: Path) -> None:
    """A NUL character in a text file is binary data (or UTF-16 read as UTF-8): an error naming its line."""
    at = text.find("\x00")
    if at >= 0:
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        raise UserError(f"{path}:{line}: a NUL character at column {column}: binary data, or UTF-16 without a "
                        "byte-order mark; save the file as UTF-8")


def check_utf8_file(path: Path, what: str = "data file") -> None:
    """A text file too large to hold at once (word vectors), read through line by line: UTF-8 without
    NUL, else an error naming the first bad line."""
    path = check_file(Path(path), what)
    try:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UserError(f"{path}:{lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                    "save the file as UTF-8") from None
                if "\x00" in text:
                    raise UserError(f"{path}:{lineno}: a NUL character at column {text.index(chr(0)) + 1}: binary "
                                    "data, or UTF-16 without a byte-order mark; save the file as UTF-8")
    except PermissionError:
        raise UserError(f"{path}: permission denied (the {what} cannot be read)") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None


def too_deep(path: Path, line: int | None = None) -> UserError:
    """The error for JSON nested deeper than the reader follows (Python's json recursion limit)."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return UserError(f"{where}: JSON nested too deeply (over {MAX_JSON_DEPTH} levels of lists and objects); "
                     "not a data file of rnnlab")


def loads(text: str, path: Path, line: int | None = None):
    """``json.loads`` with a syntax error or nesting too deep as one line naming the file (and line)."""
    if _depth(text) > MAX_JSON_DEPTH:
        raise too_deep(path, line)
    try:
        return json.loads(text)
    except RecursionError:
        raise too_deep(path, line) from None
    except json.JSONDecodeError as e:
        where = f"{path}:{line if line is not None else e.lineno}"
        raise UserError(f"{where}: malformed JSON at column {e.colno}: {e.msg}") from None


_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _depth(text: str) -> int:
    """How deep lists and objects nest in a JSON text (strings skipped); cheap on data files, whose
    brackets are a few per record. Text without enough brackets to be deep is not scanned."""
    opens = text.count("[") + text.count("{")
    if opens <= MAX_JSON_DEPTH:
        return opens
    depth = deepest = 0
    for m in _BRACKETS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif c in "]}":
            depth -= 1
    return deepest


def gunzip(raw: bytes, path: Path, limit: int | None = None) -> bytes:
    """The decompressed bytes of a .gz file, with errors that say what is wrong with it."""
    limit = MAX_FILE_BYTES if limit is None else limit
    out = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw), mode="rb") as gz:
            while chunk := gz.read(1 << 20):
                out.write(chunk)
                if out.tell() > limit:
                    raise UserError(f"{path}: decompresses to more than {_size(limit)}")
    except gzip.BadGzipFile:
        raise UserError(f"{path}: not a gzip file (if it is plain text, drop the .gz from its name)") from None
    except EOFError:
        raise UserError(f"{path}: truncated gzip file (it ends before its compressed data does; "
                        f"{out.tell():,} bytes could be read)") from None
    except (zlib.error, OSError) as e:
        raise UserError(f"{path}: damaged gzip data ({e})") from None
    return out.getvalue()


def read_text(path: Path, what: str = "data file") -> str:
    """A UTF-8 text file (gzip-compressed when its name ends in .gz); see ``decode_data``."""
    return read_text_encoding(path, what)[0]


def read_text_encoding(path: Path, what: str = "data file") -> tuple[str, str]:
    """(text, encoding) of a text file (gzip-compressed when its name ends in .gz)."""
    path = Path(path)
    raw = read_bytes(path, what)
    if path.name.endswith(".gz"):
        raw = gunzip(raw, path)
    return decode_data(raw, path)


def iter_jsonl(path: Path, what: str = "JSON-lines file") -> Iterator[tuple[int, object]]:
    """(line number, value) for every non-empty line of a .jsonl or .jsonl.gz file."""
    text = read_text(path, what)
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a string
        if line.strip():
            yield lineno, loads(line, path, lineno)


__all__ = ["MAX_FILE_BYTES", "MAX_JSON_DEPTH", "check_file", "read_bytes", "decode_error", "decode_utf8", "decode_data",
           "detect_encoding", "check_nul", "check_utf8_file", "loads", "gunzip", "read_text", "read_text_encoding",
           "iter_jsonl"]
