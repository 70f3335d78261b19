"""Invariants of the fold state, checked in tests after every entry.

`check(state)` returns every violation found (empty when healthy): the
allocation books balance, referenced objects exist in every index that
should hold them, and nothing holds more than an agent has. Totals over
several agents (per role, per framework role, the cluster) count scalars
only (`ledger.scalars`).
"""

from __future__ import annotations

from meseta.master.ledger import scalars
from meseta.master.resources import EMPTY, Resources
from meseta.master.state import REACHABLE_AGENT, State, is_terminal
from meseta.proto.mesos.v1.mesos_pb2 import DRAINING


def check(state: State) -> list[str]:
    return check_books(state) + check_references(state) + check_drains(state) + check_quotas(state)


def check_quotas(state: State) -> list[str]:
    """Quota sits on top-level roles only, and no guarantee exceeds its limit."""
    errors = []
    for role, quota in state.quotas.items():
        if "/" in role:
            errors.append(f"quota on nested role {role}")
        if not quota.guarantees and not quota.limits:
            errors.append(f"empty quota kept for role {role}")
        for name, amount in quota.guarantees.items():
            limit = quota.limits.get(name)
            if amount <= 0 or (limit is not None and amount > limit):
                errors.append(f"role {role}: guarantee {name} {amount} against limit {limit}")
    return errors


def check_drains(state: State) -> list[str]:
    """Deactivated agents make no offers; exactly the DRAINING agents are being drained."""
    errors = [
        f"deactivated agent {a.id} has offers"
        for a in state.agents.values()
        if a.deactivated and a.offers
    ]
    draining = [
        a.id for a in state.agents.values() if a.drain is not None and a.drain.state == DRAINING
    ]
    if sorted(draining) != sorted(state.draining_agents):
        errors.append(f"draining agents {list(state.draining_agents)} != DRAINING {draining}")
    errors += [
        f"agent {a.id} drains but is not deactivated"
        for a in state.agents.values()
        if a.drain is not None and not a.deactivated
    ]
    return errors


def add_to(books: dict[str, Resources], key: str, resources: Resources) -> None:
    books[key] = books.get(key, EMPTY) + resources


def check_books(state: State) -> list[str]:
    errors = []
    by_agent: dict[str, Resources] = {}
    by_framework_role: dict[str, Resources] = {}
    by_role: dict[str, Resources] = {}
    holdings = [(o.agent_id, o.framework_id, o.role, o.resources) for o in state.offers.values()]
    for agent in state.agents.values():
        for task in agent.tasks.values():
            if task.holds_resources:
                holdings.append((agent.id, task.framework_id, task.role, task.resources))
        for executor in agent.executors.values():
            holdings.append((agent.id, executor.framework_id, executor.role, executor.resources))
    for agent_id, framework_id, role, resources in holdings:
        add_to(by_agent, agent_id, resources)
        add_to(by_framework_role, f"{framework_id}|{role}", scalars(resources))
        add_to(by_role, role, scalars(resources))
    total = EMPTY
    for agent in state.agents.values():
        if agent.allocated != by_agent.get(agent.id, EMPTY):
            errors.append(
                f"agent {agent.id}: allocated {agent.allocated}"
                f" != holdings {by_agent.get(agent.id)}"
            )
        if not agent.total.contains(agent.allocated):
            errors.append(
                f"agent {agent.id}: allocated {agent.allocated} exceeds total {agent.total}"
            )
        if agent.status in REACHABLE_AGENT:
            total = total + scalars(agent.total)
    if total != state.cluster_total:
        errors.append(f"cluster total {state.cluster_total} != reachable agents {total}")
    for framework in state.frameworks.values():
        for role, held in framework.allocated.items():
            if held != by_framework_role.get(f"{framework.id}|{role}", EMPTY):
                errors.append(f"framework {framework.id} role {role}: books {held} disagree")
    for role, held in state.role_allocated.items():
        if held != by_role.get(role, EMPTY):
            errors.append(f"role {role}: books {held} != holdings {by_role.get(role)}")
    for role, held in by_role.items():
        if held and role not in state.role_allocated:
            errors.append(f"role {role}: holdings {held} missing from the books")
    return errors


def check_references(state: State) -> list[str]:
    errors = []
    for offer in state.offers.values():
        framework = state.frameworks.get(offer.framework_id)
        agent = state.agents.get(offer.agent_id)
        if framework is None or offer.id not in framework.offers:
            errors.append(f"offer {offer.id}: not on its framework")
        if agent is None or offer.id not in agent.offers:
            errors.append(f"offer {offer.id}: not on its agent")
    for framework in state.frameworks.values():
        for task_id, task in framework.tasks.items():
            agent = state.agents.get(task.agent_id)
            if agent is None or agent.tasks.get((framework.id, task_id)) is not task:
                errors.append(f"task {task_id}: not on its agent {task.agent_id}")
        for task_id, task in framework.unreachable_tasks.items():
            if task_id in framework.tasks:
                errors.append(f"task {task_id}: both active and unreachable")
            if task.holds_resources:
                errors.append(f"unreachable task {task_id} holds resources")
    for agent in state.agents.values():
        for (framework_id, task_id), task in agent.tasks.items():
            framework = state.frameworks.get(framework_id)
            if framework is None or framework.tasks.get(task_id) is not task:
                errors.append(f"task {task_id} on agent {agent.id}: not on its framework")
            if task.holds_resources and is_terminal(task.state):
                errors.append(f"terminal task {task_id} still holds resources")
    return errors
