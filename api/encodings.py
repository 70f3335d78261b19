"""The wire forms of assembled v1 responses (protobuf bytes, Mesos JSON), and warming them.

A v1 response embedding many entities (GET_STATE, operator SUBSCRIBED) is
joined from each entity's cached encoding and each framework's cached task
runs (projections/assembly.py). What is not cached is encoded ahead in slices
of the event loop (`read_cache.cooperate`), so a cold read never stalls
the fold.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import Message

from meseta.api import mesos_json, state_endpoints
from meseta.api.read_cache import cooperate
from meseta.api.streams import JSON
from meseta.projections.assembly import PROTOBUF, Encoding
from meseta.projections.cluster import ClusterView, task_run_steps
from meseta.projections.records import (
    AgentRecord,
    ExecutorRecord,
    FrameworkRecord,
    Record,
    TaskRecord,
)
from meseta.proto.mesos.v1.master import master_pb2

Call = master_pb2.Call

# Calls whose responses embed tasks (joined from the frameworks' task runs).
TASK_CALLS = (Call.GET_STATE, Call.GET_TASKS)
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


def embedded_entities(call_type: int, view: ClusterView, kind: str) -> list[Record]:
    """The entities a read call's response embeds, but for the tasks of framework task
    runs already cached in wire form `kind` (the response joins those runs)."""
    out: list[Record] = []
    if call_type in TASK_CALLS:
        for framework in view.all_frameworks():
            out += framework.unjoined_tasks(kind)
    if call_type in (Call.GET_STATE, Call.GET_EXECUTORS):
        out += view.executors()
    if call_type in (Call.GET_STATE, Call.GET_FRAMEWORKS):
        out += view.all_frameworks()
    if call_type in (Call.GET_STATE, Call.GET_AGENTS):
        out += view.registered_agents()
    return out


def work(call_type: int, view: ClusterView, enc: Encoding) -> Iterator[None]:
    """Encode ahead, a step at a time, what a `call_type` response embeds: entities, then
    the blocks of the frameworks' task runs."""
    records = embedded_entities(call_type, view, enc.kind)
    frameworks = list(view.all_frameworks()) if call_type in TASK_CALLS else []
    yield from state_endpoints.encode_each(
        records, enc.kind, lambda r: enc.entity(r, lambda: v1_message(r))
    )
    for framework in frameworks:
        yield from task_run_steps(framework, enc)


async def warm(call_type: int, view: ClusterView, enc: Encoding) -> None:
    """Encode ahead what a `call_type` response embeds and lacks an `enc` encoding for."""
    await cooperate(work(call_type, view, enc))
