"""The master operator API (contract 4.1): POST /api/v1 and /master/api/v1, JSON or protobuf.

Read calls are answered by every replica from its own cluster view, with the
consistency headers and `?min_index=` handling of api/consistency.py; writes
(MARK_AGENT_GONE, TEARDOWN, UPDATE_WEIGHTS, UPDATE_QUOTA and the deprecated SET_QUOTA
and REMOVE_QUOTA, DEACTIVATE_AGENT, REACTIVATE_AGENT, DRAIN_AGENT) are proposed on the
leader, and a standby answers
them as it answers scheduler calls (307 to the leader, or 503). Calls the
system cannot serve yet answer 501, as Mesos answers UNKNOWN. SUBSCRIBE is
the operator event stream of api/operator_stream.py.

A large GET_STATE is assembled from each entity's cached encoding (protobuf
bytes or Mesos JSON) and each framework's cached task runs, never
re-serialized as a whole; GET_STATE, GET_AGENTS, GET_FRAMEWORKS,
GET_EXECUTORS and GET_TASKS are built once per index and media type for all
concurrent callers (api/read_cache.py).
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from meseta.api import (
    compression,
    consistency,
    encodings,
    files,
    mesos_json,
    operator_stream,
    state_endpoints,
)
from meseta.api.compression import accepts_gzip
from meseta.api.context import MasterContext
from meseta.api.http import (
    HttpError,
    encode_body,
    parse_body,
    request_media_type,
    require_post,
    response_media_type,
    validate_call,
)
from meseta.api.proposals import propose_and_wait
from meseta.api.read_cache import Built, ChunksResponse, assemble
from meseta.api.streams import JSON
from meseta.api.streams import PROTOBUF as PROTOBUF_TYPE
from meseta.api.verbosity import VERBOSITY
from meseta.master import decide
from meseta.master import quota as quotas
from meseta.master.events import CommandRejected
from meseta.master.v1 import commands_pb2 as commands
from meseta.master.validation import quota_configs_error, weights_error
from meseta.projections.assembly import Encoding, Parts
from meseta.projections.cluster import ClusterView
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.master import master_pb2
from meseta.proto.mesos.v1.quota import quota_pb2

Call = master_pb2.Call
Response_ = master_pb2.Response

# Sub-messages Mesos requires for a call type (master/validation.cpp).
REQUIRED_BODY = {
    Call.GET_METRICS: "get_metrics",
    Call.SET_LOGGING_LEVEL: "set_logging_level",
    Call.LIST_FILES: "list_files",
    Call.READ_FILE: "read_file",
    Call.UPDATE_WEIGHTS: "update_weights",
    Call.RESERVE_RESOURCES: "reserve_resources",
    Call.UNRESERVE_RESOURCES: "unreserve_resources",
    Call.CREATE_VOLUMES: "create_volumes",
    Call.DESTROY_VOLUMES: "destroy_volumes",
    Call.GROW_VOLUME: "grow_volume",
    Call.SHRINK_VOLUME: "shrink_volume",
    Call.UPDATE_MAINTENANCE_SCHEDULE: "update_maintenance_schedule",
    Call.START_MAINTENANCE: "start_maintenance",
    Call.STOP_MAINTENANCE: "stop_maintenance",
    Call.UPDATE_QUOTA: "update_quota",
    Call.SET_QUOTA: "set_quota",
    Call.REMOVE_QUOTA: "remove_quota",
    Call.TEARDOWN: "teardown",
    Call.MARK_AGENT_GONE: "mark_agent_gone",
    Call.DRAIN_AGENT: "drain_agent",
    Call.DEACTIVATE_AGENT: "deactivate_agent",
    Call.REACTIVATE_AGENT: "reactivate_agent",
}


def validate(call: master_pb2.Call) -> None:
    validate_call(call, "master", REQUIRED_BODY)
    for kind, body in (
        (Call.GROW_VOLUME, call.grow_volume),
        (Call.SHRINK_VOLUME, call.shrink_volume),
    ):
        if call.type == kind and not body.HasField("agent_id"):
            raise HttpError(
                400,
                "Expecting 'agent_id' to be present; only agent default resources are"
                " supported right now",
            )


# -- responses ------------------------------------------------------------------------------


def envelope(response_type: int, body: Parts | bytes, enc: Encoding) -> Parts:
    """The Response with `type` set and the body field of that type holding `body`."""
    name = Response_.Type.Name(response_type)
    field = Response_.DESCRIPTOR.fields_by_name[name.lower()]
    if enc.json:
        type_value = b'"' + name.encode() + b'"'
        return enc.message([(1, "type", type_value), (field.number, field.name, body)])
    parts = Parts()
    parts.add(Response_(type=response_type).SerializeToString())  # type: ignore[arg-type]
    parts.splice(enc.message([(field.number, field.name, body)]))
    return parts


# -- the calls ------------------------------------------------------------------------------


def answer_message(response_type: int, message: Message, enc: Encoding) -> Response:
    data = envelope(response_type, enc.encode(message), enc).join()
    return Response(data, 200, media_type=JSON if enc.json else PROTOBUF_TYPE)


def flags_message(context: MasterContext) -> Response_.GetFlags:
    flags = state_endpoints.flags(context)
    return Response_.GetFlags(flags=[mesos_pb2.Flag(name=k, value=v) for k, v in flags.items()])


def version_message() -> Response_.GetVersion:
    info = mesos_json.from_dict(state_endpoints.build_info(), mesos_pb2.VersionInfo)
    return Response_.GetVersion(version_info=info)


def metrics_message(context: MasterContext) -> Response_.GetMetrics:
    values = state_endpoints.metric_values(context)
    return Response_.GetMetrics(
        metrics=[mesos_pb2.Metric(name=k, value=v) for k, v in values.items()]
    )


def master_message(context: MasterContext) -> Response_.GetMaster:
    """The leading master, as Mesos's leader describes itself; 503 while no leader is known
    or this replica is cut off from it (Mesos's masters answer a redirect to the leader, or
    that 503, then).
    `elected_time` is when that leader took office."""
    view = context.cluster
    if consistency.live_leader(context) is None or view.master_info is None:
        raise HttpError(503, "No leader elected")
    out = Response_.GetMaster()
    out.master_info.CopyFrom(view.master_info)
    out.start_time = state_endpoints.STARTED_S
    if view.elected_ns:
        out.elected_time = view.elected_ns / 1e9
    return out


def quota_status(view: ClusterView) -> quota_pb2.QuotaStatus:
    """Every role's quota as configured, and (deprecated) its guarantees as QuotaInfo."""
    status = quota_pb2.QuotaStatus()
    for role, config in view.quotas.items():
        info = status.infos.add(role=role)
        for name in sorted(config.guarantees):
            guarantee = info.guarantee.add(name=name, type=mesos_pb2.Value.SCALAR)
            guarantee.scalar.value = config.guarantees[name].value
        status.configs.add().CopyFrom(config)
    return status


