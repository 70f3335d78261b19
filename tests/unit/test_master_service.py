"""meseta.master.service.MasterService: the fold worker and callers waiting for an index.

`wait_applied` wakes a caller only when its index is applied (not on every entry),
answers False when its time is up, and forgets callers that gave up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from meseta.log.memory import MemoryLog
from meseta.master import decide, service
from meseta.master.service import MasterService
from meseta.master.v1 import commands_pb2


@pytest.fixture
async def worker() -> AsyncIterator[tuple[MasterService, MemoryLog]]:
    log = MemoryLog()
    subject = MasterService(log)
    subject.start()
    try:
        yield subject, log
    finally:
        await subject.stop()
        await log.close()


async def propose_ticks(log: MemoryLog, count: int) -> int:
    index = 0
    for _ in range(count):
        index = await log.propose(decide.entry(decide.command(tick=commands_pb2.Tick())))
    return index


async def test_a_caller_wakes_when_its_index_is_applied(
    worker: tuple[MasterService, MemoryLog],
) -> None:
    subject, log = worker
    waiting = [asyncio.ensure_future(subject.wait_applied(n, 5.0)) for n in (3, 1, 5, 2)]
    await asyncio.sleep(0)
    await propose_ticks(log, 2)
    await asyncio.sleep(0.01)
    assert [w.done() for w in waiting] == [False, True, False, True]
    await propose_ticks(log, 3)
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1.0) == [True] * 4
    assert subject.waiters == []
    assert await subject.wait_applied(4, 0.0)  # already applied: no wait at all


async def test_a_caller_whose_time_is_up_gets_false(
    worker: tuple[MasterService, MemoryLog],
) -> None:
    subject, log = worker
    await propose_ticks(log, 1)
    assert not await subject.wait_applied(10, 0.02)
    assert subject.applied_index == 1


async def test_callers_that_gave_up_are_swept_out(
    worker: tuple[MasterService, MemoryLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    subject, _ = worker
    monkeypatch.setattr(service, "WAITERS_COMPACTED_AT", 4)
    subject.waiters_compacted_at = 4
    for n in range(20):  # far ahead of the log: never applied, so never popped
        if n % 2:
            assert not await subject.wait_applied(1000 + n, 0.0)
        else:
            cancelled = asyncio.ensure_future(subject.wait_applied(1000 + n, 5.0))
            await asyncio.sleep(0)
            cancelled.cancel()
            await asyncio.sleep(0)
        assert len(subject.waiters) <= 4
    live = asyncio.ensure_future(subject.wait_applied(3000, 5.0))
    await asyncio.sleep(0)
    subject.compact_waiters()
    assert [index for index, _, _ in subject.waiters] == [3000]
    live.cancel()
