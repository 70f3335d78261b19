"""Fold appliers for tasks (status updates, acks, kills, executors) and reconciliation (7.1)."""

from __future__ import annotations

import pytest
from support.fold_cluster import (
    NS_PER_S,
    Cluster,
    executor_info,
    names,
    of_type,
    one,
    task_info,
    uuid_bytes,
)

from meseta.master.events import (
    AcknowledgementForwarded,
    CommandRejected,
    ExecutorExited,
    ExecutorShutdownRequested,
    KillRequested,
    TaskCompleted,
    TaskStatusUpdated,
)
from meseta.master.reconciliation import reconcile
from meseta.master.resources import parse
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m

Reason = m.TaskStatus


def running(*, partition_aware: bool = False, checkpoint: bool = False) -> tuple[Cluster, str, str]:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(partition_aware=partition_aware, checkpoint=checkpoint)
    cluster.start_task(fid, agent, "t1")
    return cluster, agent, fid


def test_status_updates_move_the_task_and_terminal_releases_resources() -> None:
    cluster, agent, fid = running()
    task = cluster.state.frameworks[fid].tasks["t1"]
    assert task.state == m.TASK_RUNNING
    assert cluster.state.agents[agent].allocated == parse("cpus:1;mem:128")
    events = cluster.status(fid, agent, "t1", m.TASK_FINISHED)
    update = one(events, TaskStatusUpdated)
    assert update.state == m.TASK_FINISHED and update.forward
    assert update.status.agent_id.value == agent
    assert update.status.uuid == cluster.last_uuid[(fid, "t1")]
    assert task.status_update_state == m.TASK_FINISHED
    assert not cluster.state.agents[agent].allocated
    assert not cluster.state.frameworks[fid].allocated
    assert cluster.state.role_allocated == {}
    # Still in the active set until the scheduler acknowledges.
    assert "t1" in cluster.state.frameworks[fid].tasks


def test_history_collapses_repeated_states_and_drops_data() -> None:
    cluster, agent, fid = running()
    cluster.status(fid, agent, "t1", m.TASK_RUNNING)
    status = m.TaskStatus(state=m.TASK_RUNNING, uuid=uuid_bytes(999), data=b"big")
    status.task_id.value = "t1"
    cluster.run(
        update_task_status=c.UpdateTaskStatus(agent_id=agent, framework_id=fid, status=status)
    )
    task = cluster.state.frameworks[fid].tasks["t1"]
    assert [s.state for s in task.statuses] == [m.TASK_RUNNING]
    assert task.statuses[-1].uuid == uuid_bytes(999) and not task.statuses[-1].data


def test_latest_state_moves_the_task_ahead_of_the_update_being_delivered() -> None:
    cluster, agent, fid = running()
    cluster.status(fid, agent, "t1", m.TASK_RUNNING, latest_state=m.TASK_FAILED)
    task = cluster.state.frameworks[fid].tasks["t1"]
    assert task.state == m.TASK_FAILED
    assert task.status_update_state == m.TASK_RUNNING
    assert not cluster.state.agents[agent].allocated
    # Acking the RUNNING update does not complete the task: the terminal one is still to come.
    cluster.ack(fid, agent, "t1")
    assert "t1" in cluster.state.frameworks[fid].tasks
    cluster.status(fid, agent, "t1", m.TASK_FAILED)
    assert of_type(cluster.ack(fid, agent, "t1"), TaskCompleted)


def test_ack_of_the_terminal_update_completes_the_task() -> None:
    cluster, agent, fid = running()
    cluster.status(fid, agent, "t1", m.TASK_FINISHED)
    events = cluster.ack(fid, agent, "t1")
    assert names(events) == ["TaskCompleted", "AcknowledgementForwarded"]
    assert one(events, TaskCompleted).task.task_id == "t1"
    forwarded = one(events, AcknowledgementForwarded)
    assert forwarded.uuid == cluster.last_uuid[(fid, "t1")]
    assert not cluster.state.frameworks[fid].tasks
    assert not cluster.state.agents[agent].tasks


