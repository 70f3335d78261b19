"""Dynamic reservations and persistent volumes in the fold: RESERVE, UNRESERVE, CREATE and
DESTROY inside ACCEPT, and the operator's calls (contract 2.5, 4.1)."""

from __future__ import annotations

import pytest
from support.fold_cluster import Cluster, Operation, of_type, one, task_info
from support.fold_operations import create_op, destroy_op, operate, reserve_op, unreserve_op

from meseta.master.allocator import AllocatorConfig, allocate
from meseta.master.events import (
    AgentResourcesChanged,
    CommandRejected,
    FrameworkSubscribed,
    OfferRemoved,
    OffersCreated,
    OperationStatusUpdated,
    TaskAdded,
    TaskStatusUpdated,
)
from meseta.master.operations import OperationError, conversion
from meseta.master.resources import format_resources, from_protos, parse, to_protos
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m

DYNAMIC = m.Resource.ReservationInfo.DYNAMIC


def reserved(
    text: str,
    role: str,
    principal: str | None = "ops",
    labels: dict[str, str] | None = None,
    allocated: bool = False,
) -> list[m.Resource]:
    """`text` dynamically reserved for `role` (refined format)."""
    out = to_protos(parse(text))
    for resource in out:
        reservation = resource.reservations.add(type=DYNAMIC, role=role)
        if principal is not None:
            reservation.principal = principal
        for key, value in (labels or {}).items():
            reservation.labels.labels.add(key=key, value=value)
        if allocated:
            resource.allocation_info.role = role
    return out


def volume(
    size_mb: int, role: str, persistence_id: str, path: str = "data", principal: str = "ops"
) -> list[m.Resource]:
    (disk,) = reserved(f"disk:{size_mb}", role, principal)
    disk.disk.persistence.id = persistence_id
    disk.disk.persistence.principal = principal
    disk.disk.volume.container_path = path
    disk.disk.volume.mode = m.Volume.RW
    return [disk]


def setup(principal: str | None = "ops") -> tuple[Cluster, str, str]:
    cluster = Cluster()
    agent = cluster.add_agent(resources="cpus:4;mem:1024;disk:2048")
    fid = cluster.add_framework(role="web", principal=principal)
    return cluster, agent, fid


def total(cluster: Cluster, agent: str) -> str:
    return format_resources(cluster.state.agents[agent].total)


def test_a_framework_reserves_launches_on_the_reservation_and_gets_it_offered_back() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent, role="web")
    mine = reserved("cpus:1;mem:128", "web", labels={"app": "db"})
    task = task_info("t1", agent, "cpus:0.5;mem:64")
    task.ClearField("resources")
    task.resources.extend(reserved("cpus:0.5;mem:64", "web", labels={"app": "db"}))
    launch = Operation(type=Operation.LAUNCH)
    launch.launch.task_infos.append(task)
    events = cluster.accept(fid, [offer_id], [reserve_op(mine), launch], refuse_seconds=0)
    assert one(events, TaskAdded).task.task_id == "t1"
    changed = one(events, AgentResourcesChanged)
    assert changed.total == parse("cpus:3;mem:896;disk:2048") + from_protos(mine)
    assert total(cluster, agent) == (
        "cpus:3;cpus(web, ops, {app: db}):1;disk:2048;mem:896;mem(web, ops, {app: db}):128"
    )
    # What the task does not use comes back in the next offer, reservation and all.
    offered = one(cluster.offer(fid, agent, role="web"), OffersCreated).offers[0].resources
    assert offered.contains(from_protos(reserved("cpus:0.5;mem:64", "web", labels={"app": "db"})))
    protos = to_protos(offered, allocation_role="web")
    dynamic = [r for r in protos if r.reservations]
    assert dynamic and all(r.reservations[-1].principal == "ops" for r in dynamic)
    assert all(r.reservations[-1].labels.labels[0].key == "app" for r in dynamic)


