"""SnapshotSerializer without pysyncobj: build, transfer in chunks, install, refuse damage."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from meseta.log import snapshot as snapshot_module
from meseta.log.codec import encode_batch, encode_entry
from meseta.log.disk import LogDisk
from meseta.log.journal import LmdbJournal
from meseta.log.sequencer import sequence_batch
from meseta.log.snapshot import SnapshotSerializer
from meseta.log.store import EventStore
from meseta.log.v1.entries_pb2 import Entry
from meseta.log.v1.replication_pb2 import Batch

MAP_SIZE = 256 * 1024**2


class Stopped(Exception):
    pass


def stop(message: str) -> NoReturn:
    raise Stopped(message)


@dataclass
class Replica:
    disk: LogDisk
    store: EventStore
    journal: LmdbJournal
    snapshots: SnapshotSerializer


@pytest.fixture
def make_replica(tmp_path: Path) -> Iterator[Any]:
    opened: list[Replica] = []

    def make(name: str, chunk_bytes: int = 4096) -> Replica:
        disk = LogDisk(tmp_path / name / "store", map_size=MAP_SIZE)
        store, journal = EventStore(disk), LmdbJournal(disk)
        snapshots = SnapshotSerializer(
            tmp_path / name / "snapshot",
            disk,
            store,
            journal,
            chunk_bytes=chunk_bytes,
            make_node=str,
            fail_stop=stop,
        )
        replica = Replica(disk, store, journal, snapshots)
        opened.append(replica)
        return replica

    try:
        yield make
    finally:
        for replica in opened:
            replica.disk.close()


class FakeNode:
    def __init__(self, address: str) -> None:
        self.address = address


def apply_entries(replica: Replica, count: int, raft_index: int) -> None:
    payloads = []
    for _ in range(count):
        entry = Entry()
        entry.header.proposal_id = uuid.uuid4().bytes
        entry.events = b"e" * 100
        payloads.append(encode_entry(entry))
    batch = Batch()
    batch.ParseFromString(encode_batch(payloads))
    sequenced = sequence_batch(batch, replica.store.last_index, replica.store.index_of)
    replica.store.stage(sequenced, raft_index)
    replica.disk.commit()


def build_snapshot(replica: Replica, raft_index: int) -> None:
    last, previous = (b"cmd-last", raft_index, 3), (b"cmd-prev", raft_index - 1, 3)
    cluster = {FakeNode("127.0.0.1:1"), FakeNode("127.0.0.1:2"), None}
    replica.snapshots.serialize((None, last, previous, cluster), raft_index - 1)
    deadline = time.monotonic() + 10
    while True:
        state, _ = replica.snapshots.checkSerializing()
        if state != snapshot_module.SERIALIZING:
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert state == snapshot_module.SUCCESS


def transfer(source: Replica, target: Replica, damage: Any = None) -> bool:
    """Send the snapshot chunk by chunk as pysyncobj would; True once installed."""
    for _ in range(10_000):
        data = source.snapshots.getTransmissionData("peer")
        assert data is not None
        chunk, is_first, is_last = data
        if damage is not None:
            chunk = damage(chunk, is_first)
        if target.snapshots.setTransmissionData((chunk, is_first, is_last)):
            return True
        if is_last:
            return False
    raise AssertionError("the transfer never ended")


def test_snapshot_moves_entries_to_a_lagging_replica(make_replica: Any) -> None:
    leader, fresh = make_replica("leader"), make_replica("fresh")
    apply_entries(leader, 30, raft_index=5)
    apply_entries(leader, 200, raft_index=9)
    build_snapshot(leader, raft_index=9)
    assert transfer(leader, fresh)
    loaded = fresh.snapshots.deserialize()
    assert loaded[1] == (b"cmd-last", 9, 3) and loaded[2] == (b"cmd-prev", 8, 3)
    assert loaded[3] == {"127.0.0.1:1", "127.0.0.1:2"}
    assert fresh.store.last_index == 230 and fresh.store.last_raft_index == 9
    assert fresh.store.read(1, 231) == leader.store.read(1, 231)
    assert fresh.snapshots.snapshots_installed == 1


def test_a_snapshot_that_disagrees_with_local_entries_stops_the_replica(
    make_replica: Any,
) -> None:
    leader, other = make_replica("leader"), make_replica("other")
    apply_entries(leader, 50, raft_index=4)
    apply_entries(other, 20, raft_index=2)  # different entries at the same indexes
    build_snapshot(leader, raft_index=4)
    assert transfer(leader, other)
    with pytest.raises(Stopped, match="disagrees with the local entry 20"):
        other.snapshots.deserialize()


@pytest.mark.parametrize("where", ["first-chunk", "later-chunk"])
def test_a_damaged_transfer_stops_the_replica(make_replica: Any, where: str) -> None:
    leader, fresh = make_replica("leader", chunk_bytes=1024), make_replica("fresh")
    apply_entries(leader, 100, raft_index=3)
    build_snapshot(leader, raft_index=3)
    seen = {"chunks": 0}

    def flip(chunk: bytes, is_first: bool) -> bytes:
        seen["chunks"] += 1
        hit = is_first if where == "first-chunk" else seen["chunks"] == 5
        if not hit or not chunk:
            return chunk
        damaged = bytearray(chunk)
        damaged[len(damaged) // 2] ^= 0x01
        return bytes(damaged)

    with pytest.raises(Stopped, match="received a bad snapshot"):
        transfer(leader, fresh, flip)
    # The damaged file was never put in place of a good one.
    assert not fresh.snapshots.path.exists()
    assert fresh.store.last_index == 0


def test_a_restart_keeps_the_local_store_and_trims_the_journal(make_replica: Any) -> None:
    replica = make_replica("node")
    for raft_index in range(1, 8):
        replica.journal.add(b"c%d" % raft_index, raft_index, 1)
    apply_entries(replica, 40, raft_index=6)
    replica.snapshots.serialize((None, (b"c6", 6, 1), (b"c5", 5, 1), set()), 5)
    while replica.snapshots.checkSerializing()[0] == snapshot_module.SERIALIZING:
        time.sleep(0.01)
    # Killed before pysyncobj compacted the journal: it still starts at 1.
    loaded = replica.snapshots.deserialize()
    assert loaded[1] == (b"c6", 6, 1)
    assert replica.journal[0] == (b"c5", 5, 1) and replica.journal[1] == (b"c6", 6, 1)
    assert replica.store.last_index == 40