def test_ack_of_a_non_latest_uuid_does_not_complete() -> None:
    cluster, agent, fid = running()
    old = cluster.last_uuid[(fid, "t1")]
    cluster.status(fid, agent, "t1", m.TASK_FINISHED)
    events = cluster.ack(fid, agent, "t1", old)
    assert names(events) == ["AcknowledgementForwarded"]  # the agent still gets it
    assert "t1" in cluster.state.frameworks[fid].tasks


def test_ack_of_unknown_framework_is_rejected_and_ack_to_absent_agent_is_not_forwarded() -> None:
    cluster, agent, fid = running()
    assert of_type(cluster.ack("nope", agent, "t1", uuid_bytes(1)), CommandRejected)
    cluster.status(fid, agent, "t1", m.TASK_FINISHED)
    cluster.mark_unreachable(agent)
    events = cluster.ack(fid, agent, "t1")
    assert names(events) == ["TaskCompleted"]


def test_terminal_state_never_changes() -> None:
    cluster, agent, fid = running()
    cluster.status(fid, agent, "t1", m.TASK_FAILED)
    task = cluster.state.frameworks[fid].tasks["t1"]
    events = cluster.status(fid, agent, "t1", m.TASK_RUNNING)
    assert one(events, TaskStatusUpdated).state == m.TASK_FAILED
    cluster.status(fid, agent, "t1", m.TASK_FINISHED)
    assert task.state == m.TASK_FAILED
    assert not cluster.state.agents[agent].allocated
    cluster.kill(fid, "t1")
    assert task.state == m.TASK_FAILED


def test_update_for_an_unknown_task_is_still_forwarded() -> None:
    cluster, agent, fid = running()
    events = cluster.status(fid, agent, "ghost", m.TASK_RUNNING)
    update = one(events, TaskStatusUpdated)
    assert (update.task_id, update.state) == ("ghost", m.TASK_RUNNING)
    assert "ghost" not in cluster.state.frameworks[fid].tasks
    # A known task id reported by another agent changes nothing either.
    other = cluster.add_agent("h2")
    cluster.status(fid, other, "t1", m.TASK_FAILED)
    assert cluster.state.frameworks[fid].tasks["t1"].state == m.TASK_RUNNING


def test_kill_of_a_known_task_is_sent_to_its_agent() -> None:
    cluster, agent, fid = running()
    policy = m.KillPolicy()
    policy.grace_period.nanoseconds = 5 * NS_PER_S
    kill = c.KillTask(framework_id=fid, task_id="t1", kill_policy=policy)
    events = cluster.run(kill_task=kill)
    assert events == [KillRequested(agent, fid, "t1", policy)]
    # Naming another agent: ignored.
    assert cluster.kill(fid, "t1", agent_id="elsewhere") == []


@pytest.mark.parametrize(
    ("partition_aware", "expected"), [(True, m.TASK_GONE), (False, m.TASK_LOST)]
)
def test_kill_of_an_unknown_task_answers_like_explicit_reconciliation(
    partition_aware: bool, expected: int
) -> None:
    cluster, agent, fid = running(partition_aware=partition_aware)
    update = one(cluster.kill(fid, "ghost", agent_id=agent), TaskStatusUpdated)
    assert (update.task_id, update.state) == ("ghost", expected)
    assert update.status.reason == Reason.REASON_RECONCILIATION
    assert update.status.source == Reason.SOURCE_MASTER and not update.status.uuid
    unknown = one(cluster.kill(fid, "ghost"), TaskStatusUpdated)
    assert unknown.state == (m.TASK_UNKNOWN if partition_aware else m.TASK_LOST)
    assert of_type(cluster.kill("nope", "t1"), CommandRejected)


