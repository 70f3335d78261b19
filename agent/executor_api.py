"""The server side of the v1 executor API: POST /api/v1/executor (and /slave(1)/...).

Executors SUBSCRIBE and keep the RecordIO response open (events: SUBSCRIBED,
LAUNCH, LAUNCH_GROUP, KILL, ACKNOWLEDGED, MESSAGE, SHUTDOWN); UPDATE,
MESSAGE and HEARTBEAT are separate POSTs answered 202. This module checks
the HTTP side and the call (contract 3.1, in Mesos's order and words) and
hands valid calls to the daemon through the `ExecutorCalls` protocol.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meseta.api import mesos_json
from meseta.api.http import (
    HttpError,
    parse_body,
    request_media_type,
    require_post,
    response_media_type,
)
from meseta.api.streams import Stream
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.executor import executor_pb2

Call = executor_pb2.Call
Event = executor_pb2.Event
PATHS = ("/api/v1/executor", "/slave(1)/api/v1/executor")
# Mesos's DEFAULT_EXECUTOR_HEARTBEAT_INTERVAL: a HEARTBEAT every 30 minutes, the first
# 30 minutes after SUBSCRIBED (executors such as mesos-go's example exit on one they do
# not expect sooner).
HEARTBEAT_INTERVAL_S = 1800.0


class ExecutorCalls(Protocol):
    """What the daemon does with valid executor calls (HttpError to refuse)."""

    def executor_subscribe(self, call: Call, stream: Stream) -> None: ...

    async def executor_update(self, call: Call) -> None: ...

    async def executor_message(self, call: Call) -> None: ...


def routes(handler: ExecutorCalls) -> list[Route]:
    async def endpoint(request: Request) -> Any:
        try:
            return await _dispatch(handler, request)
        except HttpError as error:
            return error.response()

    return [Route(path, endpoint, methods=["GET", "POST", "PUT", "DELETE"]) for path in PATHS]


async def _dispatch(handler: ExecutorCalls, request: Request) -> Response | Stream:
    require_post(request)
    call = parse_body(await request.body(), request_media_type(request), Call)
    _validate(call)
    if call.type == Call.HEARTBEAT:
        return Response(status_code=202)
    if call.type == Call.SUBSCRIBE:
        heartbeat = Event(type=Event.HEARTBEAT)
        stream = Stream(str(uuid.uuid4()), response_media_type(request), heartbeat,
                        HEARTBEAT_INTERVAL_S)  # fmt: skip
        handler.executor_subscribe(call, stream)
        return stream
    if call.type == Call.UPDATE:
        await handler.executor_update(call)
    else:
        await handler.executor_message(call)
    return Response(status_code=202)


def _validate(call: Call) -> None:
    """Contract 3.1: Mesos's validateExecutorCall, in its words."""
    if call.HasField("type") and (call.type == Call.UNKNOWN or call.type not in Call.Type.values()):
        raise HttpError(501, "Received an unknown call type")
    problem = _problem(call)
    if problem is not None:
        raise HttpError(400, f"Failed to validate Executor::Call: {problem}")


def _problem(call: Call) -> str | None:
    if not call.HasField("type"):
        return "Expecting 'type' to be present"
    if call.type == Call.HEARTBEAT:
        return None  # Mesos's executor library sends it with dummy ids
    if not call.HasField("executor_id"):
        return "Expecting 'executor_id' to be present"
    if not call.HasField("framework_id"):
        return "Expecting 'framework_id' to be present"
    body = {Call.SUBSCRIBE: "subscribe", Call.UPDATE: "update", Call.MESSAGE: "message"}
    name = body[call.type]
    if not call.HasField(name):
        return f"Expecting '{name}' to be present"
    if call.type == Call.UPDATE:
        return _status_problem(call, call.update.status)
    return None


def _status_problem(call: Call, status: mesos_pb2.TaskStatus) -> str | None:
    if not status.HasField("uuid"):
        return "Expecting 'uuid' to be present"
    if not mesos_json.valid_uuid(status.uuid):
        return "Not a valid UUID"
    executor, framework = call.executor_id.value, call.framework_id.value
    if status.HasField("executor_id") and status.executor_id != call.executor_id:
        return (f"ExecutorID in Call: {executor} does not match ExecutorID in TaskStatus:"
                f" {status.executor_id.value}")  # fmt: skip
    if status.source != mesos_pb2.TaskStatus.SOURCE_EXECUTOR:
        return (f"Received Call from executor {executor} of framework {framework} with"
                " invalid source, expecting 'SOURCE_EXECUTOR'")  # fmt: skip
    if status.state == mesos_pb2.TASK_STAGING:
        return (f"Received TASK_STAGING from executor {executor} of framework {framework}"
                " which is not allowed")  # fmt: skip
    return None
