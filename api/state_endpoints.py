"""The legacy read endpoints of contract 6 (/state, /tasks, /metrics/snapshot, ...).

Every replica answers them from its own cluster view (no redirect to the
leader); each response carries the consistency headers of api/consistency.py
and honours `?min_index=` and `?consistent=true`. Like Mesos,
`?jsonp=<callback>` wraps the JSON in a JavaScript call.

The large documents (/state, /frameworks, /tasks, /slaves, /state-summary)
are built once per index for all concurrent readers (api/read_cache.py). A
build first fills the view's caches in slices of the event loop
(`read_cache.cooperate`), so writes and the fold interleave with it, then
captures the body's pieces from the caches without awaiting: it reflects
exactly the index in `X-Meseta-Index`. Only then are the (immutable) pieces
joined into chunks, again in slices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import cast

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meseta import __version__
from meseta.api import compression
from meseta.api import state_json as sj
from meseta.api.compression import accepts_gzip
from meseta.api.consistency import headers, live_leader, read_endpoint, read_index
from meseta.api.context import VERSION, MasterContext
from meseta.api.flags import served_log
from meseta.api.host import system_metrics, timer_metrics
from meseta.api.http import ANY_METHOD, jsonp_response, snapshot_refusal
from meseta.api.mesos_json import Json
from meseta.api.read_cache import Build, Built, ChunksResponse, assemble, cooperate
from meseta.api.status_json import TASK_STATE_NAMES
from meseta.master.allocator.metrics import allocator_metrics
from meseta.master.durations import format_duration
from meseta.master.resources import EMPTY, MILLI, UNRESERVED, Ranges, Resources, is_subrole
from meseta.projections import metrics
from meseta.projections.cluster import ClusterView
from meseta.projections.records import (
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


def encode_each(
    records: list[Record], kind: str, encode: Callable[[Record], object]
) -> Iterator[None]:
    """Encode the records lacking a `kind` encoding, one per step."""
    for record in records:
        if kind not in record.encodings:
            encode(record)
            yield


def legacy_encode(record: Record) -> bytes:
    if isinstance(record, TaskRecord):
        return sj.task_json(record)
    if isinstance(record, AgentRecord):
        return sj.agent_json(record)
    if isinstance(record, FrameworkRecord):
        return sj.framework_head(record)
    raise TypeError(f"no legacy document for {record!r}")


def legacy_work(view: ClusterView, tasks: bool) -> Iterator[None]:
    """Fill what /state-like documents join: the agents' and frameworks' documents and,
    with `tasks`, each framework's task runs (only the tasks of runs not cached)."""
    frameworks = list(view.all_frameworks())  # the view may change between steps
    records: list[Record] = [*view.registered_agents(), *frameworks]
    if tasks:
        for framework in frameworks:
            records += framework.unjoined_tasks("legacy")
    yield from encode_each(records, "legacy", legacy_encode)
    if tasks:
        for framework in frameworks:
            for name in sj.TASK_LIST_OPENINGS:  # a block of its tasks per step
                yield from framework.join_steps("legacy", name, sj.task_run)
            sj.framework_parts(framework, [])  # caches its tail
            yield


async def warm_legacy(view: ClusterView, *, tasks: bool = True) -> None:
    await cooperate(legacy_work(view, tasks))


def context_of(request: Request) -> MasterContext:
    context: MasterContext = request.app.state.context
    return context


def json_response(request: Request, body: bytes) -> Response:
    return jsonp_response(request, body)


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
    if info.pid:
        return info.pid
    ip = info.address.ip
    return f"master@{f'[{ip}]' if ':' in ip else ip or info.hostname}:{info.port}"


