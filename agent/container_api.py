"""The agent operator API's container calls (contract 4.3, 4.4): nested containers and their I/O.

LAUNCH_NESTED_CONTAINER(_SESSION), WAIT/KILL/REMOVE_NESTED_CONTAINER and their LAUNCH/WAIT/KILL/
REMOVE_CONTAINER forms with a parent, ATTACH_CONTAINER_OUTPUT and ATTACH_CONTAINER_INPUT, with
Mesos's validation, statuses and words (src/slave/http.cpp, validation.cpp, io/switchboard.cpp).
This is what `mesos task exec` and `dcos task exec` drive: a session streams the command's output
until it ends, an input stream carries stdin and terminal sizes, WAIT_CONTAINER gives the exit
status. Executor containers themselves answer KILL_CONTAINER and WAIT_CONTAINER (agent/
operator_api.py) but have no switchboard; standalone containers (no parent, no executor) are not
supported.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from meseta.agent import launch_config
from meseta.agent.containerizer import container_environment
from meseta.agent.core import ExecutorRecord, FrameworkRecord
from meseta.agent.daemon import Agent
from meseta.agent.nested import (
    ContainerPath,
    NestedConfig,
    NestedError,
    container_id_of,
    describe,
    path_of,
)
from meseta.agent.switchboard import RECORDIO, Output, ProcessIO, Switchboard
from meseta.api import recordio
from meseta.api.http import DESERIALIZE_ERRORS, HttpError, accepts, parse_body
from meseta.api.streams import JSON, PROTOBUF
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.agent import agent_pb2

Call = agent_pb2.Call
AgentResponse = agent_pb2.Response
Input = Call.AttachContainerInput
NAME_MAX = 255
STREAMING_RESPONSES = (Call.ATTACH_CONTAINER_OUTPUT, Call.LAUNCH_NESTED_CONTAINER_SESSION)
# Each container call's body field, and whether its container must have a parent.
CONTAINER_CALLS = {
    Call.LAUNCH_NESTED_CONTAINER: ("launch_nested_container", True),
    Call.WAIT_NESTED_CONTAINER: ("wait_nested_container", True),
    Call.KILL_NESTED_CONTAINER: ("kill_nested_container", True),
    Call.REMOVE_NESTED_CONTAINER: ("remove_nested_container", True),
    Call.LAUNCH_NESTED_CONTAINER_SESSION: ("launch_nested_container_session", True),
    Call.ATTACH_CONTAINER_OUTPUT: ("attach_container_output", False),
    Call.LAUNCH_CONTAINER: ("launch_container", False),
    Call.WAIT_CONTAINER: ("wait_container", False),
    Call.KILL_CONTAINER: ("kill_container", False),
    Call.REMOVE_CONTAINER: ("remove_container", False),
}
REQUIRED_BODY = {kind: name for kind, (name, _) in CONTAINER_CALLS.items()}
REQUIRED_BODY[Call.ATTACH_CONTAINER_INPUT] = "attach_container_input"


# -- media types ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Media:
    """A request's media types, negotiated as Mesos's agent does (Http::api)."""

    content: str  # JSON, PROTOBUF or RECORDIO
    message_content: str | None  # the records' type, for a RECORDIO request
    accept: str  # JSON, PROTOBUF or RECORDIO
    message_accept: str | None  # the records' type, for a RECORDIO response

    @property
    def records(self) -> str:
        """How a streamed response's records are encoded."""
        return self.message_accept or self.accept


