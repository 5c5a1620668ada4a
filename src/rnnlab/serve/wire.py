"""The size limit of a request body, counted on the wire, under ``rnnlab serve``'s HTTP parser.

Why the app's own limit (``Guard``) is not enough: it counts the body as the server hands it over,
after uvicorn's h11 parser has taken the chunked framing apart. A body sent in tiny chunks (one byte
each: ``1\\r\\nx\\r\\n``) is six times its size on the wire and one parser event per byte, and
uvicorn appends each event to the bytes it buffers (quadratic within a read): 2 MB of such a body
took 11 s to parse (30 s and more from a client that writes each chunk apart) before the guard saw
the limit. Here the bytes of a request are counted as they arrive, before any parsing: past the
limit (plus room for headers and framing) the server answers 413 at once (2 s for 1-byte chunks,
parsing included), closes its side, and drops what the client still sends for a few seconds (so
that the client can read the answer rather than a reset connection), then closes.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.h11_impl import H11Protocol

from .guard import MAX_BODY

# What a request may send on the wire beyond its body's limit: headers and ordinary chunk framing
# (a 64 KiB chunk costs 8 bytes of framing; a body framed more wastefully than 1/8 is refused).
WIRE_ALLOWANCE = 64 * 1024
LINGER_SECONDS = 3.0  # how long the rest of a refused body is read and dropped before the connection closes


def wire_limit(limit: int) -> int:
    return limit + limit // 8 + WIRE_ALLOWANCE


def answer_413(limit: int) -> bytes:
    body = json.dumps({"error": f"body: over the limit of {limit:,} bytes (counted as sent, chunk framing "
                                "included)"}).encode()
    return (b"HTTP/1.1 413 Request Entity Too Large\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)) + body


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, refusing a request whose bytes on the wire pass ``wire_limit(limit)``
    (``rnnlab serve`` names it by its import path, so that each of ``--workers`` processes loads it)."""

    limit = MAX_BODY
    _counted = None  # the request cycle whose bytes ``_bytes`` counts
    _bytes = 0
    _dropping = False

    def data_received(self, data: bytes) -> None:
        if self._dropping:
            return
        cycle = getattr(self, "cycle", None)
        if cycle is not self._counted:
            self._counted, self._bytes = cycle, 0
        self._bytes += len(data)
        if cycle is not None and not cycle.response_complete and self._bytes > wire_limit(self.limit):
            self._refuse(cycle)
            return
        super().data_received(data)

    def _refuse(self, cycle) -> None:
        self._dropping = True
        if not cycle.response_started:
            self.transport.write(answer_413(self.limit))
            cycle.response_started = cycle.response_complete = True
        cycle.disconnected = True  # the app's receive() answers http.disconnect
        cycle.message_event.set()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def limited_protocol(limit: int = MAX_BODY) -> type:
    """The protocol class for ``uvicorn.run(http=...)`` with a body limit of ``limit`` bytes."""
    if limit == LimitedH11Protocol.limit:
        return LimitedH11Protocol
    return type("LimitedH11Protocol", (LimitedH11Protocol,), {"limit": limit})


__all__ = ["LimitedH11Protocol", "limited_protocol", "wire_limit", "answer_413"]
