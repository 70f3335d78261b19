"""Snapshots: the event store copied at a Raft index, made off the tick thread.

A snapshot file is

    MAGIC | header length (>I) | SnapshotHeader | LMDB copy (body_bytes) | crc32 (>I) | END

where the CRC covers header and body. A file is only ever published by an
atomic rename after it was fsynced, so a replica killed while writing one keeps
the previous snapshot.

`SnapshotSerializer` plugs this into pysyncobj in place of its own serializer
(duck typed: the adapter installs it, this module does not import pysyncobj).
It builds snapshots in a background thread from a read transaction opened at
the snapshot point, sends them to lagging followers in chunks, and installs a
received one by importing the entries the local store lacks. Any error while
loading a snapshot stops the replica: pysyncobj would only log it and carry on
with whatever state it had.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NoReturn

import lmdb

from meseta.log.codec import index_key, key_index, unframe
from meseta.log.disk import LogDisk, fsync_directory
from meseta.log.errors import LogCorrupted
from meseta.log.journal import LmdbJournal, RaftEntryTuple
from meseta.log.store import EventStore
from meseta.log.v1.replication_pb2 import RaftEntry, SnapshotHeader

logger = logging.getLogger(__name__)

MAGIC = b"MESETA-SNAPSHOT\n"
END = b"END-SNAP"
FORMAT_VERSION = 1
_U32 = struct.Struct(">I")
_COPY_CHUNK = 1024 * 1024

# pysyncobj's SERIALIZER_STATE values (checked against pysyncobj by the adapter).
NOT_SERIALIZING, SERIALIZING, SUCCESS, FAILED = 0, 1, 2, 3


def write_snapshot_file(target: Path, header: SnapshotHeader, body: Path) -> None:
    """Write and fsync a snapshot file next to `target`, then rename it into place."""
    header.body_bytes = body.stat().st_size
    header_bytes = header.SerializeToString()
    partial = target.with_name(target.name + ".partial")
    with open(partial, "wb") as out, open(body, "rb") as source:
        out.write(MAGIC + _U32.pack(len(header_bytes)) + header_bytes)
        crc = zlib.crc32(header_bytes)
        while chunk := source.read(_COPY_CHUNK):
            crc = zlib.crc32(chunk, crc)
            out.write(chunk)
        out.write(_U32.pack(crc) + END)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    fsync_directory(target.parent)


def read_snapshot_file(path: Path) -> tuple[SnapshotHeader, int]:
    """Verify a snapshot file end to end; return its header and body offset."""
    size = path.stat().st_size
    with open(path, "rb") as source:
        if source.read(len(MAGIC)) != MAGIC:
            raise LogCorrupted(f"{path} is not a meseta snapshot (bad magic)")
        raw = source.read(_U32.size)
        if len(raw) < _U32.size:
            raise LogCorrupted(f"{path}: snapshot truncated in its header")
        (header_length,) = _U32.unpack(raw)
        header_bytes = source.read(header_length)
        header = SnapshotHeader()
        try:
            header.ParseFromString(header_bytes)
        except Exception as error:
            raise LogCorrupted(f"{path}: undecodable snapshot header: {error}") from error
        offset = len(MAGIC) + _U32.size + header_length
        expected_size = offset + header.body_bytes + _U32.size + len(END)
        if header.format_version != FORMAT_VERSION or size != expected_size:
            raise LogCorrupted(
                f"{path}: snapshot is {size} bytes, expected {expected_size} "
                f"(format {header.format_version}); it is truncated or corrupt"
            )
        crc = zlib.crc32(header_bytes)
        remaining = header.body_bytes
        while remaining:
            chunk = source.read(min(_COPY_CHUNK, remaining))
            crc = zlib.crc32(chunk, crc)
            remaining -= len(chunk)
        (stored,) = _U32.unpack(source.read(_U32.size))
        if stored != crc or source.read() != END:
            raise LogCorrupted(f"{path}: snapshot CRC mismatch, the file is corrupt")
    return header, offset


def _entry_tuple(entry: RaftEntry) -> RaftEntryTuple:
    return (entry.command, entry.index, entry.term)


def _raft_entry(entry: RaftEntryTuple) -> RaftEntry:
    command, index, term = entry
    return RaftEntry(command=bytes(command), index=index, term=term)


class SnapshotSerializer:
    """pysyncobj's Serializer protocol, backed by LMDB copies."""

    def __init__(
        self,
        path: Path,
        disk: LogDisk,
        store: EventStore,
        journal: LmdbJournal,
        *,
        chunk_bytes: int,
        make_node: Callable[[str], Any],
        fail_stop: Callable[[str], NoReturn],
        publish_delay_s: float = 0.0,
        after_load: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self._disk, self._store, self._journal = disk, store, journal
        self._chunk_bytes = chunk_bytes
        self._make_node = make_node
        self._fail_stop = fail_stop
        self._publish_delay_s = publish_delay_s
        self._after_load = after_load
        self._job: threading.Thread | None = None
        self._job_ok = False
        self._job_id: int | None = None
        self._outgoing: dict[Any, IO[bytes]] = {}
        self._incoming: IO[bytes] | None = None
        self._installing = False
        self.snapshots_made = 0
        self.snapshots_installed = 0
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """Drop what a replica killed mid-snapshot or mid-transfer left behind."""
        parent = self.path.parent
        for pattern in (".snapshot-*", ".install-*"):
            for leftover in parent.glob(pattern):
                shutil.rmtree(leftover, ignore_errors=True)
        for suffix in (".partial", ".incoming"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    @property
    def building(self) -> bool:
        """A snapshot is being built in the background."""
        return self._job is not None

    # -- making snapshots ------------------------------------------------------

    def serialize(self, data: tuple[Any, ...], id: int) -> None:
        if self._job is not None:
            return
        _, last, previous, cluster = data
        self._disk.commit()  # the copy must contain every applied entry
        txn = self._disk.read_txn()
        header = SnapshotHeader(
            format_version=FORMAT_VERSION,
            last=_raft_entry(last),
            previous=_raft_entry(previous),
            cluster=sorted(node.address for node in cluster if node is not None),
            last_entry_index=self._store.last_index,
        )
        self._job_id, self._job_ok = id, False
        self._job = threading.Thread(
            target=self._build, args=(txn, header), name="meseta-snapshot", daemon=True
        )
        self._job.start()

    def _build(self, txn: lmdb.Transaction, header: SnapshotHeader) -> None:
        scratch = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=self.path.parent))
        try:
            self._disk.env.copy(str(scratch), compact=True, txn=txn)
            txn.abort()
            if self._publish_delay_s:
                time.sleep(self._publish_delay_s)
            write_snapshot_file(self.path, header, scratch / "data.mdb")
            self._job_ok = True
            self.snapshots_made += 1
        except Exception:
            logger.exception("building the snapshot at raft index %d failed", header.last.index)
            txn.abort()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def checkSerializing(self) -> tuple[int, int | None]:
        if self._job is None:
            return NOT_SERIALIZING, None
        if self._job.is_alive():
            return SERIALIZING, self._job_id
        self._job.join()
        self._job = None
        for source in self._outgoing.values():
            source.close()
        self._outgoing.clear()
        return (SUCCESS if self._job_ok else FAILED), self._job_id

    # -- loading (restart, or install after a transfer) -------------------------

    def deserialize(self) -> tuple[Any, ...]:
        try:
            return self._load()
        except Exception as error:
            self._fail_stop(f"cannot load the snapshot {self.path}: {error}")

    def _load(self) -> tuple[Any, ...]:
        self._disk.commit()  # the checks below read what is stored, staged writes included
        header, offset = read_snapshot_file(self.path)
        if self._store.last_index < header.last_entry_index:
            self._import(header, offset)
        elif not self._store.read(header.last_entry_index, header.last_entry_index + 1):
            raise LogCorrupted(f"local store lacks entry {header.last_entry_index}")
        if not self._installing:
            self._trim_journal_to(header)
        if self._store.last_raft_index < header.last.index:
            self._store.stage_raft_index(header.last.index)
        self._disk.commit()
        if self._installing:
            self.snapshots_installed += 1
        self._installing = False
        self._after_load()
        cluster = {self._make_node(address) for address in header.cluster}
        return (None, _entry_tuple(header.last), _entry_tuple(header.previous), cluster)

    def _import(self, header: SnapshotHeader, offset: int) -> None:
        with tempfile.TemporaryDirectory(prefix=".install-", dir=self.path.parent) as scratch:
            body = Path(scratch) / "data.mdb"
            with open(self.path, "rb") as source, open(body, "wb") as out:
                source.seek(offset)
                remaining = header.body_bytes
                while remaining:
                    chunk = source.read(min(_COPY_CHUNK, remaining))
                    out.write(chunk)
                    remaining -= len(chunk)
            env = lmdb.open(scratch, readonly=True, lock=False, max_dbs=8, lib_version=0)
            try:
                self._import_entries(env, header)
            finally:
                env.close()

    def _import_entries(self, env: lmdb.Environment, header: SnapshotHeader) -> None:
        entries = env.open_db(b"entries", create=False)
        local_last = self._store.last_index
        with env.begin() as txn:
            if local_last:
                theirs = txn.get(index_key(local_last), db=entries)
                ours = self._store.read(local_last, local_last + 1)
                if theirs is None or not ours or unframe(theirs, "snapshot entry") != ours[0][1]:
                    raise LogCorrupted(f"the snapshot disagrees with the local entry {local_last}")
            cursor = txn.cursor(db=entries)
            if cursor.set_key(index_key(local_last + 1)):
                for key, value in cursor:
                    index = key_index(key)
                    if index > header.last_entry_index:
                        break
                    self._store.stage_import(index, unframe(value, f"snapshot entry {index}"))
        if self._store.last_index != header.last_entry_index:
            raise LogCorrupted(
                f"the snapshot ends at entry {self._store.last_index}, "
                f"its header says {header.last_entry_index}"
            )

    def _trim_journal_to(self, header: SnapshotHeader) -> None:
        """Compact the journal to the snapshot point if a crash came in between.

        pysyncobj clears a journal that does not start at the snapshot's two
        entries, which would drop durable entries after it.
        """
        previous = _entry_tuple(header.previous)
        for position in range(len(self._journal)):
            if self._journal[position] == previous:
                self._journal.deleteEntriesTo(position)
                return

    # -- transfer to and from peers --------------------------------------------

    def getTransmissionData(self, transmissionID: Any) -> Any:
        if self._job is not None:
            return None
        source = self._outgoing.get(transmissionID)
        if source is None:
            try:
                source = open(self.path, "rb")  # noqa: SIM115 - kept open across ticks
            except OSError:
                logger.exception("cannot open the snapshot for transfer")
                return None
            self._outgoing[transmissionID] = source
        is_first = source.tell() == 0
        data = source.read(self._chunk_bytes)
        is_last = not data
        if is_last:
            source.close()
            del self._outgoing[transmissionID]
        return data, is_first, is_last

    def setTransmissionData(self, data: Any) -> bool:
        if data is None:
            return False
        chunk, is_first, is_last = data
        incoming = self.path.with_name(self.path.name + ".incoming")
        if is_first:
            if self._incoming is not None:
                self._incoming.close()
            self._incoming = open(incoming, "wb")  # noqa: SIM115 - kept open across messages
        elif self._incoming is None:
            return False
        self._incoming.write(chunk)
        if not is_last:
            return False
        self._incoming.flush()
        os.fsync(self._incoming.fileno())
        self._incoming.close()
        self._incoming = None
        try:
            read_snapshot_file(incoming)
        except LogCorrupted as error:
            self._fail_stop(f"received a bad snapshot from the leader: {error}")
        os.replace(incoming, self.path)
        fsync_directory(self.path.parent)
        self._installing = True
        return True

    def cancelTransmisstion(self, id: Any) -> None:
        source = self._outgoing.pop(id, None)
        if source is not None:
            source.close()
