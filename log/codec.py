"""Entry and batch encoding: size caps, CRC framing. Pure: no I/O, no clock.

Stored values are framed as ``crc32(payload) (4 bytes, big-endian) + payload``
so that a flipped or truncated value is detected when it is read back.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from meseta.log.errors import EntryTooLarge, LogCorrupted
from meseta.log.v1.entries_pb2 import Entry
from meseta.log.v1.replication_pb2 import Batch

# Version of the entry schema this code writes. Readers keep accepting every
# older version; bump it only together with an upcaster.
SCHEMA_VERSION = 1

# Hard cap on one encoded entry. pysyncobj replicates a Raft entry larger than
# its append batch size through a buggy chunked path, and pickles bytes at up
# to 1.5x their size, so the Raft adapter sizes its batch limit from this cap.
MAX_ENTRY_BYTES = 512 * 1024

# A batch is cut before it would exceed this many payload bytes (a single entry
# up to MAX_ENTRY_BYTES always fits alone).
MAX_BATCH_BYTES = MAX_ENTRY_BYTES

_CRC = struct.Struct(">I")
INDEX_KEY = struct.Struct(">Q")


def encode_entry(entry: Entry, limit_bytes: int = MAX_ENTRY_BYTES) -> bytes:
    """Encode an entry, refusing one over the size cap."""
    payload = entry.SerializeToString()
    if len(payload) > limit_bytes:
        raise EntryTooLarge(len(payload), limit_bytes)
    return payload


def decode_entry(payload: bytes) -> Entry:
    """Decode an entry; undecodable bytes mean the log is corrupt."""
    entry = Entry()
    try:
        entry.ParseFromString(payload)
    except Exception as error:  # protobuf raises DecodeError and friends
        raise LogCorrupted(f"undecodable log entry ({len(payload)} bytes): {error}") from error
    return entry


def proposal_id_of(payload: bytes) -> bytes:
    """The proposal id of an encoded entry."""
    return decode_entry(payload).header.proposal_id


def encode_batch(entries: Sequence[bytes], barriers: Sequence[bytes] = ()) -> bytes:
    batch = Batch()
    batch.entries.extend(entries)
    batch.barriers.extend(barriers)
    return batch.SerializeToString()


def decode_batch(data: bytes) -> Batch:
    batch = Batch()
    try:
        batch.ParseFromString(data)
    except Exception as error:
        raise LogCorrupted(f"undecodable replicated batch ({len(data)} bytes): {error}") from error
    return batch


def frame(payload: bytes) -> bytes:
    """Prefix a stored value with its CRC32."""
    return _CRC.pack(zlib.crc32(payload)) + payload


def unframe(value: bytes | memoryview, what: str) -> bytes:
    """Check a stored value's CRC32 and return its payload."""
    if len(value) < _CRC.size:
        raise LogCorrupted(f"{what}: stored value truncated to {len(value)} bytes")
    (expected,) = _CRC.unpack_from(value)
    payload = bytes(value[_CRC.size :])
    if zlib.crc32(payload) != expected:
        raise LogCorrupted(f"{what}: CRC mismatch, the stored value is corrupt")
    return payload


def index_key(index: int) -> bytes:
    """Fixed-width big-endian key, so LMDB's byte order is numeric order."""
    return INDEX_KEY.pack(index)


def key_index(key: bytes | memoryview) -> int:
    return int(INDEX_KEY.unpack(key)[0])
