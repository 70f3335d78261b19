"""The master operator API (contract 4.1) over raw HTTP, JSON and protobuf, and via pymesos.

Read calls are checked against a populated master (tests/support/read_cluster.py);
the JSON assembled from cached pieces must equal the Mesos JSON of the protobuf
answer; bad input gets Mesos's status codes; MARK_AGENT_GONE and TEARDOWN are
proposed on the leader and redirected by a follower.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy
from pymesos import MesosOperatorMasterDriver
from support.master_harness import MasterHandle, follower_master, running_master
from support.read_cluster import Populated

from meseta.api import mesos_json, operator, read_cache
from meseta.api.consistency import INDEX_HEADER
from meseta.proto.mesos.v1.master import master_pb2

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
Json = dict[str, Any]
Response = master_pb2.Response

READ_CALLS = {
    "GET_HEALTH": "get_health",
    "GET_FLAGS": "get_flags",
    "GET_VERSION": "get_version",
    "GET_METRICS": "get_metrics",
    "GET_LOGGING_LEVEL": "get_logging_level",
    "GET_STATE": "get_state",
    "GET_AGENTS": "get_agents",
    "GET_FRAMEWORKS": "get_frameworks",
    "GET_EXECUTORS": "get_executors",
    "GET_TASKS": "get_tasks",
    "GET_ROLES": "get_roles",
    "GET_WEIGHTS": "get_weights",
    "GET_MASTER": "get_master",
    "GET_OPERATIONS": "get_operations",
}


async def post(
    master: MasterHandle,
    body: bytes | Json,
    *,
    content_type: str | None = JSON,
    accept: str | None = None,
    path: str = "/api/v1",
    method: str = "POST",
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            master.url + path,
            data=data,
            headers=headers,
            allow_redirects=False,
            skip_auto_headers=["Content-Type"],
        ) as response,
    ):
        return response.status, response.headers, await response.read()


async def call_json(master: MasterHandle, kind: str, **body: Any) -> Json:
    required = operator.REQUIRED_BODY.get(master_pb2.Call.Type.Value(kind))
    if required is not None:
        body.setdefault(required, {})
    status, headers, data = await post(master, {"type": kind, **body})
    assert status == 200, (kind, status, data)
    assert headers["Content-Type"] == JSON
    assert INDEX_HEADER in headers
    answer: Json = orjson.loads(data)
    return answer


async def call_protobuf(master: MasterHandle, kind: str) -> master_pb2.Response:
    request = master_pb2.Call(type=master_pb2.Call.Type.Value(kind))
    required = operator.REQUIRED_BODY.get(request.type)
    if required is not None:
        getattr(request, required).SetInParent()
    status, headers, data = await post(
        master, request.SerializeToString(), content_type=PROTOBUF, accept=PROTOBUF
    )
    assert status == 200, (kind, status, data)
    assert headers["Content-Type"] == PROTOBUF
    return master_pb2.Response.FromString(data)


async def test_every_read_call_answers_its_type(cluster: tuple[MasterHandle, Populated]) -> None:
    master, _ = cluster
    for kind, field in READ_CALLS.items():
        answer = await call_json(master, kind)
        assert answer["type"] == kind
        assert field in answer, (kind, answer)
        message = await call_protobuf(master, kind)
        assert master_pb2.Response.Type.Name(message.type) == kind
        assert message.HasField(field), kind  # type: ignore[arg-type]


async def test_get_state_json_and_protobuf_agree(cluster: tuple[MasterHandle, Populated]) -> None:
    master, populated = cluster
    for _ in range(20):  # ticks move the index: retry until both reads saw the same entry
        before = master.context.cluster.applied_index
        message = await call_protobuf(master, "GET_STATE")
        answer = await call_json(master, "GET_STATE")
        if master.context.cluster.applied_index == before:
            break
    assert answer == orjson.loads(mesos_json.to_json(message))
    state = answer["get_state"]
    (task,) = state["get_tasks"]["tasks"]
    assert task["task_id"] == {"value": "t1"} and task["state"] == "TASK_RUNNING"
    assert task["labels"] == {"labels": [{"key": "team", "value": "read-side"}]}
    assert [s["state"] for s in task["statuses"]] == ["TASK_RUNNING"]
    (completed,) = state["get_tasks"]["completed_tasks"]
    assert completed["task_id"] == {"value": "t2"} and completed["state"] == "TASK_FINISHED"
    (framework,) = state["get_frameworks"]["frameworks"]
    assert framework["framework_info"]["id"] == {"value": populated.framework_id}
    assert framework["active"] is True and framework["connected"] is True
    assert "registered_time" in framework
    (agent,) = state["get_agents"]["agents"]
    assert agent["agent_info"]["id"] == {"value": populated.agent_id}
    assert agent["active"] is True
    assert {r["name"] for r in agent["allocated_resources"]} == {"cpus", "mem", "ports"}
    role = framework["framework_info"].get("role", "*")
    for resource in [*agent["allocated_resources"], *framework["allocated_resources"]]:
        # Mesos's ENDPOINT format, each with the role it is allocated to.
        assert resource["role"] == "*", resource
        assert resource["allocation_info"] == {"role": role}, resource
    assert state["get_executors"] == {}


async def test_get_master_flags_version_metrics(cluster: tuple[MasterHandle, Populated]) -> None:
    master, _ = cluster
    got = (await call_json(master, "GET_MASTER"))["get_master"]
    assert got["master_info"]["port"] == master.port
    assert got["elected_time"] > 0 and got["start_time"] > 0
    version = (await call_json(master, "GET_VERSION"))["get_version"]["version_info"]
    assert version["version"] == "1.11.0"
    flags = (await call_json(master, "GET_FLAGS"))["get_flags"]["flags"]
    assert {"name": "hostname", "value": "127.0.0.1"} in flags
    metrics = (await call_json(master, "GET_METRICS", get_metrics={}))["get_metrics"]["metrics"]
    assert {"name": "master/tasks_running", "value": 1.0} in metrics
    roles = (await call_json(master, "GET_ROLES"))["get_roles"]["roles"]
    assert [role["name"] for role in roles] == ["*"]
    # As Mesos: bare scalar quantities, by name; the task's ports are not among them.
    resources = roles[0]["resources"]
    assert [r["name"] for r in resources] == ["cpus", "mem"]
    assert all(set(r) == {"name", "type", "scalar"} for r in resources), resources
    assert (await call_json(master, "GET_HEALTH"))["get_health"] == {"healthy": True}


async def test_master_alias_and_longest_prefix_paths(master: MasterHandle) -> None:
    for path in ("/master/api/v1", "/api/v1/operator", "/master/api/v1/operator"):
        status, _, data = await post(master, {"type": "GET_HEALTH"}, path=path)
        assert (path, status) == (path, 200), data


async def test_pymesos_operator_driver(cluster: tuple[MasterHandle, Populated]) -> None:
    master, populated = cluster
    driver = MesosOperatorMasterDriver(master.address)
    try:
        state = await asyncio.to_thread(driver.getState)
        agents = await asyncio.to_thread(driver.getAgents)
        version = await asyncio.to_thread(driver.getVersion)
    finally:
        if driver._conn is not None:  # pymesos keeps its connection open
            driver._conn.close()
    tasks = state["get_state"]["get_tasks"]["tasks"]
    assert [t["task_id"]["value"] for t in tasks] == ["t1"]
    assert agents["get_agents"]["agents"][0]["agent_info"]["id"]["value"] == populated.agent_id
    assert version["type"] == "GET_VERSION"


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "options", "status", "text"),
    [
        (
            b"{}",
            {"method": "GET"},
            405,
            "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'.",
        ),
        (b'{"type": "GET_HEALTH"}', {"content_type": None}, 400, "Content-Type"),
        (
            b'{"type": "GET_HEALTH"}',
            {"content_type": "text/plain"},
            415,
            "Expecting 'Content-Type' of application/json or application/x-protobuf",
        ),
        (
            b'{"type": "GET_HEALTH"}',
            {"accept": "text/html"},
            406,
            "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'",
        ),
        # Mesos checks the body before Accept.
        (b"{}", {"accept": "text/html"}, 400, "Expecting 'type' to be present"),
        (b'{"type": ', {}, 400, "Failed to parse body into JSON: "),
        (b"\xff\xff", {"content_type": PROTOBUF}, 400, "Failed to parse body into Call protobuf"),
        (b'{"type": 7.5}', {}, 400, "Failed to convert JSON into Call protobuf: "),
        (b"{}", {}, 400, "Expecting 'type' to be present"),
        (b'{"type": "UNKNOWN"}', {}, 501, ""),
        (b'{"type": "MARK_AGENT_GONE"}', {}, 400, "Expecting 'mark_agent_gone'"),
        (b'{"type": "GET_METRICS"}', {}, 400, "Expecting 'get_metrics' to be present"),
        (
            b'{"type": "START_MAINTENANCE", "start_maintenance": {}}',
            {},
            400,
            "List of machines is empty",
        ),
        (
            b'{"type": "GROW_VOLUME", "grow_volume": {}}',
            {},
            400,
            "Failed to convert JSON into Call protobuf: Missing required fields",
        ),
        (
            b'{"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [{"role": "a/b"}]}}',
            {},
            400,
            "Updating quota on nested role 'a/b' is not supported yet",
        ),
        (
            b'{"type": "RESERVE_RESOURCES", "reserve_resources": {"agent_id": {"value": "a"}}}',
            {},
            400,
            "No agent found with specified ID",
        ),
        (b'{"type": "CREATE_VOLUMES", "create_volumes": {}}', {}, 400, "agent_id"),
    ],
)
async def test_bad_calls(
    master: MasterHandle, body: bytes, options: dict[str, Any], status: int, text: str
) -> None:
    got, _, data = await post(master, body, **options)
    assert got == status, data
    assert text in data.decode() if text else data == b""  # Mesos's 501 for UNKNOWN is empty


# -- writes ----------------------------------------------------------------------------------


async def test_mark_agent_gone(cluster: tuple[MasterHandle, Populated]) -> None:
    master, populated = cluster
    body = {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "nope"}}}
    status, _, data = await post(master, body)
    assert (status, data) == (404, b"Agent 'nope' not found")
    body["mark_agent_gone"] = {"agent_id": {"value": populated.agent_id}}
    status, _, data = await post(master, body)
    assert (status, data) == (200, b"")
    view = master.context.cluster
    assert view.agents[populated.agent_id].status == "gone"
    answer = await call_json(master, "GET_AGENTS")
    assert "agents" not in answer["get_agents"]
    # Its running task was ended (TASK_GONE_BY_OPERATOR, or TASK_LOST for this non-PA framework).
    tasks = (await call_json(master, "GET_TASKS"))["get_tasks"]
    assert "tasks" not in tasks or all(
        t["state"] in ("TASK_GONE_BY_OPERATOR", "TASK_LOST") for t in tasks["tasks"]
    )


async def test_deactivate_reactivate_and_drain_agent(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    """Mesos 1.9's agent calls, with Mesos's answers; the fake agent cannot drain."""
    master, populated = cluster
    agent = {"agent_id": {"value": populated.agent_id}}
    nope = {"agent_id": {"value": "nope"}}
    for call, body, expected in [
        ("DEACTIVATE_AGENT", nope, (400, b"Unknown agent")),
        ("DRAIN_AGENT", nope, (400, b"Unknown agent")),
        ("REACTIVATE_AGENT", agent, (400, b"Agent is not deactivated")),
        (
            "DRAIN_AGENT",
            agent,
            (400, f"Agent {populated.agent_id} is not capable of draining".encode()),
        ),
        ("DEACTIVATE_AGENT", agent, (200, b"")),
    ]:
        status, _, data = await post(master, {"type": call, call.lower(): body})
        assert (status, data) == expected, call

    async def described() -> tuple[Json, Json, Json]:
        (got,) = (await call_json(master, "GET_AGENTS"))["get_agents"]["agents"]
        status, _, data = await post(master, b"", method="GET", path="/state")
        assert status == 200, data
        state = orjson.loads(data)
        (slave,) = state["slaves"]
        return got, slave, state

    got, slave, state = await described()
    assert (got["active"], got["deactivated"]) == (False, True)
    assert (slave["active"], slave["deactivated"]) == (False, True)
    assert (state["activated_slaves"], state["deactivated_slaves"]) == (0, 1)
    status, _, data = await post(master, {"type": "REACTIVATE_AGENT", "reactivate_agent": agent})
    assert (status, data) == (200, b"")
    got, slave, state = await described()
    assert (got["active"], got["deactivated"], slave["deactivated"]) == (True, False, False)
    master_info = (await call_json(master, "GET_MASTER"))["get_master"]["master_info"]
    assert master_info["capabilities"] == [{"type": "AGENT_DRAINING"}]


def dynamic(name: str, value: float, role: str = "ops", **reservation: Any) -> Json:
    return {
        "name": name,
        "type": "SCALAR",
        "scalar": {"value": value},
        "reservations": [{"type": "DYNAMIC", "role": role, **reservation}],
    }


async def test_reserve_and_unreserve_resources(cluster: tuple[MasterHandle, Populated]) -> None:
    """RESERVE_RESOURCES and its `/master/reserve` form: offers are rescinded to make room,
    the agent checkpoints, and the reads show the reservation; UNRESERVE gives it back."""
    master, populated = cluster
    agent_id = {"value": populated.agent_id}
    labels = {"labels": [{"key": "owner", "value": "dba"}]}
    wanted = [dynamic("cpus", 1, principal="admin", labels=labels), dynamic("mem", 64)]
    body = {"agent_id": agent_id, "resources": wanted}
    status, _, data = await post(master, {"type": "RESERVE_RESOURCES", "reserve_resources": body})
    assert (status, data) == (202, b"")
    # The framework's outstanding offer held all that was free: it was rescinded.
    await populated.stream.expect("RESCIND")
    checkpoint = await populated.agent.expect("CHECKPOINT_RESOURCES")
    listed = checkpoint["checkpoint_resources"]["resources"]
    assert {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}, **{
        "reservations": [{"type": "DYNAMIC", "role": "ops", "principal": "admin", "labels": labels}]
    }} in listed  # fmt: skip
    (got,) = (await call_json(master, "GET_AGENTS"))["get_agents"]["agents"]
    reserved = [r for r in got["total_resources"] if r.get("reservations")]
    assert {r["name"]: r["reservations"][0].get("principal") for r in reserved} == {
        "cpus": "admin",
        "mem": None,
    }
    status, _, data = await post(master, b"", method="GET", path="/master/slaves")
    (slave,) = orjson.loads(data)["slaves"]
    assert slave["reserved_resources"]["ops"]["cpus"] == 1.0
    (full_cpus,) = [r for r in slave["reserved_resources_full"]["ops"] if r["name"] == "cpus"]
    assert full_cpus["role"] == "ops" and full_cpus["reservation"]["principal"] == "admin"
    assert slave["unreserved_resources"]["cpus"] == 3.0
    roles = (await call_json(master, "GET_ROLES"))["get_roles"]["roles"]
    assert "ops" in [role["name"] for role in roles]  # a role with reservations is known
    status, _, data = await post(master, b"", method="GET", path="/roles")
    (ops,) = [role for role in orjson.loads(data)["roles"] if role["name"] == "ops"]
    assert ops["reserved"] == {"cpus": 1.0, "mem": 64.0}
    # More than the agent has: 409 with what is there; a bad resource: 400.
    too_much = {"agent_id": agent_id, "resources": [dynamic("cpus", 9)]}
    status, _, data = await post(
        master, {"type": "RESERVE_RESOURCES", "reserve_resources": too_much}
    )
    assert status == 409 and data.endswith(b" does not contain cpus:9"), data
    # The form: slaveId and a JSON array; UNRESERVE pops the reservation.
    form = f"slaveId={populated.agent_id}&resources=".encode()
    for body_, expected in [
        (b"resources=[]", (400, b"Missing 'slaveId' query parameter in the request body")),
        (
            f"slaveId={populated.agent_id}".encode(),
            (400, b"Missing 'resources' query parameter in the request body"),
        ),
        (form + b"%5B1", None),
    ]:
        status, _, data = await post(master, body_, content_type=FORM, path="/master/unreserve")
        if expected is None:
            assert status == 400 and data.startswith(b"Error in parsing 'resources'"), data
        else:
            assert (status, data) == expected
    encoded = orjson.dumps(wanted).decode().replace("%", "%25").replace("&", "%26")
    status, _, data = await post(
        master, form + encoded.encode(), content_type=FORM, path="/master/unreserve"
    )
    assert (status, data) == (202, b"")
    await populated.agent.expect("CHECKPOINT_RESOURCES")
    (got,) = (await call_json(master, "GET_AGENTS"))["get_agents"]["agents"]
    assert not [r for r in got["total_resources"] if r.get("reservations")]
    volume = dynamic("disk", 8)
    volume["disk"] = {"persistence": {"id": "v1"}, "volume": {"container_path": "d", "mode": "RW"}}
    status, _, data = await post(
        master,
        {"type": "DESTROY_VOLUMES", "destroy_volumes": {"agent_id": agent_id, "volumes": [volume]}},
    )
    assert (status, data) == (400, b"Invalid DESTROY operation: Persistent volumes not found")


async def test_quota_calls_and_reads(cluster: tuple[MasterHandle, Populated]) -> None:
    """UPDATE_QUOTA, GET_QUOTA, the deprecated SET_QUOTA/REMOVE_QUOTA and `/quota`, and
    the quota in `/roles` and the metrics, with Mesos's shapes and answers."""
    master, _ = cluster  # one agent: cpus 4, mem 1024; the populated tasks run in role *
    config = {"role": "dev", "guarantees": {"cpus": {"value": 1}}, "limits": {"cpus": {"value": 2}}}
    update = {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [config]}}
    assert (await post(master, update))[:3:2] == (200, b"")
    status = (await call_json(master, "GET_QUOTA"))["get_quota"]["status"]
    assert status["configs"] == [config]
    assert status["infos"] == [
        {"role": "dev", "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}}]}
    ]
    code, _, data = await post(master, b"", method="GET", path="/master/quota")
    assert code == 200 and orjson.loads(data) == status
    code, _, data = await post(master, b"", method="GET", path="/roles")
    (dev,) = [role for role in orjson.loads(data)["roles"] if role["name"] == "dev"]
    assert dev["quota"] == {"role": "dev", "guarantee": {"cpus": 1.0}, "limit": {"cpus": 2.0},
                            "consumed": {}}  # fmt: skip
    code, _, data = await post(master, b"", method="GET", path="/metrics/snapshot")
    metrics = orjson.loads(data)
    assert metrics["allocator/mesos/quota/roles/dev/resources/cpus/guarantee"] == 1.0
    assert metrics["allocator/mesos/quota/roles/dev/resources/cpus/limit"] == 2.0
    # The deprecated calls, with their own answers.
    request = {
        "role": "dev",
        "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
    }
    set_quota = {"type": "SET_QUOTA", "set_quota": {"quota_request": request}}
    assert (await post(master, set_quota))[:3:2] == (
        400,
        b"Failed to validate set quota request: Cannot set quota for role 'dev' which already"
        b" has quota",
    )
    big = {"role": "ops", "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 9}}]}
    code, _, data = await post(master, big, path="/master/quota")
    assert code == 409 and data.startswith(b"Quota guarantees overcommit the cluster")
    assert (await post(master, {**big, "force": True}, path="/master/quota"))[0] == 200
    remove = {"type": "REMOVE_QUOTA", "remove_quota": {"role": "ops"}}
    assert (await post(master, remove))[:3:2] == (200, b"")
    assert (await post(master, remove))[:3:2] == (
        400,
        b"Failed to remove quota: Role 'ops' has no quota set",
    )
    code, _, data = await post(master, b"", method="DELETE", path="/master/quota/dev")
    assert (code, data) == (200, b"")
    code, _, data = await post(master, b"", method="DELETE", path="/master/quota/dev")
    assert (code, data) == (
        400,
        b"Failed to remove quota for path '/master/quota/dev': Role 'dev' has no quota set",
    )
    assert (await call_json(master, "GET_QUOTA"))["get_quota"] == {"status": {}}


async def test_teardown(cluster: tuple[MasterHandle, Populated]) -> None:
    master, populated = cluster
    body = {"type": "TEARDOWN", "teardown": {"framework_id": {"value": populated.framework_id}}}
    status, _, data = await post(master, body)
    assert (status, data) == (200, b"")
    frameworks = (await call_json(master, "GET_FRAMEWORKS"))["get_frameworks"]
    assert "frameworks" not in frameworks
    (completed,) = frameworks["completed_frameworks"]
    assert completed["framework_info"]["id"] == {"value": populated.framework_id}
    status, _, data = await post(master, body)
    assert status == 400, data


FORM = "application/x-www-form-urlencoded"


async def test_teardown_form(cluster: tuple[MasterHandle, Populated]) -> None:
    """Mesos's legacy `POST /master/teardown` with `frameworkId=<id>` (contract 6.2)."""
    master, populated = cluster
    form = f"frameworkId={populated.framework_id}".encode()
    for path, body, method in [
        ("/master/teardown", b"", "POST"),
        ("/teardown", b"id=x", "POST"),
        ("/master/teardown", b"frameworkId=%zz", "POST"),
        ("/master/teardown", b"frameworkId=%ff", "POST"),
        ("/master/teardown", b"frameworkId=nobody", "POST"),
        ("/master/teardown", form, "GET"),
    ]:
        status, headers, data = await post(
            master, body, content_type=FORM, path=path, method=method
        )
        if method == "GET":
            assert (status, headers["Allow"]) == (405, "POST")
        elif b"%" in body:
            assert status == 400 and data.startswith(b"Unable to decode query string: "), data
        elif body == b"frameworkId=nobody":
            assert (status, data) == (400, b"No framework found with specified ID")
        else:
            assert (status, data) == (
                400, b"Missing 'frameworkId' query parameter in the request body",
            )  # fmt: skip
    assert populated.framework_id in master.state.frameworks  # nothing above changed it
    status, _, data = await post(master, form, content_type=FORM, path="/master/teardown")
    assert (status, data) == (200, b"")
    frameworks = (await call_json(master, "GET_FRAMEWORKS"))["get_frameworks"]
    assert "frameworks" not in frameworks
    (completed,) = frameworks["completed_frameworks"]
    assert completed["framework_info"]["id"] == {"value": populated.framework_id}
    killed = {t["task_id"]["value"]: t["state"] for t in completed.get("tasks", [])}
    assert set(killed.values()) <= {"TASK_KILLED"}
    status, _, data = await post(master, form, content_type=FORM, path="/teardown")
    assert (status, data) == (400, b"No framework found with specified ID")


async def test_weights_form(cluster: tuple[MasterHandle, Populated]) -> None:
    """`GET /master/weights` answers GET_WEIGHTS's weight_infos as a JSON array."""
    master, _ = cluster
    master.state.weights["analytics"] = 2500  # as a weights command will set them
    for path in ("/weights", "/master/weights"):
        status, headers, data = await post(master, b"", content_type=None, path=path, method="GET")
        assert (status, headers["Content-Type"]) == (200, JSON)
        assert orjson.loads(data) == [{"role": "analytics", "weight": 2.5}]
        answer = (await call_json(master, "GET_WEIGHTS"))["get_weights"]
        assert answer["weight_infos"] == orjson.loads(data)
    status, _, data = await post(
        master, b"", content_type=None, path="/master/weights?jsonp=cb", method="GET"
    )
    assert (status, data) == (200, b'cb([{"weight":2.5,"role":"analytics"}]);')


async def test_weights_are_updated_by_the_v1_call_and_the_put(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    master, _ = cluster
    # Bad input changes nothing and says why, as Mesos's weights handler does. (First: a
    # good update makes the allocator offer again, which `unchanged` would count.)
    with master.unchanged():
        for path, data, message in [
            ("/master/weights", b'{"role": "x"}', b"Failed to parse update weights request JSON"),
            ("/master/weights", b'[{"role": "x"}]', b"Failed to convert weights JSON array"),
            ("/master/weights", b'[{"role": "x", "weight": 0}]', b"Weights must be positive"),
            ("/api/v1", orjson.dumps({"type": "UPDATE_WEIGHTS", "update_weights": {
                "weight_infos": [{"role": "a/../b", "weight": 1.0}]}}), b"Invalid role"),
        ]:  # fmt: skip
            method = "PUT" if path.endswith("weights") else "POST"
            status, _, reply = await post(master, data, path=path, method=method)
            assert status == 400 and message in reply, (path, status, reply)
    body = {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [
        {"role": "analytics", "weight": 2.5}]}}  # fmt: skip
    status, _, _ = await post(master, orjson.dumps(body))
    assert status == 200
    put = b'[{"role": "*", "weight": 3.0}, {"role": "batch", "weight": 0.5}]'
    status, _, _ = await post(master, put, path="/master/weights", method="PUT")
    assert status == 200
    answer = (await call_json(master, "GET_WEIGHTS"))["get_weights"]["weight_infos"]
    assert answer == [
        {"role": "analytics", "weight": 2.5},
        {"role": "*", "weight": 3.0},
        {"role": "batch", "weight": 0.5},
    ]
    # Every role with a weight is listed by /roles and GET_ROLES, with it.
    index = master.state.applied_index
    status, _, data = await post(
        master, b"", content_type=None, path=f"/roles?min_index={index}", method="GET"
    )
    assert status == 200
    listed = {role["name"]: role["weight"] for role in orjson.loads(data)["roles"]}
    assert listed == {"*": 3.0, "analytics": 2.5, "batch": 0.5}
    got = (await call_json(master, "GET_ROLES"))["get_roles"]["roles"]
    assert {role["name"]: role["weight"] for role in got} == listed


async def test_maintenance_schedule_inverse_offers_and_machines(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    """The pre-v1 maintenance endpoints and their v1 reads: a scheduled machine's agent
    makes offers with its unavailability and its framework an inverse offer, whose answer
    shows in the status; DOWN removes the agent, UP takes the machine off the schedule."""
    master, populated = cluster
    view_agent = master.context.cluster.agents[populated.agent_id]
    hostname, ip = view_agent.info.hostname, view_agent.pid.split("@")[1].rsplit(":", 1)[0]
    machine = {"hostname": hostname, "ip": ip}
    window = {
        "machine_ids": [machine],
        "unavailability": {"start": {"nanoseconds": 4102444800000000000}},
    }
    schedule = {"windows": [window]}
    for body, expected in [
        (b'{"windows": [{"machine_ids": [], "unavailability": {"start": {"nanoseconds": 1}}}]}',
         b"List of machines in the maintenance window is empty"),
        (orjson.dumps({"windows": [dict(window, machine_ids=[{"ip": "10.0.0.300"}])]}),
         b"Failed to parse IPv4: 10.0.0.300"),
    ]:  # fmt: skip
        status, _, data = await post(master, body, path="/master/maintenance/schedule")
        assert (status, data) == (400, expected)
    status, _, data = await post(master, schedule, path="/master/maintenance/schedule")
    assert (status, data) == (200, b"")
    stream = populated.stream
    await stream.expect("RESCIND")  # its outstanding offer, made again with the window
    inverse = (await stream.expect("INVERSE_OFFERS"))["inverse_offers"]["inverse_offers"][0]
    assert inverse["agent_id"] == {"value": populated.agent_id}
    assert inverse["unavailability"] == window["unavailability"]
    frameworks = (await call_json(master, "GET_FRAMEWORKS"))["get_frameworks"]["frameworks"]
    assert [i["id"] for i in frameworks[0]["inverse_offers"]] == [inverse["id"]]
    status, _, data = await post(master, b"", method="GET", path="/master/maintenance/schedule")
    assert orjson.loads(data) == schedule
    answer = await call_json(master, "GET_MAINTENANCE_SCHEDULE")
    assert answer["get_maintenance_schedule"]["schedule"] == schedule
    reply = await populated.scheduler.call(
        "DECLINE_INVERSE_OFFERS",
        decline_inverse_offers={
            "inverse_offer_ids": [inverse["id"]],
            "filters": {"refuse_seconds": 3600},
        },
    )
    assert reply.status == 202, reply.text
    status, _, data = await post(master, b"", method="GET", path="/maintenance/status")
    (draining,) = orjson.loads(data)["draining_machines"]
    assert draining["id"] == machine
    (answered,) = draining["statuses"]
    assert (answered["status"], answered["framework_id"]) == (
        "DECLINE", {"value": populated.framework_id},
    )  # fmt: skip
    # Bringing machines down: only scheduled, DRAINING ones; the agent is removed.
    elsewhere = [{"hostname": "elsewhere", "ip": "10.0.0.9"}]
    status, _, data = await post(master, elsewhere, path="/master/machine/down")
    assert status == 400 and data.endswith(b"is not part of a maintenance schedule"), data
    for body, method, code in [(b"[1", "POST", 400), (b"[]", "GET", 405), (b"[]", "POST", 400)]:
        status, _, _ = await post(master, body, path="/machine/down", method=method)
        assert status == code
    status, _, data = await post(master, [machine], path="/master/machine/down")
    assert (status, data) == (200, b"")
    shutdown = await populated.agent.expect("SHUTDOWN")
    assert shutdown["error"]["message"] == "Operator initiated 'Machine DOWN'"
    lost = await stream.expect("UPDATE")
    while lost["update"]["status"]["state"] != "TASK_LOST":  # earlier updates come first
        lost = await stream.expect("UPDATE")
    assert lost["update"]["status"]["message"].endswith(
        "removed: Operator initiated 'Machine DOWN'"
    )
    status = (await call_json(master, "GET_MAINTENANCE_STATUS"))["get_maintenance_status"]
    assert status["status"] == {"down_machines": [machine]}
    status_, _, data = await post(master, {"windows": []}, path="/master/maintenance/schedule")
    assert status_ == 400 and data.endswith(
        b"is deactivated and cannot be removed from the schedule"
    )
    status_, _, data = await post(master, [machine], path="/master/machine/up")
    assert (status_, data) == (200, b"")
    status = (await call_json(master, "GET_MAINTENANCE_STATUS"))["get_maintenance_status"]
    assert status == {"status": {}}
    schedule_now = await call_json(master, "GET_MAINTENANCE_SCHEDULE")
    assert schedule_now["get_maintenance_schedule"] == {"schedule": {}}


@pytest.mark.parametrize(
    ("call", "answer"),
    [
        ("GET_MAINTENANCE_STATUS", {"status": {}}),
        ("GET_MAINTENANCE_SCHEDULE", {"schedule": {}}),
        ("GET_QUOTA", {"status": {}}),
    ],
)
async def test_reads_of_nothing_set_answer_empty(
    master: MasterHandle, call: str, answer: dict[str, Any]
) -> None:
    assert (await call_json(master, call))[call.lower()] == answer
    status, _, data = await post(master, {"type": call}, content_type=JSON, accept=PROTOBUF)
    assert status == 200
    assert master_pb2.Response.FromString(data).type == master_pb2.Response.Type.Value(call)


async def test_follower_reads_and_redirects_writes() -> None:
    gone = {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "a"}}}
    async with follower_master() as follower:
        status, headers, _ = await post(follower, gone)
        assert status == 307
        assert headers["Location"] == "//leader.example:5999/master/api/v1"
        # Calls not built yet too: the leader answers them (Mesos's masters redirect first).
        unbuilt = {"type": "CREATE_VOLUMES", "create_volumes": {"agent_id": {"value": "a"}}}
        for call in ({"type": "UPDATE_QUOTA", "update_quota": {}}, unbuilt):
            status, headers, _ = await post(follower, call)
            assert (status, headers["Location"]) == (307, "//leader.example:5999/master/api/v1")
        status, headers, _ = await post(follower, {"role": "r"}, path="/quota")
        assert (status, headers["Location"]) == (307, "//leader.example:5999/master/quota")
        status, headers, _ = await post(follower, b"frameworkId=f", path="/teardown")
        assert (status, headers["Location"]) == (307, "//leader.example:5999/master/teardown")
        answer = await call_json(follower, "GET_STATE")
        assert answer == {
            "type": "GET_STATE",
            "get_state": {
                "get_tasks": {},
                "get_executors": {},
                "get_frameworks": {},
                "get_agents": {},
            },
        }
    async with follower_master(leader_known=False) as follower:
        status, _, data = await post(follower, gone)
        assert (status, data) == (503, b"No leader elected")
        # Not this replica's own info: a client asking who leads would be misled.
        status, _, data = await post(follower, {"type": "GET_MASTER"})
        assert (status, data) == (503, b"No leader elected")


async def test_subscribe_starts_with_subscribed(cluster: tuple[MasterHandle, Populated]) -> None:
    master, _ = cluster
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            master.url + "/api/v1",
            data=b'{"type": "SUBSCRIBE"}',
            headers={"Content-Type": JSON},
        ) as response,
    ):
        assert response.status == 200
        length = int(await response.content.readuntil(b"\n"))
        first = orjson.loads(await response.content.readexactly(length))
    assert first["type"] == "SUBSCRIBED"
    tasks = first["subscribed"]["get_state"]["get_tasks"]["tasks"]
    assert [t["task_id"]["value"] for t in tasks] == ["t1"]