def set_quota(request: quota_pb2.QuotaRequest, context: MasterContext) -> commands.UpdateQuota:
    """The deprecated SET_QUOTA (and `POST /quota`): guarantees, which are also the limits,
    for a role without quota; Mesos's checks and messages."""
    refused = "Failed to validate set quota request"
    role = request.role
    config = quota_pb2.QuotaConfig(role=role)
    for resource in request.guarantee:
        if resource.type != mesos_pb2.Value.SCALAR or resource.HasField("reservation"):
            detail = f"QuotaInfo with invalid resource: '{resource.name}' is not a plain scalar"
            raise HttpError(400, f"{refused}: {detail}")
        for field in (config.guarantees, config.limits):
            field[resource.name].value += resource.scalar.value
    if "/" in role:
        raise HttpError(400, f"Setting quota on nested role '{role}' is not supported yet")
    error = quota_configs_error([config])
    if error is not None:
        raise HttpError(400, f"{refused}: {error.removeprefix('Invalid QuotaConfig: ')}")
    state = context.state
    if role in state.quotas:
        raise HttpError(
            400, f"{refused}: Cannot set quota for role '{role}' which already has quota"
        )
    if not request.force:
        updated = {**state.quotas, role: quotas.of_config(config)}
        guarantees = quotas.total_guarantees(updated.values())
        capacity = quotas.capacity(state)
        if not quotas.contains(capacity, guarantees):
            raise HttpError(
                409,
                "Quota guarantees overcommit the cluster (use 'force' to bypass this check):"
                f" Total quota guarantees '{quotas.text(guarantees)}' exceed cluster capacity"
                f" '{quotas.text(capacity)}'",
            )
    return commands.UpdateQuota(configs=[config], force=True)  # checked as SET_QUOTA is


