"""meseta.log.store.EventStore on a real LogDisk: staging, reads, reopen, corruption, dedup."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from meseta.log import store as store_module
from meseta.log.codec import (
    decode_entry,
    encode_batch,
    encode_entry,
    frame,
    index_key,
    key_index,
)
from meseta.log.disk import DB_NAMES, LogDisk
from meseta.log.errors import LogCorrupted
from meseta.log.sequencer import sequence_batch
from meseta.log.store import EventStore
from meseta.log.v1.entries_pb2 import Entry
from meseta.log.v1.replication_pb2 import Batch

MAP_SIZE = 256 * 1024**2


def payload(proposal_id: bytes) -> bytes:
    entry = Entry(events=b"events of " + proposal_id)
    entry.header.proposal_id = proposal_id
    entry.header.timestamp_ns = 1
    return encode_entry(entry)


def pid(n: int) -> bytes:
    return b"id-%d" % n


def stage(store: EventStore, ids: list[bytes], raft_index: int) -> dict[bytes, int]:
    batch = Batch()
    batch.ParseFromString(encode_batch([payload(i) for i in ids]))
    sequenced = sequence_batch(batch, store.last_index, store.index_of)
    store.stage(sequenced, raft_index)
    return sequenced.resolved


def open_disk(path: Path) -> LogDisk:
    return LogDisk(path, map_size=MAP_SIZE)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[LogDisk]:
    disk = open_disk(tmp_path / "store")
    try:
        yield disk
    finally:
        disk.close()


@pytest.fixture
def store(disk: LogDisk) -> EventStore:
    return EventStore(disk)


def ids_of(records: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    return [(index, decode_entry(p).header.proposal_id) for index, p in records]


def test_empty_store(store: EventStore) -> None:
    assert store.last_index == 0
    assert store.last_raft_index == 0
    assert store.read(1, 100) == []
    assert store.verify() == 0
    assert store.index_of(b"nope") is None


def test_stage_commit_and_read(disk: LogDisk, store: EventStore) -> None:
    resolved = stage(store, [pid(n) for n in range(1, 6)], raft_index=3)
    assert resolved == {pid(n): n for n in range(1, 6)}
    disk.commit()
    assert store.last_index == 5
    assert store.stored_last_index() == 5
    assert store.last_raft_index == 3
    records = store.read(1, 6)
    assert ids_of(records) == [(n, pid(n)) for n in range(1, 6)]
    assert [p for _, p in records] == [payload(pid(n)) for n in range(1, 6)]


def test_read_ranges_clamp_and_limit(disk: LogDisk, store: EventStore) -> None:
    stage(store, [pid(n) for n in range(1, 11)], raft_index=2)
    disk.commit()
    assert [i for i, _ in store.read(3, 6)] == [3, 4, 5]
    assert [i for i, _ in store.read(8, 1000)] == [8, 9, 10]  # stop clamped to what exists
    assert [i for i, _ in store.read(-5, 3)] == [1, 2]  # start < 1 reads from 1
    assert [i for i, _ in store.read(0, 2)] == [1]
    assert store.read(5, 5) == []  # start >= stop
    assert store.read(6, 2) == []
    assert store.read(11, 20) == []  # past the end
    assert [i for i, _ in store.read(2, 100, limit=4)] == [2, 3, 4, 5]
    assert store.read(1, 100, limit=0) == []
    assert [i for i, _ in store.iter_all(start=4, batch=3)] == list(range(4, 11))


def test_staged_entries_are_invisible_to_readers_until_commit(
    disk: LogDisk, store: EventStore
) -> None:
    stage(store, [pid(1), pid(2)], raft_index=1)
    disk.commit()
    stage(store, [pid(3), pid(4)], raft_index=2)
    assert store.last_index == 4  # the writer's view
    assert store.stored_last_index() == 2  # the readers' view
    assert [i for i, _ in store.read(1, 10)] == [1, 2]
    # The writer's dedup lookups do see the staged ids.
    assert store.index_of(pid(3)) == 3
    assert store.index_of(pid(4)) == 4
    disk.commit()
    assert [i for i, _ in store.read(1, 10)] == [1, 2, 3, 4]
    assert store.stored_last_index() == 4


def test_duplicates_of_stored_ids_are_not_stored_again(disk: LogDisk, store: EventStore) -> None:
    stage(store, [pid(1), pid(2)], raft_index=1)
    disk.commit()
    resolved = stage(store, [pid(2), pid(3), pid(1), pid(3)], raft_index=2)
    disk.commit()
    assert resolved == {pid(2): 2, pid(3): 3, pid(1): 1}
    assert ids_of(store.read(1, 10)) == [(1, pid(1)), (2, pid(2)), (3, pid(3))]
    assert store.verify() == 3


def test_reopen_keeps_entries_and_high_water_marks(tmp_path: Path) -> None:
    path = tmp_path / "store"
    disk = open_disk(path)
    try:
        store = EventStore(disk)
        stage(store, [pid(n) for n in range(1, 8)], raft_index=5)
        disk.commit()
        stage(store, [pid(8)], raft_index=9)
        disk.commit()
        store.stage_raft_index(12)  # a batch that added nothing (e.g. only duplicates)
        disk.commit()
        before = store.read(1, 100)
    finally:
        disk.close()
    disk = open_disk(path)
    try:
        reopened = EventStore(disk)
        assert reopened.last_index == 8
        assert reopened.last_raft_index == 12
        assert reopened.read(1, 100) == before
        assert reopened.index_of(pid(4)) == 4
        assert reopened.verify() == 8
    finally:
        disk.close()


def test_uncommitted_writes_are_lost_on_close(tmp_path: Path) -> None:
    path = tmp_path / "store"
    disk = open_disk(path)
    try:
        store = EventStore(disk)
        stage(store, [pid(1)], raft_index=1)
        disk.commit()
        stage(store, [pid(2)], raft_index=2)
    finally:
        disk.close()
    disk = open_disk(path)
    try:
        reopened = EventStore(disk)
        assert (reopened.last_index, reopened.last_raft_index) == (1, 1)
        assert reopened.index_of(pid(2)) is None
    finally:
        disk.close()


def test_verify_counts_entries(disk: LogDisk, store: EventStore) -> None:
    for batch in range(5):
        stage(store, [pid(batch * 10 + n) for n in range(7)], raft_index=batch + 1)
        disk.commit()
    assert store.verify() == 35


def test_stage_import_in_order_only(disk: LogDisk, store: EventStore) -> None:
    store.stage_import(1, payload(pid(1)))
    store.stage_import(2, payload(pid(2)))
    with pytest.raises(LogCorrupted, match="out of order"):
        store.stage_import(4, payload(pid(4)))
    with pytest.raises(LogCorrupted, match="out of order"):
        store.stage_import(2, payload(pid(2)))
    disk.commit()
    assert ids_of(store.read(1, 10)) == [(1, pid(1)), (2, pid(2))]
    assert store.index_of(pid(2)) == 2


# -- corruption ------------------------------------------------------------------------------


def put_raw(disk: LogDisk, db: bytes, key: bytes, value: bytes) -> None:
    with disk.env.begin(write=True) as txn:
        txn.put(key, value, db=disk.dbs[db])


def test_flipped_bytes_in_a_stored_value_are_detected(disk: LogDisk, store: EventStore) -> None:
    stage(store, [pid(n) for n in range(1, 5)], raft_index=1)
    disk.commit()
    good = frame(payload(pid(3)))
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0x40
    put_raw(disk, b"entries", index_key(3), bytes(damaged))
    assert [i for i, _ in store.read(1, 3)] == [1, 2]  # entries before it still read
    with pytest.raises(LogCorrupted, match="entry 3"):
        store.read(1, 5)
    with pytest.raises(LogCorrupted):
        store.verify()
    with pytest.raises(LogCorrupted):
        EventStore(disk)  # the tail check on open reads it too


def test_a_missing_entry_is_detected(disk: LogDisk, store: EventStore) -> None:
    stage(store, [pid(n) for n in range(1, 5)], raft_index=1)
    disk.commit()
    with disk.env.begin(write=True) as txn:
        assert txn.delete(index_key(2), db=disk.dbs[b"entries"])
    with pytest.raises(LogCorrupted, match="entry 2 is missing"):
        store.read(1, 5)
    with pytest.raises(LogCorrupted):
        store.verify()


def test_truncated_data_file_is_refused_on_open(tmp_path: Path) -> None:
    path = tmp_path / "store"
    disk = open_disk(path)
    try:
        store = EventStore(disk)
        for batch in range(20):
            stage(store, [pid(batch * 100 + n) for n in range(50)], raft_index=batch + 1)
            disk.commit()
    finally:
        disk.close()
    data = path / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    with pytest.raises(LogCorrupted, match="truncated"):
        open_disk(path)


def test_a_healthy_store_is_not_refused_as_truncated(tmp_path: Path) -> None:
    """LMDB's last page number also counts pages allocated and freed before a commit, which
    are never written: the data file may legitimately end before it."""
    path = tmp_path / "store"
    disk = open_disk(path)
    try:
        journal = disk.dbs[b"journal"]
        txn = disk.write_txn()
        for key in range(171, 214):
            txn.put(index_key(key), b"v" * 10, db=journal)
        disk.commit()
        txn = disk.write_txn()  # e.g. a journal compaction next to new entries
        for key in range(78, 130):
            txn.put(index_key(key), b"w" * 500, db=journal)
        for key in range(14, 133):
            txn.delete(index_key(key), db=journal)
        disk.commit()
        pages_reach = (disk.env.info()["last_pgno"] + 1) * disk.env.stat()["psize"]
        assert (path / "data.mdb").stat().st_size < pages_reach  # the case under test
    finally:
        disk.close()
    # LMDB itself reads every entry back.
    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(DB_NAMES), lib_version=0)
    try:
        with env.begin() as txn:
            cursor = txn.cursor(db=env.open_db(b"journal", txn=txn, create=False))
            assert [key_index(key) for key, _ in cursor] == list(range(171, 214))
    finally:
        env.close()
    open_disk(path).close()


def test_empty_data_file_is_refused_on_open(tmp_path: Path) -> None:
    path = tmp_path / "store"
    open_disk(path).close()
    os.truncate(path / "data.mdb", 0)
    with pytest.raises(LogCorrupted, match="truncated"):
        open_disk(path)


def test_meta_claiming_more_entries_than_stored_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store"
    disk = open_disk(path)
    try:
        store = EventStore(disk)
        stage(store, [pid(1), pid(2), pid(3)], raft_index=1)
        disk.commit()
        put_raw(disk, b"store_meta", b"last_index", index_key(5))
        with pytest.raises(LogCorrupted, match=r"last entry is 3 but its meta says 5"):
            EventStore(disk)
    finally:
        disk.close()


def test_meta_claiming_fewer_entries_than_stored_is_refused(
    disk: LogDisk, store: EventStore
) -> None:
    stage(store, [pid(1), pid(2), pid(3)], raft_index=1)
    disk.commit()
    put_raw(disk, b"store_meta", b"last_index", index_key(2))
    with pytest.raises(LogCorrupted):
        EventStore(disk)


# -- dedup window ----------------------------------------------------------------------------

CHUNK = 8
_runs = itertools.count()
WINDOW = 16
TOTAL = 40


def staged_in_splits(
    tmp_path: Path, sizes: list[int], *, imported: bool = False
) -> dict[bytes, bytes]:
    """Stage ids 1..TOTAL in batches of the given sizes; return the whole proposals db."""
    assert sum(sizes) == TOTAL
    disk = open_disk(tmp_path / f"split-{next(_runs)}")
    try:
        store = EventStore(disk, dedup_window=WINDOW)
        n = 0
        for raft_index, size in enumerate(sizes, start=1):
            ids = [pid(n + k) for k in range(1, size + 1)]
            if imported:
                for k, proposal_id in enumerate(ids, start=n + 1):
                    store.stage_import(k, payload(proposal_id))
            else:
                stage(store, ids, raft_index)
            disk.commit()
            n += size
        assert store.verify() == TOTAL
        with disk.read_txn() as txn:
            return {bytes(k): bytes(v) for k, v in txn.cursor(db=disk.dbs[b"proposals"])}
    finally:
        disk.close()


def expected_remembered() -> set[bytes]:
    # Boundaries 24, 32, 40 are past the window: they forget ids below 8, 16 and 24.
    return {pid(n) for n in range(24, TOTAL + 1)}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_PRUNE_CHUNK", CHUNK)


@pytest.mark.usefixtures("small_chunks")
def test_dedup_window_forgets_old_ids_and_keeps_recent_ones(tmp_path: Path) -> None:
    disk = open_disk(tmp_path / "store")
    try:
        store = EventStore(disk, dedup_window=WINDOW)
        stage(store, [pid(n) for n in range(1, TOTAL + 1)], raft_index=1)
        assert store.index_of(pid(1)) is None
        assert store.index_of(pid(23)) is None
        assert store.index_of(pid(24)) == 24
        assert store.index_of(pid(TOTAL)) == TOTAL
        disk.commit()
        # A forgotten id is stored again as a new entry; a remembered one is still dropped.
        resolved = stage(store, [pid(1), pid(30)], raft_index=2)
        disk.commit()
        assert resolved == {pid(1): TOTAL + 1, pid(30): 30}
        assert store.verify() == TOTAL + 1
    finally:
        disk.close()


@pytest.mark.usefixtures("small_chunks")
def test_nothing_is_forgotten_within_the_window(tmp_path: Path) -> None:
    disk = open_disk(tmp_path / "store")
    try:
        store = EventStore(disk, dedup_window=WINDOW)
        stage(store, [pid(n) for n in range(1, WINDOW + 1)], raft_index=1)
        disk.commit()
        assert all(store.index_of(pid(n)) == n for n in range(1, WINDOW + 1))
    finally:
        disk.close()


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize(
    "sizes",
    [
        [TOTAL],
        [5, 5, 5, 5, 5, 5, 5, 5],
        [3, 10, 14, 13],
        [1, 37, 2],
        [23, 17],  # the second batch starts at 24, a multiple of the chunk
        [1, 38, 1],  # the last batch is entry 40 alone
        [1] * TOTAL,  # one entry per batch
    ],
)
def test_pruning_is_independent_of_batch_splits(tmp_path: Path, sizes: list[int]) -> None:
    remembered = staged_in_splits(tmp_path, sizes)
    assert set(remembered) == expected_remembered()
    assert remembered == staged_in_splits(tmp_path, [TOTAL])


@pytest.mark.usefixtures("small_chunks")
def test_import_and_stage_prune_alike(tmp_path: Path) -> None:
    imported = staged_in_splits(tmp_path, [TOTAL], imported=True)
    assert imported == staged_in_splits(tmp_path, [TOTAL])
