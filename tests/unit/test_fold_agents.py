"""Fold appliers for agents: register, re-register, disconnect, unreachable, gone,
unregister (7.2, 5.4)."""

from __future__ import annotations

import pytest
from support.fold_cluster import (
    AGENT_RESOURCES,
    NS_PER_S,
    Cluster,
    command,
    executor_info,
    names,
    of_type,
    one,
    resource_protos,
    task_info,
)

from meseta.master.appliers import agents
from meseta.master.events import (
    AgentDisconnected,
    AgentGone,
    AgentLost,
    AgentRegistered,
    AgentRegistrationRejected,
    AgentRemoved,
    AgentUnreachable,
    CommandRejected,
    FrameworkShutdownRequested,
    OfferRemoved,
    TaskCompleted,
    TasksReconcileRequested,
    TaskStatusUpdated,
)
from meseta.master.ids import agent_pid
from meseta.master.reconciliation import reconcile
from meseta.master.resources import parse
from meseta.master.state import AgentStatus
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m

Reason = m.TaskStatus
TIMEOUT_NS = 600 * NS_PER_S
TIMEOUT = "10mins"  # TIMEOUT_NS as Mesos writes it


def test_register_assigns_sequential_ids_and_counts_the_agent() -> None:
    cluster = Cluster()
    events = cluster.register_agent("h1", stream_id="as")
    registered = one(events, AgentRegistered)
    assert (registered.agent_id, registered.stream_id, registered.reregistered) == (
        "C-S0",
        "as",
        False,
    )
    assert registered.info.id.value == "C-S0"
    assert cluster.add_agent("h2") == "C-S1"
    agent = cluster.state.agents["C-S0"]
    assert agent.status is AgentStatus.ACTIVE and agent.hostname == "h1"
    assert agent.total == parse(AGENT_RESOURCES)
    assert cluster.state.cluster_total == parse("cpus:8;mem:2048")


def test_agents_keep_the_ip_they_registered_from() -> None:
    cluster = Cluster()
    info = m.AgentInfo(hostname="h1", port=5051)
    info.resources.extend(task_info("x", "", AGENT_RESOURCES).resources)
    events = cluster.run(
        register_agent=c.RegisterAgent(agent_info=info, stream_id="s", ip="10.0.0.7")
    )
    agent_id = one(events, AgentRegistered).agent_id
    assert one(events, AgentRegistered).ip == cluster.state.agents[agent_id].ip == "10.0.0.7"
    moved = c.ReregisterAgent(
        agent_info=cluster.state.agents[agent_id].info, stream_id="t", ip="10.0.0.8"
    )
    assert one(cluster.run(reregister_agent=moved), AgentRegistered).ip == "10.0.0.8"
    # Entries written before the ip was recorded name none (the pid falls back to the hostname).
    assert one(cluster.register_agent("h2"), AgentRegistered).ip == ""
    assert agent_pid("h2", "", 5051) == "slave(1)@h2:5051"
    assert agent_pid("h2", "fd00::7", 5051) == "slave(1)@[fd00::7]:5051"  # as libprocess writes


def test_register_with_bad_resources_is_rejected() -> None:
    cluster = Cluster()
    info = m.AgentInfo(hostname="h", port=1)
    info.resources.add(name="cpus", type=m.Value.SCALAR).scalar.value = -1
    events = cluster.run(register_agent=c.RegisterAgent(agent_info=info, stream_id="x"))
    rejected = one(events, AgentRegistrationRejected)
    assert rejected.stream_id == "x" and not rejected.shutdown  # the agent may try again
    assert not cluster.state.agents


