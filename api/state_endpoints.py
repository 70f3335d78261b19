"""The legacy read endpoints of contract 6 (/state, /tasks, /metrics/snapshot, ...).

Every replica answers them from its own cluster view (no redirect to the
leader); each response carries the consistency headers of api/consistency.py
and honours `?min_index=` and `?consistent=true`. Bodies are built without
awaiting, so they reflect exactly the index in `X-Meseta-Index`. Like Mesos,
`?jsonp=<callback>` wraps the JSON in a JavaScript call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meseta import __version__
from meseta.api import state_json as sj
from meseta.api.consistency import read_endpoint
from meseta.api.context import VERSION, MasterContext
from meseta.api.flags import format_duration
from meseta.api.mesos_json import Json
from meseta.master.resources import EMPTY, MILLI, UNRESERVED, Resources
from meseta.projections import metrics
from meseta.projections.cluster import ClusterView
from meseta.projections.records import (
    ACTIVE,
    UNREACHABLE,
    AgentRecord,
    FrameworkRecord,
    Record,
    TaskRecord,
)
from meseta.proto.mesos.v1 import mesos_pb2

STARTED_S = time.time()
TASK_LIMIT = 100  # Mesos's default page size for /tasks
JSON_TYPE = "application/json"


# Entities encoded per turn of the event loop when a read finds many uncached ones.
WARM_CHUNK = 256


async def warm(records: Iterable[Record], kind: str, encode: Callable[[Record], bytes]) -> None:
    """Encode the records lacking a `kind` encoding, a chunk per turn of the event loop.

    A read that finds many entities changed (after a restart, or after a burst of
    updates) would otherwise encode them all in one go and stall the fold and every
    other request meanwhile. Warming is safe to interleave with the fold: a record
    that changes afterwards drops its encoding and the read that follows (built
    without awaiting) encodes it again, so the body still reflects one index.
    """
    cold = [record for record in records if kind not in record.encodings]
    for start in range(0, len(cold), WARM_CHUNK):
        for record in cold[start : start + WARM_CHUNK]:
            if kind not in record.encodings:
                encode(record)
        await asyncio.sleep(0)


def legacy_encode(record: Record) -> bytes:
    if isinstance(record, TaskRecord):
        return sj.task_json(record)
    if isinstance(record, AgentRecord):
        return sj.agent_json(record)
    if isinstance(record, FrameworkRecord):
        return sj.framework_head(record)
    raise TypeError(f"no legacy document for {record!r}")


async def warm_legacy(view: ClusterView, *, tasks: bool = True) -> None:
    records: list[Record] = [*view.registered_agents(), *view.all_frameworks()]
    if tasks:
        records += view.all_tasks()
    await warm(records, "legacy", legacy_encode)


def context_of(request: Request) -> MasterContext:
    context: MasterContext = request.app.state.context
    return context


def json_response(request: Request, body: bytes) -> Response:
    callback = request.query_params.get("jsonp")
    if callback:
        wrapped = callback.encode() + b"(" + body + b");"
        return Response(wrapped, 200, media_type="text/javascript")
    return Response(body, 200, media_type=JSON_TYPE)


def build_info() -> dict[str, Json]:
    """What /version and /state say about the build."""
    return {
        "version": VERSION,  # pymesos parses it as dotted integers
        "build_date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(STARTED_S)),
        "build_time": STARTED_S,
        "build_user": "meseta",
        "git_tag": f"meseta-{__version__}",
    }


def flags(context: MasterContext) -> dict[str, str]:
    """This replica's effective flags, formatted as Mesos prints them."""
    config = context.leadership.config
    master = config.master_config
    info = config.master_info
    out = {
        "hostname": info.hostname,
        "port": str(info.port),
        "allocation_interval": format_duration(round(config.allocation_interval_s * 1e9)),
        "agent_reregister_timeout": format_duration(master.agent_reregister_timeout_ns),
        "agent_ping_timeout": format_duration(round(config.agent_ping_timeout_s * 1e9)),
        "max_agent_ping_timeouts": str(config.max_agent_ping_timeouts),
        "max_completed_tasks_per_framework": str(master.max_completed_tasks_per_framework),
        "max_completed_frameworks": str(context.cluster.completed_frameworks.maxlen),
    }
    if master.offer_timeout_ns:
        out["offer_timeout"] = format_duration(master.offer_timeout_ns)
    out.update(context.flags)
    return dict(sorted(out.items()))


def master_pid(info: mesos_pb2.MasterInfo) -> str:
    return info.pid or f"master@{info.address.ip or info.hostname}:{info.port}"


