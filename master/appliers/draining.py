"""Agent deactivation and draining: Mesos's DEACTIVATE_AGENT, REACTIVATE_AGENT and
DRAIN_AGENT (master/http.cpp) and its checkAndTransitionDrainingAgent.

A deactivated agent makes no offers (its outstanding ones are rescinded) and keeps
its tasks. A drained one is deactivated too, and told to kill every task; once it is
registered with no task left (terminal updates acknowledged), it is DRAINED, or
marked gone when its drain says `mark_gone`.
"""

from __future__ import annotations

from meseta.master import ledger
from meseta.master.appliers.agents import mark_gone
from meseta.master.appliers.offers import remove_offers
from meseta.master.events import (
    AgentDeactivationChanged,
    AgentDrainRequested,
    CommandRejected,
    DomainEvent,
)
from meseta.master.state import REGISTERED_AGENT, Agent, AgentStatus, State
from meseta.master.v1 import commands_pb2
from meseta.proto.mesos.v1 import mesos_pb2

Out = list[DomainEvent]

# Agents Mesos knows as recovered, registered or unreachable: the ones these calls take.
KNOWN = (
    AgentStatus.ACTIVE,
    AgentStatus.DISCONNECTED,
    AgentStatus.RECOVERING,
    AgentStatus.UNREACHABLE,
)
DRAINING_CAPABILITY = mesos_pb2.AgentInfo.Capability.AGENT_DRAINING


def deactivate_agent(state: State, command: commands_pb2.DeactivateAgent, out: Out) -> None:
    agent = known_agent(state, command.agent_id, "deactivate_agent", out)
    if agent is None:
        return
    deactivate(state, agent, out)
    changed(agent, out)


def reactivate_agent(state: State, command: commands_pb2.ReactivateAgent, out: Out) -> None:
    agent = state.agents.get(command.agent_id)
    if agent is None or not agent.deactivated:
        out.append(CommandRejected("reactivate_agent", "Agent is not deactivated", 400))
        return
    if agent.drain is not None and agent.drain.state == mesos_pb2.DRAINING:
        why = "Agent is still in the DRAINING state"
        out.append(CommandRejected("reactivate_agent", why, 400))
        return
    agent.deactivated, agent.drain, agent.drain_started_ns = False, None, 0
    ledger.mark_dirty(state, agent.id)  # it may make offers again
    changed(agent, out)


def drain_agent(state: State, command: commands_pb2.DrainAgent, out: Out) -> None:
    agent = known_agent(state, command.agent_id, "drain_agent", out)
    if agent is None:
        return
    if agent.status in REGISTERED_AGENT and DRAINING_CAPABILITY not in agent.capabilities:
        why = f"Agent {agent.id} is not capable of draining"
        out.append(CommandRejected("drain_agent", why, 400))
        return
    agent.drain = mesos_pb2.DrainInfo(state=mesos_pb2.DRAINING, config=command.config)
    state.draining_agents[agent.id] = None
    deactivate(state, agent, out)
    if agent.status in REGISTERED_AGENT:
        # An agent the master does not reach now is told when it re-registers.
        agent.drain_started_ns = state.now_ns
        out.append(AgentDrainRequested(agent.id, agent.drain.config))
    changed(agent, out)


def settle_drains(state: State, out: Out) -> None:
    """Move the DRAINING agents that are registered with no task left on: DRAINED, or
    gone when their drain says so. Runs after every entry while any agent drains."""
    for agent_id in list(state.draining_agents):
        agent = state.agents[agent_id]
        drain = agent.drain
        if drain is None or agent.status not in REGISTERED_AGENT or agent.tasks:
            continue
        del state.draining_agents[agent_id]
        if drain.config.mark_gone:
            mark_gone(state, agent, out)
        else:
            agent.drain = mesos_pb2.DrainInfo(state=mesos_pb2.DRAINED, config=drain.config)
            changed(agent, out)


def known_agent(state: State, agent_id: str, call: str, out: Out) -> Agent | None:
    agent = state.agents.get(agent_id)
    if agent is None or agent.status not in KNOWN:
        out.append(CommandRejected(call, "Unknown agent", 400))
        return None
    return agent


def deactivate(state: State, agent: Agent, out: Out) -> None:
    agent.deactivated = True
    remove_offers(state, list(agent.offers), "rescinded", True, out)


def changed(agent: Agent, out: Out) -> None:
    out.append(
        AgentDeactivationChanged(agent.id, agent.deactivated, agent.drain, agent.drain_started_ns)
    )
