"""The operator event broker: ring buffer by log index, cursors, resume points, cut-offs."""

from __future__ import annotations

import asyncio

import pytest

from meseta.projections.operator_stream import (
    ALL,
    OperatorEventBroker,
    Published,
    StreamCut,
    format_point,
    parse_point,
)
from meseta.proto.mesos.v1.master import master_pb2

Event = master_pb2.Event


def removed(agent: str) -> Event:
    event = Event(type=Event.AGENT_REMOVED)
    event.agent_removed.agent_id.value = agent
    return event


def names(records: list[object]) -> list[str]:
    return [r.event.agent_removed.agent_id.value for r in records]  # type: ignore[attr-defined]


def test_subscribers_read_what_was_published_after_they_subscribed() -> None:
    broker = OperatorEventBroker(start_index=3)
    broker.publish(4, [removed("a")])
    late = broker.subscribe()
    broker.publish(5, [removed("b"), removed("c")])
    broker.publish(6, [])
    broker.publish(7, [removed("d")])
    records = late.take(100)
    assert names(records) == ["b", "c", "d"]
    assert [(r.index, r.position, r.last) for r in records] == [
        (5, 0, False),
        (5, 1, True),
        (7, 0, True),
    ]
    assert late.take(100) == []
    assert broker.applied_index == 7


def test_replayed_entries_are_not_published_twice() -> None:
    broker = OperatorEventBroker(start_index=10)
    subscription = broker.subscribe()
    broker.publish(9, [removed("old")])
    broker.publish(10, [removed("old")])
    assert subscription.take(10) == []


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ((4, ALL), ["b", "c", "d"]),
        ((5, 0), ["c", "d"]),
        ((5, ALL), ["d"]),
        ((6, ALL), ["d"]),
        ((7, ALL), []),
    ],
)
def test_resuming_after_a_point_continues_exactly_there(
    after: tuple[int, int], expected: list[str]
) -> None:
    broker = OperatorEventBroker(start_index=3)
    broker.publish(4, [removed("a")])
    broker.publish(5, [removed("b"), removed("c")])
    broker.publish(6, [])
    broker.publish(7, [removed("d")])
    assert names(broker.subscribe(after).take(100)) == expected


def test_a_point_older_than_the_ring_is_not_resumable() -> None:
    broker = OperatorEventBroker(start_index=0, capacity=2)
    for index, name in enumerate("abc", start=1):
        broker.publish(index, [removed(name)])
    assert not broker.resumable((1, 0))
    assert broker.resumable((1, ALL))  # "a" is gone, but everything after it is kept
    with pytest.raises(StreamCut) as cut:
        broker.subscribe((0, ALL))
    assert cut.value.resync
    assert names(broker.subscribe((1, ALL)).take(10)) == ["b", "c"]


def test_nothing_before_the_start_index_can_be_resumed() -> None:
    broker = OperatorEventBroker(start_index=50)
    assert broker.resumable((50, ALL))
    assert not broker.resumable((49, ALL))


def test_a_point_beyond_the_head_is_refused() -> None:
    broker = OperatorEventBroker(start_index=5)
    with pytest.raises(ValueError, match="not published here yet"):
        broker.subscribe((6, ALL))


def test_a_subscriber_that_falls_behind_is_cut_off_with_resync() -> None:
    broker = OperatorEventBroker(start_index=0, capacity=4)
    slow = broker.subscribe()
    fast = broker.subscribe()
    for index in range(1, 6):
        broker.publish(index, [removed(str(index))])
        assert len(fast.take(10)) == 1
    with pytest.raises(StreamCut) as cut:
        slow.take(10)
    assert cut.value.resync
    assert "behind" in cut.value.reason
    with pytest.raises(StreamCut):  # and stays cut
        slow.take(10)
    assert list(broker.subscriptions.values()) == [fast]


def test_one_entry_bigger_than_the_ring_cuts_everyone_behind_it() -> None:
    broker = OperatorEventBroker(start_index=0, capacity=3)
    subscription = broker.subscribe()
    broker.publish(1, [removed(str(n)) for n in range(4)])
    with pytest.raises(StreamCut):
        subscription.take(10)


def test_the_oldest_subscriber_is_closed_beyond_the_limit() -> None:
    broker = OperatorEventBroker(max_subscribers=2)
    first, second, third = broker.subscribe(), broker.subscribe(), broker.subscribe()
    with pytest.raises(StreamCut) as cut:
        first.take(1)
    assert not cut.value.resync  # it lost nothing: it may resume
    assert second.take(1) == [] and third.take(1) == []


async def test_waiting_subscribers_wake_on_publish_and_time_out_quietly() -> None:
    broker = OperatorEventBroker()
    subscription = broker.subscribe()
    assert await subscription.next_batch(10, 0.05) == []
    waiting = asyncio.ensure_future(subscription.next_batch(10, 5.0))
    await asyncio.sleep(0.01)
    broker.publish(1, [removed("a")])
    assert names(await asyncio.wait_for(waiting, 1.0)) == ["a"]


