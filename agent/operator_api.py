"""The v1 agent operator API at the agent's `/api/v1` and `/slave(1)/api/v1` (contract 4.3, 4.4).

The GET_* calls, logging level, sandbox files (the same attachments as /files/*),
KILL_CONTAINER / WAIT_CONTAINER on executor containers, and the nested-container calls with
their streams (agent/container_api.py). Standalone containers, resource provider configs and
image pruning answer 501 saying why.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meseta.agent import container_api, endpoints
from meseta.agent.containerizer import ContainerError
from meseta.agent.core import ExecutorRecord, FrameworkRecord
from meseta.agent.daemon import Agent
from meseta.agent.switchboard import RECORDIO, Output
from meseta.api import files, mesos_json, verbosity
from meseta.api.http import (
    ANY_METHOD,
    DESERIALIZE_ERRORS,
    HttpError,
    encode_body,
    parse_body,
    require_post,
    validate_call,
)
from meseta.api.verbosity import VERBOSITY
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.agent import agent_pb2

Call = agent_pb2.Call
AgentResponse = agent_pb2.Response
# What this agent has no part for: resource providers and container images.
UNSUPPORTED = {
    Call.ADD_RESOURCE_PROVIDER_CONFIG: "it has no resource providers",
    Call.UPDATE_RESOURCE_PROVIDER_CONFIG: "it has no resource providers",
    Call.REMOVE_RESOURCE_PROVIDER_CONFIG: "it has no resource providers",
    Call.MARK_RESOURCE_PROVIDER_GONE: "it has no resource providers",
    Call.PRUNE_IMAGES: "it has no container image store",
}
# The sub-message each call type must carry (Mesos's agent call validation).
REQUIRED_BODY = {
    Call.GET_METRICS: "get_metrics",
    Call.SET_LOGGING_LEVEL: "set_logging_level",
    Call.LIST_FILES: "list_files",
    Call.READ_FILE: "read_file",
    **container_api.REQUIRED_BODY,
}


def validate(call: agent_pb2.Call) -> None:
    validate_call(call, "agent", REQUIRED_BODY)
    container_api.validate(call)


# -- answers ---------------------------------------------------------------------------


def frameworks(agent: Agent) -> AgentResponse.GetFrameworks:
    out = AgentResponse.GetFrameworks()
    for framework in agent.core.frameworks.values():
        out.frameworks.add().framework_info.CopyFrom(framework.info)
    for framework in agent.core.completed_frameworks:
        out.completed_frameworks.add().framework_info.CopyFrom(framework.info)
    return out


def _all_frameworks(agent: Agent) -> list[FrameworkRecord]:
    return [*agent.core.frameworks.values(), *agent.core.completed_frameworks]


def executors(agent: Agent) -> AgentResponse.GetExecutors:
    out = AgentResponse.GetExecutors()
    for framework in _all_frameworks(agent):
        for executor in framework.executors.values():
            out.executors.add().executor_info.CopyFrom(executor.info)
        for executor in framework.completed_executors:
            out.completed_executors.add().executor_info.CopyFrom(executor.info)
    return out


def tasks(agent: Agent) -> AgentResponse.GetTasks:
    out = AgentResponse.GetTasks()
    agent_id = agent.info.id.value
    for framework in _all_frameworks(agent):
        for executor in framework.executors.values():
            out.queued_tasks.extend(t.to_task(agent_id) for t in executor.queued.values())
            out.launched_tasks.extend(t.to_task(agent_id) for t in executor.tasks.values())
        for executor in [*framework.executors.values(), *framework.completed_executors]:
            out.completed_tasks.extend(t.to_task(agent_id) for t in executor.completed)
    return out


async def containers(agent: Agent, call: agent_pb2.Call) -> AgentResponse.GetContainers:
    """Executor containers, and with `show_nested` the containers nested in them."""
    out = AgentResponse.GetContainers()
    for executor, statistics in await endpoints.usage(agent):
        container = out.containers.add()
        describe_executor(container, executor)
        container.container_id.value = executor.container_id
        container.container_status.container_id.value = executor.container_id
        if executor.pid is not None:
            container.container_status.executor_pid = executor.pid
        container.resource_statistics.CopyFrom(statistics)
    if call.get_containers.show_nested:
        for path, container_id in container_api.nested_containers(agent):
            root = container_api.root_of(agent, path[0])
            container = out.containers.add()
            if root is not None:
                describe_executor(container, root[1])
            container.container_id.CopyFrom(container_id)
            container.container_status.container_id.CopyFrom(container_id)
            usage = await agent.nested.usage(path)
            if usage is not None:
                container.container_status.executor_pid = usage[0]
                container.resource_statistics.CopyFrom(usage[1])
    return out


def describe_executor(
    container: AgentResponse.GetContainers.Container, executor: ExecutorRecord
) -> None:
    container.framework_id.value = executor.framework_id
    container.executor_id.CopyFrom(executor.info.executor_id)
    container.executor_name = executor.info.name


def metrics(agent: Agent) -> AgentResponse.GetMetrics:
    values = endpoints.metrics(agent)
    return AgentResponse.GetMetrics(
        metrics=[mesos_pb2.Metric(name=k, value=v) for k, v in values.items()]
    )


def version_info() -> mesos_pb2.VersionInfo:
    return mesos_json.from_dict(endpoints.version_fields(), mesos_pb2.VersionInfo)


def list_files(agent: Agent, call: agent_pb2.Call) -> AgentResponse.ListFiles:
    listing = files.list_files(endpoints.attachments(agent), call.list_files.path)
    return AgentResponse.ListFiles(file_infos=listing)


def read_file(agent: Agent, call: agent_pb2.Call) -> AgentResponse.ReadFile:
    request = call.read_file
    length = request.length if request.HasField("length") else None
    chunk = files.read_file(endpoints.attachments(agent), request.path, request.offset, length)
    return AgentResponse.ReadFile(size=chunk.size, data=chunk.data)


async def kill_container(agent: Agent, call: agent_pb2.Call) -> None:
    body = call.kill_container
    number = body.signal if body.HasField("signal") else 9
    if body.container_id.HasField("parent"):
        await container_api.kill(agent, body.container_id, number)
        return
    container_id = body.container_id.value
    found = container_api.root_of(agent, container_id)
    if found is None or container_id not in agent.containerizer.containers():
        raise container_api.kill_not_found(container_id)
    executor = found[1]
    number = container_api.signal_of(number)
    if number == signal.SIGKILL or executor.pid is None:
        # The whole tree goes, and the agent then reports the executor's tasks as Mesos does.
        await agent.containerizer.destroy(container_id)
        return
    try:
        os.kill(executor.pid, number)
    except ProcessLookupError:
        raise container_api.kill_not_found(container_id) from None


async def wait_container(agent: Agent, call: agent_pb2.Call) -> AgentResponse:
    container = call.wait_container.container_id
    if container.HasField("parent"):
        return await container_api.wait(agent, container, AgentResponse.WAIT_CONTAINER)
    try:
        termination = await agent.containerizer.wait(container.value)
    except ContainerError:
        raise HttpError(404, f"Container {container.value} cannot be found") from None
    out = container_api.wait_answer(AgentResponse.WAIT_CONTAINER, termination.status)
    if termination.reason is not None:
        out.wait_container.reason = termination.reason  # type: ignore[assignment]
    if termination.message:
        out.wait_container.message = termination.message
    return out


Answer = AgentResponse | Response | None


def handler_table(
    agent: Agent,
) -> dict[int, Callable[[agent_pb2.Call], Awaitable[Answer]]]:
    def respond(kind: int, **body: object) -> AgentResponse:
        return AgentResponse(type=kind, **body)  # type: ignore[arg-type]

    async def get_health(call: agent_pb2.Call) -> Answer:
        return respond(AgentResponse.GET_HEALTH, get_health=AgentResponse.GetHealth(healthy=True))

    async def get_flags(call: agent_pb2.Call) -> Answer:
        flags = [mesos_pb2.Flag(name=k, value=v) for k, v in agent.flags.items()]
        return respond(AgentResponse.GET_FLAGS, get_flags=AgentResponse.GetFlags(flags=flags))

    async def get_version(call: agent_pb2.Call) -> Answer:
        body = AgentResponse.GetVersion(version_info=version_info())
        return respond(AgentResponse.GET_VERSION, get_version=body)

    async def get_metrics(call: agent_pb2.Call) -> Answer:
        return respond(AgentResponse.GET_METRICS, get_metrics=metrics(agent))

    async def get_logging_level(call: agent_pb2.Call) -> Answer:
        body = AgentResponse.GetLoggingLevel(level=VERBOSITY.level)
        return respond(AgentResponse.GET_LOGGING_LEVEL, get_logging_level=body)

    async def set_logging_level(call: agent_pb2.Call) -> Answer:
        request = call.set_logging_level
        VERBOSITY.set(request.level, request.duration.nanoseconds / 1e9)
        return None

    async def get_state(call: agent_pb2.Call) -> Answer:
        body = AgentResponse.GetState(
            get_tasks=tasks(agent), get_executors=executors(agent), get_frameworks=frameworks(agent)
        )
        return respond(AgentResponse.GET_STATE, get_state=body)

    async def get_agent(call: agent_pb2.Call) -> Answer:
        body = AgentResponse.GetAgent(agent_info=agent.info)
        if agent.drain_config is not None:
            body.drain_config.CopyFrom(agent.drain_config)
            body.estimated_drain_start_time.nanoseconds = int(agent.drain_started_s) * 10**9
        return respond(AgentResponse.GET_AGENT, get_agent=body)

    async def kill(call: agent_pb2.Call) -> Answer:
        await kill_container(agent, call)
        return None

    table: dict[int, Callable[[agent_pb2.Call], Awaitable[Answer]]] = {
        Call.GET_HEALTH: get_health,
        Call.GET_FLAGS: get_flags,
        Call.GET_VERSION: get_version,
        Call.GET_METRICS: get_metrics,
        Call.GET_LOGGING_LEVEL: get_logging_level,
        Call.SET_LOGGING_LEVEL: set_logging_level,
        Call.GET_STATE: get_state,
        Call.GET_AGENT: get_agent,
        Call.KILL_CONTAINER: kill,
    }
    simple: dict[int, tuple[int, str, Callable[[agent_pb2.Call], object]]] = {
        Call.LIST_FILES: (AgentResponse.LIST_FILES, "list_files", lambda c: list_files(agent, c)),
        Call.READ_FILE: (AgentResponse.READ_FILE, "read_file", lambda c: read_file(agent, c)),
        Call.GET_FRAMEWORKS: (AgentResponse.GET_FRAMEWORKS, "get_frameworks",
                              lambda c: frameworks(agent)),
        Call.GET_EXECUTORS: (AgentResponse.GET_EXECUTORS, "get_executors",
                             lambda c: executors(agent)),
        Call.GET_TASKS: (AgentResponse.GET_TASKS, "get_tasks", lambda c: tasks(agent)),
        Call.GET_OPERATIONS: (AgentResponse.GET_OPERATIONS, "get_operations",
                              lambda c: AgentResponse.GetOperations()),
        Call.GET_RESOURCE_PROVIDERS: (AgentResponse.GET_RESOURCE_PROVIDERS,
                                      "get_resource_providers",
                                      lambda c: AgentResponse.GetResourceProviders()),
    }  # fmt: skip
    for call_type, (kind, name, build) in simple.items():
        table[call_type] = _simple(respond, kind, name, build)

    async def get_containers(call: agent_pb2.Call) -> Answer:
        return respond(AgentResponse.GET_CONTAINERS, get_containers=await containers(agent, call))

    async def wait(call: agent_pb2.Call) -> Answer:
        return await wait_container(agent, call)

    table[Call.GET_CONTAINERS] = get_containers
    table[Call.WAIT_CONTAINER] = wait
    table.update(container_api.handlers(agent))
    return table


def _simple(
    respond: Callable[..., AgentResponse],
    kind: int,
    name: str,
    build: Callable[[agent_pb2.Call], object],
) -> Callable[[agent_pb2.Call], Awaitable[Answer]]:
    async def answer(call: agent_pb2.Call) -> Answer:
        return respond(kind, **{name: build(call)})

    return answer


def routes(agent: Agent) -> list[Route]:
    table = handler_table(agent)

    async def api(request: Request) -> Response | Output:
        try:
            require_post(request)
            media = container_api.media_types(request)
            if media.content == RECORDIO:
                return await container_api.attach_input(agent, request, media, validate)
            call = parse_body(await request.body(), media.content, Call, DESERIALIZE_ERRORS)
            validate(call)
            container_api.check_media(call, media)
            if agent.recovering:
                raise HttpError(503, "Agent has not finished recovery")
            if call.type in container_api.STREAMING_RESPONSES:
                return await container_api.stream(agent, call, media)
            name = Call.Type.Name(call.type)
            if call.type in UNSUPPORTED:
                raise HttpError(501, f"{name} is not supported: {UNSUPPORTED[call.type]}")
            handler = table.get(call.type)
            if handler is None:
                raise HttpError(501, f"Unsupported call type {name}")
            answer = await handler(call)
        except HttpError as error:
            return error.response()
        if answer is None:
            return Response(status_code=200)
        if isinstance(answer, Response):
            return answer
        return encode_body(answer, media.accept)

    out = [Route(prefix + "/api/v1", api, methods=ANY_METHOD) for prefix in ("", "/slave(1)")]
    out.append(Route("/logging/toggle", verbosity.toggle, methods=["GET", "POST"]))
    return out
