"""Errors the replicated log reports to its callers."""

from __future__ import annotations


class LogError(Exception):
    """Base class of every error raised by meseta.log."""


class EntryTooLarge(LogError, ValueError):
    """An encoded entry exceeds the hard size cap; it was not proposed."""

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"log entry is {size_bytes} bytes, over the {limit_bytes}-byte limit; "
            "split it into smaller entries"
        )
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class NotLeaderError(LogError):
    """This replica cannot propose: it is not the leader.

    `leader` is the address of the leader this replica knows of, or None. A
    proposal that was under way when leadership was lost may still commit:
    retry it at the leader with the same proposal id (the log stores it once).
    """

    def __init__(self, leader: str | None) -> None:
        where = f"the leader is {leader}" if leader else "no leader is known"
        super().__init__(f"this replica is not the leader; {where}")
        self.leader = leader


class ProposalTimeout(LogError, TimeoutError):
    """The deadline passed before the proposal was known to be committed.

    The outcome is unknown: retry with the same proposal id.
    """


class LogCorrupted(LogError):
    """Stored data failed verification (bad CRC, truncated or divergent)."""


class LogClosed(LogError):
    """The log was closed while the call was waiting."""
