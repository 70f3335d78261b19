"""The status update manager: per-task order, retry back-off, acknowledgements, duplicates."""

from __future__ import annotations

import itertools

from meseta.agent.status_updates import Acked, Received, StatusUpdateManager
from meseta.proto.mesos.v1 import mesos_pb2

FW = "fw-1"


def status(task_id: str, state: int, tag: int) -> mesos_pb2.TaskStatus:
    out = mesos_pb2.TaskStatus(state=state, uuid=bytes([tag]) * 16)  # type: ignore[arg-type]
    out.task_id.value = task_id
    return out


def sent(manager: StatusUpdateManager, now_s: float) -> list[tuple[str, int, int]]:
    return [(d.status.task_id.value, d.status.state, d.latest_state) for d in manager.due(now_s)]


def test_only_the_head_is_in_flight_and_acks_release_the_next() -> None:
    manager = StatusUpdateManager(retry_min_s=10, retry_max_s=600)
    running, finished = (
        status("t", mesos_pb2.TASK_RUNNING, 1),
        status("t", mesos_pb2.TASK_FINISHED, 2),
    )
    assert manager.receive(FW, running, 0.0) is Received.ACCEPTED
    assert manager.receive(FW, finished, 0.0) is Received.ACCEPTED
    # The head goes out carrying the newest state the agent knows.
    assert sent(manager, 0.0) == [("t", mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED)]
    assert sent(manager, 5.0) == []
    assert manager.acknowledge(FW, "t", finished.uuid, 6.0) is Acked.UNEXPECTED  # not the head
    assert manager.acknowledge(FW, "t", running.uuid, 6.0) is Acked.ACCEPTED
    assert sent(manager, 6.0) == [("t", mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_FINISHED)]
    assert manager.acknowledge(FW, "t", finished.uuid, 7.0) is Acked.FINISHED
    assert manager.acknowledge(FW, "t", finished.uuid, 7.0) is Acked.DUPLICATE
    assert manager.pending() == 0


def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    manager = StatusUpdateManager(retry_min_s=10, retry_max_s=600)
    manager.receive(FW, status("t", mesos_pb2.TASK_RUNNING, 1), 0.0)
    times = []
    now = 0.0
    while now < 3000:
        if sent(manager, now):
            times.append(now)
        now += 1.0
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[:7] == [10, 20, 40, 80, 160, 320, 600]
    assert set(gaps[6:]) == {600}


def test_duplicates_are_ignored_and_terminal_streams_take_nothing_new() -> None:
    manager = StatusUpdateManager()
    running = status("t", mesos_pb2.TASK_RUNNING, 1)
    assert manager.receive(FW, running, 0.0) is Received.ACCEPTED
    assert manager.receive(FW, running, 1.0) is Received.DUPLICATE
    manager.acknowledge(FW, "t", running.uuid, 2.0)
    assert manager.receive(FW, running, 3.0) is Received.DUPLICATE  # already acked
    assert manager.receive(FW, status("t", mesos_pb2.TASK_FAILED, 2), 3.0) is Received.ACCEPTED
    late = status("t", mesos_pb2.TASK_RUNNING, 3)
    assert manager.receive(FW, late, 4.0) is Received.TERMINATED
    assert manager.pending() == 1


def test_streams_are_independent_per_task_and_resend_all_resets_backoff() -> None:
    manager = StatusUpdateManager(retry_min_s=10, retry_max_s=600)
    manager.receive(FW, status("a", mesos_pb2.TASK_RUNNING, 1), 0.0)
    manager.receive(FW, status("b", mesos_pb2.TASK_RUNNING, 2), 0.0)
    assert [task for task, _, _ in sent(manager, 0.0)] == ["a", "b"]
    assert sent(manager, 10.0) != []  # first retry
    assert manager.next_due_s() == 30.0
    manager.resend_all(12.0)
    assert [task for task, _, _ in sent(manager, 12.0)] == ["a", "b"]
    assert manager.next_due_s() == 22.0
    assert manager.acknowledge(FW, "x", b"\0" * 16, 0.0) is Acked.UNEXPECTED
    assert manager.forget(FW, "a") is not None
    assert list(manager.streams) == [(FW, "b")]