def test_reserved_resources_are_offered_only_to_their_role() -> None:
    cluster, agent, fid = setup()
    operate(cluster, agent, reserve_op(reserved("cpus:1", "web")))
    other = cluster.add_framework("other", role="batch")
    theirs = one(cluster.offer(other, agent, role="batch"), OffersCreated).offers[0]
    assert theirs.resources == parse("cpus:3;mem:1024;disk:2048")
    # An offer decision that names another role's reservation is stale and dropped.
    decision = cluster.decision(
        fid, agent, role="batch", resources=from_protos(reserved("cpus:1", "web"))
    )
    assert not of_type(cluster.create_offers([decision]), OffersCreated)


def test_invalid_reservations_in_accept_are_dropped_and_the_pool_returns() -> None:
    cluster, agent, fid = setup(principal="ops")
    cases = [
        (reserved("cpus:1", "web", principal=None), "no principal set"),
        (reserved("cpus:1", "web", principal="eve"), "which does not match"),
        (reserved("cpus:1", "batch"), "but the resource was allocated to role 'web'"),
        (to_protos(parse("cpus:1")), "is not dynamically reserved"),
        (reserved("cpus:9", "web"), "does not contain"),
    ]
    for n, (resources, message) in enumerate(cases):
        offer_id = cluster.add_offer(fid, agent, role="web")
        # Without an id the operation is dropped silently, as in Mesos; with one the
        # scheduler hears why (feedback itself needs resource providers).
        events = cluster.accept(fid, [offer_id], [reserve_op(resources)], refuse_seconds=0)
        assert not of_type(events, AgentResourcesChanged), message
        assert total(cluster, agent) == "cpus:4;disk:2048;mem:1024"
        status = one(
            cluster.accept(
                fid,
                [cluster.add_offer(fid, agent, role="web")],
                [reserve_op(resources, op_id=f"op{n}")],
                refuse_seconds=0,
            ),
            OperationStatusUpdated,
        ).status
        assert status.state == m.OPERATION_ERROR
        assert "RESOURCE_PROVIDER capability" in status.message


def test_unreserve_gives_the_resources_back_to_everyone() -> None:
    cluster, agent, fid = setup()
    mine = reserved("cpus:2", "web")
    operate(cluster, agent, reserve_op(mine))
    offer_id = cluster.add_offer(fid, agent, role="web")
    events = cluster.accept(fid, [offer_id], [unreserve_op(mine)], refuse_seconds=0)
    assert one(events, AgentResourcesChanged).total == parse("cpus:4;mem:1024;disk:2048")
    assert total(cluster, agent) == "cpus:4;disk:2048;mem:1024"


def test_volumes_are_created_used_whole_and_destroyed_when_unused() -> None:
    cluster, agent, fid = setup()
    operate(cluster, agent, reserve_op(reserved("disk:512", "web")))
    data = volume(512, "web", "vol-1")
    offer_id = cluster.add_offer(fid, agent, role="web")
    events = cluster.accept(fid, [offer_id], [create_op(data)], refuse_seconds=0)
    assert from_protos(data).items.keys() <= one(events, AgentResourcesChanged).total.items.keys()
    # A task takes the whole volume (a part of it is not there to take).
    part = task_info("part", agent, "cpus:0.1")
    part.resources.extend(volume(256, "web", "vol-1"))
    offer_id = cluster.add_offer(fid, agent, role="web")
    refused = one(cluster.launch(fid, [offer_id], [part]), TaskStatusUpdated)
    assert refused.state == m.TASK_ERROR
    whole = task_info("whole", agent, "cpus:0.1")
    whole.resources.extend(data)
    offer_id = cluster.add_offer(fid, agent, role="web")
    assert one(cluster.launch(fid, [offer_id], [whole], refuse_seconds=0), TaskAdded)
    # In use: DESTROY is refused, by an operator too.
    rejected = one(operate(cluster, agent, destroy_op(data)), CommandRejected)
    assert (rejected.status, rejected.message) == (
        400,
        "Invalid DESTROY operation: Persistent volumes in use",
    )
    cluster.status(fid, agent, "whole", m.TASK_RUNNING)
    cluster.status(fid, agent, "whole", m.TASK_FINISHED)
    events = operate(cluster, agent, destroy_op(data))
    assert not of_type(events, CommandRejected)
    assert total(cluster, agent) == "cpus:4;disk:1536;disk(web, ops):512;mem:1024"


