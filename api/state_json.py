"""The legacy (non-v1) JSON documents of contract 6: /state, /frameworks, /slaves, /tasks.

These are Mesos's hand-written models (master/readonly_handler.cpp and
common/http.cpp), not protobuf JSON: resources as summaries (`cpus`, `gpus`,
`mem`, `disk` always present, ranges as "[31000-32000, 33000-33010]", sets as
"{a, b}"), attributes likewise, times as seconds. Every entity's document is
cached on the view's record (`legacy`), and each framework caches its task
lists joined in blocks (`FrameworkRecord.block_runs`), so a big /state is a join
of a few pieces per framework and agent, whatever the number of tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import orjson

from meseta.api import mesos_json, status_json
from meseta.api.mesos_json import Json
from meseta.api.resource_json import attributes, ranges_text, set_text
from meseta.api.status_json import TASK_STATE_NAMES, labels
from meseta.master.resources import (
    MILLI,
    UNRESERVED,
    Key,
    Quantity,
    Ranges,
    Resources,
    merge_ranges,
    to_protos,
)
from meseta.projections.records import (
    AgentRecord,
    ExecutorRecord,
    FrameworkRecord,
    OfferRecord,
    TaskRecord,
    endpoint_protos,
)
from meseta.proto.mesos.v1 import mesos_pb2

NS_PER_S = 1e9
Capability = mesos_pb2.FrameworkInfo.Capability
AgentCapability = mesos_pb2.AgentInfo.Capability.Type
SUMMARY_STATES = (
    "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED",
    "TASK_KILLED", "TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_UNREACHABLE",
)  # fmt: skip


def seconds(ns: int) -> float:
    return ns / NS_PER_S


def resources_summary(resources: Resources) -> dict[str, Json]:
    """Mesos's model(Resources): one entry per name over all reservation roles."""
    merged: dict[str, Quantity] = {}
    for (name, _role, _), quantity in resources:
        known = merged.get(name)
        if isinstance(quantity, int):
            merged[name] = quantity + (known if isinstance(known, int) else 0)
        elif quantity and isinstance(quantity[0], str):
            items = [*cast(tuple[str, ...], known or ()), *quantity]
            merged[name] = tuple(sorted(dict.fromkeys(items)))
        else:
            merged[name] = merge_ranges([*cast(Ranges, known or ()), *cast(Ranges, quantity)])
    out: dict[str, Json] = {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}
    for name, quantity in merged.items():
        if isinstance(quantity, int):
            out[name] = quantity / MILLI
        elif quantity and isinstance(quantity[0], str):
            out[name] = set_text(cast(Sequence[str], quantity))
        else:
            out[name] = ranges_text(cast(Ranges, quantity))
    return out


def reserved_summaries(resources: Resources) -> dict[str, Json]:
    by_role: dict[str, dict[Key, Quantity]] = {}
    for key, quantity in resources:
        if key[1] != UNRESERVED:
            by_role.setdefault(key[1], {})[key] = quantity
    return {role: resources_summary(Resources(items)) for role, items in by_role.items()}


def unreserved(resources: Resources) -> Resources:
    return Resources({key: q for key, q in resources if key[1] == UNRESERVED})


# Label lists as JSON, by their protobuf bytes: tasks of one application share their
# labels, and converting 10 labels costs more than the rest of a task's document.
_LABELS: dict[bytes, orjson.Fragment] = {}
MAX_LABEL_SETS = 4096


def labels_json(message: mesos_pb2.Labels) -> Json:
    """`labels(message)` as a JSON fragment that orjson embeds as it is."""
    key = message.SerializeToString()
    fragment = _LABELS.get(key)
    if fragment is None:
        if len(_LABELS) >= MAX_LABEL_SETS:
            _LABELS.clear()
        fragment = _LABELS[key] = orjson.Fragment(orjson.dumps(labels(message)))
    return cast(Json, fragment)


def status_dict(status: mesos_pb2.TaskStatus) -> dict[str, Json]:
    return status_json.status_dict(status, labels_json)


