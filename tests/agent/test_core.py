"""The agent's pure bookkeeping: queued and launched tasks, statuses, completion,
statuses the agent generates, the command executor's ExecutorInfo, reconfiguration."""

from __future__ import annotations

import pytest

from meseta.agent import core
from meseta.agent.core import AgentCore, ExecutorKind, ExecutorRecord, ExecutorState
from meseta.master import resources as res
from meseta.proto.mesos.v1 import mesos_pb2

FrameworkInfo = mesos_pb2.FrameworkInfo


def framework(
    framework_id: str = "fw", *, partition_aware: bool = False
) -> mesos_pb2.FrameworkInfo:
    info = mesos_pb2.FrameworkInfo(user="", name="f", checkpoint=True)
    info.id.value = framework_id
    if partition_aware:
        info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)
    return info


def task(task_id: str) -> mesos_pb2.TaskInfo:
    info = mesos_pb2.TaskInfo(name=task_id)
    info.task_id.value = task_id
    info.agent_id.value = "agent"
    info.command.value = "echo " + task_id
    return info


def executor(executor_id: str = "ex") -> ExecutorRecord:
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = executor_id
    return ExecutorRecord(info, "fw", ExecutorKind.CUSTOM, "c1", "/sandbox")


def status(task_id: str, state: int) -> mesos_pb2.TaskStatus:
    out = mesos_pb2.TaskStatus(state=state)  # type: ignore[arg-type]
    out.task_id.value = task_id
    return out


def test_tasks_queue_until_delivered_in_groups_then_complete() -> None:
    agent = AgentCore()
    agent.add_framework(framework())
    ex = executor()
    agent.add_executor("fw", ex)
    agent.queue_tasks(ex, [task("a")], group=False)
    agent.queue_tasks(ex, [task("b"), task("c")], group=True)
    assert [t.task_id for t in ex.live_tasks()] == ["a", "b", "c"]
    delivered = agent.take_queued(ex)
    assert [([t.task_id for t in group], as_group) for group, as_group in delivered] == [
        (["a"], False),
        (["b", "c"], True),
    ]
    assert ex.queued == {} and list(ex.tasks) == ["a", "b", "c"]
    agent.apply_status(status("a", mesos_pb2.TASK_RUNNING), "fw")
    record = agent.apply_status(status("a", mesos_pb2.TASK_FINISHED), "fw")
    assert record is not None and record.state == mesos_pb2.TASK_FINISHED
    assert [t.task_id for t in ex.completed] == ["a"]
    # A terminal task never moves again, and unknown tasks are not invented.
    agent.apply_status(status("a", mesos_pb2.TASK_RUNNING), "fw")
    assert record.state == mesos_pb2.TASK_FINISHED and len(record.statuses) == 2
    assert agent.apply_status(status("zz", mesos_pb2.TASK_RUNNING), "fw") is None
    assert agent.tasks_by_state() == {"TASK_STAGING": 2, "TASK_FINISHED": 1}


def test_reported_tasks_carry_state_statuses_and_ids() -> None:
    agent = AgentCore()
    agent.add_framework(framework())
    ex = executor()
    agent.add_executor("fw", ex)
    agent.queue_tasks(ex, [task("a")], group=False)
    agent.take_queued(ex)
    running = status("a", mesos_pb2.TASK_RUNNING)
    running.data = b"dropped in reports"
    agent.apply_status(running, "fw")
    (reported,) = agent.reported_tasks("agent-1")
    assert (reported.state, reported.executor_id.value, reported.agent_id.value) == (
        mesos_pb2.TASK_RUNNING, "ex", "agent-1",
    )  # fmt: skip
    assert reported.statuses[0].data == b""


def test_removing_the_last_executor_completes_the_framework() -> None:
    agent = AgentCore()
    agent.add_framework(framework())
    ex = executor()
    agent.add_executor("fw", ex)
    agent.remove_executor(ex)
    assert ex.state is ExecutorState.TERMINATED
    assert agent.frameworks == {}
    assert [f.framework_id for f in agent.completed_frameworks] == ["fw"]
    assert agent.completed_frameworks[0].completed_executors == [ex]


def test_lost_and_termination_states_follow_partition_awareness() -> None:
    agent = AgentCore()
    plain = agent.add_framework(framework("a"))
    aware = agent.add_framework(framework("b", partition_aware=True))
    assert core.lost_state(plain) == mesos_pb2.TASK_LOST
    assert core.lost_state(aware) == mesos_pb2.TASK_DROPPED
    reason = mesos_pb2.TaskStatus
    ex = executor()
    assert core.termination_state(plain, ex, None) == (
        mesos_pb2.TASK_FAILED, reason.REASON_EXECUTOR_TERMINATED,
    )  # fmt: skip
    assert core.termination_state(aware, ex, reason.REASON_CONTAINER_PREEMPTED) == (
        mesos_pb2.TASK_GONE, reason.REASON_CONTAINER_PREEMPTED,
    )  # fmt: skip
    memory = reason.REASON_CONTAINER_LIMITATION_MEMORY
    assert core.termination_state(plain, ex, memory) == (mesos_pb2.TASK_FAILED, memory)


def test_command_executor_info_is_synthesized_like_mesos() -> None:
    info = task("web")
    info.command.value = "python3 -m http.server"
    info.kill_policy.grace_period.nanoseconds = 3_000_000_000
    executor_info = core.command_executor_info(info, "fw", ["/py", "-m", "x"])
    assert executor_info.executor_id.value == "web"
    assert executor_info.name == "Command Executor (Task: web) (Command: sh -c 'python3 -m h...')"
    assert list(executor_info.command.arguments) == ["/py", "-m", "x"]
    assert executor_info.shutdown_grace_period.nanoseconds == 5_000_000_000


