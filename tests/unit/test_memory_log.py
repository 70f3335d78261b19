"""meseta.log.memory.MemoryLog: the deterministic in-memory log and its fault hooks.

The ReplicatedLog contract itself is tested in tests/contract/test_replicated_log.py.
"""

from __future__ import annotations

import asyncio

import pytest

from meseta.log.errors import LogClosed, NotLeaderError, ProposalTimeout
from meseta.log.memory import MemoryLog, counting_clock
from meseta.log.v1.entries_pb2 import Entry


def entry(proposal_id: bytes = b"", events: bytes = b"ev") -> Entry:
    made = Entry(events=events)
    if proposal_id:
        made.header.proposal_id = proposal_id
    return made


async def started(
    log: MemoryLog, *entries: Entry, timeout_s: float = 5.0
) -> list[asyncio.Task[int]]:
    """Start proposals and let them reach the log (but not commit in manual mode)."""
    tasks = [asyncio.create_task(log.propose(e, timeout_s=timeout_s)) for e in entries]
    for _ in range(3):
        await asyncio.sleep(0)
    return tasks


async def test_auto_commit() -> None:
    log = MemoryLog()
    try:
        assert await log.propose(entry()) == 1
        assert await log.propose(entry()) == 2
        indexes = await asyncio.gather(*(log.propose(entry()) for _ in range(10)))
        assert sorted(indexes) == list(range(3, 13))
        assert log.applied_index() == 12
        assert log.pending == 0
    finally:
        await log.close()


async def test_manual_step() -> None:
    log = MemoryLog(auto_commit=False)
    try:
        tasks = await started(log, entry(b"a"), entry(b"b"))
        assert not any(t.done() for t in tasks)
        assert log.pending == 2
        assert log.applied_index() == 0
        assert log.read(1, 10) == []
        assert log.step() == 2
        assert [await t for t in tasks] == [1, 2]
        assert log.pending == 0
        assert log.step() == 2  # nothing pending: nothing changes
        assert [r.entry.header.proposal_id for r in log.read(1, 10)] == [b"a", b"b"]
    finally:
        await log.close()


async def test_manual_barrier_waits_for_step() -> None:
    log = MemoryLog(auto_commit=False)
    try:
        (proposal,) = await started(log, entry(b"a"))
        barrier = asyncio.create_task(log.barrier(timeout_s=5))
        await asyncio.sleep(0)
        assert not barrier.done()
        log.step()
        assert await proposal == 1
        assert await barrier == 1
    finally:
        await log.close()


async def test_lost_proposals_time_out() -> None:
    log = MemoryLog(auto_commit=False)
    try:
        tasks = await started(log, entry(b"a"), entry(b"b"), timeout_s=0.05)
        assert log.lose_pending() == 2
        assert log.pending == 0
        for task in tasks:
            with pytest.raises(ProposalTimeout):
                await task
        log.step()
        assert log.applied_index() == 0
    finally:
        await log.close()


async def test_a_timed_out_proposal_can_be_retried_with_the_same_id() -> None:
    log = MemoryLog(auto_commit=False)
    try:
        (lost,) = await started(log, entry(b"a"), timeout_s=0.05)
        log.lose_pending()
        with pytest.raises(ProposalTimeout):
            await lost
        (retry,) = await started(log, entry(b"a"), timeout_s=0.5)
        log.step()
        assert await retry == 1
    finally:
        await log.close()


async def test_duplicated_proposals_are_stored_once() -> None:
    log = MemoryLog(auto_commit=False)
    try:
        tasks = await started(log, entry(b"a"), entry(b"b"), entry(b"c"))
        # A second caller with the same proposal id shares the first one's fate.
        (same_as_b,) = await started(log, entry(b"b"))
        assert log.pending == 3
        log.duplicate_pending()
        assert [await t for t in tasks] == [1, 2, 3]
        assert await same_as_b == 2
        assert log.duplicates_dropped == 3
        assert [r.entry.header.proposal_id for r in log.read(1, 10)] == [b"a", b"b", b"c"]
        assert log.applied_index() == 3
    finally:
        await log.close()


