"""The pre-v1 operator endpoints that are forms of v1 operator calls (contract 6.2).

`POST /master/teardown` with the form `frameworkId=<id>` is the TEARDOWN call, and
`GET /master/weights` answers what GET_WEIGHTS answers, as a JSON array of WeightInfo;
`/master/quota` is GET_QUOTA's status (GET), SET_QUOTA (POST, a QuotaRequest) and, as
`DELETE /master/quota/<role>`, REMOVE_QUOTA; `/master/reserve`, `/master/unreserve`,
`/master/create-volumes` and `/master/destroy-volumes` (forms of `slaveId` and a JSON
array of resources) are the resource calls; `/master/maintenance/schedule` (GET, or POST
a Schedule), `/master/maintenance/status` and `/master/machine/down|up` (POST a JSON
array of MachineIDs) are the maintenance calls. Operator scripts and older tools still
use them. They share the v1 calls' code.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

from meseta.api import mesos_json, operator
from meseta.api.context import MasterContext
from meseta.api.http import HttpError, method_not_allowed, require_post
from meseta.api.state_endpoints import context_of, json_response
from meseta.master import decide
from meseta.master.state import FrameworkStatus
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.maintenance import maintenance_pb2
from meseta.proto.mesos.v1.master import master_pb2
from meseta.proto.mesos.v1.quota import quota_pb2

# A `%` not followed by two hex digits: libprocess's form decoder refuses it.
MALFORMED_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def decode_form(body: bytes) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body; the last value of a repeated key wins."""
    try:
        if MALFORMED_ESCAPE.search(body):
            raise ValueError("malformed % escape")
        text = body.decode("utf-8")
        return dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except ValueError as error:  # UnicodeDecodeError included
        raise HttpError(400, f"Unable to decode query string: {error}") from None


async def teardown(request: Request) -> Response:
    """Tear a framework down: its tasks are killed and it is removed (200 once it is)."""
    context = context_of(request)
    try:
        context.check_leader(request)
        require_post(request)
        framework_id = decode_form(await request.body()).get("frameworkId")
        if framework_id is None:
            raise HttpError(400, "Missing 'frameworkId' query parameter in the request body")
        framework = context.state.frameworks.get(framework_id)
        if framework is None or framework.status is FrameworkStatus.REMOVED:
            raise HttpError(400, "No framework found with specified ID")
        call = master_pb2.Call(type=master_pb2.Call.TEARDOWN)
        call.teardown.framework_id.value = framework_id
        return await written(call, context, request)
    except HttpError as error:
        return error.response()


# Path (after `/master`) -> (the v1 call, the form field of its resources).
RESOURCE_FORMS: dict[str, tuple[master_pb2.Call.Type, str]] = {
    "/reserve": (master_pb2.Call.RESERVE_RESOURCES, "resources"),
    "/unreserve": (master_pb2.Call.UNRESERVE_RESOURCES, "resources"),
    "/create-volumes": (master_pb2.Call.CREATE_VOLUMES, "volumes"),
    "/destroy-volumes": (master_pb2.Call.DESTROY_VOLUMES, "volumes"),
}


async def resource_form(request: Request) -> Response:
    """A form of `slaveId` and a JSON array of resources (or volumes): the v1 call."""
    call_type, form_field = RESOURCE_FORMS[request.url.path.removeprefix("/master")]
    context = context_of(request)
    try:
        context.check_leader(request)
        require_post(request)
        form = decode_form(await request.body())
        agent_id = form.get("slaveId")
        if agent_id is None:
            raise HttpError(400, "Missing 'slaveId' query parameter in the request body")
        given = form.get(form_field)
        if given is None:
            raise HttpError(400, f"Missing '{form_field}' query parameter in the request body")
        call = master_pb2.Call(type=call_type)
        body = getattr(call, operator.RESOURCE_CALLS[call_type][0])
        body.agent_id.value = agent_id
        getattr(body, form_field).extend(form_resources(given, form_field))
        return await written(call, context, request)
    except HttpError as error:
        return error.response()


def form_resources(text: str, field: str) -> list[mesos_pb2.Resource]:
    refused = f"Error in parsing '{field}' query parameter in the request body"
    try:
        items = orjson.loads(text)
        if not isinstance(items, list):
            raise mesos_json.MesosJsonError("Expecting a JSON array")
        return [mesos_json.from_dict(item, mesos_pb2.Resource) for item in items]
    except (orjson.JSONDecodeError, mesos_json.MesosJsonError) as error:
        raise HttpError(400, f"{refused}: {error}") from None


async def weights(request: Request) -> Response:
    """GET: the configured role weights. PUT: a JSON array of WeightInfo, as UPDATE_WEIGHTS."""
    if request.method == "PUT":
        return await update_weights(request)
    infos = operator.weights_message(context_of(request)).weight_infos
    body = b"[" + b",".join(mesos_json.to_json(info) for info in infos) + b"]"
    return json_response(request, body)


