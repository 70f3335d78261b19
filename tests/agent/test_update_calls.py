"""How the agent packs the status updates due at once into calls to the master."""

from __future__ import annotations

import asyncio

from aiohttp import web

from meseta.agent import master_client
from meseta.agent.master_client import Call, Event, update_calls
from meseta.agent.status_updates import Delivery
from meseta.api import recordio
from meseta.log.testing import free_port
from meseta.proto.mesos.v1 import mesos_pb2


def delivery(n: int, message: str = "") -> Delivery:
    status = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING, uuid=n.to_bytes(16, "big"))
    status.task_id.value = f"task-{n}"
    status.message = message
    return Delivery(f"framework-{n % 3}", status, mesos_pb2.TASK_FINISHED)


def carried(calls: list[Call]) -> list[tuple[str, str, int]]:
    updates = [
        u for call in calls for u in ([call.update] if call.type == Call.UPDATE else call.updates)
    ]
    return [(u.framework_id.value, u.status.task_id.value, u.latest_state) for u in updates]


def test_nothing_due_sends_nothing() -> None:
    assert update_calls([]) == []


def test_a_lone_update_is_an_update_call() -> None:
    (call,) = update_calls([delivery(7)])
    assert call.type == Call.UPDATE
    assert not call.updates
    assert carried([call]) == [("framework-1", "task-7", mesos_pb2.TASK_FINISHED)]
    assert call.update.status == delivery(7).status


def test_several_go_in_order_in_calls_of_bounded_count() -> None:
    due = [delivery(n) for n in range(master_client.UPDATES_PER_CALL * 2 + 3)]
    calls = update_calls(due)
    assert [call.type for call in calls] == [Call.UPDATES] * 3
    assert [len(call.updates) for call in calls] == [master_client.UPDATES_PER_CALL] * 2 + [3]
    assert carried(calls) == [(d.framework_id, d.status.task_id.value, d.latest_state) for d in due]


def test_big_updates_split_by_size() -> None:
    big = "x" * (master_client.UPDATE_BYTES_PER_CALL // 4)
    calls = update_calls([delivery(n, big) for n in range(10)])
    assert [len(call.updates) for call in calls] == [4, 4, 2]
    # Each call stays within one log entry (512 KiB) with room to spare.
    assert all(call.ByteSize() < 2 * master_client.UPDATE_BYTES_PER_CALL for call in calls)


class OlderMaster:
    """A leader from before UPDATES: type 6 parses as no type at all, so it answers 400."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def handle(self, request: web.Request) -> web.Response:
        call = Call.FromString(await request.read())
        self.calls.append(call)
        if call.type == Call.UPDATES:
            return web.Response(status=400, text="Expecting 'type' to be present")
        if call.type == Call.SUBSCRIBE:  # SUBSCRIBED, then the stream ends
            subscribed = Event(type=Event.SUBSCRIBED)
            subscribed.subscribed.agent_id.value = "agent-1"
            return web.Response(status=200, body=recordio.encode(subscribed.SerializeToString()))
        return web.Response(status=202)


async def test_a_leader_without_updates_gets_them_one_by_one_until_the_next_subscription() -> None:
    older = OlderMaster()
    app = web.Application()
    app.router.add_post(master_client.PATH, older.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    client = master_client.MasterClient([f"127.0.0.1:{port}"])
    client.leader, client.agent_id = f"127.0.0.1:{port}", "agent-1"
    try:
        assert await client.post_updates([delivery(n) for n in range(3)]) == 3
        assert [call.type for call in older.calls] == [Call.UPDATES] + [Call.UPDATE] * 3
        assert carried(older.calls[1:]) == carried(update_calls([delivery(n) for n in range(3)]))
        assert not client.batches_updates
        older.calls.clear()
        assert await client.post_updates([delivery(n) for n in range(3, 5)]) == 2
        assert [call.type for call in older.calls] == [Call.UPDATE] * 2  # no second try
        # A new subscription may be with an upgraded leader: UPDATES are tried again.
        assert await client._subscribe_once(Call(type=Call.SUBSCRIBE), on_event=noop)
        assert client.batches_updates
    finally:
        await client.close()
        await runner.cleanup()


async def noop(event: Event) -> None:
    pass


def test_unbatched_calls_are_one_update_each() -> None:
    due = [delivery(n) for n in range(4)]
    calls = update_calls(due, batched=False)
    assert [call.type for call in calls] == [Call.UPDATE] * 4
    assert carried(calls) == carried(update_calls(due))


async def test_a_master_that_never_answers_subscribe_is_passed_over() -> None:
    """A hung master (here one that accepts and stays silent, as a SIGSTOPped one does) must
    not hold the agent: it tries the next master once SUBSCRIBE went unanswered too long."""
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    hung = await asyncio.start_server(silent, "127.0.0.1", 0)
    hung_port = hung.sockets[0].getsockname()[1]
    app = web.Application()
    app.router.add_post(master_client.PATH, OlderMaster().handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    client = master_client.MasterClient(
        [f"127.0.0.1:{hung_port}", f"127.0.0.1:{port}"], subscribe_timeout_s=0.3
    )
    try:
        subscribing = client._subscribe_once(Call(type=Call.SUBSCRIBE), on_event=noop)
        assert await asyncio.wait_for(subscribing, 10.0)  # without the bound: forever
        assert connections  # the hung master was tried first
        assert client.agent_id == "agent-1"
    finally:
        await client.close()
        await runner.cleanup()
        for writer in connections:
            writer.close()
        hung.close()
        await hung.wait_closed()
