"""Fold appliers for DEACTIVATE_AGENT, REACTIVATE_AGENT and DRAIN_AGENT (Mesos 1.9's agent
draining: master/http.cpp and checkAndTransitionDrainingAgent)."""

from __future__ import annotations

from support.fold_cluster import NS_PER_S, Cluster, names, of_type, one

from meseta.master.allocator import AllocatorConfig, allocate
from meseta.master.events import (
    AgentDeactivationChanged,
    AgentDrainRequested,
    AgentGone,
    AgentRegistered,
    CommandRejected,
    OfferRemoved,
    TaskCompleted,
    TaskStatusUpdated,
)
from meseta.master.state import AgentStatus
from meseta.proto.mesos.v1 import mesos_pb2 as m


def offered_agents(cluster: Cluster) -> list[str]:
    return [a.agent_id for a in allocate(cluster.state, cluster.now_ns, AllocatorConfig())]


def test_a_deactivated_agent_makes_no_offers_until_reactivated() -> None:
    cluster = Cluster()
    agent = cluster.add_agent("h1")
    fid = cluster.add_framework()
    cluster.start_task(fid, agent, "t1")
    offer_id = cluster.add_offer(fid, agent, resources="cpus:1")
    events = cluster.deactivate(agent)
    assert one(events, OfferRemoved).offer_id == offer_id and one(events, OfferRemoved).rescind
    changed = one(events, AgentDeactivationChanged)
    assert (changed.agent_id, changed.deactivated, changed.drain) == (agent, True, None)
    assert not of_type(events, TaskStatusUpdated)  # its tasks run on
    assert offered_agents(cluster) == []
    events = cluster.reactivate(agent)
    assert one(events, AgentDeactivationChanged).deactivated is False
    assert agent in cluster.state.dirty_agents  # the allocator looks at it again
    assert offered_agents(cluster) == [agent]


def test_deactivated_agents_stay_deactivated_through_a_leader_change() -> None:
    cluster = Cluster()
    agent = cluster.add_agent("h1")
    cluster.add_framework()
    cluster.deactivate(agent)
    cluster.elect()
    cluster.reregister_agent(agent)
    assert cluster.state.agents[agent].deactivated
    assert offered_agents(cluster) == []


def test_calls_on_unknown_agents_are_refused_as_mesos_refuses_them() -> None:
    cluster = Cluster()
    gone = cluster.add_agent("h1")
    cluster.mark_gone(gone)
    for events in (cluster.deactivate("nope"), cluster.drain("nope"), cluster.deactivate(gone)):
        rejected = one(events, CommandRejected)
        assert (rejected.status, rejected.message) == (400, "Unknown agent")
    active = cluster.add_agent("h2")
    rejected = one(cluster.reactivate(active), CommandRejected)
    assert (rejected.status, rejected.message) == (400, "Agent is not deactivated")
    old = cluster.add_agent("h3", capabilities=())
    rejected = one(cluster.drain(old), CommandRejected)
    assert rejected.message == f"Agent {old} is not capable of draining"
    assert not cluster.state.agents[old].deactivated


def test_a_drained_agent_is_drained_once_its_tasks_are_acknowledged() -> None:
    cluster = Cluster()
    agent = cluster.add_agent("h1")
    fid = cluster.add_framework()
    cluster.start_task(fid, agent, "t1")
    events = cluster.drain(agent, max_grace_ns=5 * NS_PER_S)
    requested = one(events, AgentDrainRequested)
    assert requested.config.max_grace_period.nanoseconds == 5 * NS_PER_S
    changed = one(events, AgentDeactivationChanged)
    assert changed.deactivated and changed.drain is not None
    assert changed.drain.state == m.DRAINING and changed.drain_started_ns == cluster.now_ns
    rejected = one(cluster.reactivate(agent), CommandRejected)
    assert rejected.message == "Agent is still in the DRAINING state"
    # The agent kills the task: DRAINED once the scheduler acknowledged the terminal update.
    assert not of_type(cluster.status(fid, agent, "t1", m.TASK_KILLED), AgentDeactivationChanged)
    events = cluster.ack(fid, agent, "t1")
    assert names(events)[-1] == "AgentDeactivationChanged"
    drained = one(events, AgentDeactivationChanged).drain
    assert drained is not None and drained.state == m.DRAINED
    assert not cluster.state.draining_agents
    assert offered_agents(cluster) == []  # still deactivated
    events = cluster.reactivate(agent)
    changed = one(events, AgentDeactivationChanged)
    assert (changed.deactivated, changed.drain, changed.drain_started_ns) == (False, None, 0)
    assert offered_agents(cluster) == [agent]


def test_an_agent_with_nothing_to_kill_is_drained_at_once() -> None:
    cluster = Cluster()
    agent = cluster.add_agent("h1")
    events = cluster.drain(agent)
    states = [e.drain.state for e in of_type(events, AgentDeactivationChanged) if e.drain]
    assert states == [m.DRAINING, m.DRAINED]


def test_a_drain_that_marks_gone_marks_the_agent_gone_when_drained() -> None:
    cluster = Cluster()
    agent = cluster.add_agent("h1")
    fid = cluster.add_framework(partition_aware=True)
    cluster.start_task(fid, agent, "t1")
    cluster.drain(agent, mark_gone=True)
    cluster.status(fid, agent, "t1", m.TASK_GONE_BY_OPERATOR)
    events = cluster.ack(fid, agent, "t1")
    assert one(events, TaskCompleted).task.task_id == "t1"
    assert one(events, AgentGone).agent_id == agent
    gone = cluster.state.agents[agent]
    assert gone.status is AgentStatus.GONE
    assert (gone.deactivated, gone.drain) == (False, None)


def test_an_unreachable_agent_is_told_to_drain_when_it_comes_back() -> None:
    cluster = Cluster()
    agent = cluster.add_agent("h1")
    fid = cluster.add_framework(checkpoint=True)
    cluster.start_task(fid, agent, "t1")
    cluster.mark_unreachable(agent)
    events = cluster.drain(agent)
    assert not of_type(events, AgentDrainRequested)
    assert one(events, AgentDeactivationChanged).drain_started_ns == 0
    events = cluster.reregister_agent(agent, report_known_tasks=True)
    assert names(events).index("AgentRegistered") < names(events).index("AgentDrainRequested")
    assert one(events, AgentRegistered).agent_id == agent
    assert cluster.state.agents[agent].drain is not None
    assert cluster.state.agents[agent].drain.state == m.DRAINING  # t1 still runs
