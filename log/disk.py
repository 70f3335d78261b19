"""One LMDB environment per replica, and its group commit.

The Raft journal and the event store live in the same environment so that one
fsynced transaction makes both durable. Only the replica's writer thread (the
Raft tick thread) writes: it stages everything of a tick into one open write
transaction and commits it with `commit()` before any message leaves the
replica and at the end of the tick.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import lmdb
import lmdb.verify as lmdb_verify

from meseta.log.errors import LogCorrupted

# The map is a sparse reservation on 64-bit Linux; LMDB's 10 MiB default would
# make the store fail as soon as it holds a few thousand entries.
DEFAULT_MAP_SIZE = 64 * 1024**3
# Reader slots are shared by every process that opens the environment.
DEFAULT_MAX_READERS = 1024

DB_NAMES = (b"entries", b"proposals", b"store_meta", b"journal", b"journal_meta")


class LogDisk:
    """The replica's LMDB environment: named databases and the staged write txn."""

    def __init__(
        self,
        path: Path,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_readers: int = DEFAULT_MAX_READERS,
        fsync: bool = True,
    ) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        check_not_truncated(path)
        try:
            self.env = lmdb.open(
                str(path),
                map_size=map_size,
                max_readers=max_readers,
                max_dbs=len(DB_NAMES),
                sync=fsync,
                metasync=fsync,
                writemap=False,
                lib_version=0,
                max_spare_txns=0,
            )
        except lmdb.Error as error:
            raise LogCorrupted(f"cannot open the log store at {path}: {error}") from error
        self.env.reader_check()
        self.dbs = {name: self.env.open_db(name) for name in DB_NAMES}
        self._txn: lmdb.Transaction | None = None
        self.dirty_since = 0.0
        self._critical = False
        self._after_commit: list[Callable[[], None]] = []
        self._before_commit: list[Callable[[], None]] = []

    def write_txn(self) -> lmdb.Transaction:
        """The open write transaction of this tick (begun on first use)."""
        if self._txn is None:
            self._txn = self.env.begin(write=True)
            self.dirty_since = time.monotonic()
        return self._txn

    @property
    def dirty(self) -> bool:
        return self._txn is not None

    @property
    def critical(self) -> bool:
        """Staged writes include some a peer may be told about (journal, vote)."""
        return self._critical

    def mark_critical(self) -> None:
        self._critical = True

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the staged writes are durable."""
        self._after_commit.append(callback)

    def before_commit(self, hook: Callable[[], None]) -> None:
        """Register `hook` to stage last writes into every non-empty commit."""
        self._before_commit.append(hook)

    def commit(self) -> None:
        """Make everything staged durable (one fsynced transaction)."""
        if self._txn is not None:
            for hook in self._before_commit:
                hook()
        txn, self._txn = self._txn, None
        self._critical = False
        if txn is not None:
            txn.commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def read_txn(self) -> lmdb.Transaction:
        return self.env.begin(write=False)

    def used_bytes(self) -> int:
        """The environment's size up to its last used page (free pages inside it included)."""
        return (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]

    def close(self) -> None:
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
        self.env.close()


def check_not_truncated(path: Path) -> None:
    """Refuse a data file shorter than its own meta pages say.

    LMDB maps the file and would die of SIGBUS on a page past its end, so a
    truncated store is caught here with a clear message instead.
    """
    data_file = path / "data.mdb"
    if not data_file.exists():
        return
    size = data_file.stat().st_size
    if size == 0:
        raise LogCorrupted(f"{data_file} is empty: the log store is truncated")
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(DB_NAMES), lib_version=0)
    except lmdb.Error as error:
        raise LogCorrupted(f"cannot open the log store at {path}: {error}") from error
    try:
        info, stat = env.info(), env.stat()
    finally:
        env.close()
    needed = (int(info["last_pgno"]) + 1) * int(stat["psize"])
    if size >= needed:
        return
    # LMDB's last page number also counts pages a transaction allocated and
    # freed before committing, which were never written, so a short file is
    # only suspicious: walk it with py-lmdb's offline verifier, which reads the
    # file without mapping it.
    problems: list[str] = lmdb_verify.verify(str(path))  # type: ignore[no-untyped-call]
    if problems:
        raise LogCorrupted(
            f"{data_file} is {size} bytes, its pages reach {needed} bytes, and the "
            f"verifier reports {len(problems)} problem(s) (first: {problems[0]}): "
            "the log store is truncated or corrupt"
        )


def fsync_directory(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
