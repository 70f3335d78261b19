"""pysyncobj's Raft journal, kept in the replica's LMDB environment.

pysyncobj's own FileJournal never fsyncs, and its compaction rewrites the file
in place. This journal mirrors the entries in memory (pysyncobj indexes and
slices it like a list) and stages every change in the disk's write
transaction; the Raft adapter commits it before any message leaves the
replica, so whatever a peer is told about (an appended entry, a vote) is on
disk first.

It implements pysyncobj's Journal protocol by duck typing, so this module
does not import pysyncobj.

pysyncobj's follower deletes every entry after `prevLogIdx` whenever an
append overlaps what it has, conflicting or not; entries it had already
acknowledged could vanish, which Raft forbids. So a truncation here is only
tentative: the removed tail is kept aside, entries re-appended with the same
term take their old place, the first entry with a different term (a real
conflict) deletes the rest for good, and whatever was not contradicted is put
back by `settle()` before the replica sends anything.

  journal      raft index (>Q) -> framed (term (>Q) + command)
  journal_meta b"term", b"voted_for", b"commit_index"
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from typing import Any

from meseta.log.codec import frame, index_key, key_index, unframe
from meseta.log.disk import LogDisk

RaftEntryTuple = tuple[bytes, int, int]  # (command, raft index, term), as pysyncobj has it

# pysyncobj's command type byte for membership changes: it rolls those back
# itself when it truncates, so they are never silently put back.
_MEMBERSHIP_COMMAND = 2

_TERM = struct.Struct(">Q")


class LmdbJournal:
    def __init__(self, disk: LogDisk) -> None:
        self._disk = disk
        self._db = disk.dbs[b"journal"]
        self._meta_db = disk.dbs[b"journal_meta"]
        self._entries: list[RaftEntryTuple] = []
        # Tail removed by a tentative truncation, oldest first (see module doc).
        self._set_aside: deque[RaftEntryTuple] = deque()
        # Called with the Raft index of a real conflict (tests; the adapter
        # checks it against what was already applied).
        self.on_conflict: Callable[[int], None] = lambda index: None
        with disk.read_txn() as txn:
            for key, value in txn.cursor(db=self._db):
                index = key_index(key)
                payload = unframe(value, f"raft journal entry {index}")
                (term,) = _TERM.unpack_from(payload)
                self._entries.append((payload[_TERM.size :], index, term))
            self._term = self._meta_int(txn, b"term")
            voted = txn.get(b"voted_for", db=self._meta_db)
            self._voted_for = bytes(voted).decode() if voted else None
            self._commit_index = self._meta_int(txn, b"commit_index") or 1
        self._stored_commit_index = self._commit_index
        disk.before_commit(self.before_commit)

    # -- pysyncobj Journal protocol ----------------------------------------

    def add(self, command: bytes, idx: int, term: int) -> None:
        if self._set_aside and self._set_aside[0][1] == idx:
            kept = self._set_aside[0]
            if kept[2] == term:  # the same entry re-sent: keep the stored copy
                self._entries.append(self._set_aside.popleft())
                return
            self._discard_set_aside(conflict=True)  # a real conflict: the rest goes
        if self._entries and idx != self._entries[-1][1] + 1:
            raise AssertionError(f"raft journal gap: {idx} after {self._entries[-1][1]}")
        self._entries.append((command, idx, term))
        value = frame(_TERM.pack(term) + command)
        self._disk.write_txn().put(index_key(idx), value, db=self._db)
        self._disk.mark_critical()

    def clear(self) -> None:
        self._entries = []
        self._set_aside.clear()
        self._disk.write_txn().drop(self._db, delete=False)
        self._disk.mark_critical()

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        if entryFrom >= len(self._entries):
            return
        self.settle()
        tail = self._entries[entryFrom:]
        del self._entries[entryFrom:]
        self._set_aside = deque(tail)
        if any(command[:1] == bytes([_MEMBERSHIP_COMMAND]) for command, _, _ in tail):
            # pysyncobj already rolled these membership changes back and will
            # re-apply only what it re-sends: delete for real, as it expects.
            self._discard_set_aside(conflict=False)

    def settle(self) -> None:
        """Put back the set-aside tail that no new entry contradicted."""
        if self._set_aside:
            self._entries.extend(self._set_aside)
            self._set_aside.clear()

    def _discard_set_aside(self, *, conflict: bool) -> None:
        first_removed = self._set_aside[0][1]
        self._set_aside.clear()
        if conflict:
            self.on_conflict(first_removed)
        self._delete_keys(lambda index: index >= first_removed, start=first_removed)
        self._disk.mark_critical()

    def deleteEntriesTo(self, entryTo: int) -> None:
        self.settle()
        if entryTo <= 0 or not self._entries:
            return
        if entryTo >= len(self._entries):
            keep_from = self._entries[-1][1] + 1
        else:
            keep_from = self._entries[entryTo][1]
        self._entries = self._entries[entryTo:]
        self._delete_keys(lambda index: index < keep_from, start=0)

    def __getitem__(self, item: Any) -> Any:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        """pysyncobj calls this on shutdown; the adapter owns the disk."""

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        # Only a hint after a restart (the leader re-sends it), so it rides
        # along with the next write instead of costing an fsync of its own.
        self._commit_index = raftCommitIndex

    def getRaftCommitIndex(self) -> int:
        return self._commit_index

    def setCurrentTerm(self, term: int, votedForNodeId: str | None) -> None:
        self._term, self._voted_for = term, votedForNodeId
        txn = self._disk.write_txn()
        txn.put(b"term", index_key(term), db=self._meta_db)
        txn.put(b"voted_for", (votedForNodeId or "").encode(), db=self._meta_db)
        self._disk.mark_critical()

    def getCurrentTerm(self) -> int:
        return self._term

    def getVotedForNodeId(self) -> str | None:
        return self._voted_for

    def onOneSecondTimer(self) -> None:
        if self._commit_index != self._stored_commit_index:
            self._stage_commit_index(self._disk.write_txn())

    def _stage_commit_index(self, txn: Any) -> None:
        txn.put(b"commit_index", index_key(self._commit_index), db=self._meta_db)
        self._stored_commit_index = self._commit_index

    def before_commit(self) -> None:
        """Called by the disk just before it commits a non-empty transaction."""
        if self._commit_index != self._stored_commit_index:
            self._stage_commit_index(self._disk.write_txn())

    def flush(self) -> None:
        self.settle()
        self._disk.commit()

    # -- helpers -------------------------------------------------------------

    def entry_at(self, raft_index: int) -> RaftEntryTuple | None:
        """The journal entry with this Raft index, if still in the journal."""
        if not self._entries:
            return None
        position = raft_index - self._entries[0][1]
        if 0 <= position < len(self._entries):
            return self._entries[position]
        return None

    def _delete_keys(self, doomed: Callable[[int], bool], start: int) -> None:
        txn = self._disk.write_txn()
        cursor = txn.cursor(db=self._db)
        if not cursor.set_range(index_key(start)):
            return
        while cursor.key() and doomed(key_index(bytes(cursor.key()))):
            if not cursor.delete():
                break

    def _meta_int(self, txn: Any, key: bytes) -> int:
        value = txn.get(key, db=self._meta_db)
        return 0 if value is None else key_index(bytes(value))
