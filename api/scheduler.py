"""The v1 scheduler API: POST /api/v1/scheduler (and /master/api/v1/scheduler).

Checks run in Mesos's order (contract 1.5). A call that changes state becomes
one log entry; the answer (202) is sent once the entry is committed and
applied, so an acknowledged call is never lost. SUBSCRIBE answers with a
RecordIO stream whose first event says whether the fold accepted it.
"""

from __future__ import annotations

import logging
import uuid

from starlette.requests import Request
from starlette.responses import Response

from meseta.api import mesos_json
from meseta.api.context import MasterContext
from meseta.api.event_router import HEARTBEAT_INTERVAL_S
from meseta.api.http import (
    HttpError,
    parse_body,
    request_media_type,
    require_post,
    response_media_type,
)
from meseta.api.proposals import propose_and_wait
from meseta.api.streams import Stream
from meseta.master import decide
from meseta.master.events import CommandRejected
from meseta.master.reconciliation import reconcile
from meseta.master.state import Framework, FrameworkStatus
from meseta.master.v1 import commands_pb2 as commands
from meseta.proto.agent_link.v1 import agent_link_pb2
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

Call = scheduler_pb2.Call
Event = scheduler_pb2.Event
log = logging.getLogger(__name__)
STREAM_ID = "Mesos-Stream-Id"

# Call type -> the body field it requires (None: no body, or optional).
REQUIRED_BODY = {
    Call.SUBSCRIBE: "subscribe",
    Call.ACCEPT: "accept",
    Call.DECLINE: "decline",
    Call.ACCEPT_INVERSE_OFFERS: "accept_inverse_offers",
    Call.DECLINE_INVERSE_OFFERS: "decline_inverse_offers",
    Call.KILL: "kill",
    Call.SHUTDOWN: "shutdown",
    Call.ACKNOWLEDGE: "acknowledge",
    Call.ACKNOWLEDGE_OPERATION_STATUS: "acknowledge_operation_status",
    Call.RECONCILE: "reconcile",
    Call.RECONCILE_OPERATIONS: "reconcile_operations",
    Call.MESSAGE: "message",
    Call.REQUEST: "request",
    Call.UPDATE_FRAMEWORK: "update_framework",
}


async def endpoint(request: Request) -> Response | Stream:
    context: MasterContext = request.app.state.context
    try:
        context.check_leader(request)
        require_post(request)
        media_type = request_media_type(request)
        call = parse_body(await request.body(), media_type, Call)
        validate(call)
        if call.type == Call.SUBSCRIBE:
            return await subscribe(context, request, call)
        framework = subscribed_framework(context, request, call)
        return await handle(context, framework, call)
    except HttpError as error:
        return error.response()


def validate(call: scheduler_pb2.Call) -> None:
    """Stateless validation (Mesos's validation::scheduler::call), in its words."""
    if call.type == Call.UNKNOWN and call.HasField("type"):
        raise HttpError(501, "Received an unknown call type")
    problem = call_problem(call)
    if problem is not None:
        raise HttpError(400, f"Failed to validate scheduler::Call: {problem}")


def call_problem(call: scheduler_pb2.Call) -> str | None:
    if not call.HasField("type"):
        return "Expecting 'type' to be present"
    body = REQUIRED_BODY.get(call.type)
    if call.type == Call.SUBSCRIBE:
        if not call.HasField("subscribe"):
            return "Expecting 'subscribe' to be present"
        info = call.subscribe.framework_info
        if call.HasField("framework_id") != info.HasField("id") or (
            call.HasField("framework_id") and call.framework_id.value != info.id.value
        ):
            return "'framework_id' differs from 'subscribe.framework_info.id'"
        return None
    if not call.HasField("framework_id"):
        return "Expecting 'framework_id' to be present"
    if body is not None and not call.HasField(body):
        return f"Expecting '{body}' to be present"
    update_id = call.update_framework.framework_info.id.value
    if call.type == Call.UPDATE_FRAMEWORK and update_id != call.framework_id.value:
        return "'framework_id' differs from 'update_framework.framework_info.id'"
    if call.type == Call.ACKNOWLEDGE and not mesos_json.valid_uuid(call.acknowledge.uuid):
        return "Not a valid UUID"
    if call.type == Call.ACKNOWLEDGE_OPERATION_STATUS:
        if not mesos_json.valid_uuid(call.acknowledge_operation_status.uuid):
            return "Not a valid UUID"
        if not call.acknowledge_operation_status.HasField("agent_id"):
            return "Expecting 'agent_id' to be present"
    return None


