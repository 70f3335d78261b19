"""Long-lived RecordIO subscription streams (scheduler and agent).

A `Stream` is a bounded queue of encoded records plus a small ASGI
application that writes them as a chunked 200 response. The fold's
listeners only ever `send` (never await a subscriber), so a slow client can
not slow the master: when its queue overflows the stream is closed and the
client must subscribe again (design B.4). We watch for the client going away
ourselves, because uvicorn's `send` stays silent after a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message
from starlette.types import Receive, Scope, Send

from meseta.api import mesos_json, recordio

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
QUEUE_LIMIT = 65_536


def encode(message: Message, media_type: str) -> bytes:
    payload = mesos_json.to_json(message) if media_type == JSON else message.SerializeToString()
    return recordio.encode(payload)


class Stream:
    def __init__(
        self,
        stream_id: str,
        media_type: str,
        heartbeat: Message,
        heartbeat_interval_s: float,
    ) -> None:
        self.stream_id = stream_id
        self.media_type = media_type
        self.heartbeat = encode(heartbeat, media_type)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_LIMIT)
        self.closed = False
        self.on_close: list[Callable[[Stream], None]] = []
        self.headers: dict[str, str] = {}

    def send(self, message: Message) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(encode(message, self.media_type))
        except asyncio.QueueFull:
            self.close()  # too slow to keep up: it must subscribe again

    def send_heartbeat(self) -> None:
        if not self.closed:
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(self.heartbeat)

    def close(self) -> None:
        """End the stream after what is already queued."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
        if self.queue.full():  # no room for the end marker: drop the backlog
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self.media_type.encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.ensure_future(wait_disconnect(receive))
        try:
            await self.pump(send, gone)
        finally:
            gone.cancel()
            self.closed = True
            for callback in self.on_close:
                callback(self)

    async def pump(self, send: Send, gone: asyncio.Future[None]) -> None:
        while True:
            getter = asyncio.ensure_future(self.queue.get())
            waiting: set[asyncio.Future[Any]] = {getter, gone}
            done, _ = await asyncio.wait(
                waiting, timeout=self.heartbeat_interval_s, return_when="FIRST_COMPLETED"
            )
            if gone in done:
                getter.cancel()
                return
            if getter not in done:
                getter.cancel()
                record: bytes | None = self.heartbeat
            else:
                record = getter.result()
            if record is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            body, ended = self.drain(record)
            await send({"type": "http.response.body", "body": body, "more_body": not ended})
            if ended:
                return

    def drain(self, first: bytes, limit: int = 1 << 20) -> tuple[bytes, bool]:
        """Coalesce what is already queued into one write; (body, stream ended)."""
        parts = [first]
        size = len(first)
        while size < limit and not self.queue.empty():
            record = self.queue.get_nowait()
            if record is None:
                return b"".join(parts), True
            parts.append(record)
            size += len(record)
        return b"".join(parts), False


async def wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