def test_persistence_ids_are_unique_per_role_on_an_agent() -> None:
    cluster, agent, _ = setup()
    operate(cluster, agent, reserve_op(reserved("disk:1024", "web")))
    assert not of_type(operate(cluster, agent, create_op(volume(512, "web", "v"))), CommandRejected)
    rejected = one(operate(cluster, agent, create_op(volume(512, "web", "v"))), CommandRejected)
    assert rejected.message.endswith("Persistence ID 'v' is not unique")
    assert rejected.message.startswith("Invalid CREATE operation on agent C-S0 at ")


def test_operator_reservations_rescind_offers_only_when_needed() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent, role="web", resources="cpus:2;mem:512")
    # Enough is unallocated: the offer stays.
    events = operate(cluster, agent, reserve_op(reserved("cpus:1", "web")))
    assert not of_type(events, OfferRemoved)
    assert offer_id in cluster.state.offers
    # Not enough: the offer goes (rescinded, its resources filtered for its framework).
    events = operate(cluster, agent, reserve_op(reserved("cpus:2", "web")))
    removed = one(events, OfferRemoved)
    assert (removed.offer_id, removed.rescind) == (offer_id, True)
    assert one(events, AgentResourcesChanged)
    assert total(cluster, agent) == "cpus:1;cpus(web, ops):3;disk:2048;mem:1024"
    assert (agent, "web") in cluster.state.frameworks[fid].filters


def test_operator_calls_are_refused_with_mesos_statuses() -> None:
    cluster, agent, _ = setup()
    rejected = one(operate(cluster, "nope", reserve_op(reserved("cpus:1", "web"))), CommandRejected)
    assert (rejected.status, rejected.message) == (400, "No agent found with specified ID")
    rejected = one(operate(cluster, agent, reserve_op(reserved("cpus:8", "web"))), CommandRejected)
    assert rejected.status == 409
    assert rejected.message == "cpus:4;disk:2048;mem:1024 does not contain cpus:8"
    allocated = reserved("cpus:1", "web", allocated=True)
    rejected = one(operate(cluster, agent, reserve_op(allocated)), CommandRejected)
    assert rejected.status == 400 and "only allows reservations to be made to unallocated" in (
        rejected.message
    )
    rejected = one(
        operate(cluster, agent, unreserve_op(to_protos(parse("cpus:1")))), CommandRejected
    )
    assert (
        rejected.message == "Invalid UNRESERVE operation: Resource cpus is not dynamically reserved"
    )
    bad = reserved("cpus:1", "web")
    bad[0].reservations[0].role = "*"
    rejected = one(operate(cluster, agent, reserve_op(bad)), CommandRejected)
    assert rejected.message.endswith(
        'Invalid resources: Invalid reservation: role "*" cannot be reserved'
    )
    assert total(cluster, agent) == "cpus:4;disk:2048;mem:1024"


def test_reservations_and_volumes_survive_the_agent_reregistering() -> None:
    cluster, agent, _ = setup()
    operate(cluster, agent, reserve_op(reserved("cpus:1;disk:512", "web")))
    operate(cluster, agent, create_op(volume(512, "web", "keep")))
    before = cluster.state.agents[agent].total
    cluster.disconnect_agent(agent)
    events = cluster.reregister_agent(agent)
    assert one(events, AgentResourcesChanged).total == before
    assert cluster.state.agents[agent].total == before
    # An agent may not declare what only operations make.
    info = m.AgentInfo(hostname="h2", port=5051)
    info.resources.extend(reserved("cpus:1", "web"))
    refused = cluster.run(register_agent=c.RegisterAgent(agent_info=info, stream_id="s-x"))
    assert "cannot declare dynamically reserved resources" in str(refused)


