"""Maintenance primitives in the fold: the schedule, inverse offers, machines DOWN and UP."""

from __future__ import annotations

from support.fold_cluster import NS_PER_S, Cluster, of_type, one

from meseta.master.events import (
    AgentRegistrationRejected,
    CommandRejected,
    InverseOfferRemoved,
    InverseOffersCreated,
    MaintenanceChanged,
    OfferRemoved,
    OffersCreated,
    TaskStatusUpdated,
)
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m
from meseta.proto.mesos.v1.allocator import allocator_pb2 as a
from meseta.proto.mesos.v1.maintenance import maintenance_pb2 as mt

START_NS = 4_102_444_800 * NS_PER_S


def machine(hostname: str = "h1", ip: str = "") -> m.MachineID:
    out = m.MachineID(hostname=hostname)
    if ip:
        out.ip = ip
    return out


def schedule(*machines: m.MachineID, start_ns: int = START_NS) -> mt.Schedule:
    out = mt.Schedule()
    if machines:
        window = out.windows.add(machine_ids=list(machines))
        window.unavailability.start.nanoseconds = start_ns
        window.unavailability.duration.nanoseconds = 3600 * NS_PER_S
    return out


def post_schedule(cluster: Cluster, given: mt.Schedule) -> list[object]:
    body = c.UpdateMaintenanceSchedule(schedule=given)
    return list(cluster.run(update_maintenance_schedule=body))


def respond(
    cluster: Cluster, fid: str, ids: list[str], accept: bool, refuse_s: float | None = None
) -> list[object]:
    body = c.RespondToInverseOffers(framework_id=fid, inverse_offer_ids=ids, accept=accept)
    if refuse_s is not None:
        body.filters.refuse_seconds = refuse_s
    return list(cluster.run(respond_to_inverse_offers=body))


def setup() -> tuple[Cluster, str, str, str]:
    """An agent on machine h1 running a task of `fid`, and an idle framework."""
    cluster = Cluster()
    agent = cluster.add_agent("H1")  # hostnames compare without case
    fid = cluster.add_framework("busy")
    cluster.start_task(fid, agent, "t1")
    idle = cluster.add_framework("idle")
    return cluster, agent, fid, idle


def test_a_scheduled_machine_asks_its_frameworks_back_and_offers_with_its_window() -> None:
    cluster, agent, fid, idle = setup()
    offer_id = cluster.add_offer(idle, agent)
    events = post_schedule(cluster, schedule(machine("h1")))
    removed = one(events, OfferRemoved)
    assert (removed.offer_id, removed.rescind) == (offer_id, True)
    # Both hold resources on the agent? Only `fid` now (the offer went): one inverse offer.
    (created,) = of_type(events, InverseOffersCreated)
    (inverse,) = created.inverse_offers
    assert (created.framework_id, inverse.agent_id) == (fid, agent)
    assert inverse.unavailability.start.nanoseconds == START_NS
    status = one(events, MaintenanceChanged).status
    assert [d.id.hostname for d in status.draining_machines] == ["h1"]
    # New offers carry the window; an idle framework holding an offer is asked too.
    events = cluster.offer(idle, agent)
    offer = one(events, OffersCreated).offers[0]
    assert offer.unavailability is not None
    assert offer.unavailability.start.nanoseconds == START_NS
    assert one(events, InverseOffersCreated).framework_id == idle


def test_answers_are_kept_and_filters_hold_inverse_offers_back() -> None:
    cluster, _agent, fid, _ = setup()
    events = post_schedule(cluster, schedule(machine("h1")))
    inverse = one(events, InverseOffersCreated).inverse_offers[0]
    events = respond(cluster, fid, [inverse.id], accept=True, refuse_s=10)
    assert one(events, InverseOfferRemoved).rescind is False
    (draining,) = one(events, MaintenanceChanged).status.draining_machines
    (answer,) = draining.statuses
    assert (answer.status, answer.framework_id.value) == (a.InverseOfferStatus.ACCEPT, fid)
    # Refused for 10 s: none until then, then another.
    assert not of_type(cluster.tick(5 * NS_PER_S), InverseOffersCreated)
    again = one(cluster.tick(6 * NS_PER_S), InverseOffersCreated).inverse_offers[0]
    # Without a filter the next one comes at once (Mesos's allocator does the same).
    events = respond(cluster, fid, [again.id], accept=False)
    assert one(events, InverseOffersCreated).framework_id == fid
    # Unknown or someone else's ids are dropped.
    assert not of_type(respond(cluster, fid, ["nope"], accept=True), InverseOfferRemoved)


def test_a_new_window_rescinds_inverse_offers_and_forgets_answers() -> None:
    cluster, agent, fid, _ = setup()
    inverse = one(post_schedule(cluster, schedule(machine("h1"))), InverseOffersCreated)
    respond(cluster, fid, [inverse.inverse_offers[0].id], accept=True, refuse_s=0)
    events = post_schedule(cluster, schedule(machine("h1"), start_ns=START_NS + NS_PER_S))
    status = one(events, MaintenanceChanged).status
    assert not status.draining_machines[0].statuses
    renewed = one(events, InverseOffersCreated).inverse_offers[0]
    assert renewed.unavailability.start.nanoseconds == START_NS + NS_PER_S
    # Leaving the schedule (UP): its inverse offer is rescinded, offers lose the window.
    events = post_schedule(cluster, schedule())
    assert one(events, InverseOfferRemoved).rescind is True
    assert not cluster.state.machines and not cluster.state.inverse_offers
    idle = cluster.add_framework("other")
    assert one(cluster.offer(idle, agent), OffersCreated).offers[0].unavailability is None


