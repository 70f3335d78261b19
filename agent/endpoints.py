"""The agent's read endpoints, shaped as Mesos's agent serves them (contract 6.3, 6.4, 6.5).

`/state` (aliases `/state.json`, `/slave(1)/state`, `/slave(1)/state.json`), `/flags`,
`/health`, `/version`, `/metrics/snapshot`, `/monitor/statistics`, `/containers` and the
`files` process (`api/files.py`: `/files/browse|read|download|debug`, plus the deprecated
`.json` spellings) over the executor sandboxes and `/slave/log`. Sandboxes are attached as Mesos
attaches them: under their real directory, under `.../runs/latest`, and under the short virtual
path `/frameworks/<fw>/executors/<ex>/runs/latest`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meseta import __version__
from meseta.agent.containerizer import ContainerError
from meseta.agent.core import ExecutorRecord, FrameworkRecord, TaskRecord
from meseta.agent.daemon import CAPABILITIES, VERSION, Agent
from meseta.api import files, host, mesos_json
from meseta.api.flags import served_log
from meseta.api.host import system_metrics
from meseta.api.http import ANY_METHOD, jsonp_response, snapshot_refusal
from meseta.api.resource_json import attributes, ranges_text, set_text
from meseta.api.status_json import status_dict
from meseta.master import resources as res
from meseta.master.ids import agent_pid
from meseta.master.resources import merge_ranges
from meseta.proto.mesos.v1 import mesos_pb2

JSON = "application/json"
BUILD_TIME = time.time()
ALWAYS_PRESENT = ("cpus", "gpus", "mem", "disk")
Handler = Callable[[Request], Any]


def json_response(body: object, request: Request, status: int = 200) -> Response:
    return jsonp_response(request, orjson.dumps(body), status)


def text_response(status: int, message: str = "") -> Response:
    return Response(message, status, media_type="text/plain")


# -- Mesos's summary forms of resources and attributes (contract 6) ---------------------


def resource_map(resources: Iterable[mesos_pb2.Resource]) -> dict[str, Any]:
    """Name -> amount; cpus, gpus, mem and disk always present; `<name>_revocable` apart."""
    scalars: dict[str, float] = dict.fromkeys(ALWAYS_PRESENT, 0.0)
    ranges: dict[str, list[mesos_pb2.Value.Range]] = {}
    sets: dict[str, list[str]] = {}
    for resource in resources:
        name = resource.name + ("_revocable" if resource.HasField("revocable") else "")
        if resource.type == mesos_pb2.Value.SCALAR:
            scalars[name] = round(scalars.get(name, 0.0) + resource.scalar.value, 3)
        elif resource.type == mesos_pb2.Value.RANGES:
            ranges.setdefault(name, []).extend(resource.ranges.range)
        elif resource.type == mesos_pb2.Value.SET:
            sets.setdefault(name, []).extend(resource.set.item)
    out: dict[str, Any] = dict(scalars)
    for name, spans in ranges.items():
        out[name] = ranges_text(merge_ranges((r.begin, r.end) for r in spans))  # coalesced
    for name, items in sets.items():
        out[name] = set_text(dict.fromkeys(items))
    return out


def reservation_role(resource: mesos_pb2.Resource) -> str | None:
    """The role a resource is reserved for (the last refinement), None when unreserved."""
    if resource.reservations:
        return str(resource.reservations[-1].role)
    if resource.HasField("role") and resource.role != "*":
        return str(resource.role)
    return None


# -- /state --------------------------------------------------------------------------


def _add_allocation_role(out: dict[str, Any], resources: Iterable[mesos_pb2.Resource]) -> None:
    """`role`: the role the resources are allocated to, when they say (as Mesos's model does)."""
    roles = [r.allocation_info.role for r in resources if r.HasField("allocation_info")]
    if roles:
        out["role"] = roles[0]


def task_json(task: TaskRecord, agent_id: str) -> dict[str, Any]:
    info = task.info
    out: dict[str, Any] = {
        "id": info.task_id.value,
        "name": info.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id,
        "slave_id": agent_id,
        "state": mesos_pb2.TaskState.Name(task.state),
        "resources": resource_map(info.resources),
    }
    _add_allocation_role(out, info.resources)
    out["statuses"] = [status_dict(status) for status in task.statuses]
    if info.command.HasField("user"):
        out["user"] = info.command.user
    for name in ("labels", "discovery", "container", "health_check"):
        if info.HasField(name):
            value = mesos_json.to_dict(getattr(info, name))
            out[name] = value["labels"] if name == "labels" else value
    return out


def executor_json(executor: ExecutorRecord, agent_id: str) -> dict[str, Any]:
    info = executor.info
    out: dict[str, Any] = {
        "id": info.executor_id.value,
        "name": info.name,
        "source": info.source,
        "container": executor.container_id,
        "directory": executor.directory,
        # As Mesos's Executor::allocatedResources: its own and its queued and live tasks'.
        "resources": resource_map(executor.resources()),
    }
    _add_allocation_role(out, info.resources)
    if info.HasField("labels"):
        out["labels"] = mesos_json.to_dict(info.labels)["labels"]
    if info.HasField("type"):
        out["type"] = mesos_pb2.ExecutorInfo.Type.Name(info.type)
    out["tasks"] = [task_json(task, agent_id) for task in executor.tasks.values()]
    out["queued_tasks"] = [mesos_json.to_dict(task.info) for task in executor.queued.values()]
    out["completed_tasks"] = [task_json(task, agent_id) for task in executor.completed]
    return out


def framework_json(framework: FrameworkRecord, agent_id: str) -> dict[str, Any]:
    info = framework.info
    out: dict[str, Any] = {
        "id": info.id.value,
        "name": info.name,
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "hostname": info.hostname,
    }
    if info.HasField("principal"):
        out["principal"] = info.principal
    multi_role = mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE
    if any(capability.type == multi_role for capability in info.capabilities):
        out["roles"] = list(info.roles)
    else:
        out["role"] = info.role
    out["executors"] = [executor_json(e, agent_id) for e in framework.executors.values()]
    out["completed_executors"] = [executor_json(e, agent_id) for e in framework.completed_executors]
    return out


def total_resources(agent: Agent) -> list[mesos_pb2.Resource]:
    """The agent's total in Mesos's endpoint format: as its master last checkpointed it here
    (dynamic reservations and persistent volumes included), else what it declared."""
    total = agent.checkpointed_resources
    if total is None:
        total = res.from_protos(agent.info.resources)
    return res.to_protos(total, endpoint=True)


def allocated_resources(agent: Agent) -> list[mesos_pb2.Resource]:
    """What the live executors and their tasks hold."""
    return [r for executor in agent.core.executors() for r in executor.resources()]


def _by_role(resources: Iterable[mesos_pb2.Resource]) -> dict[str | None, list[mesos_pb2.Resource]]:
    grouped: dict[str | None, list[mesos_pb2.Resource]] = {}
    for resource in resources:
        grouped.setdefault(reservation_role(resource), []).append(resource)
    return grouped


def _reserved_maps(grouped: dict[str | None, list[mesos_pb2.Resource]]) -> dict[str, Any]:
    """Role -> resource map of what is reserved for it (`_by_role`'s None is unreserved)."""
    return {role: resource_map(items) for role, items in grouped.items() if role is not None}


def pid(agent: Agent) -> str:
    """The agent's libprocess pid, as the master shows it too (tools split it to reach us)."""
    flags = agent.flags_
    return agent_pid(flags.advertised_host, flags.advertised_ip or "", flags.port)


def version_fields() -> dict[str, Any]:
    return {
        "version": VERSION,
        "build_date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(BUILD_TIME)),
        "build_time": BUILD_TIME,
        "build_user": "meseta",
        "git_tag": f"meseta-{__version__}",
    }


def state_json(agent: Agent) -> dict[str, Any]:
    info = agent.info
    agent_id = info.id.value
    resources = total_resources(agent)
    total = _by_role(resources)
    allocated = _by_role(allocated_resources(agent))
    out: dict[str, Any] = version_fields()
    del out["git_tag"]  # /state omits git fields it does not know; version stays first
    out["start_time"] = agent.started_s
    out["id"] = agent_id  # empty until the first registration, as in Mesos
    out["pid"] = pid(agent)
    out["hostname"] = info.hostname
    out["capabilities"] = [mesos_pb2.AgentInfo.Capability.Type.Name(c) for c in CAPABILITIES]
    if info.HasField("domain"):
        out["domain"] = mesos_json.to_dict(info.domain)
    if agent.drain_config is not None:
        out["drain_config"] = mesos_json.to_dict(agent.drain_config)
        out["estimated_drain_start_time_seconds"] = int(agent.drain_started_s)
    out["resources"] = resource_map(resources)
    out["reserved_resources"] = _reserved_maps(total)
    out["unreserved_resources"] = resource_map(total.get(None, []))
    out["reserved_resources_full"] = {
        role: [mesos_json.to_dict(r) for r in items]
        for role, items in total.items()
        if role is not None
    }
    out["unreserved_resources_full"] = [mesos_json.to_dict(r) for r in total.get(None, [])]
    out["reserved_resources_allocated"] = _reserved_maps(allocated)
    out["unreserved_resources_allocated"] = resource_map(allocated.get(None, []))
    out["resource_providers"] = []
    out["attributes"] = attributes(info.attributes)
    if agent.master_address is not None:
        out["master_hostname"] = agent.master_address.rpartition(":")[0]
    if agent.flags_.log_dir is not None:
        out["log_dir"] = agent.flags_.log_dir
    if agent.flags_.external_log_file is not None:
        out["external_log_file"] = agent.flags_.external_log_file
    out["flags"] = agent.flags
    out["frameworks"] = [framework_json(f, agent_id) for f in agent.core.frameworks.values()]
    out["completed_frameworks"] = [
        framework_json(f, agent_id) for f in agent.core.completed_frameworks
    ]
    return out


# -- /metrics/snapshot -----------------------------------------------------------------


def _scalar(resources: Iterable[mesos_pb2.Resource], name: str, revocable: bool) -> float:
    return sum(
        (
            r.scalar.value
            for r in resources
            if r.name == name
            and r.type == mesos_pb2.Value.SCALAR
            and r.HasField("revocable") == revocable
        ),
        0.0,
    )


def metrics(agent: Agent) -> dict[str, float]:
    """The slave/* gauges and counters (contract 6.5); values are doubles, booleans 0/1."""
    counters = agent.counters
    total = total_resources(agent)
    used = allocated_resources(agent)
    out: dict[str, float] = {
        "slave/registered": float(counters.registered),
        "slave/uptime_secs": agent.uptime_s(),
    }
    for revocable in (False, True):
        infix = "_revocable" if revocable else ""
        for name in ALWAYS_PRESENT:
            have = _scalar(total, name, revocable)
            held = _scalar(used, name, revocable)
            out[f"slave/{name}{infix}_total"] = have
            out[f"slave/{name}{infix}_used"] = held
            out[f"slave/{name}{infix}_percent"] = held / have if have else 0.0
    out["slave/frameworks_active"] = float(len(agent.core.frameworks))
    states = agent.core.tasks_by_state()
    for state in ("staging", "starting", "running", "killing", "finished", "failed", "killed",
                  "lost", "gone"):  # fmt: skip
        out[f"slave/tasks_{state}"] = float(states.get(f"TASK_{state.upper()}", 0))
    executors = agent.core.executors()
    for state in ("registering", "running", "terminating"):
        out[f"slave/executors_{state}"] = float(
            sum(1 for e in executors if e.state.value == state.upper())
        )
    out["slave/executors_terminated"] = float(counters.executors_terminated)
    out["slave/executors_preempted"] = float(counters.executors_preempted)
    out["slave/valid_status_updates"] = float(counters.valid_status_updates)
    out["slave/invalid_status_updates"] = float(counters.invalid_status_updates)
    out["slave/valid_framework_messages"] = float(counters.valid_framework_messages)
    out["slave/invalid_framework_messages"] = float(counters.invalid_framework_messages)
    out["slave/recovery_errors"] = float(counters.recovery_errors)
    out["slave/recovery_time_secs"] = counters.recovery_time_s
    out["slave/container_launch_errors"] = float(counters.container_launch_errors)
    out["slave/executor_directory_max_allowed_age_secs"] = agent.gc.max_allowed_age_s()
    fetcher = agent.containerizer.fetcher
    out["containerizer/fetcher/task_fetches_succeeded"] = float(fetcher.fetches_succeeded)
    out["containerizer/fetcher/task_fetches_failed"] = float(fetcher.fetches_failed)
    out["containerizer/fetcher/cache_size_total_bytes"] = float(fetcher.cache_bytes)
    out["containerizer/fetcher/cache_size_used_bytes"] = float(fetcher.cache_used_bytes())
    out["containerizer/mesos/container_destroy_errors"] = float(agent.containerizer.destroy_errors)
    # No image provisioner (no container images yet): nothing to fail removing. Mesos always
    # has the counter, and exporters (mesos_exporter) look it up on every scrape.
    out["containerizer/mesos/provisioner/remove_container_errors"] = 0.0
    out["gc/path_removals_succeeded"] = float(agent.gc.counters.succeeded)
    out["gc/path_removals_failed"] = float(agent.gc.counters.failed)
    out["gc/path_removals_pending"] = float(len(agent.gc.due))
    out.update(system_metrics())
    return dict(sorted(out.items()))


# -- sandboxes -----------------------------------------------------------------------


def attachments(agent: Agent) -> dict[str, Path]:
    """Virtual path -> real directory for every live or completed executor's sandbox, and
    `/slave/log` -> the agent's log file when it logs to one."""
    attached: dict[str, Path] = {}
    log = served_log(agent.flags_.log_dir, agent.flags_.external_log_file, "agent")
    if log is not None:
        attached["/slave/log"] = log
    frameworks = [*agent.core.frameworks.values(), *agent.core.completed_frameworks]
    for framework in frameworks:
        for executor in [*framework.completed_executors, *framework.executors.values()]:
            if not executor.directory:
                continue
            real = Path(executor.directory)
            try:
                real = real.resolve(strict=True)
            except OSError:
                continue  # not created yet or garbage collected
            attached[executor.directory] = real
            latest = Path(executor.directory).parent / "latest"
            attached[str(latest)] = real
            short = (
                f"/frameworks/{framework.framework_id}/executors/{executor.executor_id}/runs/latest"
            )
            attached[short] = real
    return attached


# -- /monitor/statistics and /containers ----------------------------------------------


async def usage(agent: Agent) -> list[tuple[ExecutorRecord, mesos_pb2.ResourceStatistics]]:
    """Resource statistics of every executor container still running."""
    running = set(agent.containerizer.containers())
    found = []
    for executor in agent.core.executors():
        if executor.container_id not in running:
            continue
        try:
            statistics = await agent.containerizer.usage(executor.container_id)
        except ContainerError:
            continue  # ended meanwhile: Mesos leaves it out as well
        found.append((executor, statistics))
    return found


async def monitor_statistics(agent: Agent, request: Request) -> Response:
    entries = [
        {
            "executor_id": executor.executor_id,
            "executor_name": executor.info.name,
            "framework_id": executor.framework_id,
            "source": executor.info.source,
            "statistics": mesos_json.to_dict(statistics),
        }
        for executor, statistics in await usage(agent)
    ]
    return json_response(entries, request)


async def containers(agent: Agent, request: Request) -> Response:
    """The executor containers, optionally only one (`container_id`), one framework's
    (`framework_id`) or one executor's (`framework_id` and `executor_id`), as Mesos selects."""
    query = request.query_params
    container_id, framework_id = query.get("container_id"), query.get("framework_id")
    executor_id = query.get("executor_id")
    if (container_id is not None and (executor_id is not None or framework_id is not None)) or (
        container_id is None and executor_id is not None and framework_id is None
    ):
        return text_response(
            400,
            "Supported query parameters are container_id only, framework_id only, or"
            " executor_id and framework_id only",
        )
    entries = []
    for executor, statistics in await usage(agent):
        if (
            (container_id is not None and executor.container_id != container_id)
            or (framework_id is not None and executor.framework_id != framework_id)
            or (executor_id is not None and executor.executor_id != executor_id)
        ):
            continue
        status: dict[str, Any] = {"container_id": {"value": executor.container_id}}
        if executor.pid is not None:
            status["executor_pid"] = executor.pid
        entries.append(
            {
                "container_id": executor.container_id,
                "executor_id": executor.executor_id,
                "executor_name": executor.info.name,
                "framework_id": executor.framework_id,
                "source": executor.info.source,
                "statistics": mesos_json.to_dict(statistics),
                "status": status,
            }
        )
    return json_response(entries, request)


# -- the rest ------------------------------------------------------------------------


RECOVERING = "Agent has not finished recovery"


def state(agent: Agent, request: Request) -> Response:
    if agent.recovering:
        return text_response(503, RECOVERING)
    return json_response(state_json(agent), request)


def flags(agent: Agent, request: Request) -> Response:
    return json_response({"flags": agent.flags}, request)


def health(agent: Agent, request: Request) -> Response:
    return Response(status_code=200)


def version(agent: Agent, request: Request) -> Response:
    return json_response(version_fields(), request)


def metrics_snapshot(agent: Agent, request: Request) -> Response:
    return snapshot_refusal(request) or json_response(metrics(agent), request)


def _bind(agent: Agent, handler: Callable[[Agent, Request], Response]) -> Handler:
    async def endpoint(request: Request) -> Response:
        return handler(agent, request)

    return endpoint


def _bind_async(agent: Agent, handler: Callable[[Agent, Request], Awaitable[Response]]) -> Handler:
    async def endpoint(request: Request) -> Response:
        return await handler(agent, request)

    return endpoint


def containerizer_debug(agent: Agent, request: Request) -> Response:
    """What the containerizer is in the middle of: launches and destroys not finished yet (an
    operation stuck here is what this endpoint exists to show)."""
    pending = [
        {"operation": operation, "args": {"containerId": cid}}
        for operation, cid in agent.containerizer.pending()
    ]
    return json_response({"pending": pending}, request)


def routes(agent: Agent) -> list[Route]:
    """Every path as Mesos spells it: agent-process routes also under `/slave(1)`."""
    table: list[tuple[Sequence[str], Callable[[Agent, Request], Response]]] = [
        (("/state", "/state.json"), state),
        (("/flags",), flags),
        (("/health",), health),
        (("/containerizer/debug",), containerizer_debug),
    ]
    out: list[Route] = []
    for paths, handler in table:
        for path in paths:
            for prefix in ("", "/slave(1)"):
                out.append(Route(prefix + path, _bind(agent, handler), methods=ANY_METHOD))
    top_level: list[tuple[str, Callable[[Agent, Request], Response]]] = [
        ("/version", version),
        ("/metrics/snapshot", metrics_snapshot),
    ]
    for path, handler in top_level:
        out.append(Route(path, _bind(agent, handler), methods=ANY_METHOD))
    out += files.routes(lambda: attachments(agent))
    out += host.system_routes()
    for paths, async_handler in (
        (("/monitor/statistics", "/monitor/statistics.json"), monitor_statistics),
        (("/containers",), containers),
    ):
        for path in paths:
            for prefix in ("", "/slave(1)"):
                route = Route(prefix + path, _bind_async(agent, async_handler), methods=ANY_METHOD)
                out.append(route)
    return out
