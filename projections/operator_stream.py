"""The operator event broker: `mesos.v1.master.Event`s by log index, fanned out to subscribers.

The cluster view turns each entry's domain events into operator events; the
broker keeps the latest `capacity` of them in one shared ring buffer, each
tagged with its entry's log index and its position within that entry (so a
position in the stream means the same thing on every replica). A subscriber
is a cursor into the ring: its queue is the part it has not read yet, bounded
by the ring itself. Publishing costs the same however many subscribers there
are and never waits for one; a subscriber whose unread events were
overwritten is cut off (`StreamCut`) and must start again from a full state.
This is Nomad's event buffer (design A.1, item 6), with the log index as the
resume token.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from meseta.proto.mesos.v1.master import master_pb2

# Events kept for resuming and for subscribers that fall behind: minutes of a
# busy cluster, seconds at 10k events/s. A TASK_ADDED with its cached encodings
# takes about 2 KiB, so the ring holds some 64 MiB at most.
DEFAULT_CAPACITY = 32_768
# Mesos's --max_operator_event_stream_subscribers: beyond it the oldest is closed.
DEFAULT_MAX_SUBSCRIBERS = 1000
# Mesos sends an operator HEARTBEAT right after SUBSCRIBED, then every 15 s.
DEFAULT_HEARTBEAT_INTERVAL_S = 15.0
# A woken subscriber waits this long for more entries before it writes: a stream
# then costs at most 100 writes a second however fast entries are applied.
DEFAULT_LINGER_S = 0.01
# Encoded batches kept for sharing: subscribers woken together read the same run.
BATCHES_KEPT = 64

# A point in the stream: everything at or before (index, position) has been seen.
# (index, ALL) covers every event of entry `index`.
Position = tuple[int, int]
ALL = 1 << 62


@dataclass(frozen=True, slots=True)
class Published:
    """One operator event as published; `encoded` caches its wire forms (filled by the API)."""

    index: int
    position: int  # 0-based among the events of entry `index`
    last: bool  # the last event of its entry
    event: master_pb2.Event
    encoded: dict[str, bytes] = field(default_factory=dict, compare=False)

    @property
    def point(self) -> Position:
        """The stream position once this event has been seen."""
        return (self.index, ALL if self.last else self.position)


class StreamCut(Exception):
    """The subscription ended. `resync`: events were lost, so the subscriber must start
    over from a full state; otherwise it may resume after the last event it read."""

    def __init__(self, reason: str, *, resync: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.resync = resync


class Subscription:
    """A cursor into the broker's ring. Only the broker creates them."""

    def __init__(self, broker: OperatorEventBroker, cursor: int, key: int) -> None:
        self.broker = broker
        self.cursor = cursor  # sequence number of the next event to read
        self.key = key
        self.cut: StreamCut | None = None

    def take(self, limit: int) -> list[Published]:
        """Up to `limit` unread events, oldest first; raises StreamCut when cut off."""
        return self.broker.take(self, limit)

    async def next_batch(
        self, limit: int, timeout_s: float, linger_s: float = 0.0
    ) -> list[Published]:
        """Unread events, waiting up to `timeout_s` for some; [] when none came.

        A waiting subscriber is woken `linger_s` after the next publish, so that entries
        applied one by one reach it in one batch (one write) rather than one each. Every
        subscriber waiting then shares that one timer and wakes once.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            batch = self.take(limit)
            remaining = deadline - loop.time()
            if batch or remaining <= 0:
                return batch
            # The future is taken in the same step as the empty `take`: no publish slips
            # in between unnoticed.
            done, _ = await asyncio.wait((self.broker.next_publish(linger_s),), timeout=remaining)
            if not done:
                return []

    def close(self, reason: str = "closed", *, resync: bool = False) -> None:
        if self.cut is None:
            self.cut = StreamCut(reason, resync=resync)
        self.broker.subscriptions.pop(self.key, None)
        self.broker.wake()  # wherever it waits


class OperatorEventBroker:
    def __init__(
        self,
        start_index: int = 0,
        *,
        capacity: int = DEFAULT_CAPACITY,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
        heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S,
        linger_s: float = DEFAULT_LINGER_S,
    ) -> None:
        if capacity < 1:
            raise ValueError("the ring must hold at least one event")
        self.capacity = capacity
        self.max_subscribers = max_subscribers
        self.heartbeat_interval_s = heartbeat_interval_s
        self.linger_s = linger_s
        self.ring: list[Published | None] = [None] * capacity
        self.next_seq = 0  # sequence number of the next event published
        self.applied_index = start_index  # newest entry published (events or not)
        # Everything after this point is still in the ring (or not published yet).
        self.floor: Position = (start_index, ALL)
        self.subscriptions: OrderedDict[int, Subscription] = OrderedDict()
        self.keys = 0
        # By linger: resolved that long after the next publish (at once for 0) or when a
        # subscription closes; every subscriber waiting with that linger awaits this future.
        self.waiters: dict[float, asyncio.Future[None]] = {}
        self.linger_timers: dict[float, asyncio.TimerHandle] = {}
        # (first index, first position, count, wire format) -> the run encoded as one body.
        self.batches: dict[tuple[int, int, int, str], bytes] = {}

    @property
    def first_seq(self) -> int:
        return max(0, self.next_seq - self.capacity)

    @property
    def head(self) -> Position:
        """The stream position of everything published so far."""
        return (self.applied_index, ALL)

    def publish(self, index: int, events: Sequence[master_pb2.Event]) -> None:
        """Entry `index` was applied and produced `events` (called in index order)."""
        if index <= self.applied_index:
            return  # replayed while catching up from a restored checkpoint
        count = len(events)
        for position, event in enumerate(events):
            slot = self.next_seq % self.capacity
            evicted = self.ring[slot]
            if evicted is not None:
                self.floor = evicted.point
            self.ring[slot] = Published(index, position, position == count - 1, event)
            self.next_seq += 1
        self.applied_index = index
        if count:
            self.published()

    def encoded(
        self, batch: list[Published], kind: str, encode: Callable[[Published], bytes]
    ) -> bytes:
        """`batch` (a run of the ring) encoded as one body, shared by every SSE subscriber that
        reads the same run, so a hundred subscribers cost one join, not a hundred."""
        if not batch:
            return b""
        key = (batch[0].index, batch[0].position, len(batch), kind)
        data = self.batches.get(key)
        if data is None:
            data = self.batches[key] = b"".join([encode(record) for record in batch])
            if len(self.batches) > BATCHES_KEPT:
                del self.batches[next(iter(self.batches))]
        return data

    def next_publish(self, linger_s: float = 0.0) -> asyncio.Future[None]:
        """A future resolved `linger_s` after events are next published (at once for 0),
        or as soon as a subscription closes."""
        waiter = self.waiters.get(linger_s)
        if waiter is None:
            waiter = self.waiters[linger_s] = asyncio.get_running_loop().create_future()
        return waiter

    def published(self) -> None:
        """Wake who waits without lingering; start the linger clock of the others (one timer
        per linger, however many subscribers wait)."""
        for linger_s, waiter in list(self.waiters.items()):
            if linger_s <= 0:
                self.resolve(linger_s)
            elif linger_s not in self.linger_timers:
                timer = waiter.get_loop().call_later(linger_s, self.resolve, linger_s)
                self.linger_timers[linger_s] = timer

    def resolve(self, linger_s: float) -> None:
        timer = self.linger_timers.pop(linger_s, None)
        if timer is not None:
            timer.cancel()
        waiter = self.waiters.pop(linger_s, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wake(self) -> None:
        """Wake every waiting subscriber now (a subscription closed: it must see the cut)."""
        for linger_s in list(self.waiters):
            self.resolve(linger_s)

    def skip_to(self, index: int) -> None:
        """Entries up to `index` were folded before a restart (the view was restored from
        its checkpoint): their events are not here, so nothing before it can be resumed."""
        if index > self.applied_index:
            self.applied_index = index
            self.floor = max(self.floor, (index, ALL))

    def resumable(self, after: Position) -> bool:
        """Whether every event after `after` that was published is still in the ring."""
        return after >= self.floor

    def subscribe(self, after: Position | None = None) -> Subscription:
        """A subscription to the events after `after` (default: after everything so far).

        `after` must not be beyond `head` (a client that read from a replica ahead
        of this one waits until this one has caught up); StreamCut when events
        after it are no longer buffered.
        """
        if after is not None and after > self.head:
            raise ValueError(f"{format_point(after)} is not published here yet")
        if after is None or after == self.head:
            cursor = self.next_seq
        elif not self.resumable(after):
            raise StreamCut(
                f"events after {format_point(after)} are no longer buffered", resync=True
            )
        else:
            cursor = self.seek(after)
        while len(self.subscriptions) >= self.max_subscribers:
            _, oldest = self.subscriptions.popitem(last=False)
            oldest.close("too many subscribers; the oldest was closed")
        self.keys += 1
        subscription = Subscription(self, cursor, self.keys)
        self.subscriptions[self.keys] = subscription
        return subscription

    def seek(self, after: Position) -> int:
        """The sequence number of the first buffered event past `after` (binary search)."""
        low, high = self.first_seq, self.next_seq
        while low < high:
            middle = (low + high) // 2
            record = self.ring[middle % self.capacity]
            assert record is not None
            if (record.index, record.position) <= after:
                low = middle + 1
            else:
                high = middle
        return low

    def take(self, subscription: Subscription, limit: int) -> list[Published]:
        if subscription.cursor < self.first_seq and subscription.cut is None:
            subscription.close("the subscriber fell too far behind", resync=True)
        cut = subscription.cut
        if cut is not None:
            raise StreamCut(cut.reason, resync=cut.resync)
        start = subscription.cursor
        stop = min(self.next_seq, start + limit)
        subscription.cursor = stop
        if start == stop:
            return []
        # Slots from first_seq to next_seq are all filled; a run wraps at most once.
        first, last = start % self.capacity, stop % self.capacity
        batch = self.ring[first:last] if first < last else self.ring[first:] + self.ring[:last]
        return cast(list[Published], batch)

    def close(self) -> None:
        """The replica stops: end every subscription."""
        for subscription in list(self.subscriptions.values()):
            subscription.close("the master is shutting down")


def format_point(point: Position) -> str:
    """`N` for all of entry N, `N.k` for its events up to position k: the SSE event ids."""
    index, position = point
    return str(index) if position == ALL else f"{index}.{position}"


def parse_point(text: str) -> Position:
    """The inverse of `format_point`; ValueError on anything else."""
    index_text, dot, position_text = text.strip().partition(".")
    if not index_text.isdigit() or (dot and not position_text.isdigit()):
        raise ValueError(f"not an event id: {text!r}")
    return (int(index_text), int(position_text) if dot else ALL)
