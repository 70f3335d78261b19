"""Stream bodies written as HTTP chunks, many chunks to one socket write.

Mesos writes each stream event as an HTTP chunk of its own, and clients depend on it
(the npm `mesos-framework` parses one RecordIO record per chunk). Through ASGI a chunk
is a `send`, and under uvicorn a `send` is a message, its framing and a socket write:
about 10 µs each, which, at 100 operator subscribers, was most of the leader's CPU per
status update, and a burst of events held its event loop for most of a second.

On uvicorn's httptools protocol, once the response has started chunked, a ChunkWriter
frames the chunks itself and gives a whole batch to the transport in one write, with
the same flow control and disconnect checks as the server's own `send`. Anywhere else
(another server, another protocol, a test client) it makes one `send` per chunk, so
the bytes on the wire are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

from starlette.types import Send

CRLF = b"\r\n"
# The server whose response cycle we write through directly.
DIRECT = ("uvicorn.protocols.http.httptools_impl", "RequestResponseCycle")


class _Flow(Protocol):
    write_paused: bool

    async def drain(self) -> None: ...


class _Transport(Protocol):
    def write(self, data: bytes) -> None: ...


class _Cycle(Protocol):
    """What we use of uvicorn's httptools RequestResponseCycle."""

    transport: _Transport
    flow: _Flow
    disconnected: bool
    response_started: bool
    response_complete: bool
    chunked_encoding: bool | None
    scope: dict[str, Any]


def framed(record: bytes) -> tuple[bytes, bytes, bytes]:
    """The pieces of `record` as one HTTP chunk."""
    return (b"%x\r\n" % len(record), record, CRLF)


def chunk(record: bytes) -> bytes:
    """`record` as one HTTP chunk."""
    return b"".join(framed(record))


def direct_cycle(send: Send) -> _Cycle | None:
    """The uvicorn httptools response cycle behind `send`, if `send` is its own method."""
    cycle = getattr(send, "__self__", None)
    kind = type(cycle)
    if (kind.__module__, kind.__name__) != DIRECT:
        return None
    needed = ("transport", "flow", "disconnected", "response_started", "chunked_encoding")
    return cast(_Cycle, cycle) if all(hasattr(cycle, name) for name in needed) else None


class ChunkWriter:
    """Writes records as one HTTP chunk each, after the response has started."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.cycle = direct_cycle(send)

    @property
    def direct(self) -> bool:
        """Whether the next write goes straight to the transport."""
        cycle = self.cycle
        return (
            cycle is not None
            and cycle.response_started
            and not cycle.response_complete
            and cycle.chunked_encoding is True
            and cycle.scope.get("method") != "HEAD"
        )

    async def write(self, records: Sequence[bytes]) -> None:
        """`records` (each non-empty: an empty chunk would end the body), a chunk each."""
        if self.direct:
            await self.write_chunks(b"".join([piece for r in records for piece in framed(r)]))
            return
        for record in records:
            await self.send({"type": "http.response.body", "body": record, "more_body": True})

    async def write_chunks(self, data: bytes) -> None:
        """Bytes already framed as chunks (`chunk`), straight to the transport: only while
        `direct`."""
        cycle = self.cycle
        assert cycle is not None, "write_chunks needs a direct writer"
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
        if not cycle.disconnected:  # as the server's send: the receive side sees it go
            cycle.transport.write(data)

    async def end(self) -> None:
        """The last chunk: the response is complete."""
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
