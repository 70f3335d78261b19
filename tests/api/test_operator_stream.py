"""Operator SUBSCRIBE (contract 4.2) as chunked RecordIO, against a real uvicorn on loopback.

Writes go through the real scheduler and agent APIs (fake clients); the stream is
read with aiohttp (TestClient would buffer an endless response).
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
import pytest
from support.fake_agent import EventStream, FakeAgent
from support.fake_scheduler import FakeScheduler, subscribe_and_launch
from support.master_harness import MasterHandle, follower_master, use_broker

from meseta.api import consistency, encodings, mesos_json, operator_stream
from meseta.master import wire
from meseta.proto.mesos.v1.master import master_pb2

Json = dict[str, Any]
JSON = "application/json"
PROTOBUF = "application/x-protobuf"


class ProtobufEvents(EventStream):
    def decode(self, record: bytes) -> Json:
        return mesos_json.to_dict(master_pb2.Event.FromString(record))


async def subscribe(
    session: aiohttp.ClientSession, master: MasterHandle, media_type: str = JSON
) -> EventStream:
    response = await session.post(
        master.url + "/api/v1",
        data=orjson.dumps({"type": "SUBSCRIBE"}),
        headers={"Content-Type": JSON, "Accept": media_type},
    )
    assert response.status == 200, await response.text()
    return (EventStream if media_type == JSON else ProtobufEvents)(response)


@pytest.mark.parametrize("media_type", [JSON, PROTOBUF])
async def test_subscribed_with_the_full_state_then_the_cluster_events(
    master: MasterHandle,
    agent: FakeAgent,
    scheduler: FakeScheduler,
    session: aiohttp.ClientSession,
    media_type: str,
) -> None:
    events = await subscribe(session, master, media_type)
    headers = events.response.headers
    assert headers["Content-Type"] == media_type
    assert headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in headers and "Mesos-Stream-Id" not in headers
    assert int(headers["X-Meseta-Index"]) == master.context.cluster.applied_index

    subscribed = await events.next_event()
    assert subscribed["type"] == "SUBSCRIBED"
    body = subscribed["subscribed"]
    assert body["heartbeat_interval_seconds"] == 15.0
    agents = body["get_state"]["get_agents"]["agents"]
    assert [a["agent_info"]["id"]["value"] for a in agents] == [agent.agent_id]

    await subscribe_and_launch(scheduler, "t1")
    added = await events.next_event()
    assert added["type"] == "FRAMEWORK_ADDED"
    framework = added["framework_added"]["framework"]
    assert framework["framework_info"]["id"]["value"] == scheduler.framework_id
    task = (await events.next_event())["task_added"]["task"]
    assert (task["task_id"]["value"], task["state"]) == ("t1", "TASK_STAGING")

    await agent.update(scheduler.framework_id or "", "t1", "TASK_RUNNING")
    updated = (await events.next_event())["task_updated"]
    assert updated["framework_id"]["value"] == scheduler.framework_id
    assert updated["state"] == "TASK_RUNNING"
    assert updated["status"]["task_id"]["value"] == "t1"

    assert (await scheduler.call("TEARDOWN")).status == 202
    kinds = [(await events.next_event())["type"] for _ in range(2)]
    assert sorted(kinds) == ["FRAMEWORK_REMOVED", "TASK_UPDATED"]
    await events.close()


async def test_heartbeats_come_right_after_subscribed_then_every_interval(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    """As Mesos's readonly handler: SUBSCRIBED, a HEARTBEAT at once, then one an interval.
    (Contract 1.7 says the first comes after an interval; Mesos's source sends it at once.)"""
    use_broker(master, heartbeat_interval_s=0.3)
    events = await subscribe(session, master)
    subscribed = await events.next_event()
    assert subscribed["subscribed"]["heartbeat_interval_seconds"] == pytest.approx(0.3)
    first = await events.next_event(heartbeats=True, timeout_s=0.2)
    assert first["type"] == "HEARTBEAT"
    after_first = time.monotonic()
    assert (await events.next_event(heartbeats=True))["type"] == "HEARTBEAT"
    assert time.monotonic() - after_first >= 0.25
    await events.close()


async def test_a_subscriber_that_falls_behind_is_closed(
    master: MasterHandle,
    agent: FakeAgent,
    scheduler: FakeScheduler,
    session: aiohttp.ClientSession,
) -> None:
    use_broker(master, capacity=3)
    events = await subscribe(session, master)
    await events.next_event()
    await subscribe_and_launch(scheduler, "t1", "t2", "t3", "t4")  # one entry, four events
    rest = [event["type"] for event in await events.wait_closed()]
    # FRAMEWORK_ADDED came first, if the stream read it before the overrun.
    assert [kind for kind in rest if kind != "HEARTBEAT"] in (["FRAMEWORK_ADDED"], [])
    # A new subscription starts from the full state, the master unaffected.
    again = await subscribe(session, master)
    state = (await again.next_event())["subscribed"]["get_state"]
    assert len(state["get_tasks"]["tasks"]) == 4
    await again.close()
    await events.close()


async def test_beyond_the_subscriber_limit_the_oldest_is_closed(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    use_broker(master, max_subscribers=1)
    oldest = await subscribe(session, master)
    await oldest.next_event()
    newest = await subscribe(session, master)
    await newest.next_event()
    await oldest.wait_closed()
    assert not newest.closed.is_set()
    await newest.close()
    await oldest.close()


async def test_a_client_that_leaves_is_unsubscribed(
    master: MasterHandle, session: aiohttp.ClientSession
) -> None:
    events = await subscribe(session, master)
    await events.next_event()
    assert len(master.context.operator_events.subscriptions) == 1
    await events.close()
    await master.wait_unsubscribed()


async def test_a_standby_serves_the_stream_from_its_own_view(
    session: aiohttp.ClientSession,
) -> None:
    async with follower_master() as follower:
        events = await subscribe(session, follower)
        subscribed = await events.next_event()
        assert subscribed["type"] == "SUBSCRIBED"
        headers = events.response.headers
        assert headers["X-Meseta-Known-Leader"] == "true"
        assert headers["X-Meseta-Leader"] == "leader.example:5999"
        await events.close()


@pytest.mark.parametrize("media_type", [JSON, PROTOBUF])
async def test_subscribed_state_equals_get_state(
    master: MasterHandle,
    agent: FakeAgent,
    scheduler: FakeScheduler,
    session: aiohttp.ClientSession,
    media_type: str,
) -> None:
    # SUBSCRIBED is joined from cached entity encodings: it must read as the view's GetState.
    await subscribe_and_launch(scheduler, "t1")
    await master.wait_until(lambda: master.context.cluster.all_tasks(), "the task in the view")
    events = await subscribe(session, master, media_type)
    subscribed = await events.next_event()
    expected = mesos_json.to_dict(master.context.cluster.get_state())
    assert subscribed["subscribed"]["get_state"] == expected
    assert expected["get_tasks"]["tasks"][0]["task_id"]["value"] == "t1"
    assert subscribed["subscribed"]["heartbeat_interval_seconds"] == 15.0
    await events.close()


def top_level_fields(message: bytes) -> list[int]:
    """The field numbers of `message`'s top-level fields, in wire order."""
    numbers, at = [], 0
    while at < len(message):
        tag, at = wire.read_varint(message, at)
        numbers.append(tag >> 3)
        if tag & 7 == 0:
            _, at = wire.read_varint(message, at)
        else:
            assert tag & 7 == 2, tag
            length, at = wire.read_varint(message, at)
            at += length
    return numbers


async def test_protobuf_subscribed_has_one_subscribed_field(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    # Mesos writes it once; decoders that keep only the last occurrence of a sub-message
    # (protobuf.js before 2026, old protobuf-c) would lose the state or the interval.
    await subscribe_and_launch(scheduler, "t1")
    await master.wait_until(lambda: master.context.cluster.all_tasks(), "the task in the view")
    view = master.context.cluster
    await encodings.warm(master_pb2.Call.GET_STATE, view, encodings.encoding(PROTOBUF))
    payload = operator_stream.subscribed_payload(master.context, PROTOBUF)
    assert top_level_fields(payload) == [1, 2]
    event = master_pb2.Event.FromString(payload)
    assert event.subscribed.heartbeat_interval_seconds == 15.0
    assert event.subscribed.get_state == master.context.cluster.get_state()


async def test_a_replica_cut_off_from_the_leader_ends_its_streams_and_starts_none(
    session: aiohttp.ClientSession,
) -> None:
    """A HEARTBEAT tells the subscriber its view is live (Mesos's come from the elected
    master): once this replica has heard nothing from a leader for CONTACT_LOST_S, its
    streams end at their next heartbeat, and a new SUBSCRIBE is a 503."""
    async with follower_master() as follower:
        use_broker(follower, heartbeat_interval_s=0.2)
        events = await subscribe(session, follower)
        assert (await events.next_event())["type"] == "SUBSCRIBED"
        assert (await events.next_event(heartbeats=True))["type"] == "HEARTBEAT"
        follower.context.applied_at_s -= consistency.CONTACT_LOST_S + 1
        assert [event["type"] for event in await events.wait_closed()] in ([], ["HEARTBEAT"])
        async with session.post(
            follower.url + "/api/v1",
            data=orjson.dumps({"type": "SUBSCRIBE"}),
            headers={"Content-Type": JSON},
        ) as response:
            assert response.status == 503
            assert await response.text() == "This replica has lost contact with the leader"
        await events.close()
