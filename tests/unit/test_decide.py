"""decide.entry frames commands by hand (master/wire.py) to CommandBatch's own bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meseta.master import decide, wire
from meseta.master.v1 import commands_pb2 as c


def test_entry_bytes_are_the_command_batch_encoding() -> None:
    small = decide.command(tick=c.Tick())
    empty = c.Command()  # encodes to no bytes at all
    # Bodies past 127 and 16,383 bytes take two- and three-byte length varints.
    medium = decide.command(kill_task=c.KillTask(framework_id="f" * 200, task_id="t"))
    large = decide.command(kill_task=c.KillTask(framework_id="f" * 20_000, task_id="t"))
    commands = (small, empty, medium, large, small)
    want = c.CommandBatch(commands=commands).SerializeToString()
    assert decide.entry(*commands).events == want
    assert decide.entry().events == b""
    parsed = c.CommandBatch.FromString(decide.entry(*commands).events)
    assert list(parsed.commands) == list(commands)


@given(st.integers(min_value=1, max_value=2**64 - 1))
def test_varint_matches_protobuf(value: int) -> None:
    # ElectLeader.term is a uint64 field 1: the tag byte 0x08, then the value as a varint.
    encoded = c.ElectLeader(term=value).SerializePartialToString()
    assert encoded == b"\x08" + wire.varint(value)


def test_varint_of_zero() -> None:
    assert wire.varint(0) == b"\x00"
