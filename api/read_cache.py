"""Coalesced reads: concurrent identical reads share one build (Mesos 1.7 MESOS-9122,
1.8 MESOS-9224), and a read at an unchanged index costs nothing.

A response is built once per key (the endpoint and whatever else shapes its
body: query parameters, media type, leader) and kept with the applied index it
reflects. A request is served a body built at or after the index the replica
had applied when the request arrived (after its `min_index`/`consistent`
wait), so it never sees a state older than one it could have seen alone:

* the kept body, if its index is at least that arrival index (nothing
  changed since; at zero cost);
* else the build in flight, if the index it captures is at least the arrival
  index. A build warms caches first and captures the body at its end (e.g.
  `state_endpoints.state`), so a request arriving mid-build normally shares it;
* else the next build, started as soon as the one in flight is done. So N
  pollers cost one build per round, and a build never waits on another.

Only one body per key is kept, and only while it can still serve someone: a
body behind the replica's applied index is dropped at the next request.

Builds cooperate with the event loop (`cooperate`): they hold it for about
SLICE_S at a time, so writes and the fold interleave with large reads. Bodies
are sent as their cached pieces (`ChunksResponse`) rather than copied into one
buffer; on the leader, in writes of at most SEND_BYTES with a turn of the loop
between them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# The longest a large read holds the event loop before letting the fold and writes run.
SLICE_S = 0.001
# Pieces of a body smaller than this are joined into one chunk of about this size; larger
# ones (a framework's task run) are sent as they are, without copying them into one body.
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Built:
    """A response body, as chunks to send in order, and the applied index it reflects
    (its `X-Meseta-Index`)."""

    index: int
    chunks: tuple[bytes, ...]
    media_type: str
    content_encoding: str = ""  # "gzip" for a compressed body (api/compression.py)

    @classmethod
    def of(cls, index: int, parts: Iterable[bytes], media_type: str) -> Built:
        return cls(index, chunked(parts), media_type)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def chunked(parts: Iterable[bytes]) -> tuple[bytes, ...]:
    """`parts` regrouped: small ones joined into chunks of about CHUNK bytes, large ones
    kept as they are (a 60 MB /state is not copied into one more buffer)."""
    out: list[bytes] = []
    for _ in chunk_steps(parts, out):
        pass
    return tuple(out)


def chunk_steps(parts: Iterable[bytes], out: list[bytes]) -> Iterator[None]:
    """`chunked`, a chunk per step (see `cooperate`)."""
    pending: list[bytes] = []
    size = 0
    for part in parts:
        if len(part) >= CHUNK:
            if pending:
                out.append(b"".join(pending))
                pending, size = [], 0
            out.append(part)
            yield
            continue
        pending.append(part)
        size += len(part)
        if size >= CHUNK:
            out.append(b"".join(pending))
            pending, size = [], 0
            yield
    if pending:
        out.append(b"".join(pending))


async def assemble(index: int, parts: Iterable[bytes], media_type: str) -> Built:
    """A body captured at `index` as immutable `parts` (cached encodings, fresh bytes),
    chunked in slices of the event loop: the fold may move on meanwhile, the parts not."""
    out: list[bytes] = []
    await cooperate(chunk_steps(parts, out))
    return Built(index, tuple(out), media_type)


async def cooperate(work: Iterable[object]) -> None:
    """Run `work`, an iterator doing one unit of work per step, yielding to the event loop
    whenever a slice has passed, so a large read interleaves with the fold and writes.

    Work that reads the view may only fill its caches (entity encodings, framework task
    runs): a record the fold changes between two steps drops what was cached for it. A
    body is captured from the view without awaiting; only immutable pieces of it (bytes,
    or snapshots no one changes) are processed in steps afterwards.
    """
    deadline = time.perf_counter() + SLICE_S
    for _ in work:
        if time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = time.perf_counter() + SLICE_S


class ChunksResponse(Response):
    """A response whose body is sent as the given chunks, with its Content-Length. With
    `interleave` (on the leader, whose event loop also serves the writes) it goes out in
    writes of at most SEND_BYTES, with a turn of the loop between them."""

    def __init__(
        self,
        chunks: Sequence[bytes],
        media_type: str,
        status_code: int = 200,
        *,
        interleave: bool = False,
    ) -> None:
        self.chunks = chunks
        self.interleave = interleave
        super().__init__(b"", status_code, media_type=media_type)
        self.headers["content-length"] = str(sum(len(chunk) for chunk in chunks))

    @classmethod
    def of(cls, built: Built, *, interleave: bool = False) -> ChunksResponse:
        response = cls(built.chunks, built.media_type, interleave=interleave)
        if built.content_encoding:
            response.headers["content-encoding"] = built.content_encoding
            response.headers["vary"] = "Accept-Encoding"
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        pieces = list(sliced(self.chunks)) if self.interleave else list(self.chunks)
        last = len(pieces) - 1
        for number, piece in enumerate(pieces):
            await send({"type": "http.response.body", "body": piece, "more_body": number < last})
            if self.interleave and number < last:
                await asyncio.sleep(0)
        if last < 0:
            await send({"type": "http.response.body", "body": b""})


# On the leader a response body goes out in writes of at most this size, yielding to the
# event loop between them: the kernel's copy of a 12 MB /state held the loop for
# milliseconds, and with 20 pollers every write waited behind all of their bodies. A
# standby has no writes to let through, so it sends whole chunks (fewer turns per read).
SEND_BYTES = 256 * 1024


def sliced(chunks: Sequence[bytes]) -> Iterator[bytes | memoryview]:
    """`chunks` cut into pieces of at most SEND_BYTES, without copying them."""
    for chunk in chunks:
        if len(chunk) <= SEND_BYTES:
            yield chunk
            continue
        view = memoryview(chunk)
        for start in range(0, len(chunk), SEND_BYTES):
            yield view[start : start + SEND_BYTES]


Build = Callable[[], Awaitable[Built]]


class ReadCache:
    """Bodies by key, built at most once at a time per key; see the module docstring."""

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self.kept: dict[Hashable, Built] = {}
        self.building: dict[Hashable, asyncio.Task[Built]] = {}
        self.builds = 0  # builds started, for tests and metrics

    async def get(self, key: Hashable, arrival: int, build: Build) -> Built:
        """A body for `key` reflecting index `arrival` or later; `build` makes a new one."""
        self._drop_behind(arrival)
        while True:
            kept = self.kept.get(key)
            if kept is not None and kept.index >= arrival:
                return kept
            task = self.building.get(key)
            if task is None:
                task = self._start(key, build)
            # Shielded: a client that goes away does not cancel the build others await.
            built = await asyncio.shield(task)
            if built.index >= arrival:
                return built
            # That build captured its state before this request arrived: take the next.

    def _start(self, key: Hashable, build: Build) -> asyncio.Task[Built]:
        self.builds += 1
        task = asyncio.get_running_loop().create_task(self._run(key, build))
        task.add_done_callback(_retrieve)
        self.building[key] = task
        return task

    async def _run(self, key: Hashable, build: Build) -> Built:
        try:
            built = await build()
        finally:
            del self.building[key]
        self.kept.pop(key, None)  # re-inserted last: the oldest entry goes first
        self.kept[key] = built
        if len(self.kept) > self.max_entries:
            del self.kept[next(iter(self.kept))]
        return built

    def _drop_behind(self, index: int) -> None:
        """Bodies behind the applied index can serve no request any more."""
        stale = [key for key, built in self.kept.items() if built.index < index]
        for key in stale:
            del self.kept[key]


def _retrieve(task: asyncio.Task[Built]) -> None:
    """Waiters see a failed build's error; this keeps asyncio from logging it unseen."""
    if not task.cancelled():
        task.exception()
