"""Long-lived RecordIO subscription streams (scheduler and agent).

A `Stream` is a bounded queue of encoded records plus a small ASGI
application that writes them as a chunked 200 response, one record per chunk. The fold's
listeners only ever `send` (never await a subscriber), so a slow client can
not slow the master: when its queue overflows the stream is closed and the
client must subscribe again (design B.4). We watch for the client going away
ourselves, because uvicorn's `send` stays silent after a disconnect.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from google.protobuf.message import Message
from starlette.types import Receive, Scope, Send

from meseta.api import mesos_json, recordio
from meseta.api.chunked import ChunkWriter

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
QUEUE_LIMIT = 65_536
# Records given to the transport at once: a slow client's backlog waits in the queue, where
# QUEUE_LIMIT bounds it, not in the transport's buffer.
BATCH_RECORDS = 256
# The server's own `send`, put in the scope by the app (api/app.py): once a stream's
# response has started, its body writes need none of the middleware wrappers (they only
# act on the response start), and a busy stream makes thousands of them a second.
RAW_SEND = "meseta.raw_send"


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
        self.heartbeat_type: int = getattr(heartbeat, "type", 0)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.records: deque[bytes] = deque()
        self.closed = False
        self.on_close: list[Callable[[Stream], None]] = []
        self.headers: dict[str, str] = {}
        # The framework or agent id this stream serves once subscribed: closing it finds
        # its entry directly (a scan of every agent per close made a storm quadratic).
        self.owner = ""
        # Resolved when there is something to write (a record, the end, a heartbeat) or the
        # client left: the pump sleeps on one future, with no task or timer per record.
        self.wakeup: asyncio.Future[None] | None = None
        self.heartbeat_due = False
        self.timer: asyncio.TimerHandle | None = None
        # Events sent, by type, when someone counts them (a framework's metrics).
        self.tally: dict[int, int] | None = None

    def bind(self, registry: dict[str, Stream], owner: str) -> None:
        """Serve `owner` from now on: `registry[owner]` is this stream."""
        self.owner = owner
        registry[owner] = self

    def unbind(self, registry: dict[str, Stream]) -> str:
        """Remove this stream from `registry` if it still serves its owner; that owner, or ''."""
        if self.owner and registry.get(self.owner) is self:
            del registry[self.owner]
            return self.owner
        return ""

    def send(self, message: Message) -> None:
        if self.closed:
            return
        if len(self.records) >= QUEUE_LIMIT:
            self.records.clear()  # too slow to keep up: it must subscribe again
            self.close()
            return
        self.records.append(encode(message, self.media_type))
        if self.tally is not None:
            self.count(getattr(message, "type", 0))
        self.wake()

    def send_heartbeat(self) -> None:
        if not self.closed and len(self.records) < QUEUE_LIMIT:
            self.records.append(self.heartbeat)
            self.count(self.heartbeat_type)
            self.wake()

    def count(self, kind: int) -> None:
        tally = self.tally
        if tally is not None:
            tally[kind] = tally.get(kind, 0) + 1

    def close(self) -> None:
        """End the stream after what is already queued."""
        if not self.closed:
            self.closed = True
            self.wake()

    def wake(self) -> None:
        wakeup, self.wakeup = self.wakeup, None
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self.media_type.encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.ensure_future(wait_disconnect(receive))
        gone.add_done_callback(lambda _: self.wake())
        try:
            await self.pump(send, gone)
        finally:
            gone.cancel()
            self.closed = True
            for callback in self.on_close:
                callback(self)

    async def pump(self, send: Send, gone: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.heartbeat_interval_s, self.check_heartbeat)
        writer = ChunkWriter(send)
        try:
            while not gone.done():
                if not self.records and not self.closed and not self.heartbeat_due:
                    self.wakeup = loop.create_future()
                    await self.wakeup
                    continue
                records = self.next_records()
                if not records:  # closed, and everything queued went out
                    await writer.end()
                    return
                await writer.write(records)
                if self.records:
                    await asyncio.sleep(0)  # a backlog goes out between other work
        finally:
            if self.timer is not None:
                self.timer.cancel()

    def check_heartbeat(self) -> None:
        """A heartbeat every interval whatever else the stream carries, as Mesos's
        heartbeaters send them (clients may count on them)."""
        self.heartbeat_due = True
        self.wake()
        self.timer = asyncio.get_running_loop().call_later(
            self.heartbeat_interval_s, self.check_heartbeat
        )

    def next_records(self) -> list[bytes]:
        """What to write next (none once closed and drained): queued records, at most
        BATCH_RECORDS, then a due heartbeat. Each goes out as an HTTP chunk of its own, as
        Mesos writes events: some clients (the npm mesos-framework) parse one RecordIO
        record per chunk."""
        queued = self.records
        records = [queued.popleft() for _ in range(min(len(queued), BATCH_RECORDS))]
        if self.heartbeat_due and not queued:
            self.heartbeat_due = False
            self.count(self.heartbeat_type)
            records.append(self.heartbeat)
        return records


async def wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