def media_types(request: Request) -> Media:
    headers = request.headers
    header = headers.get("content-type")
    if header is None:
        raise HttpError(400, "Expecting 'Content-Type' to be present")
    content = header.split(";", 1)[0].strip().lower()
    if content not in (JSON, PROTOBUF, RECORDIO):
        raise HttpError(415, f"Expecting 'Content-Type' of {JSON} or {PROTOBUF} or {RECORDIO}")
    message_content = headers.get("message-content-type")
    if content == RECORDIO:
        if message_content is None:
            raise HttpError(
                400, "Expecting 'Message-Content-Type' to be set for streaming requests"
            )
        message_content = message_content.split(";", 1)[0].strip().lower()
        if message_content not in (JSON, PROTOBUF):
            raise HttpError(415, f"Expecting 'Message-Content-Type' of {JSON} or {PROTOBUF}")
    elif message_content is not None:
        raise HttpError(
            415, "Expecting 'Message-Content-Type' to be not set for non-streaming requests"
        )
    accept_header = headers.get("accept")
    accept = next(
        (kind for kind in (JSON, PROTOBUF, RECORDIO)
         if accept_header is None or accepts(accept_header, kind)),
        None,
    )  # fmt: skip
    if accept is None:
        raise HttpError(406, f"Expecting 'Accept' to allow {JSON} or {PROTOBUF} or {RECORDIO}")
    message_accept_header = headers.get("message-accept")
    message_accept = None
    if accept == RECORDIO:
        message_accept = next(
            (kind for kind in (JSON, PROTOBUF)
             if message_accept_header is None or accepts(message_accept_header, kind)),
            None,
        )  # fmt: skip
        if message_accept is None:
            raise HttpError(406, f"Expecting 'Message-Accept' to allow {JSON} or {PROTOBUF}")
    elif message_accept_header is not None:
        raise HttpError(406, "Expecting 'Message-Accept' to be not set for non-streaming responses")
    return Media(content, message_content, accept, message_accept)


def check_media(call: agent_pb2.Call, media: Media) -> None:
    """Streaming requests and responses only where the call has them (Http::_api)."""
    name = Call.Type.Name(call.type)
    if media.content == RECORDIO and call.type != Call.ATTACH_CONTAINER_INPUT:
        raise HttpError(
            415, f"Streaming 'Content-Type' {RECORDIO} is not supported for {name} call"
        )
    if media.content != RECORDIO and call.type == Call.ATTACH_CONTAINER_INPUT:
        raise HttpError(415, f"Expecting 'Content-Type' to be {RECORDIO} for {name} call")
    if media.accept == RECORDIO and call.type not in STREAMING_RESPONSES:
        raise HttpError(406, f"Streaming response is not supported for {name} call")


# -- validation -----------------------------------------------------------------------------------


def invalid(message: str) -> HttpError:
    return HttpError(400, f"Failed to validate agent::Call: {message}")


def container_id_error(container_id: mesos_pb2.ContainerID) -> str | None:
    """Mesos's validateContainerId: every id in the chain is a valid id without periods."""
    value = container_id.value
    if not value:
        return "ID must not be empty"
    if len(value) > NAME_MAX:
        return f"ID must not be greater than {NAME_MAX} characters"
    if value in (".", ".."):
        return f"'{value}' is disallowed"
    if any(c in "/\\." or ord(c) < 32 or ord(c) == 127 for c in value):
        return f"'{value}' contains invalid characters"
    if container_id.HasField("parent"):
        return container_id_error(container_id.parent)
    return None


def validate(call: agent_pb2.Call) -> None:
    """The container calls' checks after the body's presence (validation::agent::call)."""
    if call.type == Call.ATTACH_CONTAINER_INPUT:
        attach = call.attach_container_input
        if not attach.HasField("type"):
            raise invalid("Expecting 'attach_container_input.type' to be present")
        if attach.type == Input.UNKNOWN:
            raise invalid("'attach_container_input.type' is unknown")
        if attach.type == Input.CONTAINER_ID:
            _check_id(attach.container_id, "attach_container_input", False)
        return
    known = CONTAINER_CALLS.get(call.type)
    if known is None:
        return
    name, needs_parent = known
    body = getattr(call, name)
    _check_id(body.container_id, name, needs_parent)
    if call.type == Call.LAUNCH_CONTAINER and len(path_of(body.container_id)) > 2:
        if body.resources:
            raise invalid(
                "'launch_container' is invalid: containers nested at the second level or"
                " greater cannot specify resources"
            )
        if body.limits:
            raise invalid(
                "'launch_container' is invalid: containers nested at the second level or"
                " greater cannot specify resource limits"
            )


def _check_id(container_id: mesos_pb2.ContainerID, name: str, needs_parent: bool) -> None:
    error = container_id_error(container_id)
    if error is not None:
        raise invalid(f"'{name}.container_id' is invalid: {error}")
    if needs_parent and not container_id.HasField("parent"):
        raise invalid(f"Expecting '{name}.container_id.parent' to be present")


# -- the executor a container belongs to ----------------------------------------------------------


def root_of(agent: Agent, root: str) -> tuple[FrameworkRecord, ExecutorRecord] | None:
    """The live executor whose container is `root`."""
    for framework in agent.core.frameworks.values():
        for executor in framework.executors.values():
            if executor.container_id == root:
                return framework, executor
    return None


