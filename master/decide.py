"""Turning decisions into log entries (pure): one CommandBatch per entry."""

from __future__ import annotations

from meseta.log.v1.entries_pb2 import Entry
from meseta.master.v1 import commands_pb2
from meseta.master.wire import proto_field

COMMANDS_FIELD = 1  # CommandBatch.commands


def entry(*commands: commands_pb2.Command | bytes) -> Entry:
    """An entry whose body applies `commands` (messages, or already encoded) in order; the
    log stamps the header.

    The batch is framed by hand, to the bytes `CommandBatch(commands=...)` would give:
    that constructor deep-copies every command first, which cost a re-registering agent
    with 10 tasks 22 us of the leader's time, 4x the encoding itself.
    """
    return Entry(events=b"".join([proto_field(COMMANDS_FIELD, encoded(c)) for c in commands]))


def encoded(command: commands_pb2.Command | bytes) -> bytes:
    return command if isinstance(command, bytes) else command.SerializeToString()


def command(**body: object) -> commands_pb2.Command:
    """`command(kill_task=KillTask(...))`: one command with the given body."""
    return commands_pb2.Command(**body)  # type: ignore[arg-type]
