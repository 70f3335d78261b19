"""The event-loop side of proposing: waiters, deadlines, batching, retries.

Proposals queued in one turn of the event loop travel as one batch; at most
`max_in_flight` batches are outstanding, so a lone proposal leaves at once
and a crowd forms larger batches. A batch that may not have committed (the
Raft layer reported a failure) is proposed again: the log stores a proposal
id once, so a retry can never duplicate an entry. Deadlines share one timer
over a heap instead of a timer per proposal.

Everything here runs on the event loop that owns the log; the Raft adapter
hands in `submit` and calls `deliver`/`batch_done`/`fail_all` on that loop.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from meseta.log.codec import MAX_BATCH_BYTES, encode_batch
from meseta.log.errors import LogError, ProposalTimeout


class BatchOutcome(Enum):
    COMMITTED = "committed"
    # Not known to be committed; propose it again.
    RETRY = "retry"
    # The Raft layer's queue is full: propose again after a short pause.
    BACK_OFF = "back-off"


# submit(encoded batch, done) where done(outcome) is called on the loop.
Submit = Callable[[bytes, Callable[[BatchOutcome], None]], None]

_BACK_OFF_S = 0.005


@dataclass(slots=True)
class _Waiter:
    payload: bytes
    future: asyncio.Future[int]
    queued: bool = True


@dataclass(slots=True)
class _Batch:
    generation: int
    proposal_ids: list[bytes]
    barriers: list[bytes]


class ProposalPipeline:
    def __init__(self, submit: Submit, *, max_in_flight: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._submit_batch = submit
        self._max_in_flight = max_in_flight
        self._waiting: dict[bytes, _Waiter] = {}
        self._queue: list[bytes] = []
        self._barriers: dict[bytes, asyncio.Future[int]] = {}
        self._barriers_queued: list[bytes] = []
        self._in_flight: dict[int, _Batch] = {}
        self._batch_seq = 0
        self._generation = 0
        self._flush_scheduled = False
        self._deadlines: list[tuple[float, int, bytes | None, asyncio.Future[int]]] = []
        self._deadline_seq = 0
        self._sweep_at: float | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None
        self.retries = 0

    def propose(self, proposal_id: bytes, payload: bytes, timeout_s: float) -> asyncio.Future[int]:
        """The future of this proposal's index (shared by concurrent duplicates)."""
        waiter = self._waiting.get(proposal_id)
        if waiter is not None:
            return waiter.future
        waiter = _Waiter(payload, self._loop.create_future())
        # Callers await it through asyncio.shield: one that gave up (cancelled) leaves it
        # unawaited, and its later LogClosed or NotLeaderError is nobody's to read.
        waiter.future.add_done_callback(_observe)
        self._waiting[proposal_id] = waiter
        self._queue.append(proposal_id)
        self._schedule_flush()
        self._add_deadline(timeout_s, proposal_id, waiter.future)
        return waiter.future

    def barrier(self, token: bytes, timeout_s: float) -> asyncio.Future[int]:
        future: asyncio.Future[int] = self._loop.create_future()
        self._barriers[token] = future
        self._barriers_queued.append(token)
        self._schedule_flush()
        self._add_deadline(timeout_s, None, future)
        future.add_done_callback(lambda _: self._barriers.pop(token, None))
        return future

    def deliver(self, resolved: dict[bytes, int], barriers: list[bytes], applied: int) -> None:
        """Answer the proposals and barriers a committed batch resolved."""
        for proposal_id, index in resolved.items():
            waiter = self._waiting.pop(proposal_id, None)
            if waiter is not None and not waiter.future.done():
                waiter.future.set_result(index)
        for token in barriers:
            future = self._barriers.pop(token, None)
            if future is not None and not future.done():
                future.set_result(applied)

    def fail_all(self, error: LogError) -> None:
        """Leadership is gone (or the log closed): answer every caller now.

        Batches in flight may or may not commit and their callbacks may never
        come; a caller retries with the same proposal id, which is safe.
        """
        self._generation += 1
        self._in_flight.clear()
        self._queue.clear()
        self._barriers_queued.clear()
        for future in [*(w.future for w in self._waiting.values()), *self._barriers.values()]:
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()
        self._barriers.clear()

    # -- batching --------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send queued proposals as batches while the in-flight window allows."""
        self._flush_scheduled = False
        while (self._queue or self._barriers_queued) and len(self._in_flight) < self._max_in_flight:
            self._send(*self._cut_batch())

    def _cut_batch(self) -> tuple[list[bytes], list[bytes], list[bytes]]:
        ids: list[bytes] = []
        payloads: list[bytes] = []
        size = 0
        taken = 0
        for proposal_id in self._queue:
            waiter = self._waiting.get(proposal_id)
            if waiter is None or waiter.future.done():
                taken += 1  # timed out or resolved meanwhile
                continue
            if payloads and size + len(waiter.payload) > MAX_BATCH_BYTES:
                break
            taken += 1
            waiter.queued = False
            ids.append(proposal_id)
            payloads.append(waiter.payload)
            size += len(waiter.payload)
        del self._queue[:taken]
        barriers, self._barriers_queued = self._barriers_queued, []
        return ids, payloads, barriers

    def _send(self, ids: list[bytes], payloads: list[bytes], barriers: list[bytes]) -> None:
        if not ids and not barriers:
            return
        self._batch_seq += 1
        seq = self._batch_seq
        self._in_flight[seq] = _Batch(self._generation, ids, barriers)
        self._submit_batch(
            encode_batch(payloads, barriers), lambda outcome: self._done(seq, outcome)
        )

    def _done(self, seq: int, outcome: BatchOutcome) -> None:
        batch = self._in_flight.pop(seq, None)
        if batch is None or batch.generation != self._generation:
            return
        if outcome is not BatchOutcome.COMMITTED:
            self._requeue(batch)
            if outcome is BatchOutcome.BACK_OFF:
                self._flush_scheduled = True
                self._loop.call_later(_BACK_OFF_S, self._flush)
                return
        self._schedule_flush()

    def _requeue(self, batch: _Batch) -> None:
        """Propose again what may not have committed; the log drops true duplicates."""
        self.retries += 1
        for proposal_id in batch.proposal_ids:
            waiter = self._waiting.get(proposal_id)
            if waiter is not None and not waiter.future.done() and not waiter.queued:
                waiter.queued = True
                self._queue.append(proposal_id)
        self._barriers_queued.extend(t for t in batch.barriers if t in self._barriers)

    # -- deadlines ---------------------------------------------------------------------

    def _add_deadline(
        self, timeout_s: float, proposal_id: bytes | None, future: asyncio.Future[int]
    ) -> None:
        deadline = self._loop.time() + timeout_s
        self._deadline_seq += 1
        heapq.heappush(self._deadlines, (deadline, self._deadline_seq, proposal_id, future))
        if self._sweep_at is None or deadline < self._sweep_at:
            if self._sweep_handle is not None:
                self._sweep_handle.cancel()
            self._sweep_at = deadline
            self._sweep_handle = self._loop.call_at(deadline, self._sweep_deadlines)

    def _sweep_deadlines(self) -> None:
        now = self._loop.time()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, proposal_id, future = heapq.heappop(self._deadlines)
            if future.done():
                continue
            if proposal_id is not None:
                self._waiting.pop(proposal_id, None)
            future.set_exception(
                ProposalTimeout(
                    "not known to be committed in time; retry with the same proposal id"
                )
            )
        # Resolved futures are dropped lazily; keep the heap from growing with them.
        while self._deadlines and self._deadlines[0][3].done():
            heapq.heappop(self._deadlines)
        self._sweep_handle = self._sweep_at = None
        if self._deadlines:
            self._sweep_at = self._deadlines[0][0]
            self._sweep_handle = self._loop.call_at(self._sweep_at, self._sweep_deadlines)


def _observe(future: asyncio.Future[int]) -> None:
    """Mark the outcome read, so asyncio does not log "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()
