"""The v1 agent operator API over a hand-built Agent: calls, media rules, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.applications import Starlette
from support.agent_state import AGENT_ID, CONTAINER, EX, FW, build_agent
from support.served_app import Client, Reply, served

from meseta.agent import endpoints, operator_api
from meseta.proto.mesos.v1.agent import agent_pb2

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
SHORT = f"/frameworks/{FW}/executors/{EX}/runs/latest"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    agent = build_agent(tmp_path / "work")
    sandbox = Path(agent.core.executors()[0].directory)
    (sandbox / "stdout").write_bytes(b"0123456789")
    app = Starlette(routes=[*endpoints.routes(agent), *operator_api.routes(agent)])
    try:
        with served(app) as test_client:
            yield test_client
    finally:
        agent.checkpoints.close()


def call(client: Client, body: dict[str, object], path: str = "/api/v1", **headers: str) -> Reply:
    sent = {"Content-Type": JSON, "Accept": JSON, **headers}
    return client.post(path, orjson.dumps(body), sent)


def test_get_health_on_both_paths(client: Client) -> None:
    for path in ("/api/v1", "/slave(1)/api/v1"):
        reply = call(client, {"type": "GET_HEALTH"}, path)
        assert reply.status_code == 200
        assert reply.json() == {"type": "GET_HEALTH", "get_health": {"healthy": True}}


def test_get_state_lists_frameworks_executors_tasks(client: Client) -> None:
    body = call(client, {"type": "GET_STATE"}).json()
    assert body["type"] == "GET_STATE"
    state = body["get_state"]
    assert state["get_frameworks"]["frameworks"][0]["framework_info"]["id"] == {"value": FW}
    assert state["get_executors"]["executors"][0]["executor_info"]["executor_id"] == {"value": EX}
    (task,) = state["get_tasks"]["launched_tasks"]
    assert task["task_id"] == {"value": "t1"} and task["state"] == "TASK_RUNNING"
    assert task["agent_id"] == {"value": AGENT_ID}


def test_simple_gets(client: Client) -> None:
    flags = call(client, {"type": "GET_FLAGS"}).json()["get_flags"]["flags"]
    assert {"name": "master", "value": "127.0.0.1:5050"} in flags
    version = call(client, {"type": "GET_VERSION"}).json()["get_version"]["version_info"]
    assert version["version"] == "1.11.0"
    metrics = call(client, {"type": "GET_METRICS", "get_metrics": {}}).json()
    names = {metric["name"] for metric in metrics["get_metrics"]["metrics"]}
    assert {"slave/registered", "slave/tasks_running", "slave/uptime_secs"} <= names
    agent = call(client, {"type": "GET_AGENT"}).json()["get_agent"]["agent_info"]
    assert agent["id"] == {"value": AGENT_ID}
    frameworks = call(client, {"type": "GET_FRAMEWORKS"}).json()["get_frameworks"]
    assert len(frameworks["frameworks"]) == 1
    executors = call(client, {"type": "GET_EXECUTORS"}).json()["get_executors"]
    assert len(executors["executors"]) == 1
    assert call(client, {"type": "GET_OPERATIONS"}).json() == {
        "type": "GET_OPERATIONS", "get_operations": {},
    }  # fmt: skip


def test_protobuf_answer_when_asked(client: Client) -> None:
    reply = call(client, {"type": "GET_HEALTH"}, Accept=PROTOBUF)
    assert reply.headers["content-type"] == PROTOBUF
    response = agent_pb2.Response.FromString(reply.content)
    assert response.get_health.healthy
    request = agent_pb2.Call(type=agent_pb2.Call.GET_VERSION).SerializeToString()
    reply = client.post("/api/v1", request, {"Content-Type": PROTOBUF, "Accept": PROTOBUF})
    assert agent_pb2.Response.FromString(reply.content).get_version.version_info.version


def test_logging_level_set_and_get(client: Client) -> None:
    assert call(client, {"type": "GET_LOGGING_LEVEL"}).json()["get_logging_level"] == {"level": 0}
    reply = call(
        client,
        {"type": "SET_LOGGING_LEVEL",
         "set_logging_level": {"level": 2, "duration": {"nanoseconds": 60_000_000_000}}},
    )  # fmt: skip
    assert reply.status_code == 200 and reply.content == b""
    assert call(client, {"type": "GET_LOGGING_LEVEL"}).json()["get_logging_level"] == {"level": 2}
    assert client.get("/logging/toggle", {"level": 0, "duration": "1secs"}).status_code == 200
    assert call(client, {"type": "GET_LOGGING_LEVEL"}).json()["get_logging_level"] == {"level": 0}


def test_list_and_read_files(client: Client) -> None:
    listing = call(client, {"type": "LIST_FILES", "list_files": {"path": SHORT}}).json()
    (info,) = listing["list_files"]["file_infos"]
    assert info["path"] == f"{SHORT}/stdout" and info["size"] == 10
    body = {"type": "READ_FILE", "read_file": {"path": f"{SHORT}/stdout", "offset": 2, "length": 3}}
    read = call(client, body).json()["read_file"]
    assert read == {"size": 10, "data": "MjM0"}  # base64 of b"234"
    escape = {"type": "READ_FILE", "read_file": {"path": f"{SHORT}/../../../../..", "offset": 0}}
    assert call(client, escape).status_code in (400, 404)
    missing = {"type": "LIST_FILES", "list_files": {"path": "/etc"}}
    assert call(client, missing).status_code == 404


def test_containers_kill_and_wait_unknown(client: Client) -> None:
    containers = call(client, {"type": "GET_CONTAINERS"}).json()
    assert containers == {"type": "GET_CONTAINERS", "get_containers": {}}  # none really runs
    kill = {"type": "KILL_CONTAINER", "kill_container": {"container_id": {"value": "nope"}}}
    reply = call(client, kill)
    assert (reply.status_code, reply.text) == (
        404,
        "Container 'nope' cannot be found (or is already killed)",
    )
    wait = {"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": CONTAINER}}}
    assert call(client, wait).status_code == 404


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        ({"type": "GET_HEALTH"}, {"Content-Type": "text/plain"}, 415, "Expecting 'Content-Type'"),
        ({"type": "GET_HEALTH"}, {"Accept": "text/html"}, 406, "Expecting 'Accept'"),
        ({"type": "GET_HEALTH"}, {"Message-Accept": JSON}, 406, "Message-Accept"),
        ({"type": "GET_HEALTH"}, {"Message-Content-Type": JSON}, 415, "Message-Content-Type"),
        ({"type": "GET_HEALTH"}, {"Content-Type": "application/recordio"}, 400,
         "Expecting 'Message-Content-Type'"),
        ({}, {}, 400, "Expecting 'type' to be present"),
        ({"type": "GET_METRICS"}, {}, 400, "Expecting 'get_metrics' to be present"),
        # Mesos's `deserialize`: a JSON body that is not a Call gets the bare error.
        ({"type": "READ_FILE", "read_file": {"path": "x"}}, {}, 400,
         "Missing required fields: read_file.offset"),
        ({"type": "LAUNCH_CONTAINER", "launch_container": {"container_id": {"value": "c"}}}, {},
         501, "Standalone containers (LAUNCH_CONTAINER without a parent) are not supported"),
        ({"type": "ATTACH_CONTAINER_OUTPUT",
          "attach_container_output": {"container_id": {"value": "c"}}}, {}, 404,
         "Container c cannot be found"),
        ({"type": "ATTACH_CONTAINER_OUTPUT",
          "attach_container_output": {"container_id": {"value": CONTAINER}}}, {}, 500,
         "I/O switchboard server was disabled for this container"),
        ({"type": "LAUNCH_NESTED_CONTAINER",
          "launch_nested_container": {"container_id": {"value": "c"}}}, {}, 400,
         "Expecting 'launch_nested_container.container_id.parent' to be present"),
        ({"type": "WAIT_NESTED_CONTAINER",
          "wait_nested_container": {"container_id": {"value": "a.b", "parent": {"value": "p"}}}},
         {}, 400, "'wait_nested_container.container_id' is invalid: 'a.b' contains invalid"),
        ({"type": "KILL_CONTAINER", "kill_container": {"container_id": {"value": ""}}}, {}, 400,
         "'kill_container.container_id' is invalid: ID must not be empty"),
        ({"type": "LAUNCH_NESTED_CONTAINER_SESSION"}, {}, 400,
         "Expecting 'launch_nested_container_session' to be present"),
        ({"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": {"value": "n", "parent": {"value": "nope"}},
            "command": {"value": "true"}}}, {}, 400, "Parent container nope does not exist"),
        ({"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": {"value": "n", "parent": {"value": CONTAINER}},
            "container": {"type": "DOCKER"}}}, {}, 400,
         "The provided ContainerInfo is not supported"),
        ({"type": "WAIT_NESTED_CONTAINER", "wait_nested_container": {
            "container_id": {"value": "n", "parent": {"value": CONTAINER}}}}, {}, 404,
         f"Container {CONTAINER}.n cannot be found"),
        ({"type": "KILL_NESTED_CONTAINER", "kill_nested_container": {
            "container_id": {"value": "n", "parent": {"value": CONTAINER}}}}, {}, 404,
         f"Container '{CONTAINER}.n' cannot be found (or is already killed)"),
        ({"type": "REMOVE_NESTED_CONTAINER", "remove_nested_container": {
            "container_id": {"value": "n", "parent": {"value": CONTAINER}}}}, {}, 500,
         "Unknown root container"),
        ({"type": "GET_HEALTH"}, {"Accept": "application/recordio"}, 406,
         "Streaming response is not supported for GET_HEALTH call"),
        ({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {"type": "CONTAINER_ID",
          "container_id": {"value": "c"}}}, {}, 415,
         "Expecting 'Content-Type' to be application/recordio for ATTACH_CONTAINER_INPUT call"),
        ({"type": "GET_HEALTH"}, {"Accept": "application/recordio", "Message-Accept": "text/x"},
         406, "Expecting 'Message-Accept' to allow"),
        ({"type": "PRUNE_IMAGES"}, {}, 501, "it has no container image store"),
        ({"type": "UNKNOWN"}, {}, 501, "Unsupported call type UNKNOWN"),
    ],
)  # fmt: skip
def test_errors(
    client: Client, body: dict[str, object], headers: dict[str, str], status: int, message: str
) -> None:
    reply = call(client, body, **headers)
    assert reply.status_code == status, reply.text
    assert message in reply.text


def test_get_is_refused(client: Client) -> None:
    reply = client.get("/api/v1")
    assert reply.status_code == 405 and reply.headers["allow"] == "POST"


def test_recovering_agent_answers_503(tmp_path: Path) -> None:
    agent = build_agent(tmp_path / "work")
    agent.recovering = True  # recover() has not finished
    app = Starlette(routes=[*endpoints.routes(agent), *operator_api.routes(agent)])
    try:
        with served(app) as recovering:
            for reply in (call(recovering, {"type": "GET_STATE"}), recovering.get("/state")):
                assert (reply.status_code, reply.text) == (503, "Agent has not finished recovery")
            assert recovering.get("/health").status_code == 200
    finally:
        agent.checkpoints.close()