def task_dict(record: TaskRecord) -> dict[str, Json]:
    task = record.proto
    out: dict[str, Json] = {
        "id": task.task_id.value,
        "name": task.name,
        "framework_id": task.framework_id.value,
        "executor_id": task.executor_id.value,
        "slave_id": task.agent_id.value,
        "state": TASK_STATE_NAMES[task.state],
        "resources": resources_summary(record.resources),
        "role": record.role,
        "statuses": [status_dict(status) for status in task.statuses],
    }
    if task.HasField("user"):
        out["user"] = task.user
    if task.HasField("labels"):
        out["labels"] = labels_json(task.labels)
    for name in ("discovery", "container", "health_check"):
        if task.HasField(name):
            out[name] = mesos_json.to_dict(getattr(task, name))
    if task.limits:
        out["limits"] = {name: scalar.value for name, scalar in task.limits.items()}
    return out


def task_json(record: TaskRecord) -> bytes:
    data = record.encodings.get("legacy")  # inlined `encoded`: this runs per task
    if data is None:
        data = record.encodings["legacy"] = orjson.dumps(task_dict(record))
    return data


def offer_json(record: OfferRecord) -> bytes:
    def encode() -> bytes:
        offer = record.proto
        return orjson.dumps(
            {
                "id": offer.id.value,
                "framework_id": offer.framework_id.value,
                "allocation_info": mesos_json.to_dict(offer.allocation_info),
                "slave_id": offer.agent_id.value,
                "resources": resources_summary(record.resources),
            }
        )

    return record.encoded("legacy", encode)


def executor_json(record: ExecutorRecord) -> bytes:
    def encode() -> bytes:
        info = record.info
        command = info.command
        command_out: dict[str, Json] = {}
        if command.HasField("shell"):
            command_out["shell"] = command.shell
        if command.HasField("value"):
            command_out["value"] = command.value
        command_out["argv"] = list(command.arguments)
        if command.HasField("environment"):
            command_out["environment"] = mesos_json.to_dict(command.environment)
        command_out["uris"] = [{"value": u.value, "executable": u.executable} for u in command.uris]
        out: dict[str, Json] = {
            "executor_id": info.executor_id.value,
            "name": info.name,
            "framework_id": record.framework_id,
            "command": command_out,
            "resources": resources_summary(record.resources),
        }
        if info.resources:
            out["role"] = record.role
        if info.HasField("labels"):
            out["labels"] = labels(info.labels)
        if info.HasField("type"):
            out["type"] = mesos_pb2.ExecutorInfo.Type.Name(info.type)
        out["slave_id"] = record.agent_id
        return orjson.dumps(out)

    return record.encoded("legacy", encode)


def framework_summary(record: FrameworkRecord) -> dict[str, Json]:
    info = record.info
    return {
        "id": record.id,
        "name": info.name,
        "used_resources": resources_summary(record.used_total()),
        "offered_resources": resources_summary(record.offered_total()),
        "capabilities": [Capability.Type.Name(c.type) for c in info.capabilities],
        "hostname": info.hostname,
        "webui_url": info.webui_url,
        "active": record.active,
        "connected": record.connected,
        "recovered": record.recovered,
    }


def framework_fields(record: FrameworkRecord) -> dict[str, Json]:
    """The framework's own fields in /state (its arrays are joined separately)."""
    info = record.info
    out = framework_summary(record)
    out["user"] = info.user
    out["failover_timeout"] = info.failover_timeout
    out["checkpoint"] = info.checkpoint
    out["registered_time"] = seconds(record.registered_ns)
    out["unregistered_time"] = seconds(record.unregistered_ns)
    if info.HasField("principal"):
        out["principal"] = info.principal
    out["resources"] = resources_summary(record.used_total() + record.offered_total())
    if record.reregistered_ns:
        out["reregistered_time"] = seconds(record.reregistered_ns)
    if any(c.type == Capability.MULTI_ROLE for c in info.capabilities):
        out["roles"] = list(info.roles)
    else:
        out["role"] = info.role
    if info.HasField("labels"):
        out["labels"] = labels(info.labels)
    constraints = record.offer_constraints
    out["offer_constraints"] = {} if constraints is None else mesos_json.to_dict(constraints)
    return out