def agent_info(resources: str, **attributes: str) -> mesos_pb2.AgentInfo:
    info = mesos_pb2.AgentInfo(hostname="h", port=5051)
    info.resources.extend(res.to_protos(res.parse(resources), refined=False))
    for name, text in attributes.items():
        info.attributes.add(name=name, type=mesos_pb2.Value.TEXT).text.value = text
    return info


@pytest.mark.parametrize(
    ("new", "policy", "error"),
    [
        (agent_info("cpus:2;mem:10"), "equal", None),
        (agent_info("cpus:3;mem:10"), "equal", "resources changed"),
        (agent_info("cpus:3;mem:10;disk:5"), "additive", None),
        (agent_info("cpus:1;mem:10"), "additive", "do not contain"),
        (agent_info("cpus:2"), "additive", "do not contain"),
        (agent_info("cpus:2;mem:10", rack="r2"), "additive", "attribute 'rack' changed"),
        (agent_info("cpus:2;mem:10", rack="r1", zone="z"), "additive", None),
        (agent_info("cpus:2;mem:10", rack="r1", zone="z"), "equal", "attributes changed"),
    ],
)
def test_reconfiguration_policy(new: mesos_pb2.AgentInfo, policy: str, error: str | None) -> None:
    old = agent_info("cpus:2;mem:10", rack="r1") if new.attributes else agent_info("cpus:2;mem:10")
    found = core.reconfiguration_error(old, new, policy)
    assert (found is None) if error is None else (found is not None and error in found)


def test_hostname_and_port_must_match_under_any_policy() -> None:
    old = agent_info("cpus:1")
    moved = agent_info("cpus:1")
    moved.port = 5052
    assert core.reconfiguration_error(old, moved, "additive") == "port changed from 5051 to 5052"


def test_restore_places_tasks_and_names_the_undelivered_ones() -> None:
    agent = AgentCore()
    ex = executor()
    orphan = ExecutorRecord(executor("other").info, "gone-fw", ExecutorKind.CUSTOM, "c2", "/x")
    delivered = core.TaskRecord(task("a"), "fw", "ex", mesos_pb2.TASK_RUNNING)
    queued = core.TaskRecord(task("b"), "fw", "ex")
    done = core.TaskRecord(task("c"), "fw", "ex", mesos_pb2.TASK_FINISHED)
    stray = core.TaskRecord(task("d"), "fw", "nope")
    lost = agent.restore(
        {"fw": framework()},
        [ex, orphan],
        [(delivered, False), (queued, True), (done, False), (stray, False)],
    )
    assert lost == [queued]
    assert agent.executors() == [ex]
    assert (list(ex.tasks), list(ex.queued), ex.completed) == (["a"], ["b"], [done])


def grace(seconds: float | None) -> mesos_pb2.KillPolicy | None:
    if seconds is None:
        return None
    policy = mesos_pb2.KillPolicy()
    policy.grace_period.nanoseconds = int(seconds * 1e9)
    return policy


@pytest.mark.parametrize(
    ("cap_s", "own_s", "expected_s"),
    [
        (None, 30, 30),  # no cap: the task's own policy
        (None, None, None),
        (5, 30, 5),  # capped
        (5, 2, 2),  # already within the cap
        (5, None, 5),  # no policy of its own: the cap
        (0, 30, 0),
    ],
)
def test_a_drain_caps_each_kill_grace_period_as_mesos(
    cap_s: float | None, own_s: float | None, expected_s: float | None
) -> None:
    config = mesos_pb2.DrainConfig()
    if cap_s is not None:
        config.max_grace_period.nanoseconds = int(cap_s * 1e9)
    assert core.drain_kill_policy(config, grace(own_s)) == grace(expected_s)


@pytest.mark.parametrize(
    ("state", "mark_gone", "aware", "expected"),
    [
        (mesos_pb2.TASK_KILLED, False, True, (mesos_pb2.TASK_KILLED, "REASON_AGENT_DRAINING")),
        (mesos_pb2.TASK_KILLING, False, False, (mesos_pb2.TASK_KILLING, "REASON_AGENT_DRAINING")),
        (
            mesos_pb2.TASK_KILLED,
            True,
            True,
            (mesos_pb2.TASK_GONE_BY_OPERATOR, "REASON_AGENT_DRAINING"),
        ),
        (mesos_pb2.TASK_KILLED, True, False, (mesos_pb2.TASK_KILLED, "REASON_AGENT_DRAINING")),
        (
            mesos_pb2.TASK_FINISHED,
            True,
            True,
            (mesos_pb2.TASK_FINISHED, "REASON_COMMAND_EXECUTOR_FAILED"),
        ),
    ],
)
def test_kill_updates_while_draining_say_so(
    state: int, mark_gone: bool, aware: bool, expected: tuple[int, str]
) -> None:
    status = mesos_pb2.TaskStatus(
        state=state, reason=mesos_pb2.TaskStatus.REASON_COMMAND_EXECUTOR_FAILED
    )  # type: ignore[arg-type]
    core.mark_drained(status, mesos_pb2.DrainConfig(mark_gone=mark_gone), aware)
    assert (status.state, mesos_pb2.TaskStatus.Reason.Name(status.reason)) == expected
