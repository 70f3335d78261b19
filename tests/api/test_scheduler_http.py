"""The scheduler endpoint over raw HTTP (JSON and protobuf): contract 1.4, 1.5, 1.6, 2.3, 2.8.

Every rejected call is checked to have changed nothing: no command reached the
log and the fold state's digest (time aside) is as before.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import uuid

import pytest
from support.fake_agent import FakeAgent, reported_task
from support.fake_scheduler import (
    JSON,
    PROTOBUF,
    STREAM_ID,
    FakeScheduler,
    SchedulerStream,
    framework_info,
)
from support.master_harness import MasterHandle, follower_master, running_master

from meseta.log.memory import MemoryLog
from meseta.master.state import FrameworkStatus
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

Call = scheduler_pb2.Call
Event = scheduler_pb2.Event

SUBSCRIBE = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info()}}


async def subscribed(scheduler: FakeScheduler, **info: object) -> SchedulerStream:
    stream, first = await scheduler.subscribe(framework_info(**info))
    assert first["type"] == "SUBSCRIBED", first
    return stream


def cpus(amount: float) -> dict[str, object]:
    return {"name": "cpus", "type": "SCALAR", "scalar": {"value": amount}}


def launch(
    offer: dict[str, object], task_id: str, command: str = "sleep 1000"
) -> dict[str, object]:
    task = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [cpus(1)],
        "command": {"value": command},
    }
    return {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
        "filters": {"refuse_seconds": 0},
    }


# -- transport checks, before the body is looked at ------------------------------------


async def test_get_is_405_with_allow_post(master: MasterHandle, scheduler: FakeScheduler) -> None:
    with master.unchanged():
        for path in ("/api/v1/scheduler", "/master/api/v1/scheduler"):
            reply = await scheduler.post(method="GET", url=master.url + path)
            assert reply.status == 405
            assert reply.headers["Allow"] == "POST"


async def test_missing_content_type_is_400(master: MasterHandle, scheduler: FakeScheduler) -> None:
    with master.unchanged():
        reply = await scheduler.post(SUBSCRIBE, headers={"Content-Type": None})
    assert reply.status == 400
    assert "Content-Type" in reply.text


async def test_unsupported_content_type_is_415(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    with master.unchanged():
        reply = await scheduler.post(SUBSCRIBE, headers={"Content-Type": "text/plain"})
    assert reply.status == 415


@pytest.mark.parametrize(
    ("media_type", "body"),
    [
        pytest.param(JSON, b"", id="empty-json"),
        pytest.param(PROTOBUF, b"", id="empty-protobuf"),
        pytest.param(JSON, b'{"type": "SUBSCRIBE", ', id="truncated-json"),
        pytest.param(JSON, b"[1, 2]", id="json-array"),
        pytest.param(JSON, b'{"type": 7}', id="json-wrong-type"),
        pytest.param(JSON, b'{"type": "SUBSCRIBE", "subscribe": {}}', id="json-no-framework-info"),
        pytest.param(
            JSON,
            b'{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}}',
            id="json-no-user",
        ),
        pytest.param(PROTOBUF, b"\xff\xff\xff\xff", id="garbage-protobuf"),
        pytest.param(
            PROTOBUF,
            Call(type=Call.SUBSCRIBE, subscribe=Call.Subscribe()).SerializePartialToString(),
            id="protobuf-no-framework-info",
        ),
    ],
)
async def test_malformed_body_is_400(
    master: MasterHandle, scheduler: FakeScheduler, media_type: str, body: bytes
) -> None:
    with master.unchanged():
        reply = await scheduler.post(body, headers={"Content-Type": media_type})
    assert reply.status == 400, reply.text


async def test_unknown_type_is_501_and_missing_type_400(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    with master.unchanged():
        unknown = await scheduler.post({"type": "UNKNOWN", "framework_id": {"value": "x"}})
        missing = await scheduler.post({"framework_id": {"value": "x"}})
        # An unknown enum name leaves the optional `type` unset (contract 1.2).
        unnamed = await scheduler.post({"type": "NO_SUCH_CALL"})
    assert unknown.status == 501
    assert missing.status == 400
    assert missing.text == "Failed to validate scheduler::Call: Expecting 'type' to be present"
    assert unnamed.status == 400


@pytest.mark.parametrize(
    "kind",
    [
        "ACCEPT",
        "DECLINE",
        "KILL",
        "SHUTDOWN",
        "ACKNOWLEDGE",
        "RECONCILE",
        "MESSAGE",
        "UPDATE_FRAMEWORK",
        "SUBSCRIBE",
    ],
)
async def test_missing_call_body_is_400(
    master: MasterHandle, scheduler: FakeScheduler, kind: str
) -> None:
    with master.unchanged():
        reply = await scheduler.post({"type": kind, "framework_id": {"value": "x"}})
    assert reply.status == 400
    assert reply.text == (
        f"Failed to validate scheduler::Call: Expecting '{kind.lower()}' to be present"
    )


async def test_non_subscribe_without_framework_id_is_400(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    with master.unchanged():
        reply = await scheduler.post({"type": "TEARDOWN"})
    assert reply.status == 400


# -- SUBSCRIBE -----------------------------------------------------------------------


async def test_subscribe_streams_subscribed_then_heartbeat(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    stream, first = await scheduler.subscribe(framework_info("streaming"))
    headers = stream.response.headers
    assert stream.response.status == 200
    assert headers["Content-Type"] == JSON
    assert headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in headers
    assert len(headers[STREAM_ID]) >= 32
    assert first["type"] == "SUBSCRIBED"
    fid = first["subscribed"]["framework_id"]["value"]
    assert fid == f"{master.state.cluster_id}-0000"
    assert first["subscribed"]["heartbeat_interval_seconds"] == 15.0
    assert first["subscribed"]["master_info"]["port"] == master.port
    heartbeat = await stream.next_event(2.0, heartbeats=True)
    assert heartbeat == {"type": "HEARTBEAT"}
    framework = master.state.frameworks[fid]
    assert framework.status is FrameworkStatus.CONNECTED
    assert framework.stream_id == headers[STREAM_ID]
    assert framework.info.name == "streaming"


async def test_subscribe_not_committed_in_time_is_503_and_later_commit_disconnects(
    master: MasterHandle, scheduler: FakeScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = master.log
    log.set_auto_commit(False)
    monkeypatch.setattr(log, "propose", functools.partial(log.propose, timeout_s=0.2))
    reply = await scheduler.post(SUBSCRIBE)
    assert reply.status == 503, reply
    assert not master.state.frameworks
    # The entry commits after all: nobody reads that stream, so the framework is disconnected
    # (and, with failover_timeout 0, removed at once).
    monkeypatch.undo()
    log.set_auto_commit(True)
    log.step()
    await master.wait_until(
        lambda: "disconnect_framework" in master.commands_since(1),
        "the late subscription to be disconnected",
    )
    [framework] = master.state.frameworks.values()
    assert framework.status is not FrameworkStatus.CONNECTED
    assert not master.context.frameworks


async def test_subscribe_without_accept_is_json(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    stream = await scheduler.open(SUBSCRIBE, headers={"Accept": "*/*"})
    assert isinstance(stream, SchedulerStream)
    assert stream.response.headers["Content-Type"] == JSON
    assert (await stream.next_event())["type"] == "SUBSCRIBED"


async def test_subscribe_on_the_master_alias_path(master: MasterHandle) -> None:
    async with FakeScheduler(master.url, path="/master/api/v1/scheduler") as scheduler:
        stream, first = await scheduler.subscribe()
        assert first["type"] == "SUBSCRIBED"
        assert (await scheduler.call("SUPPRESS")).status == 202
        assert stream.stream_id == master.state.frameworks[scheduler.framework_id].stream_id


async def test_json_call_accepting_only_protobuf_streams_protobuf(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    stream = await scheduler.open(SUBSCRIBE, headers={"Accept": PROTOBUF})
    assert isinstance(stream, SchedulerStream)
    assert stream.response.headers["Content-Type"] == PROTOBUF
    subscribed = await stream.expect_message("SUBSCRIBED")
    assert subscribed.subscribed.framework_id.value in master.state.frameworks
    assert (await stream.expect_message("HEARTBEAT")).type == Event.HEARTBEAT


async def test_heartbeats_keep_coming(
    master: MasterHandle, scheduler: FakeScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("meseta.api.scheduler.HEARTBEAT_INTERVAL_S", 0.1)
    stream = await subscribed(scheduler)
    for _ in range(3):  # the one right after SUBSCRIBED, then one per interval
        assert await stream.next_event(2.0, heartbeats=True) == {"type": "HEARTBEAT"}


async def test_subscribe_not_accepting_json_or_protobuf_is_406(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    with master.unchanged():
        reply = await scheduler.open(SUBSCRIBE, headers={"Accept": "text/html"})
    assert not isinstance(reply, SchedulerStream)
    assert reply.status == 406


async def test_subscribe_with_stream_id_is_400(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    with master.unchanged():
        reply = await scheduler.open(SUBSCRIBE, headers={STREAM_ID: str(uuid.uuid4())})
    assert not isinstance(reply, SchedulerStream)
    assert reply.status == 400
    assert reply.text == "Subscribe calls should not include the 'Mesos-Stream-Id' header"


@pytest.mark.parametrize(
    ("call_id", "info_id"),
    [("a", "b"), ("a", None), (None, "b")],
    ids=["different", "info-id-missing", "call-id-missing"],
)
async def test_subscribe_framework_id_mismatch_is_400(
    master: MasterHandle, scheduler: FakeScheduler, call_id: str | None, info_id: str | None
) -> None:
    info = framework_info()
    if info_id is not None:
        info["id"] = {"value": info_id}
    body: dict[str, object] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
    if call_id is not None:
        body["framework_id"] = {"value": call_id}
    with master.unchanged():
        reply = await scheduler.open(body)
    assert not isinstance(reply, SchedulerStream)
    assert reply.status == 400


async def test_roles_without_multi_role_is_an_error_event(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    with master.unchanged("subscribe_framework"):
        stream, first = await scheduler.subscribe(framework_info(roles=["a"]))
        assert stream.response.status == 200
        assert first["type"] == "ERROR"
        assert first["error"]["message"]
        assert await stream.wait_closed() == []
    assert master.state.frameworks == {}


async def test_multi_role_framework_subscribes(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    info = framework_info(roles=["a", "b"], capabilities=[{"type": "MULTI_ROLE"}])
    await subscribed(scheduler, **info)
    assert master.state.frameworks[scheduler.framework_id or ""].roles == ("a", "b")


async def test_resubscribing_a_removed_framework_is_an_error_event(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    stream = await subscribed(scheduler)
    fid = scheduler.framework_id
    assert (await scheduler.call("TEARDOWN")).status == 202
    await stream.wait_closed()
    assert master.state.frameworks[fid].status is FrameworkStatus.REMOVED
    async with FakeScheduler(master.url) as again:
        with master.unchanged("subscribe_framework"):
            retry, first = await again.subscribe(framework_id=fid)
            assert first == {"type": "ERROR", "error": {"message": "Framework has been removed"}}
            await retry.wait_closed()
        # A removed framework's calls are refused like an unknown one's.
        reply = await again.call("REVIVE", framework_id=fid)
        assert (reply.status, reply.text) == (400, "Framework cannot be found")


async def test_resubscribe_fails_over_the_old_stream_and_resends_offers(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    old = await subscribed(scheduler, failover_timeout=60)
    fid = scheduler.framework_id
    offered = (await old.expect("OFFERS"))["offers"]["offers"]
    assert [o["agent_id"]["value"] for o in offered] == [agent.agent_id]
    async with FakeScheduler(master.url) as failover:
        new, first = await failover.subscribe(framework_info(failover_timeout=60), framework_id=fid)
        assert first["type"] == "SUBSCRIBED"
        assert first["subscribed"]["framework_id"]["value"] == fid
        assert new.stream_id != old.stream_id
        # The old stream: ERROR "Framework failed over", then its end.
        error = await old.expect("ERROR")
        assert error["error"]["message"] == "Framework failed over"
        await old.wait_closed()
        # Offers never survive a resubscription: fresh ones come on the new stream.
        reoffered = (await new.expect("OFFERS"))["offers"]["offers"]
        assert {o["id"]["value"] for o in reoffered}.isdisjoint(o["id"]["value"] for o in offered)
        assert master.state.frameworks[fid].stream_id == new.stream_id
        assert master.state.frameworks[fid].status is FrameworkStatus.CONNECTED
        # The old stream id no longer works; the new one does.
        stale = await scheduler.call("REVIVE")
        assert stale.status == 400
        assert "didn't match" in stale.text
        assert (await failover.call("REVIVE")).status == 202


async def test_closed_stream_disconnects_then_failover_timeout_removes(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    stream = await subscribed(scheduler, failover_timeout=0.5)
    fid = scheduler.framework_id or ""
    await stream.close()
    await master.wait_until(
        lambda: master.state.frameworks[fid].status is not FrameworkStatus.CONNECTED,
        "the framework to be disconnected",
    )
    framework = master.state.frameworks[fid]
    if framework.status is FrameworkStatus.DISCONNECTED:
        with master.unchanged():
            reply = await scheduler.call("REVIVE")
        assert (reply.status, reply.text) == (403, "Framework is not subscribed")
    await master.wait_until(
        lambda: master.state.frameworks[fid].status is FrameworkStatus.REMOVED,
        "failover_timeout expiry",
        timeout_s=5.0,
    )


async def test_disconnected_framework_is_403_until_it_resubscribes(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    stream = await subscribed(scheduler, failover_timeout=60)
    fid = scheduler.framework_id or ""
    await stream.close()
    await master.wait_until(
        lambda: master.state.frameworks[fid].status is FrameworkStatus.DISCONNECTED,
        "the framework to be disconnected",
    )
    with master.unchanged():
        reply = await scheduler.call("REVIVE")
    assert (reply.status, reply.text) == (403, "Framework is not subscribed")
    await scheduler.subscribe(framework_info(failover_timeout=60), framework_id=fid)
    assert (await scheduler.call("REVIVE")).status == 202


# -- non-SUBSCRIBE calls -------------------------------------------------------------


async def test_unknown_framework_is_400(master: MasterHandle, scheduler: FakeScheduler) -> None:
    with master.unchanged():
        reply = await scheduler.call(
            "REVIVE", framework_id="no-such-framework", headers={STREAM_ID: "x"}
        )
    assert (reply.status, reply.text) == (400, "Framework cannot be found")


async def test_missing_or_wrong_stream_id_is_400(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    await subscribed(scheduler)
    with master.unchanged():
        missing = await scheduler.call("TEARDOWN", headers={STREAM_ID: None})
        wrong = await scheduler.call("TEARDOWN", headers={STREAM_ID: str(uuid.uuid4())})
    assert missing.status == 400
    assert "Mesos-Stream-Id" in missing.text
    assert wrong.status == 400
    assert "didn't match" in wrong.text
    assert master.state.frameworks[scheduler.framework_id].status is FrameworkStatus.CONNECTED


@pytest.mark.parametrize("size", [0, 15, 16, 17])  # 16 bytes of no UUID version, too
async def test_acknowledge_with_bad_uuid_is_400(
    master: MasterHandle, scheduler: FakeScheduler, size: int
) -> None:
    await subscribed(scheduler)
    ack = {
        "agent_id": {"value": "a"},
        "task_id": {"value": "t"},
        "uuid": base64.b64encode(b"u" * size).decode(),
    }
    with master.unchanged():
        reply = await scheduler.call("ACKNOWLEDGE", acknowledge=ack)
    assert reply.status == 400
    assert reply.text == "Failed to validate scheduler::Call: Not a valid UUID"


async def test_acknowledge_operation_status_needs_agent_id(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    await subscribed(scheduler)
    body = {"uuid": base64.b64encode(uuid.uuid4().bytes).decode(), "operation_id": {"value": "o"}}
    with master.unchanged():
        reply = await scheduler.call(
            "ACKNOWLEDGE_OPERATION_STATUS", acknowledge_operation_status=body
        )
    assert reply.status == 400
    assert reply.text == "Failed to validate scheduler::Call: Expecting 'agent_id' to be present"


async def test_revive_or_suppress_of_a_role_not_subscribed_is_dropped(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    """As Mesos: 202, and the whole call is dropped (no role of it is revived or suppressed)."""
    await subscribed(scheduler)
    with master.unchanged():
        revive = await scheduler.call("REVIVE", revive={"roles": ["not-mine"]})
        suppress = await scheduler.call("SUPPRESS", suppress={"roles": ["*", "not-mine"]})
    assert (revive.status, suppress.status) == (202, 202)


async def test_good_calls_are_202_with_an_empty_body(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    stream = await subscribed(scheduler)
    fid = scheduler.framework_id or ""
    offer = (await stream.expect("OFFERS"))["offers"]["offers"][0]
    calls: list[tuple[str, dict[str, object]]] = [
        ("SUPPRESS", {}),
        ("REVIVE", {"revive": {"roles": ["*"]}}),
        ("DECLINE", {"decline": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}}}),
        ("RECONCILE", {"reconcile": {"tasks": []}}),
        ("REQUEST", {"request": {"requests": []}}),
        ("RECONCILE_OPERATIONS", {"reconcile_operations": {"operations": []}}),
        (
            "MESSAGE",
            {
                "message": {
                    "agent_id": {"value": agent.agent_id},
                    "executor_id": {"value": "e"},
                    "data": base64.b64encode(b"hello").decode(),
                }
            },
        ),
        ("KILL", {"kill": {"task_id": {"value": "never-launched"}}}),
        (
            "ACKNOWLEDGE",
            {
                "acknowledge": {
                    "agent_id": {"value": agent.agent_id},
                    "task_id": {"value": "never-launched"},
                    "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
                }
            },
        ),
    ]
    for kind, body in calls:
        reply = await scheduler.call(kind, **body)
        assert (kind, reply.status, reply.body) == (kind, 202, b"")
    message = await agent.expect("MESSAGE")
    assert base64.b64decode(message["message"]["data"]) == b"hello"
    assert message["message"]["framework_id"]["value"] == fid
    events = await stream.expect_all("OFFERS", "UPDATE")
    # The declined offer comes back (refuse_seconds 0).
    again = events["OFFERS"]["offers"]["offers"][0]
    assert again["id"] != offer["id"]
    # KILL of an unknown task is answered with a reconciliation (non-PA: TASK_LOST).
    update = events["UPDATE"]
    assert update["update"]["status"]["task_id"]["value"] == "never-launched"
    assert update["update"]["status"]["state"] == "TASK_LOST"
    assert "uuid" not in update["update"]["status"]
    assert (await scheduler.call("TEARDOWN")).status == 202
    await stream.wait_closed()
    assert master.state.frameworks[fid].status is FrameworkStatus.REMOVED


async def test_update_framework_200_and_400_on_user_change(
    master: MasterHandle, scheduler: FakeScheduler
) -> None:
    await subscribed(scheduler, failover_timeout=30)
    fid = scheduler.framework_id or ""
    info = framework_info("renamed", failover_timeout=60, id={"value": fid})
    reply = await scheduler.call("UPDATE_FRAMEWORK", update_framework={"framework_info": info})
    assert reply.status == 200, reply.text
    assert master.state.frameworks[fid].info.name == "renamed"
    assert master.state.frameworks[fid].failover_timeout_ns == 60 * 10**9

    bad_user = framework_info("renamed", failover_timeout=60, id={"value": fid}, user="root")
    # The fold refuses it (the entry is committed, the state unchanged).
    with master.unchanged("update_framework"):
        reply = await scheduler.call(
            "UPDATE_FRAMEWORK", update_framework={"framework_info": bad_user}
        )
    assert reply.status == 400
    assert "user" in reply.text

    other_id = framework_info("renamed", id={"value": "someone-else"})
    with master.unchanged():
        reply = await scheduler.call(
            "UPDATE_FRAMEWORK", update_framework={"framework_info": other_id}
        )
    assert reply.status == 400
    assert master.state.frameworks[fid].info.user == ""


async def test_reconcile_answers_with_reason_reconciliation(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    stream = await subscribed(scheduler, capabilities=[{"type": "PARTITION_AWARE"}])
    fid = scheduler.framework_id or ""
    offer = (await stream.expect("OFFERS"))["offers"]["offers"][0]
    assert (await scheduler.call("ACCEPT", accept=launch(offer, "t1"))).status == 202
    await agent.expect("RUN_TASK")
    running_uuid = await agent.update(fid, "t1", "TASK_RUNNING")
    update = (await stream.expect("UPDATE"))["update"]["status"]
    assert update["state"] == "TASK_RUNNING"
    assert base64.b64decode(update["uuid"]) == running_uuid
    assert update["agent_id"]["value"] == agent.agent_id

    # Implicit: every known task, no uuid.
    assert (await scheduler.call("RECONCILE", reconcile={"tasks": []})).status == 202
    implicit = (await stream.expect("UPDATE"))["update"]["status"]
    assert (implicit["task_id"]["value"], implicit["state"]) == ("t1", "TASK_RUNNING")
    assert implicit["reason"] == "REASON_RECONCILIATION"
    assert implicit["source"] == "SOURCE_MASTER"
    assert "uuid" not in implicit

    # Explicit: a known task, an unknown one on a live agent, one on no agent.
    tasks = [
        {"task_id": {"value": "t1"}},
        {"task_id": {"value": "ghost"}, "agent_id": {"value": agent.agent_id}},
        {"task_id": {"value": "nowhere"}},
    ]
    assert (await scheduler.call("RECONCILE", reconcile={"tasks": tasks})).status == 202
    replies = {}
    for _ in tasks:
        status = (await stream.expect("UPDATE"))["update"]["status"]
        assert status["reason"] == "REASON_RECONCILIATION"
        assert "uuid" not in status
        replies[status["task_id"]["value"]] = status["state"]
    assert replies == {"t1": "TASK_RUNNING", "ghost": "TASK_GONE", "nowhere": "TASK_UNKNOWN"}


# -- protobuf ------------------------------------------------------------------------


async def test_protobuf_subscribe_launch_and_acknowledge(
    master: MasterHandle, agent: FakeAgent
) -> None:
    async with FakeScheduler(master.url, media_type=PROTOBUF) as scheduler:
        subscribe = Call(type=Call.SUBSCRIBE)
        subscribe.subscribe.framework_info.user = ""
        subscribe.subscribe.framework_info.name = "protobuf"
        stream = await scheduler.open(subscribe)
        assert isinstance(stream, SchedulerStream)
        assert stream.response.headers["Content-Type"] == PROTOBUF
        assert stream.response.headers["Transfer-Encoding"] == "chunked"
        await stream.expect("SUBSCRIBED")
        assert [m.type for m in stream.messages[:2]] == [Event.SUBSCRIBED, Event.HEARTBEAT]
        fid = stream.messages[0].subscribed.framework_id.value
        scheduler.stream, scheduler.framework_id = stream, fid

        offer = (await stream.expect_message("OFFERS")).offers.offers[0]
        assert offer.agent_id.value == agent.agent_id

        accept = Call(type=Call.ACCEPT)
        accept.framework_id.value = fid
        accept.accept.offer_ids.add().CopyFrom(offer.id)
        operation = accept.accept.operations.add(type=mesos_pb2.Offer.Operation.LAUNCH)
        task = operation.launch.task_infos.add(name="pb-task")
        task.task_id.value = "pb-task"
        task.agent_id.CopyFrom(offer.agent_id)
        task.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR).scalar.value = 1
        task.command.value = "true"
        reply = await scheduler.post(accept, headers={STREAM_ID: stream.stream_id})
        assert reply.status == 202, reply.text

        run = await agent.expect("RUN_TASK")
        assert run["run_task"]["task"]["task_id"]["value"] == "pb-task"
        finished_uuid = await agent.update(fid, "pb-task", "TASK_FINISHED")
        status = (await stream.expect_message("UPDATE")).update.status
        assert (status.state, status.uuid) == (mesos_pb2.TASK_FINISHED, finished_uuid)

        ack = Call(type=Call.ACKNOWLEDGE)
        ack.framework_id.value = fid
        ack.acknowledge.agent_id.CopyFrom(status.agent_id)
        ack.acknowledge.task_id.CopyFrom(status.task_id)
        ack.acknowledge.uuid = status.uuid
        reply = await scheduler.post(ack, headers={STREAM_ID: stream.stream_id})
        assert reply.status == 202, reply.text
        acked = await agent.expect("ACKNOWLEDGE")
        assert base64.b64decode(acked["acknowledge"]["uuid"]) == finished_uuid
        assert "pb-task" not in master.state.frameworks[fid].tasks
        await stream.expect("OFFERS")  # the freed cpu comes back

        # A protobuf call with an unknown type is 501 as in JSON.
        with master.unchanged():
            unknown = Call(type=Call.UNKNOWN)
            unknown.framework_id.value = fid
            reply = await scheduler.post(unknown, headers={STREAM_ID: stream.stream_id})
        assert reply.status == 501


async def test_protobuf_error_event(master: MasterHandle) -> None:
    async with FakeScheduler(master.url, media_type=PROTOBUF) as scheduler:
        subscribe = Call(type=Call.SUBSCRIBE)
        info = subscribe.subscribe.framework_info
        info.user, info.name = "", "bad-roles"
        info.roles.append("a")
        stream = await scheduler.open(subscribe)
        assert isinstance(stream, SchedulerStream)
        await stream.wait_closed()
        assert [m.type for m in stream.messages] == [Event.ERROR]
        assert stream.messages[0].error.message


# -- leadership ----------------------------------------------------------------------


async def test_follower_redirects_with_protocol_relative_location() -> None:
    async with (
        follower_master(leader_hostname="leader.example", leader_port=5999) as follower,
        FakeScheduler(follower.url) as scheduler,
    ):
        with follower.unchanged():
            reply = await scheduler.post(SUBSCRIBE)
            assert reply.status == 307
            assert reply.headers["Location"] == "//leader.example:5999/master/api/v1/scheduler"
            # Leader checks come first, even before the method; the query is kept.
            reply = await scheduler.post(
                method="GET", url=follower.url + "/master/api/v1/scheduler?x=1"
            )
            assert reply.status == 307
            assert reply.headers["Location"] == "//leader.example:5999/master/api/v1/scheduler?x=1"
            reply = await scheduler.post(method="GET", url=follower.url + "/redirect")
            assert reply.status == 307
            assert reply.headers["Location"] == "//leader.example:5999"


@pytest.mark.parametrize(
    "follower",
    [
        {"leader_known": False},  # mid-election
        # For a moment after a step-down the log still names this replica as leader: a 307
        # to itself would loop (python-requests gives up after 30); Mesos answers 503 then.
        {"stepped_down": True},
    ],
)
async def test_no_leader_is_503(follower: dict[str, bool]) -> None:
    async with (
        follower_master(**follower) as replica,
        FakeScheduler(replica.url) as scheduler,
    ):
        with replica.unchanged():
            reply = await scheduler.post(SUBSCRIBE)
        assert (reply.status, reply.text) == (503, "No leader elected")


async def test_leader_still_recovering_is_503() -> None:
    # Proposals never commit: the replica leads in the log but cannot take office.
    async with (
        running_master(log=MemoryLog(auto_commit=False), wait_ready=False) as master,
        FakeScheduler(master.url) as scheduler,
    ):
        await asyncio.sleep(0.1)
        reply = await scheduler.post(SUBSCRIBE)
        assert (reply.status, reply.text) == (503, "Master has not finished recovery")


async def test_leader_takes_office_once_a_stalled_log_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = MemoryLog(auto_commit=False)
    # The first barrier times out; the replica, still leader, must try again.
    monkeypatch.setattr(log, "barrier", functools.partial(log.barrier, timeout_s=0.2))
    async with (
        running_master(log=log, wait_ready=False) as master,
        FakeScheduler(master.url) as scheduler,
    ):
        await asyncio.sleep(0.4)
        assert not master.leading
        log.set_auto_commit(True)
        await master.wait_leading(timeout_s=5.0)
        stream, first = await scheduler.subscribe(framework_info())
        assert first["type"] == "SUBSCRIBED"
        await stream.close()


async def test_leadership_change_closes_streams_and_keeps_tasks(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    stream = await subscribed(scheduler, failover_timeout=3600)
    fid = scheduler.framework_id or ""
    offer = (await stream.expect("OFFERS"))["offers"]["offers"][0]
    assert (await scheduler.call("ACCEPT", accept=launch(offer, "survivor"))).status == 202
    run = await agent.expect("RUN_TASK")
    await agent.update(fid, "survivor", "TASK_RUNNING")
    await stream.expect("UPDATE")
    assert agent.stream is not None
    agent_stream = agent.stream

    master.lose_leadership(leader=None)
    await master.wait_stepped_down()
    await stream.wait_closed()
    await agent_stream.wait_closed()
    reply = await scheduler.call("REVIVE")
    assert (reply.status, reply.text) == (503, "No leader elected")

    await master.regain_leadership(term=2)
    # The framework comes back under its id; its task is still there.
    assert master.state.frameworks[fid].status is FrameworkStatus.DISCONNECTED
    _, first = await scheduler.subscribe(framework_info(failover_timeout=3600), framework_id=fid)
    assert first["type"] == "SUBSCRIBED"
    assert "survivor" in master.state.frameworks[fid].tasks
    # So does the agent, reporting the task it runs.
    assert agent.agent_id is not None
    again = await agent.subscribe(
        agent_id=agent.agent_id, tasks=[reported_task(run["run_task"], agent.agent_id)]
    )
    assert again["type"] == "SUBSCRIBED"
    assert again["subscribed"]["agent_id"]["value"] == agent.agent_id
    assert (await scheduler.call("RECONCILE", reconcile={"tasks": []})).status == 202
    status = (await scheduler.stream.expect("UPDATE"))["update"]["status"]  # type: ignore[union-attr]
    assert (status["task_id"]["value"], status["state"]) == ("survivor", "TASK_RUNNING")
    # The task can still be killed through the new leader.
    assert (await scheduler.call("KILL", kill={"task_id": {"value": "survivor"}})).status == 202
    kill = await agent.expect("KILL_TASK")
    assert kill["kill_task"]["task_id"]["value"] == "survivor"


async def test_reserve_in_the_pre_refinement_format_and_launch_on_it(
    master: MasterHandle, agent: FakeAgent, scheduler: FakeScheduler
) -> None:
    """A framework without RESERVATION_REFINEMENT (pymesos's default) reserves with `role`
    and `reservation`, launches on the reservation, and is offered it back in that form."""
    info = framework_info(role="db", principal="dba")
    stream, first = await scheduler.subscribe(info)
    assert first["type"] == "SUBSCRIBED", first
    offer = (await stream.expect("OFFERS"))["offers"]["offers"][0]
    assert all(r["role"] == "*" and "reservations" not in r for r in offer["resources"])
    labels = {"labels": [{"key": "app", "value": "pg"}]}
    reservation = {"principal": "dba", "labels": labels}
    mine = [
        {
            "name": "cpus",
            "type": "SCALAR",
            "scalar": {"value": 1},
            "role": "db",
            "reservation": reservation,
        },
        {
            "name": "mem",
            "type": "SCALAR",
            "scalar": {"value": 128},
            "role": "db",
            "reservation": reservation,
        },
    ]
    task = {
        "name": "pg",
        "task_id": {"value": "pg-1"},
        "agent_id": offer["agent_id"],
        "resources": [dict(mine[0], scalar={"value": 0.5})],
        "command": {"value": "sleep 100"},
    }
    reply = await scheduler.call(
        "ACCEPT",
        accept={
            "offer_ids": [offer["id"]],
            "operations": [
                {"type": "RESERVE", "reserve": {"resources": mine}},
                {"type": "LAUNCH", "launch": {"task_infos": [task]}},
            ],
            "filters": {"refuse_seconds": 0},
        },
    )
    assert reply.status == 202, reply.text
    checkpoint = await agent.expect("CHECKPOINT_RESOURCES")
    assert any(r.get("reservations") for r in checkpoint["checkpoint_resources"]["resources"])
    run = await agent.expect("RUN_TASK")
    (used,) = run["run_task"]["task"]["resources"]
    assert used["role"] == "db" and used["reservation"]["principal"] == "dba"
    await scheduler.call("REVIVE")
    offer = (await stream.expect("OFFERS"))["offers"]["offers"][0]
    reserved = {r["name"]: r for r in offer["resources"] if r["role"] == "db"}
    assert reserved["cpus"]["scalar"]["value"] == 0.5  # the task holds the other half
    assert reserved["mem"]["reservation"] == reservation
    assert all("reservations" not in r for r in offer["resources"])
