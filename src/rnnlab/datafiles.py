"""Reading the user's data files: every problem is one ``UserError`` that names the file (and the
line, where there is one) -- missing, a folder or a broken link, unreadable, too large, not UTF-8,
not gzip or a truncated gzip, malformed JSON.

The readers of the tasks (names, poems, sentiment) and of ``rnnlab data`` go through these helpers,
so that no decode, gzip, JSON, permission or size problem reaches the user as a traceback.
Torch-free.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Iterator

from .errors import UserError

# The largest data file (and the largest decompressed .gz) read into memory: far above any data set
# of these labs (the bundled Tang poems are 7 MB compressed), far below what would exhaust memory.
MAX_FILE_BYTES = 2 * 1024**3


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
    """UTF-8 text (a byte-order mark is dropped), or an error naming the line and column."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise decode_error(raw, e, path) from None


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
    """A UTF-8 text file (gzip-compressed when its name ends in .gz)."""
    path = Path(path)
    raw = read_bytes(path, what)
    if path.name.endswith(".gz"):
        raw = gunzip(raw, path)
    return decode_utf8(raw, path)


def read_json(path: Path, what: str = "JSON file"):
    """A JSON document, with the line and column of a syntax error."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: malformed JSON at column {e.colno}: {e.msg}") from None


def iter_jsonl(path: Path, what: str = "JSON-lines file") -> Iterator[tuple[int, object]]:
    """(line number, value) for every non-empty line of a .jsonl or .jsonl.gz file."""
    text = read_text(path, what)
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a string
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: malformed JSON at column {e.colno}: {e.msg}") from None


__all__ = ["MAX_FILE_BYTES", "check_file", "read_bytes", "decode_error", "decode_utf8", "gunzip", "read_text",
           "read_json", "iter_jsonl"]