def test_a_disconnected_framework_loses_its_inverse_offers_quietly() -> None:
    cluster, _, fid, _ = setup()
    post_schedule(cluster, schedule(machine("h1")))
    events = cluster.disconnect_framework(fid)
    assert one(events, InverseOfferRemoved).rescind is False
    assert not cluster.state.inverse_offers


def test_down_removes_the_agents_and_keeps_them_out_until_up() -> None:
    cluster, agent, _fid, _ = setup()
    host = machine("h1")
    rejected = one(
        cluster.run(start_maintenance=c.StartMaintenance(machines=[host])), CommandRejected
    )
    assert rejected.message == 'Machine \'{"hostname":"h1"}\' is not part of a maintenance schedule'
    post_schedule(cluster, schedule(host))
    events = cluster.run(start_maintenance=c.StartMaintenance(machines=[host]))
    lost = one(events, TaskStatusUpdated)
    assert (lost.state, lost.status.message) == (
        m.TASK_LOST,
        "Agent H1 removed: Operator initiated 'Machine DOWN'",
    )
    assert one(events, MaintenanceChanged).status.down_machines[0].hostname == "h1"
    # Its agents may not come back, nor may new ones register there, until it is UP.
    refused = one(cluster.reregister_agent(agent), AgentRegistrationRejected)
    assert refused.message in ("Machine is `DOWN`", f"Agent {agent} has been removed")
    refused = one(cluster.register_agent("h1", port=5052), AgentRegistrationRejected)
    assert (refused.message, refused.shutdown) == ("Machine is `DOWN`", True)
    # A DOWN machine stays on the schedule; DOWN again or UP twice is refused.
    rejected = one(post_schedule(cluster, schedule()), CommandRejected)
    assert rejected.message.endswith("is deactivated and cannot be removed from the schedule")
    rejected = one(
        cluster.run(start_maintenance=c.StartMaintenance(machines=[host])), CommandRejected
    )
    assert rejected.message.endswith("is not in DRAINING mode and cannot be brought down")
    events = cluster.run(stop_maintenance=c.StopMaintenance(machines=[host]))
    assert not of_type(events, CommandRejected)
    assert not cluster.state.machines and not cluster.state.schedule.windows
    assert not of_type(cluster.register_agent("h1", port=5052), AgentRegistrationRejected)
    rejected = one(
        cluster.run(stop_maintenance=c.StopMaintenance(machines=[host])), CommandRejected
    )
    assert rejected.message.endswith("is not part of a maintenance schedule")


def test_schedules_and_machine_lists_are_checked_as_mesos_checks_them() -> None:
    cluster = Cluster()
    twice = schedule(machine("a"), machine("A"))
    empty_window = mt.Schedule()
    empty_window.windows.add().unavailability.start.nanoseconds = 1
    negative = schedule(machine("a"))
    negative.windows[0].unavailability.duration.nanoseconds = -1
    for given, message in [
        (twice, 'Machine \'{"hostname":"A"}\' appears more than once in the schedule'),
        (empty_window, "List of machines in the maintenance window is empty"),
        (negative, "Unavailability 'duration' is negative"),
        (schedule(m.MachineID()), "Both 'hostname' and 'ip' for a machine are empty"),
        (schedule(machine("a", ip="::1")), "Failed to parse IPv4: ::1"),
    ]:
        assert one(post_schedule(cluster, given), CommandRejected).message == message
    rejected = one(cluster.run(stop_maintenance=c.StopMaintenance()), CommandRejected)
    assert rejected.message == "List of machines is empty"


def test_inverse_offers_unanswered_for_the_offer_timeout_are_rescinded_and_made_again() -> None:
    cluster = Cluster(offer_timeout_ns=10 * NS_PER_S)
    agent = cluster.add_agent("h1")
    fid = cluster.add_framework("busy")
    cluster.start_task(fid, agent, "t1")
    first = one(post_schedule(cluster, schedule(machine("h1"))), InverseOffersCreated)
    assert not of_type(cluster.tick(5 * NS_PER_S), InverseOfferRemoved)
    events = cluster.tick(5 * NS_PER_S)
    removed = one(events, InverseOfferRemoved)
    assert (removed.inverse_offer_id, removed.rescind) == (first.inverse_offers[0].id, True)
    # As from Mesos's allocator: with no filter, the framework is asked again at once.
    again = one(events, InverseOffersCreated).inverse_offers[0]
    assert again.id != first.inverse_offers[0].id
    # A refusal's expired filter is forgotten when the next inverse offer is made.
    respond(cluster, fid, [again.id], accept=False, refuse_s=1)
    assert agent in cluster.state.frameworks[fid].inverse_filters
    assert one(cluster.tick(2 * NS_PER_S), InverseOffersCreated).framework_id == fid
    assert not cluster.state.frameworks[fid].inverse_filters
