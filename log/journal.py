"""pysyncobj's Raft journal, kept in the replica's LMDB environment.

pysyncobj's own FileJournal never fsyncs, and its compaction rewrites the file
in place. This journal mirrors the entries in memory (pysyncobj indexes and
slices it like a list) and stages every change in the disk's write
transaction; the Raft adapter commits it before any message leaves the
replica, so whatever a peer is told about (an appended entry, a vote) is on
disk first.

It implements pysyncobj's Journal protocol by duck typing, so this module
does not import pysyncobj.

  journal      raft index (>Q) -> framed (term (>Q) + command)
  journal_meta b"term", b"voted_for", b"commit_index"
"""

from __future__ import annotations

import struct
from typing import Any

from meseta.log.codec import frame, index_key, key_index, unframe
from meseta.log.disk import LogDisk

RaftEntryTuple = tuple[bytes, int, int]  # (command, raft index, term), as pysyncobj has it

_TERM = struct.Struct(">Q")


class LmdbJournal:
    def __init__(self, disk: LogDisk) -> None:
        self._disk = disk
        self._db = disk.dbs[b"journal"]
        self._meta_db = disk.dbs[b"journal_meta"]
        self._entries: list[RaftEntryTuple] = []
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
        if self._entries and idx != self._entries[-1][1] + 1:
            raise AssertionError(f"raft journal gap: {idx} after {self._entries[-1][1]}")
        self._entries.append((command, idx, term))
        value = frame(_TERM.pack(term) + command)
        self._disk.write_txn().put(index_key(idx), value, db=self._db)

    def clear(self) -> None:
        self._entries = []
        self._disk.write_txn().drop(self._db, delete=False)

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        if entryFrom >= len(self._entries):
            return
        first_removed = self._entries[entryFrom][1]
        del self._entries[entryFrom:]
        self._delete_keys(lambda index: index >= first_removed, start=first_removed)

    def deleteEntriesTo(self, entryTo: int) -> None:
        if entryTo <= 0:
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

    def _delete_keys(self, doomed: Any, start: int) -> None:
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
