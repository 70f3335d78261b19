"""meseta.log.snapshot: the snapshot file format and its verification."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meseta.log import snapshot
from meseta.log.errors import LogCorrupted
from meseta.log.v1.replication_pb2 import RaftEntry, SnapshotHeader

BODY = bytes(range(256)) * 3 + b"the tail of the body"


def make_header() -> SnapshotHeader:
    return SnapshotHeader(
        format_version=snapshot.FORMAT_VERSION,
        last=RaftEntry(command=b"last-cmd", index=120, term=4),
        previous=RaftEntry(command=b"prev-cmd", index=119, term=4),
        cluster=["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"],
        last_entry_index=1234,
    )


def write(tmp_path: Path, body: bytes = BODY, name: str = "snapshot") -> Path:
    body_file = tmp_path / f"{name}.body"
    body_file.write_bytes(body)
    target = tmp_path / name
    snapshot.write_snapshot_file(target, make_header(), body_file)
    return target


def test_round_trip(tmp_path: Path) -> None:
    target = write(tmp_path)
    header, offset = snapshot.read_snapshot_file(target)
    expected = make_header()
    expected.body_bytes = len(BODY)
    assert header == expected
    data = target.read_bytes()
    assert data.startswith(snapshot.MAGIC)
    assert data.endswith(snapshot.END)
    assert data[offset : offset + header.body_bytes] == BODY
    assert len(data) == offset + len(BODY) + 4 + len(snapshot.END)


def test_round_trip_of_an_empty_body(tmp_path: Path) -> None:
    target = write(tmp_path, b"")
    header, offset = snapshot.read_snapshot_file(target)
    assert header.body_bytes == 0
    assert offset + 4 + len(snapshot.END) == target.stat().st_size


def test_body_larger_than_a_copy_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "_COPY_CHUNK", 100)
    body = os.urandom(1050)
    target = write(tmp_path, body)
    header, offset = snapshot.read_snapshot_file(target)
    assert target.read_bytes()[offset : offset + header.body_bytes] == body
    damaged = bytearray(target.read_bytes())
    damaged[offset + 777] ^= 0x10
    target.write_bytes(bytes(damaged))
    with pytest.raises(LogCorrupted, match="CRC mismatch"):
        snapshot.read_snapshot_file(target)


def damage(target: Path, data: bytes) -> Path:
    target.write_bytes(data)
    return target


def test_bad_magic(tmp_path: Path) -> None:
    target = write(tmp_path)
    data = target.read_bytes()
    with pytest.raises(LogCorrupted, match="bad magic"):
        snapshot.read_snapshot_file(damage(target, b"NOT-A-SNAPSHOT!\n" + data[16:]))
    with pytest.raises(LogCorrupted, match="bad magic"):
        snapshot.read_snapshot_file(damage(target, b""))


def test_truncated_anywhere(tmp_path: Path) -> None:
    good = write(tmp_path).read_bytes()
    target = tmp_path / "damaged"
    for cut in range(len(good)):
        with pytest.raises(LogCorrupted):
            snapshot.read_snapshot_file(damage(target, good[:cut]))


def test_flipped_byte_anywhere(tmp_path: Path) -> None:
    good = write(tmp_path).read_bytes()
    target = tmp_path / "damaged"
    for position in range(len(good)):
        for mask in (0x01, 0x80):
            data = bytearray(good)
            data[position] ^= mask
            with pytest.raises(LogCorrupted):
                snapshot.read_snapshot_file(damage(target, bytes(data)))


def test_flipped_byte_in_body_and_header_are_crc_errors(tmp_path: Path) -> None:
    target = write(tmp_path)
    good = target.read_bytes()
    _, offset = snapshot.read_snapshot_file(target)
    in_body = bytearray(good)
    in_body[offset + 10] ^= 0x01
    with pytest.raises(LogCorrupted, match="CRC mismatch"):
        snapshot.read_snapshot_file(damage(target, bytes(in_body)))
    # A byte of the cluster address string: still a valid protobuf, same sizes.
    in_header = bytearray(good)
    in_header[good.index(b"127.0.0.1:7002") + 3] ^= 0x01
    with pytest.raises(LogCorrupted, match="CRC mismatch"):
        snapshot.read_snapshot_file(damage(target, bytes(in_header)))


@pytest.mark.parametrize("extra", [b"\x00", b"END-SNAP", b"x" * 1000])
def test_extra_trailing_bytes(tmp_path: Path, extra: bytes) -> None:
    target = write(tmp_path)
    with pytest.raises(LogCorrupted, match="truncated or corrupt"):
        snapshot.read_snapshot_file(damage(target, target.read_bytes() + extra))


def test_unknown_format_version(tmp_path: Path) -> None:
    body_file = tmp_path / "body"
    body_file.write_bytes(BODY)
    header = make_header()
    header.format_version = snapshot.FORMAT_VERSION + 1
    target = tmp_path / "snapshot"
    snapshot.write_snapshot_file(target, header, body_file)
    with pytest.raises(LogCorrupted, match="format"):
        snapshot.read_snapshot_file(target)


def test_written_through_a_partial_file_then_renamed(tmp_path: Path) -> None:
    partial = tmp_path / "snapshot.partial"
    partial.write_bytes(b"leftover of a crashed write")
    target = write(tmp_path)
    assert not partial.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot", "snapshot.body"]
    snapshot.read_snapshot_file(target)


def test_a_failed_write_keeps_the_previous_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = write(tmp_path)
    before = target.read_bytes()
    new_body = tmp_path / "new.body"
    new_body.write_bytes(b"a newer body" * 100)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "simulated I/O error")

    monkeypatch.setattr(snapshot.os, "fsync", failing_fsync)
    header = make_header()
    header.last_entry_index = 9999
    with pytest.raises(OSError, match="simulated"):
        snapshot.write_snapshot_file(target, header, new_body)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert snapshot.read_snapshot_file(target)[0].last_entry_index == 1234


def test_a_missing_body_keeps_the_previous_snapshot(tmp_path: Path) -> None:
    target = write(tmp_path)
    before = target.read_bytes()
    with pytest.raises(FileNotFoundError):
        snapshot.write_snapshot_file(target, make_header(), tmp_path / "no-such-body")
    assert target.read_bytes() == before