async def test_a_publish_right_after_the_subscriber_suspends_is_not_missed() -> None:
    broker = OperatorEventBroker(linger_s=0)
    subscription = broker.subscribe()
    waiting = asyncio.ensure_future(subscription.next_batch(10, 5.0))
    await asyncio.sleep(0)  # the subscriber found nothing and now waits
    broker.publish(1, [removed("a")])
    assert names(await asyncio.wait_for(waiting, 1.0)) == ["a"]


async def test_a_woken_subscriber_lingers_to_batch_what_follows() -> None:
    broker = OperatorEventBroker(linger_s=0.05)
    subscription = broker.subscribe()
    waiting = asyncio.ensure_future(subscription.next_batch(10, 5.0, broker.linger_s))
    await asyncio.sleep(0)
    broker.publish(1, [removed("a")])
    await asyncio.sleep(0.01)
    broker.publish(2, [removed("b")])
    assert names(await asyncio.wait_for(waiting, 1.0)) == ["a", "b"]


async def test_subscribers_waiting_together_share_one_linger_timer_and_wake_once() -> None:
    broker = OperatorEventBroker(linger_s=0.05)
    subscriptions = [broker.subscribe() for _ in range(50)]
    waiting = [
        asyncio.ensure_future(subscription.next_batch(10, 5.0, broker.linger_s))
        for subscription in subscriptions
    ]
    await asyncio.sleep(0)
    broker.publish(1, [removed("a")])
    broker.publish(2, [removed("b")])
    assert len(broker.linger_timers) == 1  # one timer for all fifty
    batches = await asyncio.wait_for(asyncio.gather(*waiting), 1.0)
    assert [names(batch) for batch in batches] == [["a", "b"]] * 50
    assert broker.linger_timers == {} and broker.waiters == {}


async def test_closing_wakes_a_subscriber_in_the_middle_of_its_linger() -> None:
    broker = OperatorEventBroker(linger_s=5.0)
    subscription = broker.subscribe()
    waiting = asyncio.ensure_future(subscription.next_batch(10, 10.0, broker.linger_s))
    await asyncio.sleep(0)
    broker.publish(1, [removed("a")])  # the 5 s linger starts
    subscription.close()
    with pytest.raises(StreamCut):
        await asyncio.wait_for(waiting, 1.0)
    assert broker.linger_timers == {}


async def test_closing_wakes_a_waiting_subscriber() -> None:
    broker = OperatorEventBroker()
    subscription = broker.subscribe()
    waiting = asyncio.ensure_future(subscription.next_batch(10, 5.0))
    await asyncio.sleep(0.01)
    broker.close()
    with pytest.raises(StreamCut) as cut:
        await asyncio.wait_for(waiting, 1.0)
    assert not cut.value.resync
    assert broker.subscriptions == {}


def test_take_respects_the_limit() -> None:
    broker = OperatorEventBroker()
    subscription = broker.subscribe()
    broker.publish(1, [removed(str(n)) for n in range(5)])
    assert names(subscription.take(2)) == ["0", "1"]
    assert names(subscription.take(10)) == ["2", "3", "4"]


@pytest.mark.parametrize(("text", "point"), [("7", (7, ALL)), ("7.0", (7, 0)), ("12.3", (12, 3))])
def test_event_ids_round_trip(text: str, point: tuple[int, int]) -> None:
    assert parse_point(text) == point
    assert format_point(point) == text


@pytest.mark.parametrize("text", ["", "x", "-1", "1.", ".1", "1.2.3", "1.-2"])
def test_bad_event_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_point(text)


def test_after_a_restored_checkpoint_nothing_before_it_is_resumable() -> None:
    broker = OperatorEventBroker(start_index=0)
    broker.publish(1, [removed("a")])
    broker.skip_to(40)  # the view came back at 40: entries 2..40 published nothing here
    assert broker.applied_index == 40
    assert not broker.resumable((1, ALL))
    assert broker.resumable((40, ALL))
    broker.skip_to(30)  # never backwards
    assert broker.applied_index == 40
    broker.publish(41, [removed("b")])
    assert names(broker.subscribe((40, ALL)).take(10)) == ["b"]


def test_runs_that_wrap_around_the_ring_come_out_in_order() -> None:
    broker = OperatorEventBroker(capacity=4)
    subscription = broker.subscribe()
    for index in range(1, 4):
        broker.publish(index, [removed(str(index))])
    assert names(subscription.take(10)) == ["1", "2", "3"]
    broker.publish(4, [removed("4"), removed("5"), removed("6"), removed("7")])  # a full ring
    assert names(subscription.take(10)) == ["4", "5", "6", "7"]
    broker.publish(8, [removed("8"), removed("9")])
    assert names(subscription.take(1)) == ["8"]
    assert names(subscription.take(1)) == ["9"]


def test_subscribers_reading_the_same_run_share_its_encoding() -> None:
    broker = OperatorEventBroker()
    first, second = broker.subscribe(), broker.subscribe()
    broker.publish(1, [removed("a"), removed("b")])
    calls: list[str] = []

    def encode(record: Published) -> bytes:
        calls.append(record.event.agent_removed.agent_id.value)
        return record.event.agent_removed.agent_id.value.encode()

    one = broker.encoded(first.take(10), "test", encode)
    two = broker.encoded(second.take(10), "test", encode)
    assert one == two == b"ab"
    assert calls == ["a", "b"]
    assert broker.encoded([], "test", encode) == b""