def test_registration_at_the_same_address_removes_the_old_agent_as_mesos() -> None:
    """Mesos's registerSlave removes the agent at the new one's address (removeSlave):
    its tasks TASK_LOST / REASON_AGENT_REMOVED, partition-aware frameworks included."""
    cluster = Cluster()
    old = cluster.add_agent("h1", 5051)
    fid = cluster.add_framework(partition_aware=True)
    cluster.start_task(fid, old, "t1")
    offer_id = cluster.add_offer(fid, old, resources="cpus:1")
    events = cluster.register_agent("h1", 5051)
    new = one(events, AgentRegistered).agent_id
    assert new != old
    assert one(events, OfferRemoved).offer_id == offer_id
    lost = one(events, TaskStatusUpdated)
    assert lost.state == m.TASK_LOST and lost.status.reason == Reason.REASON_AGENT_REMOVED
    assert lost.status.message == "Agent h1 removed: a new agent registered at the same address"
    assert one(events, TaskCompleted).task.task_id == "t1"
    assert one(events, AgentRemoved).agent_id == old
    assert one(events, AgentRemoved).cause == "registered"
    assert one(events, AgentLost).agent_id == old
    assert cluster.state.agents[old].status is AgentStatus.REMOVED
    assert cluster.state.cluster_total == parse("cpus:4;mem:1024")
    # Same host, other port: a second agent.
    assert not of_type(cluster.register_agent("h1", 5052), AgentRemoved)


def test_a_schema_1_registration_keeps_its_meaning() -> None:
    """Entries are applied with the meaning of the schema they were written in: schema 1
    ended a replaced agent's tasks TASK_GONE / REASON_AGENT_RESTARTED."""
    cluster = Cluster()
    old = cluster.add_agent("h1", 5051)
    fid = cluster.add_framework(partition_aware=True)
    cluster.start_task(fid, old, "t1")
    info = m.AgentInfo(hostname="h1", port=5051)
    info.resources.extend(resource_protos(AGENT_RESOURCES))
    register = command(register_agent=c.RegisterAgent(agent_info=info, stream_id="s1"))
    events = cluster.apply(cluster.entry([register], schema_version=1))
    gone = one(events, TaskStatusUpdated)
    assert gone.state == m.TASK_GONE and gone.status.reason == Reason.REASON_AGENT_RESTARTED
    assert gone.status.message == "Agent replaced by a new agent at the same address"
    assert cluster.state.agents[old].status is AgentStatus.REMOVED
    assert cluster.state.schema_version == 1


def test_disconnect_loses_tasks_of_non_checkpointing_frameworks_only() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    plain = cluster.add_framework("plain", partition_aware=True)
    durable = cluster.add_framework("durable", checkpoint=True)
    cluster.start_task(plain, agent, "p1")
    cluster.start_task(durable, agent, "d1")
    offer_id = cluster.add_offer(durable, agent, resources="cpus:1")
    events = cluster.disconnect_agent(agent)
    removed = one(events, OfferRemoved)
    assert (removed.offer_id, removed.rescind) == (offer_id, True)
    lost = one(events, TaskStatusUpdated)
    # TASK_LOST even for a partition-aware framework (contract 5.4).
    assert (lost.task_id, lost.state) == ("p1", m.TASK_LOST)
    assert lost.status.reason == Reason.REASON_AGENT_DISCONNECTED
    assert lost.status.source == Reason.SOURCE_MASTER and not lost.status.uuid
    # Mesos removes the task at once: no acknowledgement will ever come for it.
    assert one(events, TaskCompleted).task.task_id == "p1"
    assert "p1" not in cluster.state.frameworks[plain].tasks
    assert one(events, AgentDisconnected).agent_id == agent
    assert cluster.state.agents[agent].status is AgentStatus.DISCONNECTED
    assert cluster.state.frameworks[durable].tasks["d1"].state == m.TASK_RUNNING
    assert cluster.state.agents[agent].allocated == parse("cpus:1;mem:128")
    assert agent in cluster.state.awaiting_agents


def test_disconnect_removes_executors_of_non_checkpointing_frameworks() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework()
    offer_id = cluster.add_offer(fid, agent)
    executor = executor_info("ex", "cpus:0.5;mem:32")
    cluster.launch(fid, [offer_id], [task_info("t1", agent, "cpus:1", executor=executor)])
    cluster.disconnect_agent(agent)
    assert not cluster.state.agents[agent].executors
    assert not cluster.state.agents[agent].allocated


