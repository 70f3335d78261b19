"""The cluster view, fed the fold's domain events, agrees with the fold's own books.

Random but plausible workloads (tests/support/fold_workload.py) drive the fold;
after every entry the view must list the same tasks (active, unreachable) in
the same states, the same agents in the same status, the same offers, and the
same resources in use on every agent.
"""

from __future__ import annotations

import random

import pytest
from support.fold_cluster import Cluster
from support.fold_workload import Workload

from meseta.master.events import DomainEvent, LaunchRequested, TaskAdded
from meseta.master.quota import config_of
from meseta.master.state import Agent, AgentStatus, FrameworkStatus, State
from meseta.projections import records
from meseta.projections.cluster import ClusterView

STATUS = {
    AgentStatus.ACTIVE: records.ACTIVE,
    AgentStatus.DISCONNECTED: records.DISCONNECTED,
    AgentStatus.RECOVERING: records.RECOVERING,
    AgentStatus.UNREACHABLE: records.UNREACHABLE,
    AgentStatus.GONE: records.GONE,
    AgentStatus.REMOVED: records.REMOVED,
}


class Seen:
    """What the domain events announced. The fold adopts tasks and executors reported by a
    re-registering agent without an event (see test_adopted_tasks_reach_the_view)."""

    def __init__(self) -> None:
        self.tasks: set[tuple[str, str]] = set()
        self.executors: set[tuple[str, str]] = set()

    def note(self, events: list[DomainEvent]) -> None:
        for event in events:
            if isinstance(event, TaskAdded):
                self.tasks.add((event.task.framework_id, event.task.task_id))
            elif isinstance(event, LaunchRequested) and event.executor is not None:
                self.executors.add((event.framework_id, event.executor.executor_id.value))

    def announced(self, agent: Agent) -> bool:
        return all(key in self.tasks for key in agent.tasks) and all(
            key in self.executors for key in agent.executors
        )


def compare(state: State, view: ClusterView, seen: Seen) -> None:
    live = {f.id: f for f in state.frameworks.values() if f.status is not FrameworkStatus.REMOVED}
    assert list(view.frameworks) == list(live)
    for framework_id, framework in live.items():
        record = view.frameworks[framework_id]
        assert {
            t: task.state for t, task in framework.tasks.items() if (framework_id, t) in seen.tasks
        } == {t: task.state for t, task in record.tasks.items()}, framework_id
        assert list(framework.unreachable_tasks) == list(record.unreachable_tasks)
        assert list(framework.offers) == list(record.offers)
        assert record.active == framework.active
    assert view.quotas == {role: config_of(role, q) for role, q in state.quotas.items()}
    for agent_id, agent in state.agents.items():
        record = view.agents[agent_id]
        assert record.status == STATUS[agent.status], agent_id
        assert (record.deactivated, record.drain) == (agent.deactivated, agent.drain), agent_id
        assert record.drain_started_ns == agent.drain_started_ns, agent_id
        if agent.status is AgentStatus.ACTIVE and seen.announced(agent):
            # The fold books offers, tasks and executors together.
            assert record.used_total() + record.offered_total() == agent.allocated, agent_id
            assert list(record.executors) == list(agent.executors), agent_id
    assert sorted(view.offers) == sorted(state.offers)
    assert view.unplaced == {}  # resources of agent-less tasks only live within an entry


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_view_follows_the_fold(seed: int) -> None:
    rng = random.Random(seed)
    cluster = Cluster(check=False)
    view = ClusterView()
    seen = Seen()
    workload = Workload(cluster.state, rng)
    while cluster.index < 600:
        commands, advance_ns = workload.next_entry()
        events = cluster.batch(commands, advance_ns=advance_ns)
        seen.note(events)
        view.apply(cluster.index, events, cluster.now_ns)
        compare(cluster.state, view, seen)
    assert view.applied_index == cluster.index
