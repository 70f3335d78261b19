"""Coalesced reads (api/read_cache.py): one build per round, never a body older than the
request's arrival."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from support.loop_turns import counting_turns

from meseta.api.read_cache import (
    CHUNK,
    SEND_BYTES,
    Built,
    ChunksResponse,
    ReadCache,
    chunked,
)


class Source:
    """A replica's applied index and a build that captures it after `release`."""

    def __init__(self) -> None:
        self.index = 1
        self.release = asyncio.Event()
        self.begun = asyncio.Event()
        self.started = 0

    async def build(self) -> Built:
        self.started += 1
        await self.release.wait()
        return Built.of(self.index, [f"body@{self.index}".encode()], "application/json")

    async def early_build(self) -> Built:
        """A build that captured its state when it started (before later arrivals)."""
        self.started += 1
        captured = self.index
        self.begun.set()
        await self.release.wait()
        return Built.of(captured, [f"body@{captured}".encode()], "application/json")


async def test_concurrent_identical_reads_share_one_build() -> None:
    cache, source = ReadCache(), Source()
    reads = [
        asyncio.ensure_future(cache.get("state", source.index, source.build)) for _ in range(20)
    ]
    await asyncio.sleep(0)
    source.release.set()
    bodies = await asyncio.gather(*reads)
    assert source.started == cache.builds == 1
    assert {b.body for b in bodies} == {b"body@1"}
    assert all(b is bodies[0] for b in bodies)


async def test_a_read_at_an_unchanged_index_costs_nothing() -> None:
    cache, source = ReadCache(), Source()
    source.release.set()
    first = await cache.get("state", 1, source.build)
    again = await cache.get("state", 1, source.build)
    assert again is first and source.started == 1
    source.index = 2
    newer = await cache.get("state", 2, source.build)
    assert (newer.index, source.started) == (2, 2)


async def test_a_read_arriving_mid_build_gets_at_least_its_arrival_index() -> None:
    cache, source = ReadCache(), Source()
    early = asyncio.ensure_future(cache.get("state", 1, source.early_build))
    await source.begun.wait()
    source.index = 2  # the view moves on while the first build is in flight
    late = asyncio.ensure_future(cache.get("state", 2, source.early_build))
    same = asyncio.ensure_future(cache.get("state", 1, source.early_build))
    await asyncio.sleep(0)
    source.release.set()
    early_built, late_built, same_built = await asyncio.gather(early, late, same)
    assert (early_built.index, same_built.index) == (1, 1)  # shared the first build
    assert late_built.index == 2 and late_built.body == b"body@2"  # the next one
    assert source.started == 2


async def test_keys_are_built_apart() -> None:
    cache, source = ReadCache(), Source()
    source.release.set()
    await asyncio.gather(
        cache.get(("v1", "json"), 1, source.build), cache.get(("v1", "pb"), 1, source.build)
    )
    assert source.started == 2


async def test_a_failed_build_fails_its_waiters_and_the_next_read_builds_again() -> None:
    cache = ReadCache()
    gate = asyncio.Event()

    async def failing() -> Built:
        await gate.wait()
        raise RuntimeError("boom")

    reads = [asyncio.ensure_future(cache.get("k", 1, failing)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*reads, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert cache.building == {}

    async def working() -> Built:
        return Built.of(1, [b"ok"], "application/json")

    assert (await cache.get("k", 1, working)).body == b"ok"


async def test_a_reader_that_goes_away_does_not_cancel_the_build() -> None:
    cache, source = ReadCache(), Source()
    leaving = asyncio.ensure_future(cache.get("state", 1, source.build))
    staying = asyncio.ensure_future(cache.get("state", 1, source.build))
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    source.release.set()
    assert (await staying).body == b"body@1"
    assert source.started == 1


async def test_bodies_behind_the_applied_index_are_dropped() -> None:
    cache, source = ReadCache(max_entries=2), Source()
    source.release.set()
    for key in ("a", "b", "c"):
        await cache.get(key, 1, source.build)
    assert list(cache.kept) == ["b", "c"]  # bounded: the oldest went first
    source.index = 2
    await cache.get("a", 2, source.build)
    assert list(cache.kept) == ["a"]


def test_small_pieces_are_joined_into_chunks_and_large_ones_kept() -> None:
    large = b"x" * CHUNK
    parts = [b"a", b"b", large, *(b"y" * (CHUNK // 200) for _ in range(300)), b"z"]
    chunks = chunked(parts)
    assert b"".join(chunks) == b"".join(parts)
    assert chunks[0] == b"ab" and chunks[1] is large
    assert len(chunks) == 4 and len(chunks[2]) >= CHUNK and chunks[3].endswith(b"z")
    assert chunked([]) == ()


async def test_a_large_body_goes_out_in_slices_that_let_other_work_run() -> None:
    """On the leader: a 12 MB /state sent in one go held the event loop while the kernel
    copied it, and writes waited behind every poller's body. It goes out in SEND_BYTES
    writes, yielding to the loop between them."""
    chunks = (b"a" * (SEND_BYTES * 2 + 10), b"b" * 100, b"c" * SEND_BYTES)
    sent: list[tuple[int, bytes, bool]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request"}

    async with counting_turns() as turns:

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.body":
                body = bytes(message["body"])  # type: ignore[arg-type]
                sent.append((turns.count, body, bool(message.get("more_body"))))

        response = ChunksResponse(chunks, "application/json", interleave=True)
        await response({"type": "http"}, receive, send)
    assert [len(body) for _, body, _ in sent] == [SEND_BYTES, SEND_BYTES, 10, 100, SEND_BYTES]
    assert b"".join(body for _, body, _ in sent) == b"".join(chunks)
    assert [more for _, _, more in sent] == [True, True, True, True, False]
    seen = [at for at, _, _ in sent]
    assert all(a < b for a, b in itertools.pairwise(seen))  # other work ran in between