def test_disconnect_of_a_stale_stream_is_ignored() -> None:
    cluster = Cluster()
    agent = cluster.add_agent(stream_id="first")
    cluster.reregister_agent(agent, stream_id="second")
    assert cluster.disconnect_agent(agent, stream_id="first") == []
    assert cluster.state.agents[agent].status is AgentStatus.ACTIVE


@pytest.mark.parametrize(
    ("partition_aware", "visible"), [(True, m.TASK_UNREACHABLE), (False, m.TASK_LOST)]
)
def test_reregistration_timeout_makes_the_agent_unreachable(
    partition_aware: bool, visible: int
) -> None:
    cluster = Cluster(agent_reregister_timeout_ns=TIMEOUT_NS)
    agent = cluster.add_agent()
    fid = cluster.add_framework(partition_aware=partition_aware, checkpoint=True)
    cluster.start_task(fid, agent, "t1")
    cluster.disconnect_agent(agent)
    assert cluster.tick(TIMEOUT_NS - 1) == []
    events = cluster.tick(1)
    update = one(events, TaskStatusUpdated)
    assert update.state == visible
    assert update.status.state == visible
    assert update.status.reason == Reason.REASON_AGENT_REMOVED
    assert update.status.message == f"agent did not reregister within {TIMEOUT} after disconnecting"
    assert update.status.unreachable_time.nanoseconds == cluster.now_ns
    assert names(events)[-2:] == ["AgentUnreachable", "AgentLost"]
    assert one(events, AgentUnreachable).agent_id == agent
    task = cluster.state.frameworks[fid].unreachable_tasks["t1"]
    assert task.state == m.TASK_UNREACHABLE and not task.holds_resources
    assert "t1" not in cluster.state.frameworks[fid].tasks
    assert cluster.state.agents[agent].status is AgentStatus.UNREACHABLE
    assert cluster.state.cluster_total == parse("")
    assert agent not in cluster.state.awaiting_agents


@pytest.mark.parametrize("partition_aware", [True, False])
def test_unreachable_agent_reregistering_brings_its_tasks_back(partition_aware: bool) -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(partition_aware=partition_aware, checkpoint=True)
    task = cluster.start_task(fid, agent, "t1")
    cluster.mark_unreachable(agent)
    events = cluster.reregister_agent(agent, report_known_tasks=True)
    back = one(events, TaskStatusUpdated)
    assert (back.task_id, back.state) == ("t1", m.TASK_RUNNING)
    assert back.status.reason == Reason.REASON_AGENT_REREGISTERED
    assert back.status.source == Reason.SOURCE_MASTER and not back.status.uuid
    assert one(events, AgentRegistered).reregistered
    assert cluster.state.frameworks[fid].tasks["t1"] is task
    assert not cluster.state.frameworks[fid].unreachable_tasks
    assert task.state == m.TASK_RUNNING and task.holds_resources
    assert cluster.state.agents[agent].allocated == parse("cpus:1;mem:128")
    assert cluster.state.cluster_total == parse("cpus:4;mem:1024")


