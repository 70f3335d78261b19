"""decide.entry frames commands by hand (master/wire.py) to CommandBatch's own bytes;
wire.renumbered renames a message's fields without decoding their values."""

from __future__ import annotations

import pytest
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


def test_entry_takes_encoded_commands_as_they_are() -> None:
    kill = decide.command(kill_task=c.KillTask(framework_id="f", task_id="t"))
    tick = decide.command(tick=c.Tick())
    assert decide.entry(kill, tick.SerializeToString()).events == decide.entry(kill, tick).events


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_read_varint_reads_what_varint_wrote(value: int) -> None:
    encoded = b"\xff" + wire.varint(value) + b"\x01"
    assert wire.read_varint(encoded, 1) == (value, 1 + len(wire.varint(value)))


def field(number: int, wire_type: int, value: bytes) -> bytes:
    return wire.varint(number << 3 | wire_type) + value


def test_renumbered_copies_every_wire_type_and_drops_unnamed_fields() -> None:
    varint_field = field(1, 0, wire.varint(300))
    fixed64 = field(2, 1, bytes(range(8)))
    delimited = field(3, 2, wire.varint(3) + b"abc")
    fixed32 = field(4, 5, bytes(range(4)))
    big = field(5, 2, wire.varint(20_000) + b"x" * 20_000)
    message = varint_field + fixed64 + delimited + fixed32 + big + delimited
    renamed = wire.renumbered(message, {1: 100, 2: 2, 3: 30, 5: 5})
    want = (
        field(100, 0, wire.varint(300))
        + fixed64
        + field(30, 2, wire.varint(3) + b"abc")
        + big
        + field(30, 2, wire.varint(3) + b"abc")
    )
    assert renamed == want
    assert wire.renumbered(b"", {1: 2}) == b""


def test_renumbered_refuses_truncated_or_group_fields() -> None:
    with pytest.raises(ValueError, match="truncated"):
        wire.renumbered(field(3, 2, wire.varint(10) + b"abc"), {3: 3})
    with pytest.raises(ValueError, match="wire type 3"):
        wire.renumbered(field(3, 3, b""), {3: 3})
