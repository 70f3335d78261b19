"""Mesos's summary text of resource and attribute values (contract 6), as its hand-written JSON
models write them: ranges as "[31000-32000, 33000-33010]", sets as "{a, b}". Shared by the
master's legacy documents (api/state_json.py) and the agent's /state (agent/endpoints.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from meseta.api.mesos_json import Json
from meseta.proto.mesos.v1 import mesos_pb2


def ranges_text(ranges: Iterable[tuple[int, int]]) -> str:
    return "[" + ", ".join(f"{begin}-{end}" for begin, end in ranges) + "]"


def set_text(items: Iterable[str]) -> str:
    return "{" + ", ".join(items) + "}"


def attributes(values: Iterable[mesos_pb2.Attribute]) -> dict[str, Json]:
    """Name -> value: scalars as numbers, ranges and sets as their text, text as is."""
    out: dict[str, Json] = {}
    for attribute in values:
        if attribute.type == mesos_pb2.Value.SCALAR:
            out[attribute.name] = attribute.scalar.value
        elif attribute.type == mesos_pb2.Value.RANGES:
            out[attribute.name] = ranges_text((r.begin, r.end) for r in attribute.ranges.range)
        elif attribute.type == mesos_pb2.Value.SET:
            out[attribute.name] = set_text(attribute.set.item)
        else:
            out[attribute.name] = attribute.text.value
    return out