def test_mark_gone_ends_tasks_and_forbids_reregistration() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    pa = cluster.add_framework("pa", partition_aware=True)
    legacy = cluster.add_framework("legacy")
    cluster.start_task(pa, agent, "t1")
    cluster.start_task(legacy, agent, "t2")
    events = cluster.mark_gone(agent)
    updates = {u.task_id: u for u in of_type(events, TaskStatusUpdated)}
    assert updates["t1"].state == m.TASK_GONE_BY_OPERATOR
    assert updates["t2"].state == m.TASK_LOST
    assert updates["t1"].status.reason == Reason.REASON_AGENT_REMOVED_BY_OPERATOR
    assert updates["t2"].status.reason == Reason.REASON_AGENT_REMOVED  # as Mesos does
    assert [e.task.task_id for e in of_type(events, TaskCompleted)] == ["t1", "t2"]
    assert names(events)[-2:] == ["AgentGone", "AgentLost"]
    assert cluster.state.agents[agent].status is AgentStatus.GONE
    assert not cluster.state.agents[agent].allocated
    rejected = one(cluster.reregister_agent(agent, stream_id="back"), AgentRegistrationRejected)
    assert rejected.stream_id == "back" and "marked gone" in rejected.message
    assert rejected.shutdown  # as Mesos: the agent is told to shut down, not to retry
    assert cluster.mark_gone(agent) == []
    assert of_type(cluster.mark_gone("nope"), CommandRejected)


def test_mark_gone_of_an_unreachable_agent_ends_its_unreachable_tasks() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(partition_aware=True)
    cluster.start_task(fid, agent, "t1")
    cluster.mark_unreachable(agent)
    events = cluster.mark_gone(agent)
    assert one(events, TaskStatusUpdated).state == m.TASK_GONE_BY_OPERATOR
    assert one(events, TaskCompleted).task.task_id == "t1"
    assert one(events, AgentGone).agent_id == agent
    assert not of_type(events, AgentLost)  # schedulers heard FAILURE when it became unreachable
    assert not cluster.state.frameworks[fid].unreachable_tasks


def test_unregister_removes_the_agent_and_loses_its_tasks_as_mesos() -> None:
    """Mesos's unregisterSlave -> _removeSlave: TASK_LOST with REASON_AGENT_REMOVED to every
    framework, partition-aware or not; the agent may not come back under its id."""
    cluster = Cluster()
    agent = cluster.add_agent("h1")
    other = cluster.add_agent("h2")
    pa = cluster.add_framework("pa", partition_aware=True)
    legacy = cluster.add_framework("legacy")
    cluster.start_task(pa, agent, "t1")
    cluster.start_task(legacy, agent, "t2")
    cluster.start_task(legacy, other, "t3")
    events = cluster.unregister(agent)
    updates = {u.task_id: u for u in of_type(events, TaskStatusUpdated)}
    assert sorted(updates) == ["t1", "t2"]
    for update in updates.values():
        assert update.state == m.TASK_LOST
        assert update.status.reason == Reason.REASON_AGENT_REMOVED
        assert update.status.source == Reason.SOURCE_MASTER
        assert update.status.message == "Agent h1 removed: the agent unregistered"
    assert [e.task.task_id for e in of_type(events, TaskCompleted)] == ["t1", "t2"]
    assert one(events, AgentRemoved).cause == "unregistered"
    assert names(events)[-2:] == ["AgentRemoved", "AgentLost"]
    assert cluster.state.agents[agent].status is AgentStatus.REMOVED
    assert not cluster.state.agents[agent].allocated
    assert cluster.state.cluster_total == parse("cpus:4;mem:1024")  # h2 alone
    assert cluster.state.frameworks[legacy].tasks.keys() == {"t3"}
    rejected = one(cluster.reregister_agent(agent, stream_id="back"), AgentRegistrationRejected)
    assert "has been removed" in rejected.message and rejected.shutdown


def test_unregister_of_an_agent_that_is_not_registered_is_refused() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    cluster.mark_unreachable(agent)
    for agent_id in (agent, "nope"):
        rejected = one(cluster.unregister(agent_id), CommandRejected)
        assert rejected.status == 404
        assert rejected.message == f"Agent '{agent_id}' is not registered"
    assert cluster.state.agents[agent].status is AgentStatus.UNREACHABLE


def orphan(name: str, fid: str, agent: str, resources: str, state: int) -> m.Task:
    report = m.Task(name=name, state=state)  # type: ignore[arg-type]
    report.task_id.value = name
    report.framework_id.value = fid
    report.agent_id.value = agent
    report.resources.extend(task_info(name, agent, resources).resources)
    return report