def test_kill_while_the_agent_is_away_is_resent_on_reregistration() -> None:
    cluster, agent, fid = running(checkpoint=True)
    cluster.disconnect_agent(agent)
    assert cluster.kill(fid, "t1") == []
    assert cluster.state.frameworks[fid].tasks["t1"].kill_pending
    events = cluster.reregister_agent(agent, report_known_tasks=True)
    assert one(events, KillRequested) == KillRequested(agent, fid, "t1", None)
    assert names(events)[-1] == "AgentRegistered"


def test_kill_is_resent_on_every_reregistration_until_the_task_ends() -> None:
    """A KILL sent on a stream that then broke (a leader change under load) is not lost:
    the agent gets it again each time it re-registers while the task still runs."""
    cluster, agent, fid = running(checkpoint=True)
    assert one(cluster.kill(fid, "t1"), KillRequested) == KillRequested(agent, fid, "t1", None)
    for _ in range(2):
        cluster.disconnect_agent(agent)
        events = cluster.reregister_agent(agent, report_known_tasks=True)
        assert one(events, KillRequested) == KillRequested(agent, fid, "t1", None)
    cluster.status(fid, agent, "t1", m.TASK_KILLED)
    cluster.disconnect_agent(agent)
    assert of_type(cluster.reregister_agent(agent), KillRequested) == []


def test_executor_exit_frees_its_resources_and_shutdown_goes_to_active_agents() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework()
    offer_id = cluster.add_offer(fid, agent)
    executor = executor_info("ex", "cpus:0.5;mem:64")
    cluster.launch(fid, [offer_id], [task_info("t1", agent, "cpus:1", executor=executor)])
    shutdown = c.ShutdownExecutor(framework_id=fid, agent_id=agent, executor_id="ex")
    assert cluster.run(shutdown_executor=shutdown) == [ExecutorShutdownRequested(agent, fid, "ex")]
    cluster.status(fid, agent, "t1", m.TASK_FINISHED, executor_id="ex")
    assert cluster.state.agents[agent].allocated == parse("cpus:0.5;mem:64")
    events = cluster.exit_executor(fid, agent, "ex", status=0)
    assert events == [ExecutorExited(agent, fid, "ex", 0)]
    assert not cluster.state.agents[agent].allocated
    assert not cluster.state.agents[agent].executors
    # A command executor (its id is its task's) is not the master's to know: the SHUTDOWN
    # still goes to the agent, as Mesos sends it to any registered agent.
    command = c.ShutdownExecutor(framework_id=fid, agent_id=agent, executor_id="t9")
    assert cluster.run(shutdown_executor=command) == [ExecutorShutdownRequested(agent, fid, "t9")]
    cluster.disconnect_agent(agent)
    assert cluster.run(shutdown_executor=command) == []
    unknown = c.ShutdownExecutor(framework_id=fid, agent_id="nope", executor_id="t9")
    assert cluster.run(shutdown_executor=unknown) == []


# -- reconciliation (contract 7.1) ---------------------------------------------------


def test_implicit_reconciliation_lists_active_tasks_with_their_update_state() -> None:
    cluster, agent, fid = running(partition_aware=True)
    cluster.start_task(fid, agent, "t2", running=False)
    cluster.status(fid, agent, "t2", m.TASK_RUNNING, latest_state=m.TASK_FINISHED)
    framework = cluster.state.frameworks[fid]
    replies = reconcile(cluster.state, framework, [])
    assert [(r.task_id.value, r.state) for r in replies] == [
        ("t1", m.TASK_RUNNING),
        ("t2", m.TASK_RUNNING),  # status_update_state, not the newer latest state
    ]
    for reply in replies:
        assert reply.source == Reason.SOURCE_MASTER
        assert reply.reason == Reason.REASON_RECONCILIATION
        assert reply.message == "Reconciliation: Latest task state"
        assert reply.agent_id.value == agent and not reply.HasField("uuid")