def state_header(context: MasterContext) -> dict[str, Json]:
    view = context.cluster
    own = context.leadership.config.master_info
    registered = view.registered_agents()
    active = sum(1 for agent in registered if agent.status == ACTIVE)
    out = build_info()
    out["start_time"] = STARTED_S
    if view.elected_ns:
        out["elected_time"] = sj.seconds(view.elected_ns)
    out["id"] = own.id or (view.master_info.id if view.master_info else "")
    out["pid"] = master_pid(own)
    out["hostname"] = own.hostname
    out["capabilities"] = [
        mesos_pb2.MasterInfo.Capability.Type.Name(c.type) for c in own.capabilities
    ]
    out["activated_slaves"] = active
    out["deactivated_slaves"] = len(registered) - active
    out["unreachable_slaves"] = view.agents_with(UNREACHABLE)
    leader = view.master_info if context.leader_location() is not None else None
    if leader is not None:
        out["leader"] = master_pid(leader)
        out["leader_info"] = {
            "id": leader.id,
            "pid": master_pid(leader),
            "port": leader.port,
            "hostname": leader.hostname,
        }
    if view.cluster_id:
        out["cluster"] = view.cluster_id
    out["flags"] = dict(flags(context))
    return out


def join_frameworks(frameworks: Iterable[FrameworkRecord]) -> bytes:
    parts: list[bytes] = []
    sj.frameworks_parts(frameworks, parts)
    return b"".join(parts)


def state_body(context: MasterContext) -> bytes:
    view = context.cluster
    parts = [
        orjson.dumps(state_header(context))[:-1],
        b',"slaves":',
        sj.join(sj.agent_json(agent) for agent in view.registered_agents()),
        b',"recovered_slaves":',
        sj.join(orjson.dumps(sj.agent_info_dict(a.info)) for a in view.recovered_agents()),
        b',"frameworks":',
    ]
    sj.frameworks_parts(view.frameworks.values(), parts)
    parts.append(b',"completed_frameworks":')
    sj.frameworks_parts(view.completed_frameworks, parts)
    parts.append(b',"orphan_tasks":[],"unregistered_frameworks":[]}')
    return b"".join(parts)


@read_endpoint
async def state(request: Request) -> Response:
    context = context_of(request)
    await warm_legacy(context.cluster)
    return json_response(request, state_body(context))


def task_counts(tasks: Iterable[TaskRecord]) -> dict[str, int]:
    counts = dict.fromkeys(sj.SUMMARY_STATES, 0)
    for task in tasks:
        name = mesos_pb2.TaskState.Name(task.state)
        if name in counts:
            counts[name] += 1
    return counts


def framework_tasks(framework: FrameworkRecord) -> list[TaskRecord]:
    return [
        *framework.tasks.values(),
        *framework.unreachable_tasks.values(),
        *framework.completed_tasks,
    ]


@read_endpoint
async def state_summary(request: Request) -> Response:
    context = context_of(request)
    view = context.cluster
    by_agent: dict[str, list[TaskRecord]] = {}
    agent_frameworks: dict[str, dict[str, None]] = {}
    frameworks: list[Json] = []
    for framework in view.frameworks.values():
        tasks = framework_tasks(framework)
        agent_ids: dict[str, None] = {}
        for task in tasks:
            agent_id = task.proto.agent_id.value
            by_agent.setdefault(agent_id, []).append(task)
            agent_frameworks.setdefault(agent_id, {})[framework.id] = None
            agent_ids[agent_id] = None
        summary = sj.framework_summary(framework)
        summary.update(task_counts(tasks))
        summary["slave_ids"] = list(agent_ids)
        frameworks.append(summary)
    agents: list[Json] = []
    for agent in view.registered_agents():
        document = sj.agent_dict(agent)
        document.update(task_counts(by_agent.get(agent.id, [])))
        document["framework_ids"] = list(agent_frameworks.get(agent.id, {}))
        agents.append(document)
    body: dict[str, Json] = {"hostname": context.leadership.config.master_info.hostname}
    if view.cluster_id:
        body["cluster"] = view.cluster_id
    body["slaves"] = agents
    body["frameworks"] = frameworks
    return json_response(request, orjson.dumps(body))


@read_endpoint
async def frameworks(request: Request) -> Response:
    view = context_of(request).cluster
    await warm_legacy(view)
    wanted = request.query_params.get("framework_id")

    def selected(records: Iterable[FrameworkRecord]) -> list[FrameworkRecord]:
        return [f for f in records if wanted is None or f.id == wanted]

    body = b"".join(
        [
            b'{"frameworks":',
            join_frameworks(selected(view.frameworks.values())),
            b',"completed_frameworks":',
            join_frameworks(selected(view.completed_frameworks)),
            b',"unregistered_frameworks":[]}',
        ]
    )
    return json_response(request, body)


@read_endpoint
async def slaves(request: Request) -> Response:
    view = context_of(request).cluster
    wanted = request.query_params.get("slave_id")
    body = b"".join(
        [
            b'{"slaves":',
            sj.join(
                sj.agent_full_json(a)
                for a in view.registered_agents()
                if wanted is None or a.id == wanted
            ),
            b',"recovered_slaves":',
            sj.join(
                orjson.dumps(sj.agent_info_dict(a.info))
                for a in view.recovered_agents()
                if wanted is None or a.id == wanted
            ),
            b"}",
        ]
    )
    return json_response(request, body)


def query_int(request: Request, name: str, default: int) -> int:
    """Mesos's numify: an unparsable value means the default."""
    text = request.query_params.get(name)
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def first_timestamp(task: TaskRecord) -> float | None:
    statuses = task.proto.statuses
    return statuses[0].timestamp if statuses else None


