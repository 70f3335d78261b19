"""The wire forms of assembled v1 responses (protobuf bytes, Mesos JSON), and warming them.

A v1 response embedding many entities (GET_STATE, operator SUBSCRIBED) is
joined from each entity's cached encoding (projections/assembly.py). Entities
without one are encoded ahead, a chunk per turn of the event loop
(`state_endpoints.warm`), so a cold read never stalls the fold.
"""

from __future__ import annotations

from google.protobuf.message import Message

from meseta.api import mesos_json, state_endpoints
from meseta.api.streams import JSON
from meseta.projections.assembly import PROTOBUF, Encoding
from meseta.projections.cluster import ClusterView
from meseta.projections.records import (
    AgentRecord,
    ExecutorRecord,
    FrameworkRecord,
    Record,
    TaskRecord,
)
from meseta.proto.mesos.v1.master import master_pb2

Call = master_pb2.Call

JSON_ENCODING = Encoding("json", mesos_json.to_json, json=True)


def encoding(media_type: str) -> Encoding:
    return JSON_ENCODING if media_type == JSON else PROTOBUF


def v1_message(record: Record) -> Message:
    """The entity's Mesos v1 protobuf, as the view's responses embed it."""
    if isinstance(record, TaskRecord):
        return record.proto
    if isinstance(record, AgentRecord | FrameworkRecord | ExecutorRecord):
        return record.proto()
    raise TypeError(f"no v1 message for {record!r}")


def embedded_entities(call_type: int, view: ClusterView) -> list[Record]:
    """The entities a read call's response embeds."""
    out: list[Record] = []
    if call_type in (Call.GET_STATE, Call.GET_TASKS):
        out += view.all_tasks()
    if call_type in (Call.GET_STATE, Call.GET_EXECUTORS):
        out += view.executors()
    if call_type in (Call.GET_STATE, Call.GET_FRAMEWORKS):
        out += view.all_frameworks()
    if call_type in (Call.GET_STATE, Call.GET_AGENTS):
        out += view.registered_agents()
    return out


async def warm(call_type: int, view: ClusterView, enc: Encoding) -> None:
    """Encode ahead what a `call_type` response embeds and lacks an `enc` encoding for."""
    records = embedded_entities(call_type, view)
    await state_endpoints.warm(records, enc.kind, lambda r: enc.entity(r, lambda: v1_message(r)))