def join(items: Iterable[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"


def array_parts(items: list[bytes], out: list[bytes]) -> None:
    """A JSON array appended to `out` in pieces (no copy of a large array before the
    caller's final join)."""
    out.append(b"[")
    out.append(b",".join(items))
    out.append(b"]")


def framework_head(record: FrameworkRecord) -> bytes:
    """The framework's own fields, as an unclosed JSON object (its arrays follow)."""
    return record.encoded("legacy", lambda: orjson.dumps(framework_fields(record))[:-1])


TASK_LIST_OPENINGS = {
    "tasks": b',"tasks":[',
    "unreachable_tasks": b'],"unreachable_tasks":[',
    "completed_tasks": b'],"completed_tasks":[',
}


def task_run(tasks: list[TaskRecord]) -> bytes:
    return b",".join([task_json(t) for t in tasks])


def framework_tail(record: FrameworkRecord) -> bytes:
    """The framework's offers and executors, closing its document."""

    def encode() -> bytes:
        offers = join(offer_json(o) for o in record.offers.values())
        executors = join(executor_json(e) for e in record.executors.values())
        return b'],"offers":' + offers + b',"executors":' + executors + b"}"

    return record.encoded("legacy_tail", encode)


def framework_parts(record: FrameworkRecord, out: list[bytes]) -> None:
    """Append the framework's document to `out` in pieces (joined once by the caller:
    a 100 MB /state is copied once, not once per nesting level). Each task list is the
    framework's cached block runs (`FrameworkRecord.block_runs`)."""
    out.append(framework_head(record))
    for name, opening in TASK_LIST_OPENINGS.items():
        out.append(opening)
        for number, run in enumerate(record.block_runs("legacy", name, task_run)):
            if number:
                out.append(b",")
            out.append(run)
    out.append(framework_tail(record))


def frameworks_parts(records: Iterable[FrameworkRecord], out: list[bytes]) -> None:
    """A JSON array of frameworks, appended to `out` in pieces."""
    out.append(b"[")
    for number, record in enumerate(records):
        if number:
            out.append(b",")
        framework_parts(record, out)
    out.append(b"]")


def agent_info_dict(info: mesos_pb2.AgentInfo) -> dict[str, Json]:
    out: dict[str, Json] = {
        "id": info.id.value,
        "hostname": info.hostname,
        "port": info.port,
        "attributes": attributes(info.attributes),
    }
    if info.HasField("domain"):
        out["domain"] = mesos_json.to_dict(info.domain)
    return out


def agent_dict(record: AgentRecord) -> dict[str, Json]:
    info = record.info
    out = agent_info_dict(info)
    out["pid"] = record.pid
    out["registered_time"] = seconds(record.registered_ns)
    if record.reregistered_ns:
        out["reregistered_time"] = seconds(record.reregistered_ns)
    out["resources"] = resources_summary(record.total)
    out["used_resources"] = resources_summary(record.used_total())
    out["offered_resources"] = resources_summary(record.offered_total())
    out["reserved_resources"] = reserved_summaries(record.total)
    out["unreserved_resources"] = resources_summary(unreserved(record.total))
    out["active"] = record.active
    out["deactivated"] = record.deactivated
    out["version"] = record.version
    out["capabilities"] = [AgentCapability.Name(c) for c in record.capabilities]
    if record.drain is not None:
        out["drain_info"] = mesos_json.to_dict(record.drain)
        if record.drain_started_ns:
            out["estimated_drain_start_time_seconds"] = seconds(record.drain_started_ns)
    return out


def agent_json(record: AgentRecord) -> bytes:
    return record.encoded("legacy", lambda: orjson.dumps(agent_dict(record)))


def resources_full(resources: Resources) -> list[Json]:
    """The complete protobuf JSON of `resources`, in Mesos's ENDPOINT format."""
    return [mesos_json.to_dict(r) for r in to_protos(resources, endpoint=True)]


def allocated_full(books: dict[str, Resources]) -> list[Json]:
    """Used or offered resources, by allocation role, as `resources_full` with the role each
    is allocated to."""
    return [mesos_json.to_dict(r) for r in endpoint_protos(books)]


def agent_full_json(record: AgentRecord) -> bytes:
    """/slaves adds the complete protobuf JSON of total, used and offered resources."""

    def encode() -> bytes:
        out = agent_dict(record)
        reserved: dict[str, list[Json]] = {}
        for key, quantity in record.total:
            if key[1] != UNRESERVED:
                reserved.setdefault(key[1], []).extend(resources_full(Resources({key: quantity})))
        out["reserved_resources_full"] = cast(Json, reserved)
        out["unreserved_resources_full"] = resources_full(unreserved(record.total))
        out["used_resources_full"] = allocated_full(record.used)
        out["offered_resources_full"] = allocated_full(record.offered)
        return orjson.dumps(out)

    return record.encoded("legacy_full", encode)