def ordered_tasks(tasks: list[TaskRecord], ascending: bool) -> list[TaskRecord]:
    """By the first status's timestamp; tasks without statuses first (asc) or last (des)."""
    timed = [t for t in tasks if t.proto.statuses]
    untimed = [t for t in tasks if not t.proto.statuses]
    timed.sort(key=lambda t: t.proto.statuses[0].timestamp, reverse=not ascending)
    return untimed + timed if ascending else timed + untimed


@read_endpoint
async def tasks(request: Request) -> Response:
    view = context_of(request).cluster
    await warm(list(view.all_tasks()), "legacy", legacy_encode)
    limit = query_int(request, "limit", TASK_LIMIT)
    offset = query_int(request, "offset", 0)
    ascending = request.query_params.get("order") == "asc"
    framework_id = request.query_params.get("framework_id")
    task_id = request.query_params.get("task_id")
    found: list[TaskRecord] = []
    for framework in view.all_frameworks():
        if framework_id is not None and framework.id != framework_id:
            continue
        found += [
            t
            for t in framework_tasks(framework)
            if task_id is None or t.proto.task_id.value == task_id
        ]
    found = ordered_tasks(found, ascending)
    # As Mesos's size_t arithmetic: a negative limit means all, a negative offset none.
    start = offset if offset >= 0 else len(found)
    page = found[start:] if limit < 0 else found[start : start + limit]
    body = b'{"tasks":' + sj.join(sj.task_json(t) for t in page) + b"}"
    return json_response(request, body)


def quantities(resources: Resources) -> dict[str, Json]:
    """Scalar quantities by name, only names present (Mesos's ResourceQuantities)."""
    out: dict[str, Json] = {}
    for (name, _role), quantity in resources:
        if isinstance(quantity, int):
            out[name] = round(float(out.get(name, 0.0)) + quantity / MILLI, 3)  # type: ignore[arg-type]
    return out


def role_documents(view: ClusterView) -> list[Json]:
    reserved: dict[str, Resources] = {}
    for agent in view.registered_agents():
        for key, quantity in agent.total:
            if key[1] != UNRESERVED:
                reserved[key[1]] = reserved.get(key[1], EMPTY) + Resources({key: quantity})
    by_role = view.roles()
    out: list[Json] = []
    for name in sorted({*by_role, *reserved}):
        members = by_role.get(name, [])
        allocated, offered = EMPTY, EMPTY
        for framework in members:
            allocated = allocated + framework.used.get(name, EMPTY)
            offered = offered + framework.offered.get(name, EMPTY)
        out.append(
            {
                "name": name,
                "weight": 1.0,
                "quota": {
                    "role": name,
                    "guarantee": {},
                    "limit": {},
                    "consumed": quantities(allocated),
                },
                "resources": quantities(allocated + offered),
                "allocated": quantities(allocated),
                "offered": quantities(offered),
                "reserved": quantities(reserved.get(name, EMPTY)),
                "frameworks": [framework.id for framework in members],
            }
        )
    return out


@read_endpoint
async def roles(request: Request) -> Response:
    view = context_of(request).cluster
    return json_response(request, orjson.dumps({"roles": role_documents(view)}))


@read_endpoint
async def flags_endpoint(request: Request) -> Response:
    return json_response(request, orjson.dumps({"flags": flags(context_of(request))}))


def metric_values(context: MasterContext) -> dict[str, float]:
    return metrics.snapshot(
        context.cluster,
        elected=context.leadership.leading,
        uptime_s=time.time() - STARTED_S,
        operator_subscribers=len(context.operator_events.subscriptions),
        event_queue_messages=max(
            0, context.service.log.applied_index() - context.cluster.applied_index
        ),
    )


async def metrics_snapshot(request: Request) -> Response:
    """Served as libprocess does: by any process, no redirect, no consistency wait."""
    return json_response(request, orjson.dumps(metric_values(context_of(request))))


async def metrics_prometheus(request: Request) -> Response:
    text = metrics.prometheus_text(metric_values(context_of(request)))
    return Response(text, 200, media_type="text/plain; version=0.0.4")


def routes() -> list[Route]:
    out = [
        Route("/metrics/snapshot", metrics_snapshot, methods=["GET"]),
        Route("/metrics", metrics_prometheus, methods=["GET"]),
    ]
    endpoints = {
        "state": state,
        "state.json": state,
        "state-summary": state_summary,
        "frameworks": frameworks,
        "slaves": slaves,
        "tasks": tasks,
        "tasks.json": tasks,
        "roles": roles,
        "roles.json": roles,
        "flags": flags_endpoint,
    }
    for prefix in ("", "/master"):
        for name, endpoint in endpoints.items():
            out.append(Route(f"{prefix}/{name}", endpoint, methods=["GET"]))
            # The Mesos CLI asks for e.g. `/master/frameworks/`.
            out.append(Route(f"{prefix}/{name}/", endpoint, methods=["GET"]))
    return out
