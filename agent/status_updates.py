"""The status update manager: per task, a FIFO stream delivered in order, retried
until the master forwards the scheduler's acknowledgement (contract 7.6).

Pure: times come in as arguments and the daemon sends what `due()` returns.
Only the head of a stream is in flight; it is resent after `retry_min_s`,
doubling up to `retry_max_s`, until its ACK arrives, then the next update is
sent. A status whose uuid the stream has already seen (pending or acked) is a
duplicate and ignored; once a terminal update is received the stream takes
no new updates. The daemon checkpoints a stream after every change
(`agent/checkpoint.py`) before it answers the executor.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from meseta.agent.core import is_terminal
from meseta.proto.mesos.v1 import mesos_pb2

StreamKey = tuple[str, str]  # (framework id, task id)


class Received(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # same uuid as one seen before: harmless, nothing to do
    TERMINATED = "terminated"  # the stream already got its terminal update


class Acked(enum.Enum):
    ACCEPTED = "accepted"  # the head was acknowledged; the next one (if any) is due
    FINISHED = "finished"  # the terminal update was acknowledged: the stream is done
    DUPLICATE = "duplicate"  # acknowledged before
    UNEXPECTED = "unexpected"  # not the head (or no such stream): ignored, as Mesos does


@dataclass(slots=True)
class UpdateStream:
    framework_id: str
    task_id: str
    pending: list[mesos_pb2.TaskStatus] = field(default_factory=list)
    acked: list[bytes] = field(default_factory=list)  # uuids, oldest first
    terminal_received: bool = False
    next_send_s: float = 0.0  # when the head is due (again)
    backoff_s: float = 0.0  # the wait after the next send

    @property
    def key(self) -> StreamKey:
        return (self.framework_id, self.task_id)

    @property
    def head(self) -> mesos_pb2.TaskStatus | None:
        return self.pending[0] if self.pending else None

    @property
    def finished(self) -> bool:
        return self.terminal_received and not self.pending

    def seen(self, status_uuid: bytes) -> bool:
        return status_uuid in self.acked or any(s.uuid == status_uuid for s in self.pending)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One UPDATE the daemon posts to the master."""

    framework_id: str
    status: mesos_pb2.TaskStatus
    latest_state: int


class StatusUpdateManager:
    def __init__(self, retry_min_s: float = 10.0, retry_max_s: float = 600.0) -> None:
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.streams: dict[StreamKey, UpdateStream] = {}

    def restore(self, stream: UpdateStream, now_s: float) -> None:
        """A stream read back from a checkpoint; its head is due at once."""
        stream.next_send_s, stream.backoff_s = now_s, self.retry_min_s
        self.streams[stream.key] = stream

    def receive(self, framework_id: str, status: mesos_pb2.TaskStatus, now_s: float) -> Received:
        key = (framework_id, status.task_id.value)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = UpdateStream(framework_id, status.task_id.value)
        if stream.seen(status.uuid):
            return Received.DUPLICATE
        if stream.terminal_received:
            return Received.TERMINATED
        stream.pending.append(status)
        if is_terminal(status.state):
            stream.terminal_received = True
        if len(stream.pending) == 1:
            stream.next_send_s, stream.backoff_s = now_s, self.retry_min_s
        return Received.ACCEPTED

    def acknowledge(
        self, framework_id: str, task_id: str, status_uuid: bytes, now_s: float
    ) -> Acked:
        stream = self.streams.get((framework_id, task_id))
        if stream is None:
            return Acked.UNEXPECTED
        if status_uuid in stream.acked:
            return Acked.DUPLICATE
        head = stream.head
        if head is None or head.uuid != status_uuid:
            return Acked.UNEXPECTED
        stream.pending.pop(0)
        stream.acked.append(status_uuid)
        stream.next_send_s, stream.backoff_s = now_s, self.retry_min_s
        return Acked.FINISHED if stream.finished else Acked.ACCEPTED

    def due(self, now_s: float) -> list[Delivery]:
        """The heads to (re)send now; each is then due again after its back-off."""
        out = []
        for stream in self.streams.values():
            head = stream.head
            if head is None or stream.next_send_s > now_s:
                continue
            out.append(Delivery(stream.framework_id, head, stream.pending[-1].state))
            stream.next_send_s = now_s + stream.backoff_s
            stream.backoff_s = min(stream.backoff_s * 2, self.retry_max_s)
        return out

    def resend_all(self, now_s: float) -> None:
        """After (re-)registering: every head is due now, back-off reset."""
        for stream in self.streams.values():
            stream.next_send_s, stream.backoff_s = now_s, self.retry_min_s

    def next_due_s(self) -> float | None:
        times = [s.next_send_s for s in self.streams.values() if s.pending]
        return min(times) if times else None

    def pending(self) -> int:
        return sum(len(stream.pending) for stream in self.streams.values())

    def unacknowledged(self, framework_id: str, task_id: str) -> list[mesos_pb2.TaskStatus]:
        stream = self.streams.get((framework_id, task_id))
        return list(stream.pending) if stream else []

    def forget(self, framework_id: str, task_id: str) -> UpdateStream | None:
        """Drop a stream (its task and executor are gone, or its framework was shut down)."""
        return self.streams.pop((framework_id, task_id), None)
