"""api/app.py WritePaths: agent and scheduler calls skip Starlette's chain, answers unchanged.

Against a real uvicorn on loopback: the consistency headers every other response gets, on
202s, errors and streams alike, and a 500 when the endpoint fails.
"""

from __future__ import annotations

import aiohttp
import pytest
from starlette.requests import Request
from starlette.responses import Response
from support.fake_agent import FakeAgent
from support.master_harness import MasterHandle
from support.read_cluster import AGENT_RESOURCES

from meseta.api.app import WritePaths
from meseta.proto.agent_link.v1 import agent_link_pb2
from meseta.proto.mesos.v1 import mesos_pb2

CONSISTENCY = (
    "X-Meseta-Index",
    "X-Meseta-Known-Leader",
    "X-Meseta-Leader",
    "X-Meseta-Last-Contact",
)
PROTOBUF = "application/x-protobuf"


def write_paths(master: MasterHandle) -> WritePaths:
    app = master.replica.server.config.app
    assert isinstance(app, WritePaths)
    return app


async def test_agent_link_answers_carry_the_consistency_headers(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    async with FakeAgent(master.url, resources=AGENT_RESOURCES) as agent:
        assert (await agent.subscribe())["type"] == "SUBSCRIBED"
        call = agent_link_pb2.Call(type=agent_link_pb2.Call.HEARTBEAT)
        assert agent.agent_id is not None
        call.agent_id.value = agent.agent_id
        for body, status in ((call.SerializeToString(), 202), (b"\x08", 400)):
            async with session.post(
                master.url + "/master/api/v1/agent", data=body, headers={"Content-Type": PROTOBUF}
            ) as response:
                assert response.status == status, await response.text()
                assert int(response.headers["X-Meseta-Index"]) <= master.log.applied_index()
                assert response.headers["X-Meseta-Leader"] == master.address
                assert all(name in response.headers for name in CONSISTENCY)


async def test_a_subscription_stream_carries_its_own_and_the_consistency_headers(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    call = agent_link_pb2.Call(type=agent_link_pb2.Call.SUBSCRIBE)
    info = call.subscribe.agent_info
    info.hostname = "fast-path"
    info.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR).scalar.value = 1
    headers = {"Content-Type": PROTOBUF, "Accept": PROTOBUF}
    async with session.post(
        master.url + "/api/v1/agent", data=call.SerializeToString(), headers=headers
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == PROTOBUF
        assert all(name in response.headers for name in CONSISTENCY)


async def test_other_paths_still_go_through_starlette(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    async with session.get(master.url + "/master/redirect", allow_redirects=False) as response:
        assert response.status == 307
    async with session.get(master.url + "/api/v1/agent/extra") as response:
        assert response.status in (400, 405)  # the operator API's catch-all, not the agent link


async def test_an_endpoint_that_fails_answers_500(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    app = write_paths(master)
    original = app.endpoints["/api/v1/scheduler"]
    app.endpoints["/api/v1/scheduler"] = broken
    recorder = Recorder()
    scope = {"type": "http", "path": "/api/v1/scheduler", "method": "POST", "headers": []}
    try:
        with pytest.raises(RuntimeError):
            await app(scope, receive_nothing, recorder)
        assert recorder.messages[0]["status"] == 500
        assert recorder.messages[1]["body"] == b"Internal Server Error"
    finally:
        app.endpoints["/api/v1/scheduler"] = original
    async with session.post(master.url + "/api/v1/scheduler", data=b"{}") as response:
        assert response.status != 500  # restored


async def receive_nothing() -> dict[str, object]:
    return {"type": "http.request", "body": b"", "more_body": False}


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, object]] = []

    async def __call__(self, message: dict[str, object]) -> None:
        self.messages.append(message)
