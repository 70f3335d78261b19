"""Who holds which resources: the allocation books every applier keeps balanced.

Offers, tasks and executors hold resources on an agent for a (framework,
role). Holding and releasing go through these two functions so the agent's,
the framework's and the role's totals always agree (`invariants.check`).
"""

from __future__ import annotations

from meseta.master.resources import Resources
from meseta.master.state import Agent, Framework, State


def scalars(resources: Resources) -> Resources:
    """The scalar part: what totals over several agents can hold.

    Ranges and sets add as unions, so two agents' identical port ranges would
    sum to one range and releasing either would drop both; totals across
    agents (per framework role, per role, the cluster) keep scalars only, as
    Mesos's DRF sorter does.
    """
    items = resources.items
    for quantity in items.values():
        if type(quantity) is not int:
            return Resources({k: q for k, q in items.items() if type(q) is int})
    return resources


def hold(state: State, agent: Agent, framework: Framework, role: str, resources: Resources) -> None:
    if not resources.items:  # not `resources`: __bool__ is a Python call, this runs per hold
        return
    agent.allocated = agent.allocated + resources
    resources = scalars(resources)
    if resources.items:
        add_total(framework.allocated, role, resources)
        add_total(state.role_allocated, role, resources)


def release(
    state: State, agent: Agent, framework: Framework | None, role: str, resources: Resources
) -> None:
    if not resources.items:
        return
    agent.allocated = agent.allocated - resources
    resources = scalars(resources)
    if resources.items:
        if framework is not None:
            subtract_total(framework.allocated, role, resources)
        subtract_total(state.role_allocated, role, resources)
    mark_dirty(state, agent.id)


def add_total(totals: dict[str, Resources], role: str, resources: Resources) -> None:
    """Add non-empty scalars to a role's total (a sum of non-empty scalars is never empty)."""
    total = totals.get(role)
    totals[role] = resources if total is None else total + resources


def subtract_total(totals: dict[str, Resources], role: str, resources: Resources) -> None:
    """Take scalars from a role's total; an emptied total leaves the books."""
    total = totals.get(role)
    if total is None:
        return
    total = total - resources
    if total.items:
        totals[role] = total
    else:
        del totals[role]


def mark_dirty(state: State, agent_id: str) -> None:
    """The allocator should look at this agent again."""
    state.dirty_agents.pop(agent_id, None)  # re-insert: marks keep index order
    state.dirty_agents[agent_id] = state.applied_index


def mark_all_dirty(state: State) -> None:
    for agent_id in state.agents:
        mark_dirty(state, agent_id)