def state_header(context: MasterContext) -> dict[str, Json]:
    view = context.cluster
    own = context.leadership.config.master_info
    registered = view.registered_agents()
    active = sum(1 for agent in registered if agent.active)
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
    # Only a leader this replica knows and hears from: tools take `leader == pid` for "this
    # master leads", and a deposed or cut-off replica naming the last leader the log elected
    # (maybe itself) would mislead them. Without one, `leader` is empty rather than absent
    # (Mesos answers 503 then; Datadog's check indexes `leader`, mesos-dns skips an empty one).
    leader = view.master_info if live_leader(context) is not None else None
    out["leader"] = ""
    if leader is not None:
        out["leader"] = master_pid(leader)
        out["leader_info"] = {
            "id": leader.id,
            "pid": master_pid(leader),
            "port": leader.port,
            "hostname": leader.hostname,
        }
    if "cluster" in context.flags:  # Mesos's --cluster: a name for people, not an id
        out["cluster"] = context.flags["cluster"]
    for name in ("log_dir", "external_log_file"):  # the web UI offers the log when set
        if name in context.flags:
            out[name] = context.flags[name]
    out["flags"] = dict(flags(context))
    return out


def state_parts(context: MasterContext) -> list[bytes]:
    """The /state document in pieces: mostly cached ones, joined only when sent."""
    view = context.cluster
    parts = [orjson.dumps(state_header(context))[:-1], b',"slaves":']
    sj.array_parts([sj.agent_json(agent) for agent in view.registered_agents()], parts)
    parts.append(b',"recovered_slaves":')
    sj.array_parts(
        [orjson.dumps(sj.agent_info_dict(a.info)) for a in view.recovered_agents()], parts
    )
    parts.append(b',"frameworks":')
    sj.frameworks_parts(view.frameworks.values(), parts)
    parts.append(b',"completed_frameworks":')
    sj.frameworks_parts(view.completed_frameworks, parts)
    parts.append(b',"orphan_tasks":[],"unregistered_frameworks":[]}')
    return parts


def state_body(context: MasterContext) -> bytes:
    return b"".join(state_parts(context))


def built_response(request: Request, built: Built) -> Response:
    """A shared body with its index; `?jsonp=` wraps it for this request alone."""
    context = context_of(request)
    leading = context.leadership.leading  # its loop also serves the writes
    callback = request.query_params.get("jsonp")
    if callback:
        chunks = (callback.encode() + b"(", *built.chunks, b");")
        response = ChunksResponse(chunks, "text/javascript", interleave=leading)
    else:
        response = ChunksResponse.of(built, interleave=leading)
    response.headers.update(headers(context, built.index))
    return response


async def coalesced(
    request: Request, key: Hashable, build: Callable[[], Iterable[bytes]]
) -> Response:
    """The JSON document `build` makes in pieces (without awaiting, so at one index),
    shared with every concurrent request for the same `key` (api/read_cache.py)."""
    context = context_of(request)

    async def built() -> Built:
        return Built.of(read_index(context), build(), JSON_TYPE)

    return await coalesced_build(request, key, built)


async def coalesced_build(request: Request, key: Hashable, build: Build) -> Response:
    """As `coalesced`, for a `build` that warms caches (awaiting) before it captures."""
    context = context_of(request)
    # A JSONP body is wrapped per request, so only the plain one is shared.
    gzip = accepts_gzip(request.headers) and "jsonp" not in request.query_params
    built = await compression.cached(context.read_cache, key, read_index(context), build, gzip)
    return built_response(request, built)


@read_endpoint
async def state(request: Request) -> Response:
    context = context_of(request)

    async def build() -> Built:
        await warm_legacy(context.cluster)
        return await assemble(read_index(context), state_parts(context), JSON_TYPE)

    return await coalesced_build(request, ("state", live_leader(context)), build)


def state_counts(counts: dict[int, int]) -> dict[str, int]:
    """Task counts by state value -> Mesos's summary counters (every one present)."""
    out = dict.fromkeys(sj.SUMMARY_STATES, 0)
    for state, count in counts.items():
        name = TASK_STATE_NAMES.get(state)
        if name in out:
            out[name] += count
    return out


def framework_tasks(framework: FrameworkRecord) -> list[TaskRecord]:
    return [
        *framework.tasks.values(),
        *framework.unreachable_tasks.values(),
        *framework.completed_tasks,
    ]


