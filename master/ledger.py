"""Who holds which resources: the allocation books every applier keeps balanced.

Offers, tasks and executors hold resources on an agent for a (framework,
role). Holding and releasing go through these two functions so the agent's,
the framework's and the role's totals always agree (`invariants.check`).
"""

from __future__ import annotations

from meseta.master.resources import EMPTY, Resources
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
    if not resources:
        return
    agent.allocated = agent.allocated + resources
    resources = scalars(resources)
    totals = framework.allocated
    put_total(totals, role, totals.get(role, EMPTY) + resources)
    totals = state.role_allocated
    put_total(totals, role, totals.get(role, EMPTY) + resources)


def release(
    state: State, agent: Agent, framework: Framework | None, role: str, resources: Resources
) -> None:
    if not resources:
        return
    agent.allocated = agent.allocated - resources
    resources = scalars(resources)
    if framework is not None:
        totals = framework.allocated
        put_total(totals, role, totals.get(role, EMPTY) - resources)
    totals = state.role_allocated
    put_total(totals, role, totals.get(role, EMPTY) - resources)
    mark_dirty(state, agent.id)


def put_total(totals: dict[str, Resources], role: str, total: Resources) -> None:
    """Store a role's new total; an emptied total leaves the books."""
    if total:
        totals[role] = total
    else:
        totals.pop(role, None)


def mark_dirty(state: State, agent_id: str) -> None:
    """The allocator should look at this agent again."""
    state.dirty_agents.pop(agent_id, None)  # re-insert: marks keep index order
    state.dirty_agents[agent_id] = state.applied_index


def mark_all_dirty(state: State) -> None:
    for agent_id in state.agents:
        mark_dirty(state, agent_id)