def test_reserve_with_a_source_refines_a_reservation() -> None:
    cluster, agent, _ = setup()
    operate(cluster, agent, reserve_op(reserved("cpus:2", "web")))
    refined = reserved("cpus:2", "web")
    refined[0].reservations.add(type=DYNAMIC, role="web/api", principal="ops")
    operation = reserve_op(refined)
    operation.reserve.source.extend(reserved("cpus:2", "web"))
    assert not of_type(operate(cluster, agent, operation), CommandRejected)
    assert total(cluster, agent) == "cpus:2;cpus(web/api, ops):2;disk:2048;mem:1024"
    # Unreserving pops one reservation: back to web's.
    assert not of_type(operate(cluster, agent, unreserve_op(refined)), CommandRejected)
    assert total(cluster, agent) == "cpus:2;cpus(web, ops):2;disk:2048;mem:1024"


def test_refined_reservations_go_only_to_frameworks_that_can_read_them() -> None:
    cluster = Cluster()
    agent = cluster.add_agent(resources="cpus:4;mem:1024")
    operate(cluster, agent, reserve_op(reserved("cpus:2", "web")))
    refined = reserved("cpus:2", "web")
    refined[0].reservations.add(type=DYNAMIC, role="web/api", principal="ops")
    operation = reserve_op(refined)
    operation.reserve.source.extend(reserved("cpus:2", "web"))
    operate(cluster, agent, operation)
    old = cluster.add_framework("old", role="web/api")
    # It is offered the rest of the agent, without what it could not read.
    (got,) = allocate(cluster.state, cluster.now_ns, AllocatorConfig())
    assert (got.framework_id, got.resources) == (old, parse("cpus:2;mem:1024"))
    info = cluster.state.frameworks[old].info
    modern = m.FrameworkInfo()
    modern.CopyFrom(info)
    modern.ClearField("id")
    modern.name = "modern"
    modern.capabilities.add(type=m.FrameworkInfo.Capability.RESERVATION_REFINEMENT)
    new = one(cluster.subscribe(info=modern), FrameworkSubscribed).framework_id
    offers = allocate(cluster.state, cluster.now_ns, AllocatorConfig())
    (got,) = [a for a in offers if a.role == "web/api"]
    assert got.framework_id == new
    assert got.resources.contains(from_protos(refined))


def test_operation_checks_speak_mesos() -> None:
    """The pure checks (master/operations.py) with Mesos's messages."""
    cluster, agent, fid = setup(principal="ops")
    framework, state_agent = cluster.state.frameworks[fid], cluster.state.agents[agent]
    cases = [
        (
            create_op(volume(64, "web", "v", principal="eve")),
            "Create volume operation attempted by authenticated principal 'ops', which does not"
            " match a volume in the operation with principal 'eve' set in 'disk.persistence'",
        ),
        (
            reserve_op(reserved("cpus:1", "web", principal=None)),
            "A reserve operation was attempted by principal 'ops', but there is a reserved"
            " resource in the request with no principal set",
        ),
        (
            unreserve_op(volume(64, "web", "v")),
            "A dynamically reserved persistent volume disk(web, ops)[v:data] cannot be"
            " unreserved directly. Please destroy the persistent volume first then unreserve"
            " the resource",
        ),
    ]
    for operation, message in cases:
        with pytest.raises(OperationError) as refused:
            conversion(operation, state_agent, framework, "web")
        assert str(refused.value) == message
    ro = volume(64, "web", "v")
    ro[0].disk.volume.mode = m.Volume.RO
    with pytest.raises(OperationError, match="Read-only persistent volume not supported"):
        conversion(create_op(ro), state_agent)
    unreserved_volume = volume(64, "web", "v")
    unreserved_volume[0].ClearField("reservations")
    with pytest.raises(OperationError, match="cannot be created from unreserved resources"):
        conversion(create_op(unreserved_volume), state_agent)


