"""A nested container's I/O switchboard, as Mesos's IOSwitchboard serves it, inside the agent.

A container with a switchboard (a DEBUG container, i.e. a LAUNCH_NESTED_CONTAINER_SESSION's, or
one with a TTY) has its stdout and stderr, or its terminal, read by the agent: sent to every
attached output stream (ATTACH_CONTAINER_OUTPUT, the session's own response) as ProcessIO DATA
records, with a CONTROL HEARTBEAT every 30 s (Mesos's --http_heartbeat_interval), and appended
to its sandbox's files, as Mesos's container logger keeps them. One input stream at a time
(ATTACH_CONTAINER_INPUT) writes its stdin or sizes its terminal.

Output is not buffered beyond a few records per stream: a slow client makes the container wait on
its pipe, as Mesos's pipes do, rather than making the agent hold its output. A DEBUG container's
output is read only once the first stream is attached (Mesos's `wait_for_connection`), so a
session loses none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
import termios
from collections.abc import Callable, Mapping
from pathlib import Path

from starlette.types import Receive, Scope, Send

from meseta.api.chunked import ChunkWriter
from meseta.api.streams import encode, wait_disconnect
from meseta.proto.mesos.v1.agent import agent_pb2

ProcessIO = agent_pb2.ProcessIO
RECORDIO = "application/recordio"
HEARTBEAT_INTERVAL_S = 30.0
OUTPUT_RECORDS = 16  # per attached stream; beyond them the container waits
READ_SIZE = 65536


def heartbeat() -> agent_pb2.ProcessIO:
    message = ProcessIO(type=ProcessIO.CONTROL)
    message.control.type = ProcessIO.Control.HEARTBEAT
    message.control.heartbeat.interval.nanoseconds = int(HEARTBEAT_INTERVAL_S * 1e9)
    return message


class Output:
    """One attached output stream: an ASGI app writing ProcessIO records, one RecordIO record
    per HTTP chunk. `content_type` labels the response (`application/recordio`, or the message
    type for a client that did not ask for RecordIO: Mesos's backward-compatible labelling);
    `message_type` encodes the records."""

    def __init__(self, content_type: str, message_type: str) -> None:
        self.content_type = content_type
        self.message_type = message_type
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(OUTPUT_RECORDS)
        self.gone = False
        self.on_close: list[Callable[[Output], None]] = []

    async def put(self, record: bytes | None) -> None:
        if not self.gone:
            await self.queue.put(record)

    def drop(self) -> None:
        """The client left: whatever waits to put a record here is let go."""
        self.gone = True
        while not self.queue.empty():
            self.queue.get_nowait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self.content_type.encode())]
        if self.content_type == RECORDIO:
            headers.append((b"message-content-type", self.message_type.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.ensure_future(wait_disconnect(receive))
        writer = ChunkWriter(send)
        beat = encode(heartbeat(), self.message_type)
        try:
            while True:
                get = asyncio.ensure_future(self.queue.get())
                await asyncio.wait({get, gone}, timeout=HEARTBEAT_INTERVAL_S,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if gone.done() or not get.done():
                    get.cancel()
                    if gone.done():
                        return
                    await writer.write([beat])
                    continue
                record = get.result()
                if record is None:
                    await writer.end()
                    return
                await writer.write([record])
        finally:
            gone.cancel()
            self.drop()
            for callback in self.on_close:
                callback(self)


class Switchboard:
    """The I/O of one container: `outputs` maps an output fd to its ProcessIO.Data.Type
    (one fd, STDOUT, for a terminal); `input_fd` is the write end of its stdin or the
    terminal's master side."""

    def __init__(
        self, outputs: Mapping[int, int], input_fd: int, tty: bool, wait: bool, log_dir: Path
    ) -> None:
        self.sources = dict(outputs)
        self.log_dir = log_dir  # output is also appended to its `stdout` and `stderr` files
        self.input_fd = input_fd
        self.tty = tty
        self.streams: list[Output] = []
        self.input_attached = False
        self.started = asyncio.Event()
        if not wait:
            self.started.set()
        self.finished = asyncio.Event()  # every output source ended and streams were told
        for fd in [*outputs, input_fd]:
            os.set_blocking(fd, False)

    def attach(self, stream: Output) -> None:
        if self.finished.is_set():  # the output has ended already: so does the stream
            stream.queue.put_nowait(None)
            return
        self.streams.append(stream)
        stream.on_close.append(self._detach)
        self.started.set()

    def _detach(self, stream: Output) -> None:
        if stream in self.streams:
            self.streams.remove(stream)

    async def run(self) -> None:
        """Pass output on until every source has ended, then end the attached streams."""
        try:
            await self.started.wait()
            await asyncio.gather(*(self._pump(fd, kind) for fd, kind in self.sources.items()))
        finally:
            for fd in self.sources:
                with contextlib.suppress(OSError):
                    os.close(fd)
            for stream in list(self.streams):
                with contextlib.suppress(asyncio.CancelledError):
                    await stream.put(None)
            self.finished.set()

    async def _pump(self, fd: int, kind: int) -> None:
        name = "stderr" if kind == ProcessIO.Data.STDERR else "stdout"
        with (self.log_dir / name).open("ab", buffering=0) as log:
            while data := await read(fd):
                log.write(data)  # as Mesos's container logger keeps it
                await self._publish(kind, data)

    async def _publish(self, kind: int, data: bytes) -> None:
        message = ProcessIO(type=ProcessIO.DATA)
        message.data.type = kind  # type: ignore[assignment]
        message.data.data = data
        encoded: dict[str, bytes] = {}
        for stream in list(self.streams):
            record = encoded.get(stream.message_type)
            if record is None:
                record = encoded[stream.message_type] = encode(message, stream.message_type)
            await stream.put(record)

    async def write(self, data: bytes) -> None:
        """Write to the container's stdin (OSError when it is closed or gone)."""
        if self.input_fd < 0:
            raise OSError(errno.EPIPE, "stdin was closed")
        await write_all(self.input_fd, data)

    def close_input(self) -> None:
        """EOF on stdin (a terminal gets EOT from its client instead)."""
        if self.input_fd >= 0 and not self.tty:
            os.close(self.input_fd)
            self.input_fd = -1

    def resize(self, rows: int, columns: int) -> None:
        if self.input_fd < 0 or not self.tty:
            raise OSError(errno.ENOTTY, "the container has no terminal")
        set_window_size(self.input_fd, rows, columns)

    def abandon(self) -> None:
        """Close every descriptor of a switchboard whose container never started."""
        self.close()
        for fd in self.sources:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        if self.input_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.input_fd)
            self.input_fd = -1


def set_window_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


async def read(fd: int) -> bytes:
    """What the fd has (b"" at its end; a terminal whose every user left reads as its end)."""
    while True:
        try:
            return os.read(fd, READ_SIZE)
        except BlockingIOError:
            pass
        except OSError as error:
            if error.errno == errno.EIO:
                return b""
            raise
        await _ready(fd, writing=False)


async def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _ready(fd, writing=True)


async def _ready(fd: int, *, writing: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if writing else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if writing else loop.remove_reader)(fd)