def test_reregistration_adopts_tasks_the_master_does_not_know() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework()
    reports = [
        orphan("a", fid, agent, "cpus:2", m.TASK_RUNNING),
        orphan("b", fid, agent, "cpus:1;mem:64", m.TASK_STAGING),
        orphan("done", fid, agent, "cpus:4", m.TASK_FINISHED),
    ]
    cluster.reregister_agent(agent, tasks=reports)
    tasks = cluster.state.frameworks[fid].tasks
    assert tasks["a"].state == m.TASK_RUNNING and tasks["a"].holds_resources
    assert not tasks["done"].holds_resources
    # Only the live tasks hold, on the agent and in the framework's and role's books.
    assert cluster.state.agents[agent].allocated == parse("cpus:3;mem:64")
    assert cluster.state.frameworks[fid].allocated == {"*": parse("cpus:3;mem:64")}
    assert cluster.state.role_allocated == {"*": parse("cpus:3;mem:64")}


def test_offers_overlapping_adopted_tasks_are_rescinded() -> None:
    """An agent that comes back reporting tasks the master did not know: offers made of
    what those tasks hold are rescinded, so the books never promise more than the agent has.
    Offers that still fit stay."""
    cluster = Cluster()
    agent = cluster.add_agent()  # cpus:4;mem:1024
    fid = cluster.add_framework()
    kept = cluster.add_offer(fid, agent, resources="cpus:1;mem:128")
    cluster.reregister_agent(agent, tasks=[orphan("a", fid, agent, "cpus:2", m.TASK_RUNNING)])
    assert list(cluster.state.agents[agent].offers) == [kept]
    whole = cluster.add_offer(fid, agent)  # everything left: cpus:1;mem:896
    events = cluster.reregister_agent(
        agent,
        tasks=[orphan("b", fid, agent, "cpus:0.5", m.TASK_RUNNING)],
        report_known_tasks=True,
    )
    removed = of_type(events, OfferRemoved)
    assert sorted(r.offer_id for r in removed) == sorted([kept, whole])
    assert all(r.rescind for r in removed)
    agent_state = cluster.state.agents[agent]
    assert not agent_state.offers and agent_state.allocated == parse("cpus:2.5")


def test_adopted_tasks_keep_what_their_report_tells_of_the_task_info() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework()
    report = orphan("web", fid, agent, "cpus:1", m.TASK_RUNNING)
    report.labels.labels.add(key="tier", value="front")
    report.discovery.visibility = m.DiscoveryInfo.FRAMEWORK
    report.discovery.name = "web"
    report.user = "nobody"
    report.kill_policy.grace_period.nanoseconds = 5
    report.limits["cpus"].value = 2.0
    cluster.reregister_agent(agent, tasks=[report])
    info = cluster.state.frameworks[fid].tasks["web"].info
    assert [(label.key, label.value) for label in info.labels.labels] == [("tier", "front")]
    assert (info.discovery.name, info.command.user) == ("web", "nobody")
    assert info.kill_policy.grace_period.nanoseconds == 5
    assert info.limits["cpus"].value == 2.0