def require_root(agent: Agent, path: ContainerPath) -> tuple[FrameworkRecord, ExecutorRecord]:
    found = root_of(agent, path[0])
    if found is None:
        raise HttpError(404, f"Container {describe(path)} cannot be found")
    return found


def error_response(error: NestedError) -> Response:
    return HttpError(error.status, error.message).response()


# -- launch, wait, kill, remove -------------------------------------------------------------------


Launch = Call.LaunchNestedContainer | Call.LaunchContainer | Call.LaunchNestedContainerSession


async def launch(agent: Agent, body: Launch, debug: bool) -> bool:
    """Start a nested container (NestedError as Mesos fails); False if it exists already."""
    path = path_of(body.container_id)
    container = body.container if body.HasField("container") else None
    if container is not None and container.type != mesos_pb2.ContainerInfo.MESOS:
        raise NestedError(400, "The provided ContainerInfo is not supported")
    if container is not None and container.mesos.HasField("image"):
        kind = mesos_pb2.Image.Type.Name(container.mesos.image.type)
        raise NestedError(
            400, f"Failed to launch container: Unsupported container image type: {kind}"
        )
    root = root_of(agent, path[0])
    if root is None:
        raise NestedError(400, f"Parent container {describe(path[:-1])} does not exist")
    framework, executor = root
    parent = launch_config.container_config(agent.flags_, agent.agent_id, framework, executor)
    tty = container.tty_info if container is not None and container.HasField("tty_info") else None
    config = NestedConfig(
        path=path,
        command=body.command,
        debug=debug,
        tty=tty,
        root_sandbox=Path(executor.directory),
        root_environment=container_environment(parent),
        root_user=parent.user,
    )
    return await agent.nested.launch(config)


async def launch_answer(agent: Agent, body: Launch) -> Response:
    try:
        launched = await launch(agent, body, debug=False)
    except NestedError as error:
        return error_response(error)
    return Response(status_code=200 if launched else 202)


def wait_answer(kind: int, status: int | None) -> AgentResponse:
    """A WAIT_CONTAINER or (deprecated call) WAIT_NESTED_CONTAINER answer."""
    out = AgentResponse()
    out.type = kind  # type: ignore[assignment]
    nested = kind == AgentResponse.WAIT_NESTED_CONTAINER
    body = out.wait_nested_container if nested else out.wait_container
    body.SetInParent()
    if status is not None:
        body.exit_status = status
    return out


async def wait(agent: Agent, container_id: mesos_pb2.ContainerID, kind: int) -> AgentResponse:
    path = path_of(container_id)
    termination = await agent.nested.wait(path)
    if termination is None:
        raise HttpError(404, f"Container {describe(path)} cannot be found")
    return wait_answer(kind, termination.status)


def signal_of(number: int) -> int:
    try:
        return int(signal.Signals(number))
    except ValueError:
        raise HttpError(400, f"Invalid signal {number}") from None


async def kill(agent: Agent, container_id: mesos_pb2.ContainerID, number: int) -> None:
    path = path_of(container_id)
    if not await agent.nested.kill(path, signal_of(number)):
        raise kill_not_found(describe(path))


def kill_not_found(container: str) -> HttpError:
    """Mesos's 404 for a KILL of a container that is not running."""
    return HttpError(404, f"Container '{container}' cannot be found (or is already killed)")


def remove(agent: Agent, container_id: mesos_pb2.ContainerID) -> Response:
    path = path_of(container_id)
    root = root_of(agent, path[0])
    sandbox = Path(root[1].directory) if root is not None else None
    try:
        agent.nested.remove(path, sandbox)
    except NestedError as error:
        return error_response(error)
    return Response(status_code=200)


# -- output ---------------------------------------------------------------------------------------


def output_for(media: Media) -> Output:
    """An output stream labelled as Mesos labels it: RecordIO with its records' type, or (a
    client that did not ask for RecordIO) the records' type alone."""
    return Output(media.accept, media.records)


async def session(agent: Agent, call: agent_pb2.Call, media: Media) -> Response | Output:
    """LAUNCH_NESTED_CONTAINER_SESSION: a DEBUG container whose output is the response; it is
    destroyed when its output ends or its client leaves."""
    body = call.launch_nested_container_session
    try:
        launched = await launch(agent, body, debug=True)
    except NestedError as error:
        return error_response(error)
    if not launched:
        return Response(status_code=202)  # as Mesos: only a launch that happened streams
    path = path_of(body.container_id)
    try:
        switchboard = agent.nested.switchboard(path)
    except NestedError as error:
        agent.nested.destroy_later(path)
        return error_response(error)
    stream = output_for(media)
    stream.on_close.append(lambda _: agent.nested.destroy_later(path))
    switchboard.attach(stream)
    return stream


