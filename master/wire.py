"""Protobuf wire framing by hand (pure), where building a message would copy its parts.

Used to frame a log entry's command batch (`master/decide.py`), to renumber fields from
one message type into another (an agent's re-registration, `api/agent_link.py`; a reported
task's TaskInfo, `master/appliers/agents.py`) and to frame the read side's pre-encoded
protobuf answers (`projections/assembly.py`).
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


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at `data[at:]` and the offset after it."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def renumbered(message: bytes, numbers: dict[int, int]) -> bytes:
    """The encoded `message` with its fields numbered anew by `numbers`, each value's bytes
    copied as they are; fields that `numbers` does not name are left out."""
    out: list[bytes] = []
    at, end = 0, len(message)
    while at < end:
        key, at = read_varint(message, at)
        start = at
        wire_type = key & 7
        if wire_type == 0:
            _, at = read_varint(message, at)
        elif wire_type == 1:
            at += 8
        elif wire_type == 2:
            size, at = read_varint(message, at)
            at += size
        elif wire_type == 5:
            at += 4
        else:  # groups (3, 4): proto2's deprecated form, in none of our messages
            raise ValueError(f"unsupported wire type {wire_type}")
        if at > end:
            raise ValueError("truncated message")
        number = numbers.get(key >> 3)
        if number is not None:
            out.append(varint(number << 3 | wire_type))
            out.append(message[start:at])
    return b"".join(out)
