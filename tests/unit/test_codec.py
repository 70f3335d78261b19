"""meseta.log.codec: entry and batch encoding, size cap, CRC framing, index keys."""

from __future__ import annotations

import pytest

from meseta.log import codec
from meseta.log.errors import EntryTooLarge, LogCorrupted
from meseta.log.v1.entries_pb2 import Entry


def make_entry(proposal_id: bytes = b"p-1", events: bytes = b"some events") -> Entry:
    entry = Entry(events=events)
    entry.header.proposal_id = proposal_id
    entry.header.schema_version = codec.SCHEMA_VERSION
    entry.header.timestamp_ns = 1_700_000_000_123_456_789
    entry.header.proposer_term = 7
    entry.header.ignorable_if_unknown = True
    return entry


def test_entry_round_trip() -> None:
    entry = make_entry(events=bytes(range(256)))
    payload = codec.encode_entry(entry)
    decoded = codec.decode_entry(payload)
    assert decoded == entry
    assert decoded.header.proposal_id == b"p-1"
    assert decoded.header.timestamp_ns == 1_700_000_000_123_456_789
    assert decoded.header.proposer_term == 7
    assert decoded.events == bytes(range(256))
    assert codec.proposal_id_of(payload) == b"p-1"


def test_entry_size_cap_is_inclusive_and_names_size_and_limit() -> None:
    entry = make_entry()
    size = len(entry.SerializeToString())
    # Exactly at the limit is accepted...
    assert codec.encode_entry(entry, limit_bytes=size) == entry.SerializeToString()
    # ...one byte over is refused.
    limit = size - 1
    with pytest.raises(EntryTooLarge) as caught:
        codec.encode_entry(entry, limit_bytes=limit)
    assert caught.value.size_bytes == size
    assert caught.value.limit_bytes == limit
    assert str(size) in str(caught.value)
    assert str(limit) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def entry_of_size(size: int) -> Entry:
    entry = Entry()
    entry.header.proposal_id = b"x"
    entry.events = b"e" * size
    while (excess := len(entry.SerializeToString()) - size) != 0:
        entry.events = (
            entry.events[: len(entry.events) - excess]
            if excess > 0
            else (entry.events + b"e" * -excess)
        )
    return entry


def test_default_cap_is_max_entry_bytes() -> None:
    at_limit = entry_of_size(codec.MAX_ENTRY_BYTES)
    assert len(codec.encode_entry(at_limit)) == codec.MAX_ENTRY_BYTES
    over = entry_of_size(codec.MAX_ENTRY_BYTES + 1)
    with pytest.raises(EntryTooLarge) as caught:
        codec.encode_entry(over)
    assert caught.value.size_bytes == codec.MAX_ENTRY_BYTES + 1
    assert caught.value.limit_bytes == codec.MAX_ENTRY_BYTES


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x0a\x05ab",  # field 1, length 5, only 2 bytes follow
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # an over-long varint tag
        b"\x0a\x80",  # truncated length varint
        b"\x07",  # field 0 is never valid
    ],
)
def test_decode_garbage_raises_log_corrupted(garbage: bytes) -> None:
    with pytest.raises(LogCorrupted, match="undecodable log entry"):
        codec.decode_entry(garbage)
    with pytest.raises(LogCorrupted):
        codec.proposal_id_of(garbage)
    with pytest.raises(LogCorrupted, match="undecodable replicated batch"):
        codec.decode_batch(garbage)


@pytest.mark.parametrize("payload", [b"", b"x", bytes(range(256)) * 3])
def test_frame_round_trip(payload: bytes) -> None:
    framed = codec.frame(payload)
    assert len(framed) == len(payload) + 4
    assert codec.unframe(framed, "thing") == payload


def test_every_flipped_byte_is_detected() -> None:
    framed = codec.frame(b"a stored value with some length")
    for position in range(len(framed)):
        damaged = bytearray(framed)
        damaged[position] ^= 0x01
        with pytest.raises(LogCorrupted, match="CRC mismatch"):
            codec.unframe(bytes(damaged), "entry 3")


@pytest.mark.parametrize("keep", [0, 1, 3])
def test_value_shorter_than_the_crc_is_truncated(keep: int) -> None:
    framed = codec.frame(b"payload")
    with pytest.raises(LogCorrupted, match="truncated") as caught:
        codec.unframe(framed[:keep], "entry 9")
    assert "entry 9" in str(caught.value)


@pytest.mark.parametrize("cut", [1, 5, 10])
def test_truncated_payload_is_detected(cut: int) -> None:
    framed = codec.frame(b"0123456789abcdef")
    with pytest.raises(LogCorrupted):
        codec.unframe(framed[:-cut], "entry 1")


def test_index_key_byte_order_is_numeric_order() -> None:
    numbers = [0, 1, 2, 9, 10, 127, 128, 255, 256, 257, 1000, 65535, 65536, 2**32 - 1, 2**32,
               2**32 + 1, 2**40, 2**64 - 1]  # fmt: skip
    keys = [codec.index_key(n) for n in reversed(numbers)]
    assert sorted(keys) == [codec.index_key(n) for n in sorted(numbers)]
    assert all(len(key) == 8 for key in keys)
    assert [codec.key_index(codec.index_key(n)) for n in numbers] == numbers


def test_batch_round_trip_with_barriers() -> None:
    payloads = [codec.encode_entry(make_entry(b"p-%d" % n)) for n in range(5)]
    barriers = [b"barrier-1", b"barrier-2"]
    batch = codec.decode_batch(codec.encode_batch(payloads, barriers))
    assert list(batch.entries) == payloads
    assert list(batch.barriers) == barriers
    assert [codec.proposal_id_of(p) for p in batch.entries] == [b"p-%d" % n for n in range(5)]


def test_batch_of_only_barriers_and_empty_batch() -> None:
    only_barriers = codec.decode_batch(codec.encode_batch([], [b"b"]))
    assert list(only_barriers.entries) == []
    assert list(only_barriers.barriers) == [b"b"]
    empty = codec.decode_batch(codec.encode_batch([]))
    assert list(empty.entries) == [] and list(empty.barriers) == []
