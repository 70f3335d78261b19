"""How the agent packs the status updates due at once into calls to the master."""

from __future__ import annotations

from meseta.agent import master_client
from meseta.agent.master_client import Call, update_calls
from meseta.agent.status_updates import Delivery
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