@pytest.mark.parametrize("media_type", [JSON, PROTOBUF])
@pytest.mark.parametrize("kind", ["GET_STATE", "GET_TASKS", "GET_FRAMEWORKS", "GET_AGENTS"])
async def test_concurrent_identical_calls_share_one_build_per_index(
    cluster: tuple[MasterHandle, Populated], kind: str, media_type: str
) -> None:
    master, _ = cluster
    cache = master.context.read_cache
    cache.kept.clear()
    before = cache.builds
    call = master_pb2.Call(type=master_pb2.Call.Type.Value(kind))
    body = mesos_json.to_json(call) if media_type == JSON else call.SerializeToString()
    answers = await asyncio.gather(
        *(post(master, body, content_type=media_type, accept=media_type) for _ in range(12))
    )
    bodies: dict[str, set[bytes]] = {}
    for status, headers, data in answers:
        assert (status, headers["Content-Type"]) == (200, media_type)
        bodies.setdefault(headers[INDEX_HEADER], set()).add(data)
    # aiohttp asks for gzip: a build of the body and one of its gzipped form per index.
    assert cache.builds - before == 2 * len(bodies) < 24
    assert all(len(same) == 1 for same in bodies.values())


@pytest.mark.parametrize("media_type", [JSON, PROTOBUF])
async def test_get_state_built_in_slices_equals_the_whole_state(
    cluster: tuple[MasterHandle, Populated], media_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    master, _ = cluster
    view = master.context.cluster
    monkeypatch.setattr(read_cache, "SLICE_S", 0.0)  # yield after every entity
    monkeypatch.setattr(read_cache, "CHUNK", 100)  # and send the body in many chunks
    call = master_pb2.Call(type=master_pb2.Call.GET_STATE)
    body = mesos_json.to_json(call) if media_type == JSON else call.SerializeToString()

    def drop_caches() -> None:
        for record in view.records():
            record.encodings.clear()
        for framework in view.all_frameworks():
            framework.task_runs.clear()

    for _ in range(20):  # until no entry lands between the read and the check
        drop_caches()
        master.context.read_cache.kept.clear()
        _, headers, data = await post(master, body, content_type=media_type, accept=media_type)
        if int(headers[INDEX_HEADER]) != view.applied_index:
            continue
        drop_caches()
        whole = master_pb2.Response(type=master_pb2.Response.GET_STATE)
        whole.get_state.CopyFrom(view.get_state())
        if media_type == JSON:
            assert orjson.loads(data) == orjson.loads(mesos_json.to_json(whole))
        else:
            assert master_pb2.Response.FromString(data) == whole
        return
    pytest.fail("the view kept moving")


async def test_the_master_serves_its_log_and_its_verbosity(tmp_path: Path) -> None:
    async with running_master() as master:
        status, _, data = await post(master, b"", path="/files/debug", method="GET")
        assert (status, orjson.loads(data)) == (200, {})  # no --log_dir, nothing attached
        master.context.flags["log_dir"] = str(tmp_path)
        log = tmp_path / "meseta-master.log"
        log.write_bytes(b"line one\nline two\n")
        status, _, data = await post(master, b"", path="/files/debug", method="GET")
        assert orjson.loads(data) == {"/master/log": str(log)}
        read = "/files/read?path=/master/log&offset=5&length=3"
        status, _, data = await post(master, b"", path=read, method="GET")
        assert (status, orjson.loads(data)) == (200, {"data": "one", "offset": 5})
        status, _, data = await post(master, b"", path="/state", method="GET")
        assert orjson.loads(data)["log_dir"] == str(tmp_path)

        answer = await call_json(
            master, "READ_FILE", read_file={"path": "/master/log", "offset": 0, "length": 4}
        )
        assert answer["read_file"] == {"size": 18, "data": base64.b64encode(b"line").decode()}
        status, _, data = await post(
            master, {"type": "READ_FILE", "read_file": {"path": "/master/nope", "offset": 0}}
        )
        assert status == 404
        answer = await call_json(master, "LIST_FILES", list_files={"path": "/master/log"})
        assert answer == {"type": "LIST_FILES", "list_files": {}}

        # A log written by someone else (--external_log_file) is served instead, as in Mesos.
        external = tmp_path / "captured.log"
        external.write_bytes(b"captured\n")
        master.context.flags["external_log_file"] = str(external)
        status, _, data = await post(master, b"", path="/files/debug", method="GET")
        assert orjson.loads(data) == {"/master/log": str(external)}
        master.context.read_cache.kept.clear()  # flags never change at run time otherwise
        status, _, data = await post(master, b"", path="/state", method="GET")
        assert orjson.loads(data)["external_log_file"] == str(external)
        status, _, data = await post(master, b"", path="/system/stats.json", method="GET")
        assert status == 200 and orjson.loads(data)["cpus_total"] == os.cpu_count()

        level = {"level": 1, "duration": {"nanoseconds": 60_000_000_000}}
        status, _, _ = await post(master, {"type": "SET_LOGGING_LEVEL", "set_logging_level": level})
        assert status == 200
        answer = await call_json(master, "GET_LOGGING_LEVEL")
        assert answer["get_logging_level"] == {"level": 1}
        toggle = "/logging/toggle?level=0&duration=1secs"
        status, _, _ = await post(master, b"", path=toggle, method="GET")
        assert status == 200
        assert (await call_json(master, "GET_LOGGING_LEVEL"))["get_logging_level"] == {"level": 0}
        # libprocess's answers: the level with no query, its words for what is missing.
        status, _, data = await post(master, b"", path="/logging/toggle", method="GET")
        assert (status, data) == (200, b"0\n")
        status, _, data = await post(master, b"", path="/logging/toggle?level=1", method="GET")
        assert (status, data) == (400, b"Expecting 'duration=value' in query.\n")
        path = "/logging/toggle?level=x&duration=1secs"
        status, _, data = await post(master, b"", path=path, method="GET")
        assert (status, data) == (400, b"Failed to convert 'x' to number.\n")


def test_each_resource_call_is_its_offer_operation() -> None:
    """The v1 bodies are their operations' bodies plus the agent id."""
    disk = {"name": "disk", "type": "SCALAR", "scalar": {"value": 8}}
    bodies = {
        "RESERVE_RESOURCES": {"source": [disk], "resources": [disk]},
        "UNRESERVE_RESOURCES": {"resources": [disk]},
        "CREATE_VOLUMES": {"volumes": [disk]},
        "DESTROY_VOLUMES": {"volumes": [disk]},
        "GROW_VOLUME": {"volume": disk, "addition": disk},
        "SHRINK_VOLUME": {"volume": disk, "subtract": {"value": 2}},
    }
    for kind, body in bodies.items():
        field = operator.RESOURCE_CALLS[master_pb2.Call.Type.Value(kind)][0]
        call = mesos_json.from_dict(
            {"type": kind, field: {"agent_id": {"value": "a1"}, **body}}, master_pb2.Call
        )
        agent_id, operation = operator.resource_operation(call)
        as_json = orjson.loads(mesos_json.to_json(operation))
        ((name, given),) = [(k, v) for k, v in as_json.items() if k != "type"]
        assert (agent_id, given) == ("a1", orjson.loads(orjson.dumps(body))), kind
        assert name == operator.RESOURCE_CALLS[call.type][2]