async def update_weights(request: Request) -> Response:
    body = await request.body()
    text = body.decode(errors="replace")
    try:
        items = orjson.loads(body)
        if not isinstance(items, list):
            raise mesos_json.MesosJsonError("expecting a JSON array")
    except (orjson.JSONDecodeError, mesos_json.MesosJsonError) as error:
        message = f"Failed to parse update weights request JSON '{text}': {error}"
        return HttpError(400, message).response()
    call = master_pb2.Call(type=master_pb2.Call.UPDATE_WEIGHTS)
    try:
        infos = [mesos_json.from_dict(item, mesos_pb2.WeightInfo) for item in items]
    except mesos_json.MesosJsonError as error:
        message = f"Failed to convert weights JSON array to protobuf '{text}': {error}"
        return HttpError(400, message).response()
    call.update_weights.weight_infos.extend(infos)
    try:
        return await written(call, context_of(request), request)
    except HttpError as error:
        return error.response()


async def quota(request: Request) -> Response:
    """GET: the quota status. POST: a QuotaRequest as SET_QUOTA. DELETE (with a role in
    the path): REMOVE_QUOTA."""
    context = context_of(request)
    if request.method == "GET":
        return json_response(request, mesos_json.to_json(operator.quota_status(context.cluster)))
    try:
        if request.method == "POST" and "role" not in request.path_params:
            update = operator.set_quota(await quota_request(request), context)
        elif request.method == "DELETE" and "role" in request.path_params:
            context.check_leader(request)
            path = request.url.path
            refused = f"Failed to remove quota for path '{path}'"
            update = operator.remove_quota(request.path_params["role"], context, refused)
        else:
            raise method_not_allowed(request, "GET", "POST", "DELETE")
        command = decide.command(update_quota=update)
        return await operator.propose_write(context, request, command)
    except HttpError as error:
        return error.response()


async def quota_request(request: Request) -> quota_pb2.QuotaRequest:
    context_of(request).check_leader(request)  # SET_QUOTA's checks read the leader's state
    body = await request.body()
    try:
        data = orjson.loads(body)
        return mesos_json.from_dict(data, quota_pb2.QuotaRequest)
    except (orjson.JSONDecodeError, mesos_json.MesosJsonError) as error:
        text = body.decode(errors="replace")
        raise HttpError(400, f"Failed to parse set quota request JSON '{text}': {error}") from None


async def maintenance_schedule(request: Request) -> Response:
    """GET: the schedule. POST: a Schedule, as UPDATE_MAINTENANCE_SCHEDULE."""
    context = context_of(request)
    if request.method == "GET":
        return json_response(request, mesos_json.to_json(context.cluster.maintenance_schedule))
    try:
        context.check_leader(request)
        if request.method != "POST":
            raise method_not_allowed(request, "GET", "POST")
        try:
            schedule = mesos_json.from_dict(
                orjson.loads(await request.body()), maintenance_pb2.Schedule
            )
        except (orjson.JSONDecodeError, mesos_json.MesosJsonError) as error:
            raise HttpError(400, str(error)) from None
        call = master_pb2.Call(type=master_pb2.Call.UPDATE_MAINTENANCE_SCHEDULE)
        call.update_maintenance_schedule.schedule.CopyFrom(schedule)
        return await written(call, context, request)
    except HttpError as error:
        return error.response()


async def maintenance_status(request: Request) -> Response:
    if request.method != "GET":
        return method_not_allowed(request, "GET").response()
    status = context_of(request).cluster.maintenance_status
    return json_response(request, mesos_json.to_json(status))


# Path (after `/master`) -> the v1 call that POSTing a JSON array of machines stands for.
MACHINE_FORMS = {
    "/machine/down": master_pb2.Call.START_MAINTENANCE,
    "/machine/up": master_pb2.Call.STOP_MAINTENANCE,
}


async def machines(request: Request) -> Response:
    """A JSON array of MachineIDs: START_MAINTENANCE (down) or STOP_MAINTENANCE (up)."""
    call_type = MACHINE_FORMS[request.url.path.removeprefix("/master")]
    context = context_of(request)
    try:
        context.check_leader(request)
        require_post(request)
        try:
            items = orjson.loads(await request.body())
            if not isinstance(items, list):
                raise mesos_json.MesosJsonError("Expecting a JSON array")
            ids = [mesos_json.from_dict(item, mesos_pb2.MachineID) for item in items]
        except (orjson.JSONDecodeError, mesos_json.MesosJsonError) as error:
            raise HttpError(400, str(error)) from None
        call = master_pb2.Call(type=call_type)
        body = (
            call.start_maintenance if call_type == call.START_MAINTENANCE else call.stop_maintenance
        )
        body.machines.extend(ids)
        return await written(call, context, request)
    except HttpError as error:
        return error.response()


async def written(call: master_pb2.Call, context: MasterContext, request: Request) -> Response:
    response = await operator.write(call, context, request)
    assert response is not None  # a write call
    return response