def test_a_reported_task_info_holds_exactly_what_the_report_tells() -> None:
    """reported_info renumbers the report's fields; the result must be the TaskInfo that
    copying them one at a time gives, whatever else the report carries."""
    report = m.Task(name="web", state=m.TASK_RUNNING, user="nobody")
    report.task_id.value, report.framework_id.value, report.agent_id.value = "t", "f", "a"
    report.executor_id.value = "e"
    report.resources.extend(task_info("x", "a", "cpus:1;mem:32;ports:[31000-31001]").resources)
    report.statuses.add(state=m.TASK_RUNNING).task_id.value = "t"
    report.status_update_state = m.TASK_RUNNING
    report.status_update_uuid = b"u" * 16
    report.labels.labels.add(key="tier", value="front")
    report.discovery.visibility = m.DiscoveryInfo.FRAMEWORK
    report.container.type = m.ContainerInfo.MESOS
    report.health_check.type = m.HealthCheck.TCP
    report.health_check.tcp.port = 8080
    report.kill_policy.grace_period.nanoseconds = 5
    report.limits["cpus"].value = 2.0
    report.limits["mem"].value = 64.0
    expected = m.TaskInfo(name="web", task_id=report.task_id, agent_id=report.agent_id)
    expected.resources.extend(report.resources)
    for name in ("labels", "discovery", "container", "health_check", "kill_policy"):
        getattr(expected, name).CopyFrom(getattr(report, name))
    expected.command.user = "nobody"
    for name, scalar in report.limits.items():
        expected.limits[name].CopyFrom(scalar)
    assert agents.reported_info(report) == expected
    # A field a newer agent sends is not carried into the TaskInfo.
    newer = m.Task.FromString(report.SerializeToString() + b"\xc2\x3e\x03abc")
    assert agents.reported_info(newer) == expected
    bare = m.Task(name="b", state=m.TASK_STAGING)
    bare.task_id.value, bare.framework_id.value, bare.agent_id.value = "t2", "f", "a"
    assert agents.reported_info(bare) == m.TaskInfo(
        name="b", task_id=bare.task_id, agent_id=bare.agent_id
    )


def test_reregistration_asks_about_known_tasks_it_did_not_report() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(checkpoint=True)
    cluster.start_task(fid, agent, "t1")
    cluster.start_task(fid, agent, "t2")
    cluster.disconnect_agent(agent)
    known = cluster.state.frameworks[fid].tasks["t1"]
    events = cluster.reregister_agent(agent, tasks=[cluster.task_report(known)])
    assert one(events, TasksReconcileRequested) == TasksReconcileRequested(agent, fid, ("t2",))
    assert cluster.state.agents[agent].status is AgentStatus.ACTIVE


def test_reregistration_with_a_changed_address_is_rejected() -> None:
    cluster = Cluster()
    agent = cluster.add_agent("h1", 5051)
    info = m.AgentInfo()
    info.CopyFrom(cluster.state.agents[agent].info)
    info.port = 6000
    rejected = one(cluster.reregister_agent(agent, info=info), AgentRegistrationRejected)
    assert "hostname or port" in rejected.message
    assert rejected.shutdown


def test_unknown_agent_reregistering_is_admitted_with_its_own_id() -> None:
    cluster = Cluster()
    info = m.AgentInfo(hostname="h9", port=5051)
    info.id.value = "C-S0"
    info.resources.extend(task_info("x", "C-S0", AGENT_RESOURCES).resources)
    events = cluster.reregister_agent("C-S0", info=info)
    assert one(events, AgentRegistered).reregistered
    assert cluster.state.agents["C-S0"].status is AgentStatus.ACTIVE
    # The next registration must not reuse the id the newcomer brought along.
    assert cluster.add_agent("h10") == "C-S1"
    assert cluster.state.agents["C-S0"].hostname == "h9"
    # A new agent at its address replaces it, as one that registered there would be.
    assert one(cluster.register_agent("h9", 5051), AgentRemoved).agent_id == "C-S0"


def test_leader_change_puts_agents_into_recovery_until_they_reregister() -> None:
    cluster = Cluster(agent_reregister_timeout_ns=TIMEOUT_NS)
    a1, a2 = cluster.add_agent("h1"), cluster.add_agent("h2")
    fid = cluster.add_framework(checkpoint=True, partition_aware=True, failover_timeout=3600)
    cluster.start_task(fid, a2, "t1")
    cluster.add_offer(fid, a1)
    events = cluster.elect()
    assert names(events)[-1] == "LeaderElected"
    assert one(events, OfferRemoved).reason == "discarded"
    assert {a.status for a in cluster.state.agents.values()} == {AgentStatus.RECOVERING}
    assert cluster.state.cluster_total == parse("cpus:8;mem:2048")  # still counted
    cluster.reregister_agent(a1)
    assert cluster.state.agents[a1].status is AgentStatus.ACTIVE
    events = cluster.tick(TIMEOUT_NS)
    assert one(events, AgentUnreachable).agent_id == a2
    unreachable = one(events, TaskStatusUpdated)
    assert unreachable.state == m.TASK_UNREACHABLE
    assert (
        unreachable.status.message == f"did not reregister within {TIMEOUT} after master failover"
    )


