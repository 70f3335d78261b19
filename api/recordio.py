"""Mesos RecordIO framing: ``<decimal length>\\n<payload>``, repeated. Pure: no I/O.

Streaming responses carry one serialized event per record, and HTTP chunk
boundaries are unrelated to record boundaries, so the decoder is incremental.
"""

from __future__ import annotations

from typing import NoReturn

# Default cap on one record; a length above it is treated as garbage, not a
# reason to buffer that much.
MAX_RECORD_BYTES = 64 * 1024 * 1024

# 2**64 - 1 has 20 digits; a longer header line can only be garbage, and
# checking this bounds the bytes buffered while looking for the newline.
_MAX_HEADER_BYTES = 20


class RecordIOError(ValueError):
    """The stream is not valid RecordIO."""


def encode(payload: bytes) -> bytes:
    """Frame one payload as a record."""
    if not payload:
        raise ValueError("a RecordIO record cannot be empty")
    return b"%d\n" % len(payload) + payload


class Decoder:
    """Splits a RecordIO byte stream, fed in arbitrary chunks, into payloads.

    After the first malformed header every call raises: the next header's
    position is unknown, so the rest of the stream cannot be trusted.
    """

    __slots__ = ("_buffer", "_failed", "_length", "_max_record_bytes")

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        if max_record_bytes < 1:
            raise ValueError("max_record_bytes must be positive")
        self._max_record_bytes = max_record_bytes
        self._buffer = bytearray()
        self._length: int | None = None  # payload length once its header is read
        self._failed: str | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add a chunk; return the records it completes, in order."""
        self._check_usable()
        buffer = self._buffer
        buffer += data
        records: list[bytes] = []
        position, end = 0, len(buffer)
        while True:
            if self._length is None:
                newline = buffer.find(b"\n", position, position + _MAX_HEADER_BYTES + 1)
                if newline < 0:
                    if end - position > _MAX_HEADER_BYTES:
                        start = bytes(buffer[position : position + 24])
                        self._fail(f"length header too long: {start!r}")
                    break
                self._length = self._parse_length(bytes(buffer[position:newline]))
                position = newline + 1
            if end - position < self._length:
                break
            records.append(bytes(buffer[position : position + self._length]))
            position += self._length
            self._length = None
        # One compaction per chunk, not per record; deleting a bytearray's
        # prefix is cheap in CPython (it moves the start pointer).
        del buffer[:position]
        return records

    def pending(self) -> int:
        """Bytes held: a partial length header, or a record's payload received so far."""
        return len(self._buffer)

    def finish(self) -> None:
        """Declare the end of the stream; raise if it stopped inside a record."""
        self._check_usable()
        if self._length is not None:
            raise RecordIOError(
                f"stream ended inside a record ({len(self._buffer)} of {self._length} bytes)"
            )
        if self._buffer:
            raise RecordIOError(f"stream ended inside a length header: {bytes(self._buffer)!r}")

    def _parse_length(self, header: bytes) -> int:
        # bytes.isdigit() is ASCII-only: rejects blanks, signs and empty headers.
        if not header.isdigit():
            self._fail(f"malformed length header: {header!r}")
        length = int(header)
        if length == 0:
            self._fail("record length 0 is not allowed")
        if length > self._max_record_bytes:
            self._fail(f"record length {length} exceeds the limit of {self._max_record_bytes}")
        return length

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise RecordIOError(f"decoder failed earlier: {self._failed}")

    def _fail(self, reason: str) -> NoReturn:
        self._failed = reason
        self._buffer.clear()
        self._length = None
        raise RecordIOError(reason)
