"""api/chunked.py ChunkWriter on a real uvicorn server: the same chunks on the wire whether
they go straight to the transport (httptools) or through `send` (h11), flow control kept,
and a client that leaves stops the writes.

A raw socket client reads the response, so the HTTP chunk boundaries themselves are seen.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Literal

import pytest
from starlette.types import Receive, Scope, Send

from meseta.api.chunked import ChunkWriter, chunk
from tests.support.served_app import HOST, served

Protocol = Literal["h11", "httptools"]
BATCHES = [[b"1\na"], [b"2\nbb", b"3\nccc", b"1\nd"], [b"5\neeeee"]]


class App:
    """Writes `batches` with a ChunkWriter (then ends the body), noting how it wrote."""

    def __init__(self, batches: list[list[bytes]], end: bool = True) -> None:
        self.batches = batches
        self.end = end
        self.direct: list[bool] = []
        self.written = 0  # batches handed over
        self.finished = threading.Event()
        self.error: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        writer = ChunkWriter(send)
        try:
            for batch in self.batches:
                self.direct.append(writer.direct)
                await writer.write(batch)
                self.written += 1
                await asyncio.sleep(0)
            if self.end:
                await writer.end()
        except BaseException as error:
            self.error = error
            raise
        finally:
            self.finished.set()


def raw_get(port: int, timeout_s: float = 10.0) -> socket.socket:
    conn = socket.create_connection((HOST, port), timeout=timeout_s)
    conn.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    return conn


def read_chunks(conn: socket.socket) -> tuple[bytes, list[bytes]]:
    """The response head and its body's chunks, up to the last (empty) one."""
    data = b""
    while b"0\r\n\r\n" not in data[data.find(b"\r\n\r\n") :] or b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        assert more, f"the connection closed early: {data!r}"
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    chunks = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return head, chunks
        chunks.append(body[:size])
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


@pytest.fixture(params=["httptools", "h11"])
def protocol(request: pytest.FixtureRequest) -> Iterator[Protocol]:
    yield request.param


def test_each_record_is_one_chunk_either_way(protocol: Protocol) -> None:
    app = App(BATCHES)
    with served(app, http=protocol) as client, raw_get(client.port) as conn:
        head, chunks = read_chunks(conn)
    assert head.lower().count(b"transfer-encoding: chunked") == 1
    assert chunks == [record for batch in BATCHES for record in batch]
    # Straight to the transport under httptools (what the master runs), `send` under h11.
    assert app.direct == [protocol == "httptools"] * len(BATCHES)


def test_chunk_frames_a_record() -> None:
    assert chunk(b"3\nabc") == b"5\r\n3\nabc\r\n"
    assert chunk(b"x" * 300) == b"12c\r\n" + b"x" * 300 + b"\r\n"


def test_a_client_that_does_not_read_holds_the_writer(protocol: Protocol) -> None:
    """Flow control as the server's own `send`: the writes wait for the client, rather than
    piling up in the server's buffer."""
    big = b"x" * (1 << 20)
    app = App([[big, big]] * 64, end=False)  # 128 MiB if nothing held it back
    with served(app, http=protocol) as client:
        conn = raw_get(client.port)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        try:
            time.sleep(0.5)
            held = app.written
            time.sleep(0.3)
            assert app.written == held < 16, "the writer did not wait for the client"
            total = 0
            deadline = time.monotonic() + 30
            while total < 2 * len(big) * 64 and time.monotonic() < deadline:
                more = conn.recv(1 << 20)
                assert more
                total += len(more)
            # Reading let every write through (the last is counted once its send returns).
            while app.written < 64 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert app.written == 64
        finally:
            conn.close()
            assert app.finished.wait(10)


def test_a_client_that_leaves_stops_the_writes(protocol: Protocol) -> None:
    big = b"y" * (1 << 20)
    app = App([[big]] * 4096, end=False)
    with served(app, http=protocol) as client:
        conn = raw_get(client.port)
        conn.recv(1024)  # the response started
        conn.close()
        # Writes after the disconnect are dropped without an error; the app runs out.
        assert app.finished.wait(30)
    assert app.error is None and app.written == len(app.batches)