def test_implicit_reconciliation_excludes_unreachable_and_completed_tasks() -> None:
    cluster = Cluster()
    a1, a2 = cluster.add_agent("h1"), cluster.add_agent("h2")
    fid = cluster.add_framework(partition_aware=True)
    cluster.start_task(fid, a1, "t1")
    cluster.start_task(fid, a2, "t2")
    cluster.start_task(fid, a2, "t3")
    cluster.status(fid, a2, "t3", m.TASK_FINISHED)
    cluster.ack(fid, a2, "t3")
    cluster.mark_unreachable(a1)
    replies = reconcile(cluster.state, cluster.state.frameworks[fid], [])
    assert [r.task_id.value for r in replies] == ["t2"]


@pytest.mark.parametrize("partition_aware", [True, False])
def test_explicit_reconciliation_table(partition_aware: bool) -> None:
    cluster = Cluster()
    active, unreachable, gone, spare = (cluster.add_agent(f"h{i}") for i in range(4))
    fid = cluster.add_framework(partition_aware=partition_aware)
    cluster.start_task(fid, active, "known")
    cluster.start_task(fid, unreachable, "partitioned")
    cluster.mark_unreachable(unreachable)
    unreachable_ns = cluster.state.agents[unreachable].unreachable_ns
    cluster.mark_gone(gone)
    cluster.disconnect_agent(spare)
    framework = cluster.state.frameworks[fid]

    def lost_unless_pa(state: int) -> int:
        return state if partition_aware else m.TASK_LOST

    cases: list[tuple[str, str | None, int, str]] = [
        ("known", active, m.TASK_RUNNING, "Reconciliation: Latest task state"),
        ("known", None, m.TASK_RUNNING, "Reconciliation: Latest task state"),
        ("partitioned", None, lost_unless_pa(m.TASK_UNREACHABLE), "Latest task state"),
        ("x", active, lost_unless_pa(m.TASK_GONE), "Task is unknown to the agent"),
        ("x", spare, lost_unless_pa(m.TASK_GONE), "Task is unknown to the agent"),
        ("x", unreachable, lost_unless_pa(m.TASK_UNREACHABLE), "unreachable"),
        ("x", gone, lost_unless_pa(m.TASK_GONE_BY_OPERATOR), "marked gone"),
        ("x", "no-such-agent", lost_unless_pa(m.TASK_UNKNOWN), "Task is unknown"),
        ("x", None, lost_unless_pa(m.TASK_UNKNOWN), "Task is unknown"),
    ]
    replies = reconcile(cluster.state, framework, [(t, a) for t, a, _, _ in cases])
    assert len(replies) == len(cases)
    for reply, (task_id, agent_id, state, message) in zip(replies, cases, strict=True):
        assert reply.task_id.value == task_id
        assert reply.state == state, (task_id, agent_id, m.TaskState.Name(reply.state))
        assert message in reply.message
        assert reply.reason == Reason.REASON_RECONCILIATION
        assert reply.source == Reason.SOURCE_MASTER and not reply.HasField("uuid")
        if agent_id is not None:
            assert reply.agent_id.value == agent_id
        if partition_aware and reply.state == m.TASK_UNREACHABLE:
            assert reply.unreachable_time.nanoseconds == unreachable_ns


def test_no_reply_while_the_agent_is_recovering() -> None:
    cluster, agent, fid = running(partition_aware=True)
    other = cluster.add_agent("h2")
    cluster.elect()
    framework = cluster.state.frameworks[fid]
    # Its agent has not re-registered: nothing; no agent named and any agent pending: nothing.
    assert reconcile(cluster.state, framework, [("x", agent), ("x", None)]) == []
    assert cluster.kill(fid, "x") == []
    # A known task still gets its latest state.
    assert [r.state for r in reconcile(cluster.state, framework, [("t1", agent)])] == [
        m.TASK_RUNNING
    ]
    cluster.reregister_agent(agent, report_known_tasks=True)
    assert reconcile(cluster.state, framework, [("x", agent)])[0].state == m.TASK_GONE
    assert reconcile(cluster.state, framework, [("x", None)]) == []  # `other` still pending
    cluster.reregister_agent(other)
    assert reconcile(cluster.state, framework, [("x", None)])[0].state == m.TASK_UNKNOWN
