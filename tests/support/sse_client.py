"""A small Server-Sent Events client over aiohttp, for the operator event stream tests.

`open_sse()` GETs the events URL and parses the text/event-stream as it arrives (with
`meseta events`' parser): events go to a queue with their raw `id` field (None when the
event has none), comment lines (sse-starlette's pings) are counted. One reader task per
stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
from multidict import CIMultiDictProxy

from meseta.events_cli import SseEvent, SseParser


class SseStream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.events: asyncio.Queue[SseEvent | None] = asyncio.Queue()
        self.comments = 0
        self.closed = asyncio.Event()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.response.headers

    async def _read(self) -> None:
        parser = SseParser()
        try:
            async for raw in self.response.content:
                event = parser.feed(raw.decode())
                self.comments = parser.comments
                if event is not None:
                    self.events.put_nowait(event)
        except (aiohttp.ClientError, TimeoutError):
            pass
        finally:
            self.closed.set()
            self.events.put_nowait(None)

    async def next(self, timeout_s: float = 5.0) -> SseEvent:
        """The next event; fails the test at the end of the stream or after `timeout_s`."""
        event = await self.next_or_end(timeout_s)
        assert event is not None, "the event stream ended"
        return event

    async def next_or_end(self, timeout_s: float = 5.0) -> SseEvent | None:
        try:
            event = await asyncio.wait_for(self.events.get(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"no event within {timeout_s}s") from None
        if event is None:
            self.events.put_nowait(None)  # stays ended for later readers
        return event

    async def take(self, count: int, timeout_s: float = 5.0) -> list[SseEvent]:
        deadline = time.monotonic() + timeout_s
        return [await self.next(max(deadline - time.monotonic(), 0.001)) for _ in range(count)]

    async def until(self, kind: str, timeout_s: float = 5.0) -> list[SseEvent]:
        """Every event up to and including the next one named `kind`."""
        deadline = time.monotonic() + timeout_s
        seen = []
        while not seen or seen[-1].event != kind:
            seen.append(await self.next(max(deadline - time.monotonic(), 0.001)))
        return seen

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        self.response.close()


async def open_sse(
    session: aiohttp.ClientSession, url: str, *, last_event_id: str | None = None
) -> SseStream | tuple[int, str]:
    """The stream on a 200, else (status, body)."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    response = await session.get(url, headers=headers)
    if response.status != 200:
        try:
            return response.status, await response.text()
        finally:
            response.release()
    return SseStream(response)