async def attach_output(agent: Agent, call: agent_pb2.Call, media: Media) -> Response | Output:
    path = path_of(call.attach_container_output.container_id)
    require_root(agent, path)
    if len(path) == 1:  # an executor's container: written to its sandbox's files
        return HttpError(500, "I/O switchboard server was disabled for this container").response()
    try:
        switchboard = agent.nested.switchboard(path)
    except NestedError as error:
        return error_response(error)
    stream = output_for(media)
    switchboard.attach(stream)
    return stream


# -- input ----------------------------------------------------------------------------------------


async def records(request: Request) -> AsyncGenerator[bytes, None]:
    """The RecordIO records of a streamed request body, as they come."""
    decoder = recordio.Decoder()
    try:
        async for chunk in request.stream():
            for record in decoder.feed(chunk):
                yield record
    except ClientDisconnect:
        return
    except recordio.RecordIOError as error:
        raise HttpError(400, str(error)) from None


async def attach_input(
    agent: Agent, request: Request, media: Media, check: Callable[[agent_pb2.Call], None]
) -> Response:
    """ATTACH_CONTAINER_INPUT: the first record names the container; the others carry its stdin,
    its terminal's size or heartbeats, until the body ends (200) or the container's output does
    (200 too: Mesos answers once the container is done, whatever the client still sends)."""
    assert media.message_content is not None
    incoming = records(request)
    try:
        first = await anext(incoming)
    except StopAsyncIteration:
        raise HttpError(400, "Received EOF while reading request body") from None
    call = parse_body(first, media.message_content, Call, DESERIALIZE_ERRORS)
    check(call)
    check_media(call, media)
    if agent.recovering:
        raise HttpError(503, "Agent has not finished recovery")
    attach = call.attach_container_input
    if attach.type != Input.CONTAINER_ID:
        raise HttpError(400, "Expecting 'attach_container_input.type' to be CONTAINER_ID")
    path = path_of(attach.container_id)
    require_root(agent, path)
    if len(path) == 1:
        raise HttpError(500, "I/O switchboard server was disabled for this container")
    try:
        switchboard = agent.nested.switchboard(path)
    except NestedError as error:
        return error_response(error)
    if switchboard.input_attached:
        return HttpError(409, "Multiple input connections are not allowed").response()
    switchboard.input_attached = True
    finished = asyncio.ensure_future(switchboard.finished.wait())
    try:
        while True:
            following = asyncio.ensure_future(anext(incoming))
            await asyncio.wait({following, finished}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                return Response(status_code=200)  # the container's output has ended
            try:
                record = following.result()
            except StopAsyncIteration:
                return Response(status_code=200)
            message = parse_body(record, media.message_content, Call, DESERIALIZE_ERRORS)
            problem = input_error(message)
            if problem is not None:
                return HttpError(400, problem).response()
            answer = await take_input(switchboard, message.attach_container_input.process_io)
            if answer is not None:
                return answer
    finally:
        finished.cancel()
        switchboard.input_attached = False
        with contextlib.suppress(Exception):
            await incoming.aclose()


def input_error(call: agent_pb2.Call) -> str | None:
    """What is wrong with an input record after the first (the switchboard's validation)."""
    if call.type != Call.ATTACH_CONTAINER_INPUT or not call.HasField("attach_container_input"):
        return "Expecting 'attach_container_input' to be present"
    attach = call.attach_container_input
    if attach.type != Input.PROCESS_IO:
        name = Input.Type.Name(attach.type)
        return f"Expecting 'attach_container_input.type' to be 'PROCESS_IO' instead of: '{name}'"
    if not attach.HasField("process_io"):
        return "Expecting 'attach_container_input.process_io' to be present"
    message = attach.process_io
    if not message.HasField("type"):
        return "Expecting 'process_io.type' to be present"
    if message.type == ProcessIO.CONTROL:
        control = message.control
        if not message.HasField("control"):
            return "Expecting 'process_io.control' to be present"
        if not control.HasField("type"):
            return "Expecting 'process_io.control.type' to be present"
        if control.type == ProcessIO.Control.TTY_INFO:
            if not control.HasField("tty_info"):
                return "Expecting 'process_io.control.tty_info' to be present"
            if not control.tty_info.HasField("window_size"):
                return "Expecting 'tty_info.window_size' to be present"
            return None
        if control.type == ProcessIO.Control.HEARTBEAT:
            if not control.HasField("heartbeat"):
                return "Expecting 'process_io.control.heartbeat' to be present"
            return None
        return "'process_io.control.type' is unknown"
    if message.type == ProcessIO.DATA:
        if not message.HasField("data"):
            return "Expecting 'process_io.data' to be present"
        if not message.data.HasField("type"):
            return "Expecting 'process_io.data.type' to be present"
        if message.data.type != ProcessIO.Data.STDIN:
            return "Expecting 'process_io.data.type' to be 'STDIN'"
        if not message.data.HasField("data"):
            return "Expecting 'process_io.data.data' to be present"
        return None
    return "'process_io.type' is unknown"


async def take_input(switchboard: Switchboard, message: agent_pb2.ProcessIO) -> Response | None:
    """Apply one valid input record; a response ends the input stream."""
    if message.type == ProcessIO.CONTROL:
        if message.control.type == ProcessIO.Control.TTY_INFO:
            size = message.control.tty_info.window_size
            try:
                switchboard.resize(size.rows, size.columns)
            except OSError as error:
                return HttpError(400, f"Unable to set the window size: {error}").response()
        return None  # heartbeats: Mesos ignores their interval too
    data = message.data.data
    if not data and not switchboard.tty:
        switchboard.close_input()  # EOF (a terminal's client sends EOT instead)
        return None
    try:
        await switchboard.write(data)
    except OSError as error:
        if error.errno == errno.EPIPE:
            return HttpError(500, f"Failed writing to stdin: {error.strerror}").response()
        return HttpError(500, f"Failed writing to stdin: {error}").response()
    return None


# -- the call table -------------------------------------------------------------------------------

Handler = Callable[[agent_pb2.Call], Awaitable["AgentResponse | Response | None"]]


def handlers(agent: Agent) -> dict[int, Handler]:
    """The non-streaming container calls on nested containers (executor containers' KILL and
    WAIT are operator_api's)."""

    async def launch_nested(call: agent_pb2.Call) -> Response:
        return await launch_answer(agent, call.launch_nested_container)

    async def launch_container(call: agent_pb2.Call) -> Response:
        if not call.launch_container.container_id.HasField("parent"):
            raise HttpError(501, "Standalone containers (LAUNCH_CONTAINER without a parent) are"
                                 " not supported")  # fmt: skip
        return await launch_answer(agent, call.launch_container)

    async def wait_nested(call: agent_pb2.Call) -> AgentResponse:
        return await wait(agent, call.wait_nested_container.container_id,
                          AgentResponse.WAIT_NESTED_CONTAINER)  # fmt: skip

    async def kill_nested(call: agent_pb2.Call) -> None:
        body = call.kill_nested_container
        await kill(agent, body.container_id, body.signal if body.HasField("signal") else 9)

    async def remove_nested(call: agent_pb2.Call) -> Response:
        return remove(agent, call.remove_nested_container.container_id)

    async def remove_container(call: agent_pb2.Call) -> Response:
        if not call.remove_container.container_id.HasField("parent"):
            raise HttpError(501, "Standalone containers (REMOVE_CONTAINER without a parent) are"
                                 " not supported")  # fmt: skip
        return remove(agent, call.remove_container.container_id)

    return {
        Call.LAUNCH_NESTED_CONTAINER: launch_nested,
        Call.LAUNCH_CONTAINER: launch_container,
        Call.WAIT_NESTED_CONTAINER: wait_nested,
        Call.KILL_NESTED_CONTAINER: kill_nested,
        Call.REMOVE_NESTED_CONTAINER: remove_nested,
        Call.REMOVE_CONTAINER: remove_container,
    }


def nested_containers(agent: Agent) -> list[tuple[ContainerPath, mesos_pb2.ContainerID]]:
    return [(path, container_id_of(path)) for path in agent.nested.live()]


async def stream(agent: Agent, call: agent_pb2.Call, media: Media) -> Response | Output:
    if call.type == Call.LAUNCH_NESTED_CONTAINER_SESSION:
        return await session(agent, call, media)
    return await attach_output(agent, call, media)
