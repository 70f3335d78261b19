"""A deterministic in-memory ReplicatedLog for unit tests and simulation.

It keeps the same contract as the Raft log (indexes, dedup by proposal id,
header stamping, size cap, NotLeaderError) without threads, sockets or a
clock: timestamps come from an injected clock (a counter by default) and
proposal ids from a counter.

With `auto_commit=True` (the default) a proposal commits on the next turn of
the event loop, like a healthy leader. With `auto_commit=False` proposals
wait until the test calls `step()`, and the fault hooks model what a real
cluster does: `lose_pending()` drops proposals in flight, `duplicate_pending()`
commits them twice (a retry racing its original), and `set_leader(False)`
fails the waiting callers although their entries may still commit.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

from meseta.log.codec import SCHEMA_VERSION, decode_entry, encode_batch, encode_entry
from meseta.log.errors import LogClosed, NotLeaderError, ProposalTimeout
from meseta.log.interface import DEFAULT_TIMEOUT_S, LogRecord, LogStatus
from meseta.log.sequencer import sequence_batch
from meseta.log.v1.entries_pb2 import Entry
from meseta.log.v1.replication_pb2 import Batch

_START_NS = 1_700_000_000_000_000_000
_TICK_NS = 1_000_000


def counting_clock(start_ns: int = _START_NS, step_ns: int = _TICK_NS) -> Callable[[], int]:
    """A deterministic clock: each reading is `step_ns` after the previous one."""
    readings = itertools.count(start_ns, step_ns)
    return lambda: next(readings)


class MemoryLog:
    def __init__(
        self,
        *,
        auto_commit: bool = True,
        clock_ns: Callable[[], int] | None = None,
        address: str = "memory",
        term: int = 1,
    ) -> None:
        self._auto_commit = auto_commit
        self._clock_ns = clock_ns or counting_clock()
        self._address = address
        self._term = term
        self._is_leader = True
        self._leader: str | None = address
        self._entries: list[bytes] = []  # entry i is at position i - 1
        self._stored_bytes = 0
        self._index_of: dict[bytes, int] = {}
        self._pending: list[bytes] = []
        self._pending_barriers: list[bytes] = []
        self._waiting: dict[bytes, asyncio.Future[int]] = {}
        self._barriers: dict[bytes, asyncio.Future[int]] = {}
        self._ids = itertools.count(1)
        self._last_timestamp_ns = 0
        self._changed = asyncio.Event()
        self._commit_scheduled = False
        self._closed = False
        self.duplicates_dropped = 0

    # -- the ReplicatedLog contract ------------------------------------------------

    async def propose(self, entry: Entry, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        self._check_can_propose()
        header = entry.header
        if not header.proposal_id:
            header.proposal_id = b"memory-%d" % next(self._ids)
        if not header.schema_version:
            header.schema_version = SCHEMA_VERSION
        self._last_timestamp_ns = max(self._clock_ns(), self._last_timestamp_ns + 1)
        header.timestamp_ns = self._last_timestamp_ns
        header.proposer_term = self._term
        payload = encode_entry(entry)
        future = self._waiting.get(header.proposal_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiting[header.proposal_id] = future
            self._pending.append(payload)
            self._schedule_commit()
        try:
            return await self._wait(future, timeout_s)
        except ProposalTimeout:
            # A retry with the same id must propose again, not wait on this.
            if self._waiting.get(header.proposal_id) is future:
                del self._waiting[header.proposal_id]
            raise

    async def barrier(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        self._check_can_propose()
        token = b"barrier-%d" % next(self._ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._barriers[token] = future
        self._pending_barriers.append(token)
        self._schedule_commit()
        return await self._wait(future, timeout_s)

    def applied_index(self) -> int:
        return len(self._entries)

    def committed_index(self) -> int:
        return len(self._entries)

    def is_leader(self) -> bool:
        return self._is_leader

    def leader_address(self) -> str | None:
        return self._leader

    def term(self) -> int:
        return self._term

    def stored_bytes(self) -> int:
        return self._stored_bytes

    def status(self) -> LogStatus:
        return LogStatus(
            address=self._address,
            is_leader=self._is_leader,
            leader=self._leader,
            term=self._term,
            voting=True,
            ready=True,
            applied_index=len(self._entries),
            raft_commit_index=len(self._entries),
            raft_applied_index=len(self._entries),
            leader_commit_index=len(self._entries),
            cluster=(self._address,),
            recovered_in_s=0.0,  # nothing to catch up with
        )

    def read(self, start: int, stop: int) -> list[LogRecord]:
        start, stop = max(start, 1), min(stop, len(self._entries) + 1)
        return [LogRecord(i, decode_entry(self._entries[i - 1])) for i in range(start, stop)]

    async def follow(self, start: int) -> AsyncIterator[LogRecord]:
        index = max(start, 1)
        while True:
            if self._closed:
                raise LogClosed("the log is closed")
            if index <= len(self._entries):
                for record in self.read(index, index + 1000):
                    yield record
                    index = record.index + 1
                continue
            await self._changed.wait()

    async def wait_applied(self, index: int, *, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                while len(self._entries) < index and not self._closed:
                    await self._changed.wait()
        except TimeoutError:
            return False
        return len(self._entries) >= index

    async def close(self) -> None:
        self._closed = True
        self._fail_waiting(LogClosed("the log is closed"))
        self._notify()

    # -- test and simulation hooks ---------------------------------------------------

    def set_auto_commit(self, enabled: bool) -> None:
        """Stop (or resume) committing proposals on their own; `step()` still commits."""
        self._auto_commit = enabled
        if enabled:
            self._schedule_commit()

    @property
    def pending(self) -> int:
        """Proposals handed to the log but not committed yet."""
        return len(self._pending)

    def step(self) -> int:
        """Commit everything pending as one batch; return the last index."""
        batch = encode_batch(self._pending, self._pending_barriers)
        self._pending, self._pending_barriers = [], []
        self.apply_batch(batch)
        return len(self._entries)

    def apply_batch(self, data: bytes) -> None:
        """Apply one replicated batch, as every replica does when Raft commits it."""
        parsed = Batch()
        parsed.ParseFromString(data)
        sequenced = sequence_batch(parsed, len(self._entries), self._index_of.get)
        for index, proposal_id, payload in sequenced.appended:
            assert index == len(self._entries) + 1
            self._entries.append(payload)
            self._stored_bytes += len(payload)
            self._index_of[proposal_id] = index
        self.duplicates_dropped += sequenced.duplicates
        for proposal_id, index in sequenced.resolved.items():
            future = self._waiting.pop(proposal_id, None)
            if future is not None and not future.done():
                future.set_result(index)
        for token in sequenced.barriers:
            barrier = self._barriers.pop(token, None)
            if barrier is not None and not barrier.done():
                barrier.set_result(len(self._entries))
        self._notify()

    def lose_pending(self) -> int:
        """Drop every pending proposal, as a leader crash would; callers time out."""
        lost = len(self._pending)
        self._pending, self._pending_barriers = [], []
        return lost

    def duplicate_pending(self) -> None:
        """Commit the pending proposals twice in a row (a retry racing its original)."""
        copies = list(self._pending)
        self.step()
        self._pending = copies
        self.step()

    def set_leader(
        self, is_leader: bool, *, leader: str | None = None, term: int | None = None
    ) -> None:
        """Change role. Losing leadership fails the waiting callers with NotLeaderError,
        but their entries stay pending: `step()` may still commit them."""
        self._is_leader = is_leader
        self._leader = self._address if is_leader else leader
        if term is not None:
            self._term = term
        if not is_leader:
            self._fail_waiting(NotLeaderError(self._leader))

    # -- internals -------------------------------------------------------------------

    def _check_can_propose(self) -> None:
        if self._closed:
            raise LogClosed("the log is closed")
        if not self._is_leader:
            raise NotLeaderError(self._leader)

    def _schedule_commit(self) -> None:
        if self._auto_commit and not self._commit_scheduled:
            self._commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._auto_step)

    def _auto_step(self) -> None:
        self._commit_scheduled = False
        if self._pending or self._pending_barriers:
            self.step()

    async def _wait(self, future: asyncio.Future[int], timeout_s: float) -> int:
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            raise ProposalTimeout(
                "not known to be committed in time; retry with the same proposal id"
            ) from None

    def _fail_waiting(self, error: Exception) -> None:
        for future in [*self._waiting.values(), *self._barriers.values()]:
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()
        self._barriers.clear()

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()
