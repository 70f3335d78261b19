"""The fold worker (I/O shell): applies committed entries in index order.

It runs as one asyncio task on the event loop that also serves HTTP, so the
fold state is only ever touched from that loop: readers see it between two
entries, never in the middle of one. After each entry it hands the domain
events to listeners (stream routing, projections) in index order, and wakes
API calls waiting for their entry to be applied.
"""

from __future__ import annotations

import asyncio
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
        self.applied = asyncio.Condition()
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
            async with self.applied:
                self.applied.notify_all()

    async def wait_applied(self, index: int, timeout_s: float = 10.0) -> bool:
        async def reached() -> None:
            async with self.applied:
                await self.applied.wait_for(lambda: self.state.applied_index >= index)

        try:
            await asyncio.wait_for(reached(), timeout_s)
        except TimeoutError:
            return False
        return True

    def outcome(self, index: int) -> list[DomainEvent]:
        return self.outcomes.get(index, [])
