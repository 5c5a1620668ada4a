"""Before the app: request bodies bounded for every transfer encoding, and the Host header checked
(a page on the internet that rebinds its own name to 127.0.0.1 cannot read this server)."""

from __future__ import annotations

import re

from fastapi.responses import Response

from .errors import _error

MAX_BODY = 2 * 1024 * 1024  # bytes of one request body


class Guard:
    """Before the app: refuse request bodies over ``limit`` bytes (413) before they are read into
    memory, whatever their transfer encoding (``rnnlab serve`` also counts them on the wire: see
    ``wire.py``), and, with ``hosts``, requests whose Host header names another machine or another
    port (400): a page on the internet that rebinds its own name to 127.0.0.1 cannot read this server."""

    def __init__(self, app, limit: int = MAX_BODY, hosts: tuple[str, ...] | None = None,
                 port: int | None = None) -> None:
        self.app, self.limit, self.port = app, limit, port
        self.hosts = {h.lower() for h in hosts} if hosts else None

    def host_error(self, host: str) -> str | None:
        """Why a Host header is refused (None: answered): not a host name with an optional port of
        digits; with ``hosts`` (on loopback), a name not in it or a port other than the server's
        (when known). Without ``hosts`` (listening on the network, maybe behind a proxy) any name and
        port number pass."""
        m = re.fullmatch(r"(\[[0-9a-f:.]+\]|[^\[\]:\s/@]+)(?::([^:]*))?", host)
        if m is None:
            return "not a host name with an optional port"
        name, port = m.group(1).strip("[]"), m.group(2)
        if port is not None and not (port.isascii() and port.isdigit() and 0 < len(port) <= 5 and int(port) <= 65535):
            return "its port is not a port number"
        if self.hosts is None:
            return None
        if name not in self.hosts:
            return f"this server answers only {', '.join(sorted(self.hosts))}"
        if port is not None and self.port and int(port) != self.port:
            return f"this server listens on port {self.port}"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host")
        why = self.host_error(host.decode("latin-1").lower()) if host is not None or self.hosts is not None else None
        if why:
            shown = (host or b"").decode("latin-1")[:80]
            return await _error(400, f"Host header {shown!r}: {why}")(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            message = (f"body: {int(length):,} bytes, over the limit of {self.limit:,}" if length.isdigit()
                       else "body: bad Content-Length header")
            return await _closing(_error(413 if length.isdigit() else 400, message))(scope, receive, send)
        if length is not None:  # the server reads no more than the declared length
            return await self.app(scope, receive, send)
        # No Content-Length (a chunked body): read it here, up to the limit, then hand it on.
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return None  # the client went away
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:  # answered now, and the connection closed: the rest is not read
                return await _closing(_error(413, f"body: over the limit of {self.limit:,} bytes"))(scope, receive, send)
            more = msg.get("more_body", False)
        body, handed = b"".join(chunks), False

        async def replay():
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _closing(response: Response) -> Response:
    """A refusal after which the server closes the connection instead of reading the rest of the body."""
    response.headers["connection"] = "close"
    return response


