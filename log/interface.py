"""The one interface every replicated log implementation provides.

Indexes are *entry* indexes: dense, starting at 1, one per stored entry. They
are assigned when a committed Raft batch is applied, identically on every
replica, so index N names the same entry everywhere. (Raft's own indexes also
count no-ops and membership changes and several entries share one Raft entry;
they appear only in `LogStatus` for diagnostics.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from meseta.log.v1.entries_pb2 import Entry

# Default deadline of a proposal or barrier, seconds.
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A committed entry and its index."""

    index: int
    entry: Entry


@dataclass(frozen=True, slots=True)
class LogStatus:
    """What a replica knows about itself and the cluster (for headers and debugging)."""

    address: str | None
    is_leader: bool
    leader: str | None
    term: int
    voting: bool
    ready: bool
    applied_index: int
    raft_commit_index: int
    raft_applied_index: int
    leader_commit_index: int | None
    cluster: tuple[str, ...]
    # Seconds from opening the log to first being ready (caught up); None until then.
    recovered_in_s: float | None = None


class ReplicatedLog(Protocol):
    """A totally ordered, durable, replicated sequence of entries.

    * `propose` returns once the entry is committed (durable on a majority)
      and applied on this replica, so a read that follows sees it.
    * An entry is stored at most once per proposal id: a retried proposal
      resolves to the index of the copy that committed first.
    * Only the leader proposes; other replicas raise NotLeaderError naming the
      leader they know.
    """

    async def propose(self, entry: Entry, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        """Append an entry; return its index once committed and applied here.

        The log fills `header.timestamp_ns`, `header.proposer_term`,
        `header.schema_version` (when 0) and `header.proposal_id` (when empty).
        Raises EntryTooLarge, NotLeaderError, ProposalTimeout or LogClosed.
        """
        ...

    async def barrier(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        """Commit a no-op through the leader and return the applied index after it.

        Reading local state once `applied_index() >= barrier()` is linearizable.
        """
        ...

    def applied_index(self) -> int:
        """Last entry index applied on this replica: committed and readable here.

        Its local store copy may reach disk a few milliseconds later; until
        then the replica's durable journal holds it.
        """
        ...

    def committed_index(self) -> int:
        """Last entry index this replica knows to be committed.

        Entries are indexed when applied, so this equals `applied_index()`;
        `status().leader_commit_index` tells how far Raft is ahead.
        """
        ...

    def is_leader(self) -> bool: ...

    def leader_address(self) -> str | None: ...

    def term(self) -> int: ...

    def status(self) -> LogStatus: ...

    def stored_bytes(self) -> int:
        """Bytes this replica's durable copy of the log occupies (Mesos's registry size)."""
        ...

    def read(self, start: int, stop: int) -> list[LogRecord]:
        """Committed entries with start <= index < stop (clamped to what exists)."""
        ...

    def follow(self, start: int) -> AsyncIterator[LogRecord]:
        """Yield committed entries from `start` on, waiting for new ones forever."""
        ...

    async def wait_applied(self, index: int, *, timeout_s: float) -> bool:
        """Wait until `applied_index() >= index`; False on timeout."""
        ...

    async def close(self) -> None: ...
