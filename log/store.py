"""The event store: committed entries by index, in the replica's LMDB environment.

Databases (see disk.py):
  entries    index (>Q) -> framed encoded Entry
  proposals  proposal id -> index (>Q), for the last DEDUP_WINDOW entries
  store_meta b"last_index", b"last_raft_index" -> >Q

Writes are staged in the disk's open write transaction by the writer thread
and become visible to readers when the disk commits.
"""

from __future__ import annotations

from collections.abc import Iterator

import lmdb

from meseta.log.codec import frame, index_key, key_index, proposal_id_of, unframe
from meseta.log.disk import LogDisk
from meseta.log.errors import LogCorrupted
from meseta.log.sequencer import Sequenced

# A retried proposal is recognised if it commits within this many entries of
# its first copy. Pruning depends on the index only, so every replica keeps
# the same ids.
DEDUP_WINDOW = 1_000_000
_PRUNE_CHUNK = 4096

# Entries verified when a store is opened (the whole store by `verify()`).
_TAIL_CHECKED = 1000

_LAST_INDEX = b"last_index"
_LAST_RAFT_INDEX = b"last_raft_index"


class EventStore:
    def __init__(self, disk: LogDisk, *, dedup_window: int = DEDUP_WINDOW) -> None:
        self._disk = disk
        self._entries = disk.dbs[b"entries"]
        self._proposals = disk.dbs[b"proposals"]
        self._meta = disk.dbs[b"store_meta"]
        self._dedup_window = dedup_window
        with disk.read_txn() as txn:
            self.last_index = self._meta_int(txn, _LAST_INDEX)
            self.last_raft_index = self._meta_int(txn, _LAST_RAFT_INDEX)
        self._check_tail()

    # -- writer thread ---------------------------------------------------

    def index_of(self, proposal_id: bytes) -> int | None:
        """Index of the stored entry with this proposal id, staged writes included."""
        value = self._disk.write_txn().get(proposal_id, db=self._proposals)
        return None if value is None else key_index(bytes(value))

    def stage(self, sequenced: Sequenced, raft_index: int) -> None:
        """Stage one applied batch (its entries, ids and the new high-water marks)."""
        txn = self._disk.write_txn()
        appended = sequenced.appended
        if appended:
            rows = [(index_key(i), frame(payload)) for i, _, payload in appended]
            _, added = txn.cursor(db=self._entries).putmulti(rows, append=True)
            if added != len(rows):
                raise LogCorrupted(f"entries up to {appended[-1][0]} are not after the last one")
            ids = [
                (proposal_id, key)
                for (key, _), (_, proposal_id, _) in zip(rows, appended, strict=True)
            ]
            txn.cursor(db=self._proposals).putmulti(ids)
            self._prune_through(txn, appended[0][0], appended[-1][0])
        self.last_index = sequenced.last_index
        self.last_raft_index = raft_index
        txn.put(_LAST_INDEX, index_key(self.last_index), db=self._meta)
        txn.put(_LAST_RAFT_INDEX, index_key(raft_index), db=self._meta)

    def stage_import(self, index: int, payload: bytes) -> None:
        """Stage an entry copied from a snapshot, at the index it has there."""
        if index != self.last_index + 1:
            raise LogCorrupted(f"snapshot import out of order: {index} after {self.last_index}")
        txn = self._disk.write_txn()
        self._put(txn, index, proposal_id_of(payload), payload)
        self.last_index = index
        txn.put(_LAST_INDEX, index_key(index), db=self._meta)

    def stage_raft_index(self, raft_index: int) -> None:
        self.last_raft_index = raft_index
        self._disk.write_txn().put(_LAST_RAFT_INDEX, index_key(raft_index), db=self._meta)

    def _put(self, txn: lmdb.Transaction, index: int, proposal_id: bytes, payload: bytes) -> None:
        if not txn.put(index_key(index), frame(payload), db=self._entries, append=True):
            raise LogCorrupted(f"entry {index} is not after the last stored entry")
        txn.put(proposal_id, index_key(index), db=self._proposals)
        self._prune_through(txn, index, index)

    def _prune_through(self, txn: lmdb.Transaction, first: int, last: int) -> None:
        """Prune at every chunk boundary among the indexes first..last just stored.

        Depends on the indexes only, so every replica, however its batches or
        snapshot imports were cut, forgets the same proposal ids.
        """
        first_boundary = first + (-first) % _PRUNE_CHUNK  # first multiple >= first
        for boundary in range(first_boundary, last + 1, _PRUNE_CHUNK):
            if boundary > self._dedup_window:
                self._prune(txn, boundary - self._dedup_window)

    def _prune(self, txn: lmdb.Transaction, below: int) -> None:
        """Forget the proposal ids of the chunk of entries ending before `below`."""
        for index in range(max(1, below - _PRUNE_CHUNK), below):
            value = txn.get(index_key(index), db=self._entries)
            if value is None:
                continue
            proposal_id = proposal_id_of(unframe(bytes(value), f"entry {index}"))
            stored = txn.get(proposal_id, db=self._proposals)
            if stored is not None and key_index(bytes(stored)) == index:
                txn.delete(proposal_id, db=self._proposals)

    # -- any thread ------------------------------------------------------

    def read(self, start: int, stop: int, *, limit: int = 10_000) -> list[tuple[int, bytes]]:
        """Committed (index, encoded entry) with start <= index < stop, at most `limit`."""
        start = max(start, 1)
        out: list[tuple[int, bytes]] = []
        if start >= stop:
            return out
        with self._disk.read_txn() as txn:
            cursor = txn.cursor(db=self._entries)
            if not cursor.set_key(index_key(start)):
                return out
            for key, value in cursor:
                index = key_index(key)
                if index >= stop or len(out) >= limit:
                    break
                if index != start + len(out):
                    raise LogCorrupted(f"entry {start + len(out)} is missing from the store")
                out.append((index, unframe(value, f"entry {index}")))
        return out

    def iter_all(self, start: int = 1, batch: int = 10_000) -> Iterator[tuple[int, bytes]]:
        """Every stored entry from `start`, read in bounded transactions."""
        while True:
            chunk = self.read(start, start + batch)
            if not chunk:
                return
            yield from chunk
            start = chunk[-1][0] + 1

    def stored_last_index(self) -> int:
        """The last index visible to readers (committed to disk)."""
        with self._disk.read_txn() as txn:
            return self._meta_int(txn, _LAST_INDEX)

    def verify(self) -> int:
        """Check every entry's CRC and the index sequence; return the entry count."""
        count = 0
        for index, _payload in self.iter_all():
            count += 1
            if index != count:
                raise LogCorrupted(f"entry {count} is missing from the store")
        if count != self.stored_last_index():
            raise LogCorrupted(
                f"the store holds {count} entries but its meta says {self.stored_last_index()}"
            )
        return count

    def _check_tail(self) -> None:
        with self._disk.read_txn() as txn:
            cursor = txn.cursor(db=self._entries)
            last_key = cursor.key() if cursor.last() else None
        stored_last = 0 if last_key is None else key_index(bytes(last_key))
        if stored_last != self.last_index:
            raise LogCorrupted(
                f"the store's last entry is {stored_last} but its meta says {self.last_index}"
            )
        start = max(1, self.last_index - _TAIL_CHECKED + 1)
        self.read(start, self.last_index + 1, limit=_TAIL_CHECKED)

    def _meta_int(self, txn: lmdb.Transaction, key: bytes) -> int:
        value = txn.get(key, db=self._meta)
        return 0 if value is None else key_index(bytes(value))