def remove_quota(role: str, context: MasterContext, refused: str) -> commands.UpdateQuota:
    """The deprecated REMOVE_QUOTA (and `DELETE /quota/<role>`): the role's quota goes."""
    if role not in context.state.quotas:
        raise HttpError(400, f"{refused}: Role '{role}' has no quota set")
    return commands.UpdateQuota(configs=[quota_pb2.QuotaConfig(role=role)], force=True)


def weights_message(context: MasterContext) -> Response_.GetWeights:
    out = Response_.GetWeights()
    for role, milli in context.state.weights.items():
        out.weight_infos.add(role=role, weight=milli / 1000)
    return out


def replica_call(call: master_pb2.Call, context: MasterContext, accept: str) -> Response | None:
    """The calls about this replica itself (its logging, its files), answered by any replica;
    None if `call` is not one."""
    if call.type == Call.SET_LOGGING_LEVEL:
        level = call.set_logging_level
        VERBOSITY.set(level.level, level.duration.nanoseconds / 1e9)
        return Response(status_code=200)
    if call.type == Call.LIST_FILES:
        attached = state_endpoints.attachments(context)
        listing = files.list_files(attached, call.list_files.path)
        answer = Response_(type=Response_.LIST_FILES)
        answer.list_files.file_infos.extend(listing)
        return encode_body(answer, accept)
    if call.type == Call.READ_FILE:
        wanted = call.read_file
        length = wanted.length if wanted.HasField("length") else None
        attached = state_endpoints.attachments(context)
        chunk = files.read_file(attached, wanted.path, wanted.offset, length)
        answer = Response_(type=Response_.READ_FILE)
        answer.read_file.size, answer.read_file.data = chunk.size, chunk.data
        return encode_body(answer, accept)
    return None


def read(call: master_pb2.Call, context: MasterContext, enc: Encoding) -> Response | None:
    """Answer a read call from the view; None if `call` is not one."""
    view = context.cluster
    kind = call.type
    if kind == Call.GET_HEALTH:
        return answer_message(Response_.GET_HEALTH, Response_.GetHealth(healthy=True), enc)
    if kind == Call.GET_FLAGS:
        return answer_message(Response_.GET_FLAGS, flags_message(context), enc)
    if kind == Call.GET_VERSION:
        return answer_message(Response_.GET_VERSION, version_message(), enc)
    if kind == Call.GET_METRICS:
        return answer_message(Response_.GET_METRICS, metrics_message(context), enc)
    if kind == Call.GET_LOGGING_LEVEL:
        body = Response_.GetLoggingLevel(level=VERBOSITY.level)
        return answer_message(Response_.GET_LOGGING_LEVEL, body, enc)
    if kind == Call.GET_ROLES:
        roles = Response_.GetRoles(roles=view.role_protos())
        return answer_message(Response_.GET_ROLES, roles, enc)
    if kind == Call.GET_WEIGHTS:
        return answer_message(Response_.GET_WEIGHTS, weights_message(context), enc)
    if kind == Call.GET_MASTER:
        return answer_message(Response_.GET_MASTER, master_message(context), enc)
    if kind == Call.GET_QUOTA:
        status = Response_.GetQuota(status=quota_status(view))
        return answer_message(Response_.GET_QUOTA, status, enc)
    if kind == Call.GET_OPERATIONS:
        # Only operations with an id are tracked; the fold supports none that would be.
        return answer_message(Response_.GET_OPERATIONS, Response_.GetOperations(), enc)
    if kind == Call.GET_MAINTENANCE_STATUS:
        statuses = Response_.GetMaintenanceStatus(status=view.maintenance_status)
        return answer_message(Response_.GET_MAINTENANCE_STATUS, statuses, enc)
    if kind == Call.GET_MAINTENANCE_SCHEDULE:
        schedule = Response_.GetMaintenanceSchedule(schedule=view.maintenance_schedule)
        return answer_message(Response_.GET_MAINTENANCE_SCHEDULE, schedule, enc)
    return None