def summary_work(view: ClusterView) -> Iterator[None]:
    """What /state-summary joins: agent documents, then each framework's task counts."""
    yield from legacy_work(view, tasks=False)
    for framework in list(view.frameworks.values()):
        framework.counts_by_agent()
        yield


@read_endpoint
async def state_summary(request: Request) -> Response:
    context = context_of(request)

    async def build() -> Built:
        view = context.cluster
        await cooperate(summary_work(view))
        # Captured at one index, without awaiting: each framework's summary and task counts
        # (never changed once made: the view drops them instead), each agent's document.
        index = read_index(context)
        frameworks = [
            (f.id, sj.framework_summary(f), f.counts_by_agent()) for f in view.frameworks.values()
        ]
        agents = [(agent.id, sj.agent_json(agent)) for agent in view.registered_agents()]
        parts = [orjson.dumps(summary_head(context))[:-1]]
        await cooperate(summary_steps(frameworks, agents, parts))
        return await assemble(index, parts, JSON_TYPE)

    return await coalesced_build(request, ("state-summary",), build)


def summary_head(context: MasterContext) -> dict[str, Json]:
    head: dict[str, Json] = {"hostname": context.leadership.config.master_info.hostname}
    if "cluster" in context.flags:
        head["cluster"] = context.flags["cluster"]
    return head


def summary_steps(
    frameworks: list[tuple[str, dict[str, Json], dict[str, dict[int, int]]]],
    agents: list[tuple[str, bytes]],
    out: list[bytes],
) -> Iterator[None]:
    """The rest of /state-summary from what `state_summary` captured, appended to `out`
    a step at a time: the frameworks' counts merged per agent."""
    agent_counts: dict[str, dict[int, int]] = {}
    agent_frameworks: dict[str, list[str]] = {}
    documents: list[bytes] = []
    for framework_id, summary, by_agent in frameworks:
        counts: dict[int, int] = {}
        for agent_id, states in by_agent.items():
            totals = agent_counts.setdefault(agent_id, {})
            for state, count in states.items():
                counts[state] = counts.get(state, 0) + count
                totals[state] = totals.get(state, 0) + count
            agent_frameworks.setdefault(agent_id, []).append(framework_id)
            yield
        summary.update(state_counts(counts))
        summary["slave_ids"] = list(by_agent)
        documents.append(orjson.dumps(summary))
    out.append(b',"slaves":[')
    for number, (agent_id, document) in enumerate(agents):
        extra: dict[str, Json] = {**state_counts(agent_counts.get(agent_id, {}))}
        extra["framework_ids"] = list(agent_frameworks.get(agent_id, []))
        # The agent's /state document, its object reopened for the counts.
        if number:
            out.append(b",")
        out.append(document[:-1] + b"," + orjson.dumps(extra)[1:])
        yield
    out.append(b'],"frameworks":')
    sj.array_parts(documents, out)
    out.append(b"}")


@read_endpoint
async def frameworks(request: Request) -> Response:
    context = context_of(request)
    wanted = request.query_params.get("framework_id")

    async def build() -> Built:
        await warm_legacy(context.cluster)
        parts = frameworks_parts(context.cluster, wanted)
        return await assemble(read_index(context), parts, JSON_TYPE)

    return await coalesced_build(request, ("frameworks", wanted), build)


def frameworks_parts(view: ClusterView, wanted: str | None) -> list[bytes]:
    def selected(records: Iterable[FrameworkRecord]) -> list[FrameworkRecord]:
        return [f for f in records if wanted is None or f.id == wanted]

    parts = [b'{"frameworks":']
    sj.frameworks_parts(selected(view.frameworks.values()), parts)
    parts.append(b',"completed_frameworks":')
    sj.frameworks_parts(selected(view.completed_frameworks), parts)
    parts.append(b',"unregistered_frameworks":[]}')
    return parts


