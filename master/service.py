"""The fold worker (I/O shell): applies committed entries in index order.

It runs as one asyncio task on the event loop that also serves HTTP, so the
fold state is only ever touched from that loop: readers see it between two
entries, never in the middle of one. After each entry it hands the domain
events to listeners (stream routing, projections) in index order, and wakes
API calls waiting for their entry to be applied.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
from collections import OrderedDict
from collections.abc import Callable

from meseta.log.interface import ReplicatedLog
from meseta.master import fold
from meseta.master.events import DomainEvent
from meseta.master.state import State

log = logging.getLogger(__name__)

Listener = Callable[[int, list[DomainEvent]], None]

# Exit code of a replica that stopped because the fold failed (fail-stop).
EXIT_FOLD_FAILED = 70
# Outcomes kept for API calls that wait for their own entry.
OUTCOMES_KEPT = 4096
# Waiters kept before those that gave up are swept out.
WAITERS_COMPACTED_AT = 1024


def stop_process(error: BaseException) -> None:
    log.critical("the fold failed; stopping this replica: %r", error)
    os._exit(EXIT_FOLD_FAILED)


class MasterService:
    def __init__(
        self,
        replicated_log: ReplicatedLog,
        on_fatal: Callable[[BaseException], None] = stop_process,
    ) -> None:
        self.log = replicated_log
        self.state = State()
        self.listeners: list[Listener] = []
        self.outcomes: OrderedDict[int, list[DomainEvent]] = OrderedDict()
        self.on_fatal = on_fatal
        # Callers waiting for an index, smallest first: applying an entry wakes only the
        # callers it satisfies (a Condition would wake every waiter on every entry).
        self.waiters: list[tuple[int, int, asyncio.Future[bool]]] = []
        self.waiter_seq = itertools.count()
        self.waiters_compacted_at = WAITERS_COMPACTED_AT
        self.task: asyncio.Task[None] | None = None

    @property
    def applied_index(self) -> int:
        return self.state.applied_index

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name="fold")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def run(self) -> None:
        async for record in self.log.follow(self.state.applied_index + 1):
            try:
                events = fold.apply(self.state, record.entry, record.index)
            except Exception as error:  # fail-stop: never skip or retry an entry
                self.on_fatal(error)
                raise
            self.outcomes[record.index] = events
            if len(self.outcomes) > OUTCOMES_KEPT:
                self.outcomes.popitem(last=False)
            for listener in self.listeners:
                listener(record.index, events)
            self.wake(record.index)

    def compact_waiters(self) -> None:
        """Drop waiters that timed out or were cancelled: one far ahead of the log (a
        read's `min_index`) would otherwise stay until the log gets there."""
        self.waiters = [waiter for waiter in self.waiters if not waiter[2].done()]
        heapq.heapify(self.waiters)
        self.waiters_compacted_at = max(WAITERS_COMPACTED_AT, 2 * len(self.waiters))

    def wake(self, applied: int) -> None:
        waiters = self.waiters
        while waiters and waiters[0][0] <= applied:
            future = heapq.heappop(waiters)[2]
            if not future.done():
                future.set_result(True)

    async def wait_applied(self, index: int, timeout_s: float = 10.0) -> bool:
        """Whether the fold applied `index` within `timeout_s`."""
        if self.state.applied_index >= index:
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        if len(self.waiters) >= self.waiters_compacted_at:
            self.compact_waiters()
        heapq.heappush(self.waiters, (index, next(self.waiter_seq), future))
        timer = loop.call_later(timeout_s, expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    def outcome(self, index: int) -> list[DomainEvent]:
        return self.outcomes.get(index, [])


def expire(future: asyncio.Future[bool]) -> None:
    """A waiter's time is up; it stays in the heap until its index is applied or passed."""
    if not future.done():
        future.set_result(False)