def test_the_ping_monitor_says_why_and_older_entries_say_unreachable() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(checkpoint=True)
    cluster.start_task(fid, agent, "t1")
    why = c.MarkAgentUnreachable(agent_id=agent, message="health check timed out")
    assert one(cluster.run(mark_agent_unreachable=why), TaskStatusUpdated).status.message == (
        "health check timed out"
    )
    other = cluster.add_agent("h2")
    cluster.start_task(fid, other, "t2")
    update = one(cluster.mark_unreachable(other), TaskStatusUpdated)  # no message: older entry
    assert update.status.message == "Agent is unreachable"


def test_stale_leader_term_is_rejected() -> None:
    cluster = Cluster()
    assert of_type(cluster.elect(term=1), CommandRejected)


def test_books_over_agents_with_identical_port_ranges_stay_balanced() -> None:
    """Ranges are unions: totals over several agents must not lose a shared range."""
    cluster = Cluster()
    a1, a2 = cluster.add_agent("h1"), cluster.add_agent("h2")
    fid = cluster.add_framework()
    o1 = cluster.add_offer(fid, a1, resources="cpus:1;ports:[31000-31000]")
    cluster.add_offer(fid, a2, resources="cpus:1;ports:[31000-31000]")
    cluster.decline(fid, [o1])
    cluster.mark_gone(a1)
    assert cluster.state.cluster_total == parse("cpus:4;mem:1024")


def test_removed_framework_gets_shutdown_when_its_agent_returns() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(checkpoint=True)
    task = cluster.start_task(fid, agent, "t1")
    cluster.disconnect_agent(agent)
    cluster.teardown(fid)
    events = cluster.reregister_agent(agent, tasks=[cluster.task_report(task, m.TASK_RUNNING)])
    assert one(events, FrameworkShutdownRequested) == FrameworkShutdownRequested(agent, fid)
    assert not cluster.state.agents[agent].tasks


def test_an_unreachable_task_reported_by_another_agent_stays_where_it_was() -> None:
    cluster = Cluster()
    home, other = cluster.add_agent("h1"), cluster.add_agent("h2")
    fid = cluster.add_framework(partition_aware=True)
    task = cluster.start_task(fid, home, "t1")
    cluster.mark_unreachable(home)
    report = cluster.task_report(task, m.TASK_RUNNING)
    report.agent_id.value = other
    events = cluster.reregister_agent(other, tasks=[report])
    assert not of_type(events, TaskStatusUpdated)
    assert cluster.state.frameworks[fid].unreachable_tasks["t1"] is task
    assert "t1" not in cluster.state.frameworks[fid].tasks
    assert not cluster.state.agents[other].tasks


def test_reconciliation_of_an_unreachable_task_says_unreachable_not_its_last_update() -> None:
    cluster = Cluster()
    agent = cluster.add_agent()
    fid = cluster.add_framework(partition_aware=True)
    task = cluster.start_task(fid, agent, "t1")
    assert task.status_update_state == m.TASK_RUNNING
    cluster.mark_unreachable(agent)
    update = one(cluster.kill(fid, "elsewhere"), TaskStatusUpdated)  # unknown: TASK_UNKNOWN
    assert update.state == m.TASK_UNKNOWN
    (reply,) = reconcile(cluster.state, cluster.state.frameworks[fid], [("t1", agent)])
    assert reply.state == m.TASK_UNREACHABLE
    assert reply.unreachable_time.nanoseconds == cluster.state.agents[agent].unreachable_ns