@read_endpoint
async def slaves(request: Request) -> Response:
    view = context_of(request).cluster
    wanted = request.query_params.get("slave_id")
    return await coalesced(request, ("slaves", wanted), lambda: [slaves_body(view, wanted)])


def slaves_body(view: ClusterView, wanted: str | None) -> bytes:
    return b"".join(
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
    context = context_of(request)
    view = context.cluster
    limit = query_int(request, "limit", TASK_LIMIT)
    offset = query_int(request, "offset", 0)
    ascending = request.query_params.get("order") == "asc"
    framework_id = request.query_params.get("framework_id")
    task_id = request.query_params.get("task_id")

    def body() -> bytes:
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
        return b'{"tasks":' + sj.join(sj.task_json(t) for t in page) + b"}"

    async def build() -> Built:
        await warm_legacy(view)
        return Built.of(read_index(context), [body()], JSON_TYPE)

    key = ("tasks", limit, offset, ascending, framework_id, task_id)
    return await coalesced_build(request, key, build)


def quantities(resources: Resources) -> dict[str, Json]:
    """Quantities by name, only names present (Mesos's ResourceQuantities): a scalar's
    value, the number of values in ranges (ports) or in a set."""
    sums: dict[str, float] = {}
    for (name, _role, _), quantity in resources:
        if isinstance(quantity, int):
            amount = quantity / MILLI
        elif quantity and isinstance(quantity[0], str):
            amount = float(len(quantity))
        else:
            amount = float(sum(end - begin + 1 for begin, end in cast(Ranges, quantity)))
        sums[name] = sums.get(name, 0.0) + amount
    return {name: round(amount, 3) for name, amount in sums.items()}


def role_documents(view: ClusterView) -> list[Json]:
    reserved: dict[str, Resources] = {}
    for agent in view.registered_agents():
        for key, quantity in agent.total:
            if key[1] != UNRESERVED:
                reserved[key[1]] = reserved.get(key[1], EMPTY) + Resources({key: quantity})
    by_role = view.roles()
    used: dict[str, Resources] = {}
    for framework in view.frameworks.values():
        for role, held in framework.used.items():
            used[role] = used.get(role, EMPTY) + held
    out: list[Json] = []
    for name, members in by_role.items():
        allocated, offered = EMPTY, EMPTY
        for framework in members:
            allocated = allocated + framework.used.get(name, EMPTY)
            offered = offered + framework.offered.get(name, EMPTY)
        config = view.quotas.get(name)
        out.append(
            {
                "name": name,
                "weight": view.weight(name),
                "quota": {
                    "role": name,
                    "guarantee": scalar_map(config.guarantees) if config else {},
                    "limit": scalar_map(config.limits) if config else {},
                    "consumed": quantities(consumed_quota(name, used, reserved)),
                },
                "resources": quantities(allocated + offered),
                "allocated": quantities(allocated),
                "offered": quantities(offered),
                "reserved": quantities(reserved.get(name, EMPTY)),
                "frameworks": [framework.id for framework in members],
            }
        )
    return out


def consumed_quota(
    role: str, used: dict[str, Resources], reserved: dict[str, Resources]
) -> Resources:
    """Mesos's consumed quota of the role's subtree: what it uses unreserved, plus all
    that is reserved to it, used or not."""
    out = EMPTY
    for holder, held in used.items():
        if is_subrole(holder, role):
            out = out + held.unreserved()
    for holder, held in reserved.items():
        if is_subrole(holder, role):
            out = out + held
    return out


def scalar_map(scalars: Mapping[str, mesos_pb2.Value.Scalar]) -> Json:
    return {name: scalars[name].value for name in sorted(scalars)}


@read_endpoint
async def roles(request: Request) -> Response:
    view = context_of(request).cluster
    return json_response(request, orjson.dumps({"roles": role_documents(view)}))


@read_endpoint
async def flags_endpoint(request: Request) -> Response:
    return json_response(request, orjson.dumps({"flags": flags(context_of(request))}))


def metric_values(context: MasterContext) -> dict[str, float]:
    """The view's master/* figures, this replica's allocator runs and the host's system/*."""
    leadership = context.leadership
    out = metrics.snapshot(
        context.cluster,
        elected=leadership.leading,
        uptime_s=time.time() - STARTED_S,
        operator_subscribers=len(context.operator_events.subscriptions),
        event_queue_messages=max(
            0, context.service.log.applied_index() - context.cluster.applied_index
        ),
    )
    out["allocator/mesos/allocation_runs"] = float(leadership.allocation_runs)
    # The allocator has no queue of its own (Mesos still reports the older name too).
    out["allocator/mesos/event_queue_dispatches"] = 0.0
    out["allocator/event_queue_dispatches"] = 0.0
    out.update(allocator_metrics(context.state))
    for name, samples in (
        ("allocation_run_ms", leadership.allocation_run_ms),
        ("allocation_run_latency_ms", leadership.allocation_run_latency_ms),
    ):
        out.update(timer_metrics(f"allocator/mesos/{name}", samples, leadership.allocation_runs))
    out.update(registrar_metrics(context))
    if context.flags.get("publish_per_framework_metrics", "true") == "true":
        out.update(per_framework_metrics(context))
    out.update(system_metrics())
    return dict(sorted(out.items()))


def per_framework_metrics(context: MasterContext) -> dict[str, float]:
    state = context.state
    return metrics.framework_metrics(
        context.cluster,
        suppressed={fid: f.suppressed_roles for fid, f in state.frameworks.items()},
        calls={fid: traffic.calls for fid, traffic in context.traffic.items()},
        events={fid: traffic.events for fid, traffic in context.traffic.items()},
    )


def registrar_metrics(context: MasterContext) -> dict[str, float]:
    """Mesos's registrar/* for what stands in for its registry here, the replicated log:
    whether this replica has caught up, the voters, the API's writes to it (queued, and
    the time from proposal to commit) and, as the registry's fetch time, how long the log
    took to catch up when this replica started, and as the registry's size, the bytes the
    replica's copy of the log holds on disk."""
    status = context.service.log.status()
    writes = context.writes
    out = {
        "registrar/log/recovered": 1.0 if status.ready else 0.0,
        "registrar/log/ensemble_size": float(len(status.cluster)),
        "registrar/queued_operations": float(writes.in_flight),
        "registrar/registry_size_bytes": float(context.service.log.stored_bytes()),
    }
    out.update(timer_metrics("registrar/state_store_ms", writes.store_ms, writes.stored))
    if status.recovered_in_s is not None:  # one recovery per process, as in Mesos
        fetch_ms = [status.recovered_in_s * 1000]
        out.update(timer_metrics("registrar/state_fetch_ms", fetch_ms, 1))
    return out


async def metrics_snapshot(request: Request) -> Response:
    """Served as libprocess does: by any process, no redirect, no consistency wait."""
    refusal = snapshot_refusal(request)
    if refusal is not None:
        return refusal
    return json_response(request, orjson.dumps(metric_values(context_of(request))))


async def metrics_prometheus(request: Request) -> Response:
    text = metrics.prometheus_text(metric_values(context_of(request)))
    return Response(text, 200, media_type="text/plain; version=0.0.4")


def routes() -> list[Route]:
    out = [
        Route("/metrics/snapshot", metrics_snapshot, methods=ANY_METHOD),
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
            out.append(Route(f"{prefix}/{name}", endpoint, methods=ANY_METHOD))
            # The Mesos CLI asks for e.g. `/master/frameworks/`.
            out.append(Route(f"{prefix}/{name}/", endpoint, methods=ANY_METHOD))
    return out


def attachments(context: MasterContext) -> dict[str, Path]:
    """What the master's `/files` serves: `/master/log` when it logs to a file."""
    flags = context.flags
    log = served_log(flags.get("log_dir"), flags.get("external_log_file"), "master")
    return {} if log is None else {"/master/log": log}
