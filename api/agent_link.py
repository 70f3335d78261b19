"""Our agent endpoint: POST /api/v1/agent (and /master/api/v1/agent) on the leader.

Agents subscribe with a streaming call like schedulers do (see
proto/agent_link/v1/agent_link.proto) and send status updates, executor
exits, messages and heartbeats as separate calls; an agent with several
updates due sends them as one UPDATES call, committed as one entry.
State-changing calls are answered 202 once committed; an agent retries an
update until the scheduler's acknowledgement comes back on its stream.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response

from meseta.api.context import MasterContext
from meseta.api.event_router import HEARTBEAT_INTERVAL_S, agent_error
from meseta.api.flags import is_ip
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
from meseta.master.state import AgentStatus
from meseta.master.v1 import commands_pb2 as commands
from meseta.master.wire import proto_field, renumbered
from meseta.proto.agent_link.v1 import agent_link_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

Call = agent_link_pb2.Call
Event = agent_link_pb2.Event

# An UPDATES call becomes one log entry, so its size is bounded like any entry's; an agent
# sends at most half this many per call (agent/master_client.py UPDATES_PER_CALL).
MAX_UPDATES_PER_CALL = 1000


async def endpoint(request: Request) -> Response | Stream:
    context: MasterContext = request.app.state.context
    try:
        context.check_leader(request)
        require_post(request)
        media_type = request_media_type(request)
        call = parse_body(await request.body(), media_type, Call)
        if not call.HasField("type"):
            raise HttpError(400, "Expecting 'type' to be present")
        if call.type == Call.UNKNOWN:
            raise HttpError(501, "Received an unknown call type")
        if call.type == Call.SUBSCRIBE:
            return await subscribe(context, request, call)
        return await handle(context, call)
    except HttpError as error:
        return error.response()


async def subscribe(context: MasterContext, request: Request, call: Call) -> Response | Stream:
    if not call.HasField("subscribe"):
        raise HttpError(400, "Expecting 'subscribe' to be present")
    if call.subscribe.HasField("ip") and not is_ip(call.subscribe.ip):
        raise HttpError(400, f"Invalid 'subscribe.ip': '{call.subscribe.ip}'")
    media_type = response_media_type(request)
    stream_id = str(uuid.uuid4())
    stream = Stream(stream_id, media_type, Event(type=Event.HEARTBEAT), HEARTBEAT_INTERVAL_S)
    stream.on_close.append(lambda closed: on_stream_closed(context, closed))
    context.pending[stream_id] = stream
    # An agent listening everywhere names no address: the connection's is where it lives.
    peer = request.client.host if request.client else ""
    command = subscribe_command(call.subscribe, stream_id, call.subscribe.ip or peer)
    try:
        await propose_and_wait(context, command)
    except HttpError as error:
        context.pending.pop(stream_id, None)
        stream.send(agent_error(error.message))
        stream.close()
    return stream


# Call.Subscribe's fields (proto/agent_link/v1) as ReregisterAgent numbers them
# (master/v1/commands.proto); its `ip` (7) is written apart, as the connection may name it.
REREGISTER_FIELDS = {1: 1, 2: 2, 3: 3, 4: 5, 5: 6, 6: 7}
REREGISTER_STREAM_ID, REREGISTER_IP = 4, 8
COMMAND_REREGISTER_AGENT = 41  # Command.reregister_agent


def subscribe_command(body: Call.Subscribe, stream_id: str, ip: str = "") -> bytes:
    """The encoded `register_agent` command, or `reregister_agent` when the agent names its
    id. A re-registration is framed from the agent's own bytes with its fields renumbered:
    built as a message, it copied every reported task (for an agent with 10 tasks, 48 us of
    the leader's time with the entry's framing, against 10)."""
    if not body.agent_info.HasField("id"):
        command = commands.Command()
        registration = command.register_agent
        registration.agent_info.CopyFrom(body.agent_info)
        registration.capabilities.extend(body.capabilities)
        registration.version = body.version
        registration.stream_id = stream_id
        if ip:
            registration.ip = ip
        return command.SerializeToString()
    fields = [
        renumbered(body.SerializePartialToString(), REREGISTER_FIELDS),  # checked at parsing
        proto_field(REREGISTER_STREAM_ID, stream_id.encode()),
    ]
    if ip:
        fields.append(proto_field(REREGISTER_IP, ip.encode()))
    return proto_field(COMMAND_REREGISTER_AGENT, b"".join(fields))


def on_stream_closed(context: MasterContext, stream: Stream) -> None:
    context.pending.pop(stream.stream_id, None)
    agent_id = stream.unbind(context.agents)
    if agent_id and context.leadership.leading:
        body = commands.DisconnectAgent(agent_id=agent_id, stream_id=stream.stream_id)
        context.leadership.spawn_proposal(decide.command(disconnect_agent=body))


async def handle(context: MasterContext, call: Call) -> Response:
    if not call.HasField("agent_id"):
        raise HttpError(400, "Expecting 'agent_id' to be present")
    agent_id = call.agent_id.value
    agent = context.state.agents.get(agent_id)
    if agent is None:
        raise HttpError(400, "Agent cannot be found")
    if agent.status is not AgentStatus.ACTIVE or agent_id not in context.agents:
        raise HttpError(403, "Agent is not subscribed")
    context.leadership.note_contact(agent_id)
    if call.type == Call.UPDATE:
        if not call.HasField("update"):
            raise HttpError(400, "Expecting 'update' to be present")
        await propose_and_wait(context, update_command(agent_id, call.update))
    elif call.type == Call.UPDATES:
        if not call.updates:
            raise HttpError(400, "Expecting 'updates' to be present")
        if len(call.updates) > MAX_UPDATES_PER_CALL:
            raise HttpError(
                400, f"At most {MAX_UPDATES_PER_CALL} updates per call, got {len(call.updates)}"
            )
        await propose_and_wait(context, *(update_command(agent_id, u) for u in call.updates))
    elif call.type == Call.EXECUTOR_EXITED:
        if not call.HasField("executor_exited"):
            raise HttpError(400, "Expecting 'executor_exited' to be present")
        exited = call.executor_exited
        body = commands.ExitExecutor(
            agent_id=agent_id,
            framework_id=exited.framework_id.value,
            executor_id=exited.executor_id.value,
        )
        if exited.HasField("status"):
            body.status = exited.status
        await propose_and_wait(context, decide.command(exit_executor=body))
    elif call.type == Call.MESSAGE:
        if not call.HasField("message"):
            raise HttpError(400, "Expecting 'message' to be present")
        forward_message(context, agent_id, call.message)
    elif call.type == Call.UNREGISTER:
        unregister = commands.UnregisterAgent(agent_id=agent_id)
        await propose_and_wait(context, decide.command(unregister_agent=unregister))
    return Response(status_code=202)


def update_command(agent_id: str, body: Call.Update) -> commands.Command:
    """One status update as the fold's command; the fold validates it (an update for an
    unknown task or framework is rejected there, deterministically, not here)."""
    command = commands.Command()
    update = command.update_task_status
    update.agent_id = agent_id
    update.framework_id = body.framework_id.value
    update.status.CopyFrom(body.status)
    if body.HasField("latest_state"):
        update.latest_state = body.latest_state
    return command


def forward_message(context: MasterContext, agent_id: str, body: Call.Message) -> None:
    """Executor -> framework, best effort (Mesos does not persist messages either)."""
    stream = context.frameworks.get(body.framework_id.value)
    if stream is None:
        return
    message = scheduler_pb2.Event(type=scheduler_pb2.Event.MESSAGE)
    message.message.agent_id.value = agent_id
    message.message.executor_id.CopyFrom(body.executor_id)
    message.message.data = body.data
    stream.send(message)