def grow_op(volume_: list[m.Resource], addition: list[m.Resource]) -> m.Offer.Operation:
    operation = Operation(type=Operation.GROW_VOLUME)
    operation.grow_volume.volume.CopyFrom(volume_[0])
    operation.grow_volume.addition.CopyFrom(addition[0])
    return operation


def shrink_op(volume_: list[m.Resource], subtract: float) -> m.Offer.Operation:
    operation = Operation(type=Operation.SHRINK_VOLUME)
    operation.shrink_volume.volume.CopyFrom(volume_[0])
    operation.shrink_volume.subtract.value = subtract
    return operation


def test_volumes_grow_and_shrink_within_their_reservation() -> None:
    cluster = Cluster()
    capabilities = (m.AgentInfo.Capability.RESIZE_VOLUME,)
    plain = cluster.add_agent("h0", resources="disk:64")
    agent = cluster.add_agent(resources="cpus:4;mem:1024;disk:2048", capabilities=capabilities)
    fid = cluster.add_framework(role="web", principal="ops")
    operate(cluster, plain, reserve_op(reserved("disk:64", "web")))
    operate(cluster, plain, create_op(volume(32, "web", "v")))
    rejected = one(operate(cluster, plain, shrink_op(volume(32, "web", "v"), 8)), CommandRejected)
    assert rejected.message.endswith(
        "Volume disk(web, ops)[v:data] cannot be shrunk on an agent without RESIZE_VOLUME"
        " capability"
    )
    operate(cluster, agent, reserve_op(reserved("disk:1024", "web")))
    operate(cluster, agent, create_op(volume(256, "web", "v")))
    events = operate(cluster, agent, grow_op(volume(256, "web", "v"), reserved("disk:256", "web")))
    assert not of_type(events, CommandRejected)
    assert total(cluster, agent) == (
        "cpus:4;disk:1024;disk(web, ops)[v:data]:512;disk(web, ops):512;mem:1024"
    )
    operate(cluster, agent, shrink_op(volume(512, "web", "v"), 384))
    assert total(cluster, agent) == (
        "cpus:4;disk:1024;disk(web, ops)[v:data]:128;disk(web, ops):896;mem:1024"
    )
    for operation, message in [
        (grow_op(volume(128, "web", "v"), to_protos(parse("disk:8"))), "Incompatible resources"),
        (shrink_op(volume(128, "web", "v"), 128), "must be smaller than the size"),
        (shrink_op(volume(128, "web", "v"), 0), "must be greater than zero"),
        (grow_op(volume(64, "web", "v"), reserved("disk:8", "web")), "does not contain"),
    ]:
        rejected = one(operate(cluster, agent, operation), CommandRejected)
        assert message in rejected.message, rejected.message
    # Inside an ACCEPT: the resized volume is not in the pool, and is offered again.
    offer_id = cluster.add_offer(fid, agent, role="web")
    events = cluster.accept(
        fid, [offer_id], [grow_op(volume(128, "web", "v"), reserved("disk:128", "web"))]
    )
    assert from_protos(volume(256, "web", "v")).items.keys() <= (
        one(events, AgentResourcesChanged).total.items.keys()
    )
    offered = one(cluster.offer(fid, agent, role="web"), OffersCreated).offers[0].resources
    assert offered.contains(from_protos(volume(256, "web", "v")))


def test_what_an_accept_makes_is_offered_again_without_its_filter() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent, role="web")
    cluster.accept(fid, [offer_id], [reserve_op(reserved("cpus:1", "web"))])  # 5 s filter
    refusal = cluster.state.frameworks[fid].filters[(agent, "web")]
    assert refusal.resources == parse("cpus:3;mem:1024;disk:2048")
    offered = one(cluster.offer(fid, agent, role="web"), OffersCreated).offers[0].resources
    assert offered.contains(from_protos(reserved("cpus:1", "web")))
