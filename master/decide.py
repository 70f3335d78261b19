"""Turning decisions into log entries (pure): one CommandBatch per entry."""

from __future__ import annotations

from meseta.log.v1.entries_pb2 import Entry
from meseta.master.v1 import commands_pb2

# CommandBatch.commands is field 1, length-delimited: each command is this tag, its length
# as a varint, then its bytes.
_COMMANDS_TAG = b"\x0a"


def entry(*commands: commands_pb2.Command) -> Entry:
    """An entry whose body applies `commands` in order; the log stamps the header.

    The batch is framed by hand, to the bytes `CommandBatch(commands=...)` would give:
    that constructor deep-copies every command first, which cost a re-registering agent
    with 10 tasks 22 us of the leader's time, 4x the encoding itself.
    """
    parts: list[bytes] = []
    for command in commands:
        body = command.SerializeToString()
        parts += (_COMMANDS_TAG, varint(len(body)), body)
    return Entry(events=b"".join(parts))


def varint(value: int) -> bytes:
    """A non-negative int in protobuf's base-128 varint encoding."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def command(**body: object) -> commands_pb2.Command:
    """`command(kill_task=KillTask(...))`: one command with the given body."""
    return commands_pb2.Command(**body)  # type: ignore[arg-type]
