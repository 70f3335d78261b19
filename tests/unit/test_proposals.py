"""ProposalPipeline with a scripted Raft layer: batching, window, retries, deadlines."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import pytest

from meseta.log.codec import MAX_BATCH_BYTES, decode_batch
from meseta.log.errors import NotLeaderError, ProposalTimeout
from meseta.log.proposals import BatchOutcome, ProposalPipeline

Done = Callable[[BatchOutcome], None]


class FakeRaft:
    """Records submitted batches; the test decides each one's outcome."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[bytes], Done]] = []

    def submit(self, data: bytes, done: Done) -> None:
        self.batches.append((list(decode_batch(data).entries), done))

    def payloads(self, number: int) -> list[bytes]:
        return self.batches[number][0]


async def turn() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_proposals_of_one_loop_turn_form_one_batch() -> None:
    raft = FakeRaft()
    pipeline = ProposalPipeline(raft.submit, max_in_flight=2)
    futures = [pipeline.propose(b"id%d" % n, b"p%d" % n, 5.0) for n in range(5)]
    await turn()
    assert len(raft.batches) == 1 and raft.payloads(0) == [b"p%d" % n for n in range(5)]
    pipeline.deliver({b"id%d" % n: n + 1 for n in range(5)}, [], 5)
    raft.batches[0][1](BatchOutcome.COMMITTED)
    assert [f.result() for f in futures] == [1, 2, 3, 4, 5]


async def test_the_window_holds_back_batches_until_one_completes() -> None:
    raft = FakeRaft()
    pipeline = ProposalPipeline(raft.submit, max_in_flight=1)
    pipeline.propose(b"a", b"pa", 5.0)
    await turn()
    pipeline.propose(b"b", b"pb", 5.0)
    pipeline.propose(b"c", b"pc", 5.0)
    await turn()
    assert len(raft.batches) == 1, "a second batch left while the window was full"
    raft.batches[0][1](BatchOutcome.COMMITTED)
    await turn()
    assert len(raft.batches) == 2 and raft.payloads(1) == [b"pb", b"pc"]


async def test_batches_are_cut_at_the_byte_cap() -> None:
    raft = FakeRaft()
    pipeline = ProposalPipeline(raft.submit, max_in_flight=8)
    big = b"x" * (MAX_BATCH_BYTES // 2 + 1)
    for n in range(3):
        pipeline.propose(b"id%d" % n, big, 5.0)
    await turn()
    assert [len(raft.payloads(n)) for n in range(len(raft.batches))] == [1, 1, 1]


async def test_an_uncertain_batch_is_proposed_again_with_the_same_ids() -> None:
    raft = FakeRaft()
    pipeline = ProposalPipeline(raft.submit, max_in_flight=1)
    future = pipeline.propose(b"a", b"pa", 5.0)
    await turn()
    raft.batches[0][1](BatchOutcome.RETRY)
    await turn()
    assert len(raft.batches) == 2 and raft.payloads(1) == [b"pa"]
    assert pipeline.retries == 1
    pipeline.deliver({b"a": 7}, [], 7)
    assert future.result() == 7


async def test_a_full_queue_backs_off_before_retrying() -> None:
    raft = FakeRaft()
    pipeline = ProposalPipeline(raft.submit, max_in_flight=1)
    pipeline.propose(b"a", b"pa", 5.0)
    await turn()
    raft.batches[0][1](BatchOutcome.BACK_OFF)
    await turn()
    assert len(raft.batches) == 1, "retried without backing off"
    await asyncio.sleep(0.05)
    assert len(raft.batches) == 2


async def test_concurrent_duplicates_share_one_future_and_one_entry() -> None:
    raft = FakeRaft()
    pipeline = ProposalPipeline(raft.submit, max_in_flight=2)
    first = pipeline.propose(b"a", b"pa", 5.0)
    second = pipeline.propose(b"a", b"pa", 5.0)
    await turn()
    assert first is second and raft.payloads(0) == [b"pa"]


async def test_deadlines_fail_callers_and_forget_them() -> None:
    raft = FakeRaft()
    pipeline = ProposalPipeline(raft.submit, max_in_flight=1)
    slow = pipeline.propose(b"slow", b"ps", 0.05)
    patient = pipeline.propose(b"patient", b"pp", 5.0)
    with pytest.raises(ProposalTimeout):
        await slow
    assert not patient.done()
    # A retry with the timed-out id is a new proposal, not the dead future.
    retry = pipeline.propose(b"slow", b"ps", 5.0)
    assert retry is not slow and not retry.done()


async def test_losing_leadership_fails_everyone_and_ignores_late_outcomes() -> None:
    raft = FakeRaft()
    pipeline = ProposalPipeline(raft.submit, max_in_flight=1)
    future = pipeline.propose(b"a", b"pa", 5.0)
    barrier = pipeline.barrier(b"token", 5.0)
    await turn()
    pipeline.fail_all(NotLeaderError("127.0.0.1:9"))
    with pytest.raises(NotLeaderError):
        await future
    with pytest.raises(NotLeaderError):
        await barrier
    raft.batches[0][1](BatchOutcome.RETRY)  # a callback from before the change
    await turn()
    assert len(raft.batches) == 1


async def test_barriers_resolve_to_the_applied_index() -> None:
    raft = FakeRaft()
    pipeline = ProposalPipeline(raft.submit, max_in_flight=1)
    barrier = pipeline.barrier(b"token", 5.0)
    await turn()
    assert len(raft.batches) == 1
    pipeline.deliver({}, [b"token"], 42)
    assert await barrier == 42


async def test_a_failure_nobody_awaits_any_more_is_not_reported_as_never_retrieved() -> None:
    """The log awaits a proposal through asyncio.shield; a caller that gave up leaves the
    future to be failed later (on close or a leader change) with nobody to read it."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        pipeline = ProposalPipeline(FakeRaft().submit, max_in_flight=1)
        caller = asyncio.ensure_future(asyncio.shield(pipeline.propose(b"a", b"pa", 0.05)))
        await turn()
        caller.cancel()
        await turn()
        pipeline.fail_all(NotLeaderError("127.0.0.1:9"))
        await asyncio.sleep(0.1)  # the deadline sweep has run: the loop holds nothing of it
        del pipeline, caller
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert reported == []