def subscribed_framework(context: MasterContext, request: Request, call: Call) -> Framework:
    framework = context.state.frameworks.get(call.framework_id.value)
    if framework is None or framework.status is FrameworkStatus.REMOVED:
        raise HttpError(400, "Framework cannot be found")
    context.traffic_of(framework.id).call(call.type)  # where Mesos counts it: once found
    if framework.status is not FrameworkStatus.CONNECTED:
        raise HttpError(403, "Framework is not subscribed")
    stream_id = request.headers.get(STREAM_ID)
    if stream_id is None:
        raise HttpError(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
    if stream_id != framework.stream_id:
        raise HttpError(
            400,
            f"The stream ID '{stream_id}' included in this request didn't match the stream ID"
            f" currently associated with framework ID {framework.id}",
        )
    return framework


async def subscribe(context: MasterContext, request: Request, call: Call) -> Response | Stream:
    media_type = response_media_type(request)
    if STREAM_ID in request.headers:
        raise HttpError(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
    stream_id = str(uuid.uuid4())
    stream = Stream(stream_id, media_type, Event(type=Event.HEARTBEAT), HEARTBEAT_INTERVAL_S)
    stream.headers[STREAM_ID] = stream_id
    stream.on_close.append(lambda closed: on_stream_closed(context, closed))
    context.pending[stream_id] = stream
    body = commands.SubscribeFramework(
        framework_info=call.subscribe.framework_info,
        suppressed_roles=call.subscribe.suppressed_roles,
        stream_id=stream_id,
    )
    if call.subscribe.HasField("offer_constraints"):
        body.offer_constraints.CopyFrom(call.subscribe.offer_constraints)
    try:
        await propose_and_wait(context, decide.command(subscribe_framework=body))
    except HttpError:
        # Not committed in time (or not at all): answer with the status, as Mesos does
        # before a stream starts. If the entry commits later, the router disconnects it.
        context.pending.pop(stream_id, None)
        raise
    return stream


def on_stream_closed(context: MasterContext, stream: Stream) -> None:
    """The scheduler went away: disconnect it (its failover timer starts)."""
    context.pending.pop(stream.stream_id, None)
    framework_id = stream.unbind(context.frameworks)
    if framework_id and context.leadership.leading:
        body = commands.DisconnectFramework(framework_id=framework_id, stream_id=stream.stream_id)
        context.leadership.spawn_proposal(decide.command(disconnect_framework=body))


async def handle(context: MasterContext, framework: Framework, call: Call) -> Response:
    fid = framework.id
    command: commands.Command | None = None
    if call.type == Call.TEARDOWN:
        command = decide.command(teardown_framework=commands.TeardownFramework(framework_id=fid))
    elif call.type == Call.ACCEPT:
        accept = commands.AcceptOffers(framework_id=fid, accept=call.accept)
        command = decide.command(accept_offers=accept)
    elif call.type == Call.DECLINE:
        decline = commands.DeclineOffers(framework_id=fid, offer_ids=call.decline.offer_ids)
        if call.decline.HasField("filters"):
            decline.filters.CopyFrom(call.decline.filters)
        command = decide.command(decline_offers=decline)
    elif call.type in (Call.ACCEPT_INVERSE_OFFERS, Call.DECLINE_INVERSE_OFFERS):
        command = inverse_offers_command(fid, call)
    elif call.type in (Call.REVIVE, Call.SUPPRESS):
        command = role_command(framework, call)
    elif call.type == Call.KILL:
        command = kill_command(fid, call.kill)
    elif call.type == Call.SHUTDOWN:
        shutdown = commands.ShutdownExecutor(
            framework_id=fid,
            agent_id=call.shutdown.agent_id.value,
            executor_id=call.shutdown.executor_id.value,
        )
        command = decide.command(shutdown_executor=shutdown)
    elif call.type == Call.ACKNOWLEDGE:
        ack = call.acknowledge
        body = commands.AcknowledgeTaskStatus(
            framework_id=fid, agent_id=ack.agent_id.value, task_id=ack.task_id.value, uuid=ack.uuid
        )
        command = decide.command(acknowledge_task_status=body)
    elif call.type == Call.UPDATE_FRAMEWORK:
        return await update_framework(context, call)
    elif call.type == Call.RECONCILE:
        answer_reconcile(context, framework, call.reconcile)
    elif call.type == Call.RECONCILE_OPERATIONS:
        answer_reconcile_operations(context, framework, call.reconcile_operations)
    elif call.type == Call.MESSAGE:
        forward_message(context, fid, call.message)
    # REQUEST and operation acknowledgements change nothing (no operation has feedback).
    if command is not None:
        await propose_and_wait(context, command)
    return Response(status_code=202)


def inverse_offers_command(framework_id: str, call: Call) -> commands.Command:
    accept = call.type == Call.ACCEPT_INVERSE_OFFERS
    body = call.accept_inverse_offers if accept else call.decline_inverse_offers
    respond = commands.RespondToInverseOffers(
        framework_id=framework_id,
        inverse_offer_ids=[offer_id.value for offer_id in body.inverse_offer_ids],
        accept=accept,
    )
    if body.HasField("filters"):
        respond.filters.CopyFrom(body.filters)
    return decide.command(respond_to_inverse_offers=respond)


def role_command(framework: Framework, call: Call) -> commands.Command | None:
    """REVIVE or SUPPRESS; None when a role is not the framework's: Mesos answers 202 and
    drops the whole call (Master::revive, Master::suppress)."""
    roles = list(call.revive.roles if call.type == Call.REVIVE else call.suppress.roles)
    unknown = [role for role in roles if role not in framework.roles]
    if unknown:
        log.warning("dropping %s of framework %s: roles %s are not its roles",
                    Call.Type.Name(call.type), framework.id, ", ".join(unknown))  # fmt: skip
        return None
    if call.type == Call.REVIVE:
        return decide.command(
            revive_offers=commands.ReviveOffers(framework_id=framework.id, roles=roles)
        )
    return decide.command(
        suppress_offers=commands.SuppressOffers(framework_id=framework.id, roles=roles)
    )


def kill_command(framework_id: str, kill: scheduler_pb2.Call.Kill) -> commands.Command:
    body = commands.KillTask(framework_id=framework_id, task_id=kill.task_id.value)
    if kill.HasField("agent_id"):
        body.agent_id = kill.agent_id.value
    if kill.HasField("kill_policy"):
        body.kill_policy.CopyFrom(kill.kill_policy)
    return decide.command(kill_task=body)


async def update_framework(context: MasterContext, call: Call) -> Response:
    update = call.update_framework
    body = commands.UpdateFramework(
        framework_info=update.framework_info, suppressed_roles=update.suppressed_roles
    )
    if update.HasField("offer_constraints"):
        body.offer_constraints.CopyFrom(update.offer_constraints)
    events = await propose_and_wait(context, decide.command(update_framework=body))
    for event in events:
        if isinstance(event, CommandRejected):
            raise HttpError(event.status, event.message)
    return Response(status_code=200)


def answer_reconcile(
    context: MasterContext, framework: Framework, body: scheduler_pb2.Call.Reconcile
) -> None:
    stream = context.frameworks.get(framework.id)
    if stream is None:
        return
    tasks = [
        (t.task_id.value, t.agent_id.value if t.HasField("agent_id") else None) for t in body.tasks
    ]
    for status in reconcile(context.state, framework, tasks):
        message = Event(type=Event.UPDATE)
        message.update.status.CopyFrom(status)
        stream.send(message)


def answer_reconcile_operations(
    context: MasterContext, framework: Framework, body: scheduler_pb2.Call.ReconcileOperations
) -> None:
    """No operation ever has feedback yet, so each listed one is unknown."""
    stream = context.frameworks.get(framework.id)
    if stream is None:
        return
    for operation in body.operations:
        message = Event(type=Event.UPDATE_OPERATION_STATUS)
        status = message.update_operation_status.status
        status.operation_id.CopyFrom(operation.operation_id)
        status.state = mesos_pb2.OPERATION_UNKNOWN
        if operation.HasField("agent_id"):
            status.agent_id.CopyFrom(operation.agent_id)
        stream.send(message)


def forward_message(context: MasterContext, framework_id: str, body: Call.Message) -> None:
    """Best effort, like Mesos: straight to the agent's stream, not through the log."""
    stream = context.agents.get(body.agent_id.value)
    if stream is None:
        return
    message = agent_link_pb2.Event(type=agent_link_pb2.Event.MESSAGE)
    message.message.framework_id.value = framework_id
    message.message.executor_id.CopyFrom(body.executor_id)
    message.message.data = body.data
    stream.send(message)