# Reads joined from the view's cached encodings: shared by concurrent identical calls.
ASSEMBLED: dict[int, tuple[int, Callable[[ClusterView, Encoding], Parts]]] = {
    Call.GET_STATE: (Response_.GET_STATE, ClusterView.state_message),
    Call.GET_AGENTS: (Response_.GET_AGENTS, ClusterView.agents_message),
    Call.GET_FRAMEWORKS: (Response_.GET_FRAMEWORKS, ClusterView.frameworks_message),
    Call.GET_EXECUTORS: (Response_.GET_EXECUTORS, ClusterView.executors_message),
    Call.GET_TASKS: (Response_.GET_TASKS, ClusterView.tasks_message),
}


async def assembled(
    call_type: int, context: MasterContext, enc: Encoding, gzip: bool = False
) -> Response:
    """An ASSEMBLED call's response, built once per index for all who ask (api/read_cache.py):
    what is not cached is encoded in slices first, then the body is joined at one index.
    With `gzip`, the body is gzipped, once per index too (api/compression.py)."""
    response_type, message = ASSEMBLED[call_type]
    view = context.cluster
    media_type = JSON if enc.json else PROTOBUF_TYPE

    async def build() -> Built:
        await encodings.warm(call_type, view, enc)
        parts = envelope(response_type, message(view, enc), enc)
        return await assemble(consistency.read_index(context), parts.items, media_type)

    key = ("v1", call_type, enc.kind)
    arrival = consistency.read_index(context)
    built = await compression.cached(context.read_cache, key, arrival, build, gzip)
    response = ChunksResponse.of(built, interleave=context.leadership.leading)
    response.headers.update(consistency.headers(context, built.index))
    return response


async def write(call: master_pb2.Call, context: MasterContext, request: Request) -> Response | None:
    """Propose a write call on the leader; None if `call` is not one."""
    if call.type == Call.MARK_AGENT_GONE:
        command = decide.command(
            mark_agent_gone=commands.MarkAgentGone(agent_id=call.mark_agent_gone.agent_id.value)
        )
    elif call.type == Call.TEARDOWN:
        command = decide.command(
            teardown_framework=commands.TeardownFramework(
                framework_id=call.teardown.framework_id.value
            )
        )
    elif call.type == Call.DEACTIVATE_AGENT:
        agent_id = call.deactivate_agent.agent_id.value
        command = decide.command(deactivate_agent=commands.DeactivateAgent(agent_id=agent_id))
    elif call.type == Call.REACTIVATE_AGENT:
        agent_id = call.reactivate_agent.agent_id.value
        command = decide.command(reactivate_agent=commands.ReactivateAgent(agent_id=agent_id))
    elif call.type == Call.DRAIN_AGENT:
        command = decide.command(drain_agent=drain_command(call.drain_agent))
    elif call.type == Call.UPDATE_QUOTA:
        body = call.update_quota
        error = quota_configs_error(body.quota_configs)
        if error is not None:
            raise HttpError(400, error)
        update = commands.UpdateQuota(configs=body.quota_configs, force=body.force)
        command = decide.command(update_quota=update)
    elif call.type == Call.SET_QUOTA:
        context.check_leader(request)  # its checks read the leader's state
        command = decide.command(update_quota=set_quota(call.set_quota.quota_request, context))
    elif call.type == Call.REMOVE_QUOTA:
        context.check_leader(request)
        removed = remove_quota(call.remove_quota.role, context, "Failed to remove quota")
        command = decide.command(update_quota=removed)
    elif call.type in RESOURCE_CALLS:
        agent_id, operation = resource_operation(call)
        apply = commands.ApplyResourceOperation(agent_id=agent_id, operation=operation)
        command = decide.command(apply_resource_operation=apply)
        return await propose_write(context, request, command, accepted=202)
    elif call.type == Call.UPDATE_MAINTENANCE_SCHEDULE:
        schedule = call.update_maintenance_schedule.schedule
        command = decide.command(
            update_maintenance_schedule=commands.UpdateMaintenanceSchedule(schedule=schedule)
        )
    elif call.type == Call.START_MAINTENANCE:
        machines = call.start_maintenance.machines
        command = decide.command(start_maintenance=commands.StartMaintenance(machines=machines))
    elif call.type == Call.STOP_MAINTENANCE:
        machines = call.stop_maintenance.machines
        command = decide.command(stop_maintenance=commands.StopMaintenance(machines=machines))
    elif call.type == Call.UPDATE_WEIGHTS:
        infos = call.update_weights.weight_infos
        error = weights_error(infos)  # refused at once, before the leader check, as Mesos does
        if error is not None:
            raise HttpError(400, error)
        command = decide.command(update_weights=commands.UpdateWeights(weight_infos=infos))
    else:
        return None
    return await propose_write(context, request, command)


