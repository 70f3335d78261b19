"""Turning decisions into log entries (pure): one CommandBatch per entry."""

from __future__ import annotations

from meseta.log.v1.entries_pb2 import Entry
from meseta.master.v1 import commands_pb2


def entry(*commands: commands_pb2.Command) -> Entry:
    """An entry whose body applies `commands` in order; the log stamps the header."""
    batch = commands_pb2.CommandBatch(commands=commands)
    return Entry(events=batch.SerializeToString())


def command(**body: object) -> commands_pb2.Command:
    """`command(kill_task=KillTask(...))`: one command with the given body."""
    return commands_pb2.Command(**body)  # type: ignore[arg-type]
