"""The v1 agent operator API at the agent's `/api/v1` and `/slave(1)/api/v1` (contract 4.3, 4.4).

Answers every call that needs no container isolation: the GET_* calls, logging level, sandbox
files (the same attachments as /files/*), and KILL_CONTAINER / WAIT_CONTAINER on executor
containers. Nested and standalone containers (LAUNCH_*/ATTACH_*/REMOVE_CONTAINER), resource
provider configs and image pruning need the isolation work and answer 501 saying so.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meseta.agent import endpoints
from meseta.agent.containerizer import ContainerError
from meseta.agent.core import ExecutorRecord, FrameworkRecord
from meseta.agent.daemon import Agent
from meseta.api import files, mesos_json, verbosity
from meseta.api.http import (
    ANY_METHOD,
    HttpError,
    encode_body,
    parse_body,
    request_media_type,
    require_post,
    response_media_type,
    validate_call,
)
from meseta.api.verbosity import VERBOSITY
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.agent import agent_pb2

Call = agent_pb2.Call
AgentResponse = agent_pb2.Response
RECORDIO = "application/recordio"
STREAMING_RESPONSES = (Call.ATTACH_CONTAINER_OUTPUT, Call.LAUNCH_NESTED_CONTAINER_SESSION)
NEEDS_ISOLATION = (
    Call.LAUNCH_NESTED_CONTAINER,
    Call.WAIT_NESTED_CONTAINER,
    Call.KILL_NESTED_CONTAINER,
    Call.REMOVE_NESTED_CONTAINER,
    Call.LAUNCH_NESTED_CONTAINER_SESSION,
    Call.ATTACH_CONTAINER_INPUT,
    Call.ATTACH_CONTAINER_OUTPUT,
    Call.LAUNCH_CONTAINER,
    Call.REMOVE_CONTAINER,
    Call.ADD_RESOURCE_PROVIDER_CONFIG,
    Call.UPDATE_RESOURCE_PROVIDER_CONFIG,
    Call.REMOVE_RESOURCE_PROVIDER_CONFIG,
    Call.MARK_RESOURCE_PROVIDER_GONE,
    Call.PRUNE_IMAGES,
)
# The sub-message each call type must carry (Mesos's agent call validation).
REQUIRED_BODY = {
    Call.GET_METRICS: "get_metrics",
    Call.SET_LOGGING_LEVEL: "set_logging_level",
    Call.LIST_FILES: "list_files",
    Call.READ_FILE: "read_file",
    Call.KILL_CONTAINER: "kill_container",
    Call.WAIT_CONTAINER: "wait_container",
}


def validate(call: agent_pb2.Call) -> None:
    validate_call(call, "agent", REQUIRED_BODY)
    if call.type == Call.KILL_CONTAINER:
        check_container_id(call.kill_container.container_id)
    if call.type == Call.WAIT_CONTAINER:
        check_container_id(call.wait_container.container_id)


def check_container_id(container_id: mesos_pb2.ContainerID) -> None:
    value = container_id.value
    if not value or "/" in value or value in (".", "..") or any(c.isspace() for c in value):
        raise HttpError(
            400,
            f"Failed to validate agent::Call: ContainerID '{value}' contains invalid characters",
        )


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


def find_container(agent: Agent, container_id: str) -> ExecutorRecord | None:
    for executor in agent.core.executors():
        if executor.container_id == container_id:
            return executor
    return None


def attach_refusal(agent: Agent, container_id: str) -> HttpError:
    """Why a container's output cannot be attached to, with Mesos's status and words.

    Mesos's I/O switchboard serves only containers launched with a TTY (its other
    containers fail with the 500 that clients such as `mesos task attach` expect);
    this agent refuses to launch those (`launch_config.unsupported_container`).
    """
    if find_container(agent, container_id) is None or (
        container_id not in agent.containerizer.containers()
    ):
        return HttpError(500, f"Unknown container {container_id}")
    return HttpError(500, "I/O switchboard server was disabled for this container")


async def containers(agent: Agent, call: agent_pb2.Call) -> AgentResponse.GetContainers:
    """Executor containers (there are no nested or standalone ones without isolation)."""
    out = AgentResponse.GetContainers()
    for executor, statistics in await endpoints.usage(agent):
        container = out.containers.add()
        container.framework_id.value = executor.framework_id
        container.executor_id.CopyFrom(executor.info.executor_id)
        container.executor_name = executor.info.name
        container.container_id.value = executor.container_id
        container.container_status.container_id.value = executor.container_id
        if executor.pid is not None:
            container.container_status.executor_pid = executor.pid
        container.resource_statistics.CopyFrom(statistics)
    return out


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
    container_id = call.kill_container.container_id.value
    executor = find_container(agent, container_id)
    if executor is None or container_id not in agent.containerizer.containers():
        raise HttpError(404, f"Container {container_id} cannot be found (or is already killed)")
    number = call.kill_container.signal if call.kill_container.HasField("signal") else 9
    if number == signal.SIGKILL or executor.pid is None:
        # The whole tree goes, and the agent then reports the executor's tasks as Mesos does.
        await agent.containerizer.destroy(container_id)
        return
    try:
        signal.Signals(number)
    except ValueError:
        raise HttpError(400, f"Invalid signal {number}") from None
    try:
        os.kill(executor.pid, number)
    except ProcessLookupError:
        raise HttpError(404, f"Container {container_id} cannot be found") from None


async def wait_container(agent: Agent, call: agent_pb2.Call) -> AgentResponse.WaitContainer:
    container_id = call.wait_container.container_id.value
    try:
        termination = await agent.containerizer.wait(container_id)
    except ContainerError:
        raise HttpError(404, f"Container {container_id} cannot be found") from None
    out = AgentResponse.WaitContainer()
    if termination.status is not None:
        out.exit_status = termination.status
    if termination.reason is not None:
        out.reason = termination.reason  # type: ignore[assignment]
    if termination.message:
        out.message = termination.message
    return out


Answer = AgentResponse | None


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
        body = await wait_container(agent, call)
        return respond(AgentResponse.WAIT_CONTAINER, wait_container=body)

    table[Call.GET_CONTAINERS] = get_containers
    table[Call.WAIT_CONTAINER] = wait
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


def check_media(request: Request) -> str:
    """The request's media type, after the agent API's streaming-header rules (contract 4.4)."""
    content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type == RECORDIO:
        if "message-content-type" not in request.headers:
            raise HttpError(400, "Expecting 'Message-Content-Type' header to be present")
        raise HttpError(501, "Streaming requests (ATTACH_CONTAINER_INPUT) are not supported")
    media_type = request_media_type(request)
    if "message-content-type" in request.headers:
        raise HttpError(
            415, "Expecting 'Message-Content-Type' header to be absent for non-streaming requests"
        )
    return media_type


def accept_type(request: Request) -> str:
    if "message-accept" in request.headers:
        raise HttpError(406, "Expecting 'Message-Accept' to be absent for non-streaming responses")
    return response_media_type(request)


def routes(agent: Agent) -> list[Route]:
    table = handler_table(agent)

    async def api(request: Request) -> Response:
        try:
            require_post(request)
            media_type = check_media(request)
            call = parse_body(await request.body(), media_type, Call)
            validate(call)
            if agent.recovering:
                raise HttpError(503, "Agent has not finished recovery")
            name = Call.Type.Name(call.type)
            if call.type == Call.ATTACH_CONTAINER_OUTPUT:
                raise attach_refusal(agent, call.attach_container_output.container_id.value)
            if call.type in STREAMING_RESPONSES:
                raise HttpError(501, f"{name} is not supported: it needs container isolation")
            answer_type = accept_type(request)
            if call.type in NEEDS_ISOLATION:
                raise HttpError(501, f"{name} is not supported: it needs container isolation")
            handler = table.get(call.type)
            if handler is None:
                raise HttpError(501, f"Unsupported call type {name}")
            answer = await handler(call)
        except HttpError as error:
            return error.response()
        if answer is None:
            return Response(status_code=200)
        return encode_body(answer, answer_type)

    out = [Route(prefix + "/api/v1", api, methods=ANY_METHOD) for prefix in ("", "/slave(1)")]
    out.append(Route("/logging/toggle", verbosity.toggle, methods=["GET", "POST"]))
    return out