async def test_losing_leadership_fails_waiters_but_entries_may_commit() -> None:
    log = MemoryLog(auto_commit=False, address="10.0.0.1:5050")
    try:
        tasks = await started(log, entry(b"a"), entry(b"b"))
        barrier = asyncio.create_task(log.barrier())
        await asyncio.sleep(0)
        log.set_leader(False, leader="10.0.0.2:5050", term=2)
        for waiter in [*tasks, barrier]:
            with pytest.raises(NotLeaderError) as caught:
                await waiter
            assert caught.value.leader == "10.0.0.2:5050"
            assert "10.0.0.2:5050" in str(caught.value)
        assert not log.is_leader()
        assert log.leader_address() == "10.0.0.2:5050"
        assert log.term() == 2
        with pytest.raises(NotLeaderError):
            await log.propose(entry(b"c"))
        with pytest.raises(NotLeaderError):
            await log.barrier()
        # The entries were still in flight: they commit, once.
        assert log.pending == 2
        log.step()
        log.step()
        assert [r.entry.header.proposal_id for r in log.read(1, 10)] == [b"a", b"b"]
        # A retry with the same id after leadership comes back resolves to the stored copy.
        log.set_leader(True, term=3)
        (retry,) = await started(log, entry(b"b"))
        log.step()
        assert await retry == 2
        assert log.applied_index() == 2
        assert log.duplicates_dropped == 1
    finally:
        await log.close()


async def test_unknown_leader_is_named_as_unknown() -> None:
    log = MemoryLog()
    try:
        log.set_leader(False)
        with pytest.raises(NotLeaderError, match="no leader is known") as caught:
            await log.propose(entry())
        assert caught.value.leader is None
    finally:
        await log.close()


async def scripted_run() -> list[bytes]:
    log = MemoryLog(auto_commit=False)
    try:
        first = await started(log, entry(), entry(events=b"x"), entry(b"explicit"))
        log.step()
        await asyncio.gather(*first)
        second = await started(log, entry(), entry())
        log.duplicate_pending()
        await asyncio.gather(*second)
        third = await started(log, entry(events=b"y"))
        log.step()
        await asyncio.gather(*third)
        return [r.entry.SerializeToString() for r in log.read(1, 100)]
    finally:
        await log.close()


async def test_runs_are_deterministic() -> None:
    one, two = await scripted_run(), await scripted_run()
    assert len(one) == 6
    assert one == two
    entries = [Entry.FromString(data) for data in one]
    ids = [e.header.proposal_id for e in entries]
    assert all(ids) and len(set(ids)) == len(ids)
    stamps = [e.header.timestamp_ns for e in entries]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


async def test_timestamps_come_from_the_injected_clock_and_never_go_back() -> None:
    readings = iter([1000, 500, 500, 2000])
    log = MemoryLog(clock_ns=lambda: next(readings), term=9)
    try:
        for _ in range(4):
            await log.propose(entry())
        headers = [r.entry.header for r in log.read(1, 10)]
        assert [h.timestamp_ns for h in headers] == [1000, 1001, 1002, 2000]
        assert {h.proposer_term for h in headers} == {9}
    finally:
        await log.close()


def test_counting_clock() -> None:
    clock = counting_clock(10, 3)
    assert [clock(), clock(), clock()] == [10, 13, 16]


async def test_close_fails_waiters_and_later_calls() -> None:
    log = MemoryLog(auto_commit=False)
    (waiting,) = await started(log, entry(b"a"))
    await log.close()
    with pytest.raises(LogClosed):
        await waiting
    with pytest.raises(LogClosed):
        await log.propose(entry())
    with pytest.raises(LogClosed):
        await log.barrier()
    assert await log.wait_applied(1, timeout_s=1) is False
