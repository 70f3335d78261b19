"""api/streams.py Stream: queued records coalesced per write, heartbeats, overflow, disconnect.

Driven as an ASGI application with an in-memory `send`/`receive`, no server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from meseta.api import recordio, streams
from meseta.api.streams import PROTOBUF, Stream
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

Event = scheduler_pb2.Event
Message = dict[str, object]


def event(kind: int) -> Event:
    return Event(type=kind)  # type: ignore[arg-type]


def stream(interval_s: float = 15.0) -> Stream:
    return Stream("id", PROTOBUF, Event(type=Event.HEARTBEAT), interval_s)


class Client:
    """What the server was asked to send; `leave()` makes `receive` report a disconnect."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.left = asyncio.Event()

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def receive(self) -> Message:
        await self.left.wait()
        return {"type": "http.disconnect"}

    def leave(self) -> None:
        self.left.set()

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]  # type: ignore[misc]

    def types(self) -> list[int]:
        return [Event.FromString(r).type for b in self.bodies for r in recordio.Decoder().feed(b)]


def serve(subject: Stream, client: Client) -> asyncio.Task[None]:
    app: Callable[..., Awaitable[None]] = subject
    return asyncio.ensure_future(app({"type": "http"}, client.receive, client.send))


async def test_each_record_is_its_own_chunk_and_close_ends_the_stream() -> None:
    """One HTTP chunk per event, as Mesos writes them (the npm mesos-framework parses one
    record per chunk)."""
    subject, client = stream(), Client()
    for kind in (Event.SUBSCRIBED, Event.OFFERS, Event.UPDATE):
        subject.send(event(kind))
    subject.close()
    subject.send(event(Event.RESCIND))  # after close: dropped
    await asyncio.wait_for(serve(subject, client), 1.0)
    assert client.sent[0]["status"] == 200
    assert [len(recordio.Decoder().feed(body)) for body in client.bodies] == [1, 1, 1, 0]
    assert client.sent[-1]["more_body"] is False
    assert client.types() == [Event.SUBSCRIBED, Event.OFFERS, Event.UPDATE]


async def test_records_sent_while_it_waits_wake_the_pump() -> None:
    subject, client = stream(), Client()
    task = serve(subject, client)
    await asyncio.sleep(0.01)
    subject.send(event(Event.OFFERS))
    await asyncio.sleep(0.01)
    subject.send(event(Event.UPDATE))
    subject.close()
    await asyncio.wait_for(task, 1.0)
    assert client.types() == [Event.OFFERS, Event.UPDATE]


async def test_heartbeats_come_every_interval_busy_or_silent() -> None:
    """As Mesos's heartbeaters: on a fixed period, whatever else the stream carries."""
    subject, client = stream(interval_s=0.05), Client()
    task = serve(subject, client)
    await asyncio.sleep(0.18)
    beats = client.types().count(Event.HEARTBEAT)
    assert 2 <= beats <= 4
    for _ in range(10):  # a record every 20 ms: never silent for an interval
        subject.send(event(Event.UPDATE))
        await asyncio.sleep(0.02)
    assert client.types().count(Event.HEARTBEAT) >= beats + 2
    subject.close()
    await asyncio.wait_for(task, 1.0)


async def test_a_stream_that_overflows_is_closed_without_its_backlog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streams, "QUEUE_LIMIT", 3)
    subject, client = stream(), Client()
    for _ in range(4):
        subject.send(event(Event.UPDATE))
    assert subject.closed
    await asyncio.wait_for(serve(subject, client), 1.0)
    assert client.types() == [] and client.sent[-1]["more_body"] is False


async def test_a_client_that_leaves_ends_the_pump_and_runs_the_close_callbacks() -> None:
    subject, client = stream(), Client()
    closed: list[Stream] = []
    subject.on_close.append(closed.append)
    task = serve(subject, client)
    await asyncio.sleep(0.01)
    client.leave()
    await asyncio.wait_for(task, 1.0)
    assert closed == [subject] and subject.closed
    assert subject.timer is not None and subject.timer.cancelled()


def test_a_stream_unbinds_only_the_owner_it_still_serves() -> None:
    registry: dict[str, Stream] = {}
    first, second = stream(), stream()
    assert first.unbind(registry) == ""  # never bound
    first.bind(registry, "agent-1")
    second.bind(registry, "agent-1")  # the agent subscribed again
    assert first.unbind(registry) == ""
    assert registry == {"agent-1": second}
    assert second.unbind(registry) == "agent-1"
    assert registry == {}
    assert second.unbind(registry) == ""