async def propose_write(
    context: MasterContext, request: Request, command: commands.Command, accepted: int = 200
) -> Response:
    """Propose a write on the leader: `accepted` once applied, or the fold's refusal."""
    context.check_leader(request)
    for event in await propose_and_wait(context, command):
        if isinstance(event, CommandRejected):
            raise HttpError(event.status, event.message)
    return Response(status_code=accepted)


# The operator's resource calls, each an offer operation on the agent's unallocated
# resources (202 once applied, as Mesos's answer once its master has applied it):
# call type -> (its body's field, the operation's type, the operation's body field).
# Each body is its operation's body plus the agent id, field names alike.
Operation = mesos_pb2.Offer.Operation
RESOURCE_CALLS: dict[int, tuple[str, int, str]] = {
    Call.RESERVE_RESOURCES: ("reserve_resources", Operation.RESERVE, "reserve"),
    Call.UNRESERVE_RESOURCES: ("unreserve_resources", Operation.UNRESERVE, "unreserve"),
    Call.CREATE_VOLUMES: ("create_volumes", Operation.CREATE, "create"),
    Call.DESTROY_VOLUMES: ("destroy_volumes", Operation.DESTROY, "destroy"),
    Call.GROW_VOLUME: ("grow_volume", Operation.GROW_VOLUME, "grow_volume"),
    Call.SHRINK_VOLUME: ("shrink_volume", Operation.SHRINK_VOLUME, "shrink_volume"),
}


def resource_operation(call: master_pb2.Call) -> tuple[str, mesos_pb2.Offer.Operation]:
    """(agent id, the offer operation) a RESOURCE_CALLS call stands for."""
    body_field, kind, operation_field = RESOURCE_CALLS[call.type]
    body = getattr(call, body_field)
    operation = Operation(type=kind)  # type: ignore[arg-type]
    target = getattr(operation, operation_field)
    for field, value in body.ListFields():
        if field.name == "agent_id":
            continue
        if isinstance(value, Message):
            getattr(target, field.name).CopyFrom(value)
        else:  # a repeated field
            getattr(target, field.name).extend(value)
    return body.agent_id.value, operation


def drain_command(call: master_pb2.Call.DrainAgent) -> commands.DrainAgent:
    """The call's google.protobuf.Duration becomes the DrainConfig's DurationInfo."""
    config = mesos_pb2.DrainConfig(mark_gone=call.mark_gone)
    if call.HasField("max_grace_period"):
        period = call.max_grace_period
        config.max_grace_period.nanoseconds = period.seconds * 1_000_000_000 + period.nanos
    return commands.DrainAgent(agent_id=call.agent_id.value, config=config)


async def call_endpoint(request: Request) -> Response | ASGIApp:
    context: MasterContext = request.app.state.context
    require_post(request)
    media_type = request_media_type(request)
    call = parse_body(await request.body(), media_type, Call)
    validate(call)
    accept = response_media_type(request)  # after the body's checks, as Mesos
    if call.type == Call.UNKNOWN:
        raise HttpError(501, "")
    if call.type == Call.SUBSCRIBE:
        await consistency.settle(request, context)
        consistency.check_contact(context)
        return await operator_stream.subscribe(context, accept)
    written = await write(call, context, request)
    if written is not None:
        return written
    local = replica_call(call, context, accept)
    if local is not None:
        return local
    if not Call.Type.Name(call.type).startswith("GET_"):
        context.check_leader(request)  # a standby sends writes on, supported or not
        raise HttpError(501, f"Call type {Call.Type.Name(call.type)} is not supported yet")
    await consistency.settle(request, context)
    enc = encodings.encoding(accept)
    if call.type in ASSEMBLED:
        return await assembled(call.type, context, enc, accepts_gzip(request.headers))
    response = read(call, context, enc)
    if response is None:
        raise HttpError(501, f"Call type {Call.Type.Name(call.type)} is not supported yet")
    response.headers.update(consistency.headers(context))
    return response


async def endpoint(request: Request) -> Response | ASGIApp:
    try:
        return await call_endpoint(request)
    except HttpError as error:
        return error.response()
