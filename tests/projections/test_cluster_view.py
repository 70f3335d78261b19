"""Folding domain events into the cluster view: operator events, bounds, unreachable tasks.

The fold is driven with tests/support/fold_cluster.py and every entry's events
go into the view, as a replica's fold listener does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.fold_cluster import (
    AGENT_RESOURCES,
    Cluster,
    framework_info,
    resource_protos,
    task_info,
)

from meseta.api import mesos_json
from meseta.api import state_json as sj
from meseta.master.events import DomainEvent
from meseta.master.v1 import commands_pb2 as c
from meseta.projections import metrics
from meseta.projections.cluster import ClusterView, equivalent_info
from meseta.projections.records import UNREACHABLE
from meseta.projections.store import ViewStore
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.master import master_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

Event = master_pb2.Event
AgentCapability = mesos_pb2.AgentInfo.Capability


class Fed:
    """A fold cluster whose every entry also goes into a view."""

    def __init__(self, **view_options: Any) -> None:
        self.cluster = Cluster()
        self.view = ClusterView(**view_options)
        self.feed(self.cluster.index)

    def feed(self, up_to: int) -> list[Event]:
        out: list[Event] = []
        for index in range(self.view.applied_index + 1, up_to + 1):
            events = self.outcomes.pop(index, [])
            out += self.view.apply(index, events, self.cluster.now_ns)
        return out

    @property
    def outcomes(self) -> dict[int, list[DomainEvent]]:
        return self.__dict__.setdefault("_outcomes", {})

    def run(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, list[Event]]:
        """Call a Cluster helper; return its result and the operator events of its entries."""
        start = self.cluster.index
        original = self.cluster.apply

        def recording(entry: Any) -> list[DomainEvent]:
            events = original(entry)
            self.outcomes[self.cluster.index] = events
            return events

        self.cluster.apply = recording  # type: ignore[method-assign]
        try:
            result = getattr(self.cluster, method)(*args, **kwargs)
        finally:
            self.cluster.apply = original  # type: ignore[method-assign]
        assert self.cluster.index > start
        return result, self.feed(self.cluster.index)


def kinds(events: list[Event]) -> list[str]:
    return [Event.Type.Name(event.type) for event in events]


def launched(fed: Fed, **framework: Any) -> tuple[str, str, str]:
    agent_id, events = fed.run("add_agent")
    assert kinds(events) == ["AGENT_ADDED"]
    assert events[0].agent_added.agent.agent_info.id.value == agent_id
    framework_id, events = fed.run("add_framework", **framework)
    assert kinds(events) == ["FRAMEWORK_ADDED"]
    _, events = fed.run("start_task", framework_id, agent_id, "t1", running=False)
    assert kinds(events) == ["TASK_ADDED"]
    assert events[0].task_added.task.state == mesos_pb2.TASK_STAGING
    return agent_id, framework_id, "t1"


def test_lifecycle_produces_operator_events() -> None:
    fed = Fed()
    agent_id, framework_id, task_id = launched(fed)
    view = fed.view
    assert view.agents[agent_id].used_total().scalar("cpus") == 1000
    _, events = fed.run("status", framework_id, agent_id, task_id, mesos_pb2.TASK_RUNNING)
    assert kinds(events) == ["TASK_UPDATED"]
    assert events[0].task_updated.state == mesos_pb2.TASK_RUNNING
    assert events[0].task_updated.framework_id.value == framework_id
    # A repeated update with the same state changes nothing an operator sees.
    _, events = fed.run("status", framework_id, agent_id, task_id, mesos_pb2.TASK_RUNNING)
    assert events == []
    record = view.frameworks[framework_id].tasks[task_id]
    assert [s.state for s in record.proto.statuses] == [mesos_pb2.TASK_RUNNING]
    assert view.task_states == {mesos_pb2.TASK_RUNNING: 1}
    # Per-framework counters (Mesos's master/frameworks/<name>/<id>/*) ...
    counted = view.counters.frameworks[framework_id]
    assert counted == {"offers/sent": 1, "offers/accepted": 1, "operations/launch": 1}
    _, events = fed.run("teardown", framework_id)
    assert kinds(events) == ["TASK_UPDATED", "FRAMEWORK_REMOVED"]
    assert events[1].framework_removed.framework_info.id.value == framework_id
    assert view.frameworks == {}
    (completed,) = view.completed_frameworks
    assert [t.proto.state for t in completed.completed_tasks] == [mesos_pb2.TASK_KILLED]
    assert view.agents[agent_id].used == {}
    assert view.counters.terminal_tasks == {mesos_pb2.TASK_KILLED: 1}
    assert framework_id not in view.counters.frameworks  # ... leave with the framework


def test_get_state_is_the_entities_protobufs() -> None:
    fed = Fed()
    agent_id, framework_id, task_id = launched(fed)
    state = fed.view.get_state()
    (task,) = state.get_tasks.tasks
    assert task == fed.view.frameworks[framework_id].tasks[task_id].proto
    (agent,) = state.get_agents.agents
    assert agent == fed.view.agents[agent_id].proto()
    (framework,) = state.get_frameworks.frameworks
    assert framework.framework_info.id.value == framework_id
    assert framework.allocated_resources  # the task's cpus and mem
    assert state.HasField("get_executors")


def test_every_new_status_state_is_an_operator_event_as_in_mesos() -> None:
    """Mesos sends TASK_UPDATED for every new state in a task's status history, not only when
    the task's state changes: a RUNNING the agent sends after the task already ended (with
    latest_state FINISHED), then the FINISHED itself, are two events."""
    fed = Fed()
    agent_id, framework_id, task_id = launched(fed)
    finished = mesos_pb2.TASK_FINISHED
    _, events = fed.run(
        "status", framework_id, agent_id, task_id, mesos_pb2.TASK_RUNNING, latest_state=finished
    )
    assert kinds(events) == ["TASK_UPDATED"]
    assert events[0].task_updated.state == finished
    assert events[0].task_updated.status.state == mesos_pb2.TASK_RUNNING
    _, events = fed.run("status", framework_id, agent_id, task_id, finished)
    assert kinds(events) == ["TASK_UPDATED"]
    assert (events[0].task_updated.state, events[0].task_updated.status.state) == (finished,) * 2
    _, events = fed.run("status", framework_id, agent_id, task_id, finished)  # a retry
    assert events == []


def test_completed_tasks_are_bounded_per_framework() -> None:
    fed = Fed(max_completed_tasks_per_framework=3)
    agent_id, _ = fed.run("add_agent")
    framework_id, _ = fed.run("add_framework")
    for number in range(5):
        task_id = f"t{number}"
        fed.run("start_task", framework_id, agent_id, task_id)
        fed.run("status", framework_id, agent_id, task_id, mesos_pb2.TASK_FINISHED)
        fed.run("ack", framework_id, agent_id, task_id)
    framework = fed.view.frameworks[framework_id]
    assert [t.proto.task_id.value for t in framework.completed_tasks] == ["t2", "t3", "t4"]
    assert framework.tasks == {}
    assert fed.view.counters.terminal_tasks == {mesos_pb2.TASK_FINISHED: 5}


def test_completed_frameworks_are_bounded() -> None:
    fed = Fed(max_completed_frameworks=2)
    ids = [fed.run("add_framework", name=f"fw{n}")[0] for n in range(3)]
    for framework_id in ids:
        fed.run("teardown", framework_id)
    assert [f.id for f in fed.view.completed_frameworks] == ids[1:]


def test_unreachable_agent_tasks_and_return() -> None:
    fed = Fed()
    agent_id, framework_id, task_id = launched(fed, partition_aware=True)
    fed.run("status", framework_id, agent_id, task_id, mesos_pb2.TASK_RUNNING)
    _, events = fed.run("mark_unreachable", agent_id)
    assert kinds(events) == ["TASK_UPDATED"]  # no AGENT_REMOVED for unreachable agents
    view = fed.view
    framework = view.frameworks[framework_id]
    assert list(framework.unreachable_tasks) == [task_id] and framework.tasks == {}
    assert framework.unreachable_tasks[task_id].state == mesos_pb2.TASK_UNREACHABLE
    assert view.agents[agent_id].status == UNREACHABLE
    assert view.registered_agents() == []
    assert framework.used == {}
    task = fed.cluster.state.frameworks[framework_id].unreachable_tasks[task_id]
    report = fed.cluster.task_report(task, mesos_pb2.TASK_RUNNING)
    _, events = fed.run("reregister_agent", agent_id, tasks=[report])
    assert kinds(events) == ["TASK_UPDATED", "AGENT_ADDED"]
    assert list(framework.tasks) == [task_id] and framework.unreachable_tasks == {}
    assert framework.tasks[task_id].state == mesos_pb2.TASK_RUNNING
    assert framework.used_total().scalar("cpus") == 1000


def test_agent_added_only_when_mesos_would_add_the_agent() -> None:
    """AGENT_ADDED comes from Mesos's addSlave: not for an agent that reconnects to the same
    leader, but for one a new leader recovered (listed under recovered_agents till then)."""
    fed = Fed()
    agent_id, _ = fed.run("add_agent")
    fed.run("disconnect_agent", agent_id)
    _, events = fed.run("reregister_agent", agent_id)
    assert kinds(events) == []
    fed.run("elect")
    assert [a.id for a in fed.view.recovered_agents()] == [agent_id]
    _, events = fed.run("reregister_agent", agent_id)
    assert kinds(events) == ["AGENT_ADDED"]


def test_frameworks_are_recovered_after_a_leader_change_until_they_resubscribe() -> None:
    """Mesos's RECOVERED framework: known from before the leader change, not subscribed
    with the new leader yet (inactive, disconnected); subscribing ends it."""
    fed = Fed()
    framework_id, _ = fed.run("add_framework")
    record = fed.view.frameworks[framework_id]

    def flags() -> tuple[bool, bool, bool]:
        proto = record.proto()
        summary = sj.framework_summary(record)
        assert (summary["active"], summary["connected"], summary["recovered"]) == (
            proto.active, proto.connected, proto.recovered,
        )  # fmt: skip
        return proto.active, proto.connected, proto.recovered

    assert flags() == (True, True, False)
    fed.run("elect")
    assert flags() == (False, False, True)
    _, events = fed.run("resubscribe", framework_id)
    assert kinds(events) == ["FRAMEWORK_UPDATED"]
    assert events[0].framework_updated.framework.recovered is False
    assert flags() == (True, True, False)
    fed.run("disconnect_framework", framework_id)
    assert flags() == (False, False, False)  # disconnected from this leader: not recovered


def test_entries_at_or_below_the_applied_index_are_skipped() -> None:
    fed = Fed()
    launched(fed)
    view = fed.view
    before = view.applied_index
    assert view.apply(before, [], 1) == []
    assert view.applied_index == before and view.now_ns != 1


def test_adopted_tasks_reach_the_view() -> None:
    fed = Fed()
    framework_id, _ = fed.run("add_framework")
    report = mesos_pb2.Task(name="adopted", state=mesos_pb2.TASK_RUNNING)
    report.task_id.value = "adopted"
    report.framework_id.value = framework_id
    report.agent_id.value = "C-S77"
    info = mesos_pb2.AgentInfo(hostname="h9", port=5051)
    info.id.value = "C-S77"
    _, events = fed.run("reregister_agent", "C-S77", tasks=[report], info=info)
    assert kinds(events) == ["TASK_ADDED", "AGENT_ADDED"]
    assert list(fed.view.frameworks[framework_id].tasks) == ["adopted"]


def test_agent_version_capabilities_and_offer_constraints_reach_every_read(
    tmp_path: Path,
) -> None:
    """What agents and frameworks say at (re-)registration shows in GetAgents/GetFrameworks,
    /state and the operator events, and survives a restart from the view store."""
    fed = Fed()
    fed.view.track()
    info = mesos_pb2.AgentInfo(hostname="h9", port=5051)
    info.resources.extend(resource_protos(AGENT_RESOURCES))
    capabilities = [AgentCapability.MULTI_ROLE, AgentCapability.AGENT_DRAINING]
    _, events = fed.run(
        "run",
        register_agent=c.RegisterAgent(
            agent_info=info,
            stream_id="agent-stream-v",
            version="1.11.0",
            capabilities=[mesos_pb2.AgentInfo.Capability(type=t) for t in capabilities],
            ip="10.0.0.7",
        ),
    )
    added = events[0].agent_added.agent
    assert added.version == "1.11.0"
    assert added.pid == "slave(1)@10.0.0.7:5051"  # an IP, not the hostname h9
    assert [c.type for c in added.capabilities] == capabilities
    constraints = scheduler_pb2.OfferConstraints()
    group = constraints.role_constraints["*"].groups.add()
    rack = group.attribute_constraints.add()
    rack.selector.attribute_name = "rack"
    rack.predicate.text_equals.value = "r1"
    _, events = fed.run(
        "run",
        subscribe_framework=c.SubscribeFramework(
            framework_info=framework_info("fw"),
            stream_id="framework-stream-v",
            offer_constraints=constraints,
        ),
    )
    assert events[0].framework_added.framework.offer_constraints == constraints

    def documents(view: ClusterView) -> tuple[dict[str, Any], dict[str, Any]]:
        (agent,) = view.registered_agents()
        (framework,) = view.frameworks.values()
        assert agent.proto().version == "1.11.0"
        assert framework.proto().offer_constraints == constraints
        return sj.agent_dict(agent), sj.framework_fields(framework)

    weights = c.UpdateWeights(weight_infos=[mesos_pb2.WeightInfo(role="*", weight=2.5)])
    fed.run("run", update_weights=weights)
    assert [(r.name, r.weight) for r in fed.view.role_protos()] == [("*", 2.5)]
    agent_doc, framework_doc = documents(fed.view)
    assert agent_doc["version"] == "1.11.0"
    assert agent_doc["pid"] == "slave(1)@10.0.0.7:5051"
    assert agent_doc["capabilities"] == ["MULTI_ROLE", "AGENT_DRAINING"]
    assert framework_doc["offer_constraints"] == mesos_json.to_dict(constraints)
    restarted = reloaded(fed.view, tmp_path)
    assert documents(restarted) == (agent_doc, framework_doc)
    assert restarted.weights == {"*": 2500}

    # UPDATE_FRAMEWORK without constraints drops them. As in Mesos, subscribers hear of it
    # only when the FrameworkInfo itself changed (roles and capabilities in any order).
    (framework_id,) = fed.view.frameworks
    updated = mesos_pb2.FrameworkInfo()
    updated.CopyFrom(fed.cluster.state.frameworks[framework_id].info)
    _, events = fed.run("run", update_framework=c.UpdateFramework(framework_info=updated))
    assert events == []
    assert not fed.view.frameworks[framework_id].proto().HasField("offer_constraints")
    assert sj.framework_fields(fed.view.frameworks[framework_id])["offer_constraints"] == {}
    updated.name = "renamed"
    _, events = fed.run("run", update_framework=c.UpdateFramework(framework_info=updated))
    assert kinds(events) == ["FRAMEWORK_UPDATED"]
    assert events[0].framework_updated.framework.framework_info.name == "renamed"


def test_framework_infos_compare_as_mesos_compares_them() -> None:
    def info(*roles: str, capabilities: tuple[int, ...] = ()) -> mesos_pb2.FrameworkInfo:
        made = mesos_pb2.FrameworkInfo(user="u", name="n", roles=roles)
        for kind in capabilities:
            made.capabilities.add(type=kind)
        return made

    multi, pa = (
        mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE,
        mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE,
    )
    assert equivalent_info(
        info("a", "b", capabilities=(multi, pa)), info("b", "a", capabilities=(pa, multi))
    )
    assert not equivalent_info(info("a"), info("a", "b"))
    explicit = info("a")
    explicit.failover_timeout = 0.0  # set to its default: a difference, as for Mesos's differencer
    assert not equivalent_info(info("a"), explicit)


def test_a_refused_duplicate_launch_leaves_the_booked_task_alone() -> None:
    """The TASK_ERROR of a launch refused for its duplicate id goes to the scheduler only:
    the booked task with that id stays as it was, with no TASK_UPDATED (as Mesos)."""
    fed = Fed()
    agent_id, framework_id, task_id = launched(fed)
    offer_id, _ = fed.run("add_offer", framework_id, agent_id)
    _, events = fed.run(
        "launch", framework_id, [offer_id], [task_info(task_id, agent_id, "cpus:1")]
    )
    assert "TASK_UPDATED" not in kinds(events)
    record = fed.view.frameworks[framework_id].tasks[task_id]
    assert record.state == mesos_pb2.TASK_STAGING
    assert fed.cluster.state.frameworks[framework_id].tasks[task_id].state == record.state
    figures = metrics.snapshot(fed.view, elected=True, uptime_s=1.0)
    assert figures["master/tasks_error"] == 1 and figures["master/tasks_staging"] == 1


def test_terminal_updates_count_by_state_source_and_reason_as_mesos_names_them() -> None:
    fed = Fed()
    agent_id, framework_id, task_id = launched(fed)
    # A launch the fold refuses never joins the books; Mesos counts it all the same.
    offer_id, _ = fed.run("add_offer", framework_id, agent_id)
    bad = task_info(task_id, agent_id, "cpus:1")  # a duplicate task id
    fed.run("launch", framework_id, [offer_id], [bad])
    failed = mesos_pb2.TaskStatus(
        state=mesos_pb2.TASK_FAILED,
        source=mesos_pb2.TaskStatus.SOURCE_AGENT,
        reason=mesos_pb2.TaskStatus.REASON_AGENT_RESTARTED,
        uuid=b"u1",
    )
    failed.task_id.value = task_id
    update = c.UpdateTaskStatus(agent_id=agent_id, framework_id=framework_id, status=failed)
    fed.run("run", update_task_status=update)
    figures = metrics.snapshot(fed.view, elected=True, uptime_s=1.0)
    assert figures["master/tasks_error"] == 1 and figures["master/tasks_failed"] == 1
    assert figures["master/task_error/source_master/reason_task_invalid"] == 1
    assert figures["master/task_failed/source_slave/reason_slave_restarted"] == 1  # v0 names
    # An answer to reconciliation is no task ending (Mesos does not count it).
    fed.run("run", kill_task=c.KillTask(framework_id=framework_id, task_id="never-launched"))
    again = metrics.snapshot(fed.view, elected=True, uptime_s=1.0)
    assert {k: v for k, v in again.items() if "task" in k} == {
        k: v for k, v in figures.items() if "task" in k
    }


def test_drains_recovered_frameworks_and_quotas_survive_a_restart(tmp_path: Path) -> None:
    fed = Fed()
    fed.view.track()
    draining, _ = fed.run("add_agent", "h1")
    fed.run("add_agent", "h2")
    framework_id, _ = fed.run("add_framework")
    fed.run("start_task", framework_id, draining, "t1")
    fed.run("drain", draining, max_grace_ns=10**9)
    fed.run("set_quota", "dev", guarantees={"cpus": 1}, limits={"cpus": 2})
    fed.run("elect")
    restarted = reloaded(fed.view, tmp_path)
    agent = restarted.agents[draining]
    assert agent.deactivated and agent.drain is not None and agent.drain.state == mesos_pb2.DRAINING
    assert agent.drain_started_ns == fed.view.agents[draining].drain_started_ns > 0
    assert restarted.frameworks[framework_id].recovered
    assert restarted.quotas == fed.view.quotas and list(restarted.quotas) == ["dev"]
    assert sj.agent_dict(agent) == sj.agent_dict(fed.view.agents[draining])


def reloaded(view: ClusterView, tmp_path: Path) -> ClusterView:
    """`view` saved to a view store and loaded back into a new view."""
    store = ViewStore(tmp_path / "views")
    try:
        store.save(view)
        restarted = ClusterView()
        assert store.load(restarted)
    finally:
        store.close()
    return restarted
