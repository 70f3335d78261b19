"""Protobuf wire framing by hand (pure), where building a message would copy its parts.

Used to frame a log entry's command batch (`master/decide.py`) and the read side's
pre-encoded protobuf answers (`projections/assembly.py`).
"""

from __future__ import annotations


def varint(value: int) -> bytes:
    """A non-negative int in protobuf's base-128 varint encoding."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Varints of the lengths most messages have, precomputed: framing is on hot paths.
SHORT_VARINTS = [varint(n) for n in range(1 << 14)]


def proto_field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    size = len(payload)
    length = SHORT_VARINTS[size] if size < 1 << 14 else varint(size)
    return SHORT_VARINTS[number << 3 | 2] + length + payload
