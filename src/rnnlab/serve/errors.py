"""Every answer other than 200 is one line of JSON, ``{"error": "..."}``, naming what to fix: the
exception handlers of the app, and FastAPI's validation errors worded as field messages."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("rnnlab.serve")


class ApiError(Exception):
    """An answer other than 200, with its one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _api_names(message: str) -> str:
    """The command line's flags in a message (``--top-k``) as the API's field names (``top_k``)."""
    return re.sub(r"(?<![\w-])--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), message)


def _where(loc) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _validation_message(errors: list[dict]) -> tuple[int, str]:
    """FastAPI's validation errors -> (status, one line naming every field at fault, each once:
    ``name: unknown field; names: required``)."""
    for e in errors:
        kind, where = e.get("type", ""), _where(e.get("loc", ()))
        if kind == "json_invalid":
            return 400, f"body: not valid JSON ({(e.get('ctx') or {}).get('error', 'parse error')})"
        if where == "body" and kind in ("model_attributes_type", "dict_type", "model_type", "missing"):
            return 400, "body: expected a JSON object"
    # Unknown fields first: a misspelt field explains the required one reported missing beside it.
    ordered = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")
    messages = list(dict.fromkeys(_field_message(e) for e in ordered))
    return 422, _one_line("; ".join(messages))


def _field_message(e: dict) -> str:
    """One validation error as ``field: what is wrong (got ...)``."""
    kind, where, ctx = e.get("type", ""), _where(e.get("loc", ())), e.get("ctx") or {}
    value = e.get("input")
    if kind == "string_too_long" or (kind == "too_long" and isinstance(value, str)):
        got = f" (got {len(value):,})" if isinstance(value, str) else ""
        n = ctx.get("max_length", 0)
        return f"{where}: at most {n:,} character{'s' if n != 1 else ''}{got}"
    if kind == "string_too_short":
        return f"{where}: must not be empty"
    if kind == "too_short":
        return f"{where}: give at least {ctx.get('min_length', 1)} item(s)"
    if kind == "too_long":
        return f"{where}: at most {ctx.get('max_length', 0)} items (got {ctx.get('actual_length', '?')})"
    if kind == "missing":
        return f"{where}: required"
    if kind == "extra_forbidden":
        return f"{where}: unknown field"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{where}: {e.get('msg', '').lower().replace('input ', '')} (got {value!r})"
    m = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {m[:1].lower() + m[1:]}"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": _one_line(message)}, status_code=status, headers=headers)



def install_error_handlers(app: FastAPI) -> None:
    """One JSON line for every error, never a traceback (a 500 is logged with it)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        kind = request.headers.get("content-type", "")
        if kind and "json" not in kind.lower():
            return _error(415, f"body: send a JSON object with Content-Type: application/json, not {kind[:60]}")
        status, message = _validation_message(list(exc.errors()))
        return _error(status, message)

    @app.exception_handler(ValueError)
    async def _value_error(request: Request, exc: ValueError):
        return _error(400, _api_names(str(exc)) or "bad input")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = {404: f"not found: {request.url.path}", 405: f"method {request.method} not allowed on {request.url.path}"}
        return _error(exc.status_code, message.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); the server's log has the details")
