"""The fold: `apply(state, entry, index)` -> domain events. Pure and deterministic.

Each entry's body is a CommandBatch; each command goes to the one applier
registered for its `oneof` case. Invalid commands yield rejection events,
never exceptions; an exception here is a bug and stops the replica
(fail-stop: the caller must not retry or skip the entry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meseta.log.v1.entries_pb2 import Entry
from meseta.master.appliers import (
    agents,
    cluster,
    draining,
    frameworks,
    maintenance,
    offers,
    reservations,
    tasks,
)
from meseta.master.decide import SCHEMA_VERSION
from meseta.master.events import CommandRejected, DomainEvent
from meseta.master.state import State
from meseta.master.v1 import commands_pb2

# Proposal ids remembered for deduplication, counted in entries.
DEDUP_WINDOW = 100_000
# Ids older than the window are forgotten at every multiple of this index: a
# function of the index alone, so every replica forgets the same ids. (Popping
# the oldest id per entry made each pop scan the dict's deleted slots: a
# replay slowed down a hundredfold once the window was full.)
FORGET_EVERY = 4096

Applier = Callable[[State, Any, list[DomainEvent]], None]

APPLIERS: dict[str, Applier] = {
    "init_cluster": cluster.init_cluster,
    "elect_leader": cluster.elect_leader,
    "tick": cluster.tick,
    "update_weights": cluster.update_weights,
    "update_quota": cluster.update_quota,
    "subscribe_framework": frameworks.subscribe_framework,
    "disconnect_framework": frameworks.disconnect_framework,
    "teardown_framework": frameworks.teardown_framework,
    "update_framework": frameworks.update_framework,
    "revive_offers": frameworks.revive_offers,
    "suppress_offers": frameworks.suppress_offers,
    "create_offers": offers.create_offers,
    "accept_offers": offers.accept_offers,
    "decline_offers": offers.decline_offers,
    "rescind_offers": offers.rescind_offers,
    "kill_task": tasks.kill_task,
    "update_task_status": tasks.update_task_status,
    "acknowledge_task_status": tasks.acknowledge_task_status,
    "shutdown_executor": tasks.shutdown_executor,
    "exit_executor": tasks.exit_executor,
    "register_agent": agents.register_agent,
    "reregister_agent": agents.reregister_agent,
    "disconnect_agent": agents.disconnect_agent,
    "mark_agent_unreachable": agents.mark_agent_unreachable,
    "mark_agent_gone": agents.mark_agent_gone,
    "unregister_agent": agents.unregister_agent,
    "deactivate_agent": draining.deactivate_agent,
    "reactivate_agent": draining.reactivate_agent,
    "drain_agent": draining.drain_agent,
    "apply_resource_operation": reservations.apply_resource_operation,
    "update_maintenance_schedule": maintenance.update_maintenance_schedule,
    "start_maintenance": maintenance.start_maintenance,
    "stop_maintenance": maintenance.stop_maintenance,
    "respond_to_inverse_offers": maintenance.respond_to_inverse_offers,
}


def compiled() -> bool:
    """Whether the fold runs compiled by mypyc (a wheel install, see setup.py) or interpreted."""
    return not __file__.endswith(".py")


class UnknownCommand(Exception):
    """An entry this replica cannot understand and may not skip: stop and upgrade."""


def decode(entry: Entry) -> commands_pb2.CommandBatch:
    batch = commands_pb2.CommandBatch()
    batch.ParseFromString(entry.events)
    return batch


def apply(state: State, entry: Entry, index: int) -> list[DomainEvent]:
    """Apply one committed entry at `index`; return what happened, in order."""
    header = entry.header
    state.applied_index = index
    timestamp_ns = header.timestamp_ns
    if timestamp_ns > state.now_ns:
        state.now_ns = timestamp_ns
    ignorable = header.ignorable_if_unknown
    schema_version = header.schema_version
    if schema_version > SCHEMA_VERSION and not ignorable:
        raise UnknownCommand(f"entry {index} has schema version {schema_version}")
    state.schema_version = schema_version
    proposal_id = header.proposal_id
    if proposal_id:
        seen = state.recent_proposals.get(proposal_id)
        if seen is not None and seen > index - DEDUP_WINDOW:
            return []
        remember_proposal(state, proposal_id, index)
    out: list[DomainEvent] = []
    proposer_term = header.proposer_term
    if proposer_term and proposer_term < state.leader_term:
        # Proposed by a deposed leader that had not heard of its successor.
        out.append(CommandRejected("entry", f"Stale proposer term {proposer_term}"))
        return out
    appliers = APPLIERS
    for command in decode(entry).commands:
        # The common case inline (this loop runs for every command of every entry);
        # apply_command handles unknown commands and an uninitialized cluster.
        case = command.WhichOneof("body")
        applier = appliers.get(case) if case else None
        if applier is None or not state.cluster_id:
            apply_command(state, command, ignorable, index, out)
        else:
            applier(state, getattr(command, case), out)
    if state.draining_agents:
        draining.settle_drains(state, out)
    if state.machines or state.inverse_offers:
        maintenance.settle_inverse_offers(state, out)
    return out


def apply_command(
    state: State,
    command: commands_pb2.Command,
    ignorable: bool,
    index: int,
    out: list[DomainEvent],
) -> None:
    case = command.WhichOneof("body")
    applier = APPLIERS.get(case) if case else None
    if applier is None:
        if ignorable:
            return
        raise UnknownCommand(f"entry {index} holds a command this replica does not know")
    if not state.cluster_id and case != "init_cluster":
        out.append(CommandRejected(case or "", "The cluster is not initialized"))
        return
    applier(state, getattr(command, case), out)


def remember_proposal(state: State, proposal_id: bytes, index: int) -> None:
    """Remember an applied id; a duplicate is one applied within the last DEDUP_WINDOW entries."""
    recent = state.recent_proposals
    recent.pop(proposal_id, None)  # re-applied after the window: keep index order
    recent[proposal_id] = index
    if index % FORGET_EVERY == 0:
        horizon = index - DEDUP_WINDOW
        state.recent_proposals = {pid: seen for pid, seen in recent.items() if seen > horizon}
