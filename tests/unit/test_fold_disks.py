"""PATH and MOUNT disks (Mesos's multiple disks): declared by agents, offered with their source,
reserved and made into volumes there, a MOUNT disk only whole."""

from __future__ import annotations

import pytest
from support.fold_cluster import Cluster, one
from support.fold_operations import create_op, operate, reserve_op

from meseta.master.allocator.quota import shrink_to_room
from meseta.master.events import AgentRegistered, AgentResourcesChanged, CommandRejected
from meseta.master.resources import (
    ResourceError,
    Resources,
    declared,
    format_resources,
    from_protos,
    parse,
    to_protos,
    unvolumed,
)
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m

Source = m.Resource.DiskInfo.Source
DYNAMIC = m.Resource.ReservationInfo.DYNAMIC


def disk(size_mb: float, kind: int, root: str, role: str | None = None) -> m.Resource:
    out = m.Resource(name="disk", type=m.Value.SCALAR)
    out.scalar.value = size_mb
    out.disk.source.type = kind  # type: ignore[assignment]
    (out.disk.source.mount if kind == Source.MOUNT else out.disk.source.path).root = root
    if role is not None:
        out.reservations.add(type=DYNAMIC, role=role, principal="ops")
    return out


def on(resource: m.Resource, persistence_id: str) -> m.Resource:
    """`resource` made a persistent volume."""
    out = m.Resource()
    out.CopyFrom(resource)
    out.disk.persistence.id = persistence_id
    out.disk.persistence.principal = "ops"
    out.disk.volume.container_path = "data"
    out.disk.volume.mode = m.Volume.RW
    return out


def setup() -> tuple[Cluster, str, str, m.AgentInfo]:
    cluster = Cluster()
    info = m.AgentInfo(hostname="h1", port=5051)
    info.resources.extend(to_protos(parse("cpus:4;mem:1024;disk:1024"), refined=False))
    info.resources.extend([disk(2048, Source.MOUNT, "/mnt/a"), disk(4096, Source.PATH, "/mnt/b")])
    registered = cluster.run(register_agent=c.RegisterAgent(agent_info=info, stream_id="s-1"))
    agent = one(registered, AgentRegistered).agent_id
    fid = cluster.add_framework(role="db", principal="ops")
    return cluster, agent, fid, info


def total(cluster: Cluster, agent: str) -> str:
    return format_resources(cluster.state.agents[agent].total)


def test_disks_are_told_apart_and_offered_with_their_source() -> None:
    cluster, agent, fid, _ = setup()
    assert total(cluster, agent) == (
        "cpus:4;disk:1024;disk[PATH:/mnt/b]:4096;disk[MOUNT:/mnt/a]:2048;mem:1024"
    )
    offer_id = cluster.add_offer(fid, agent, role="db")
    offered = to_protos(cluster.state.offers[offer_id].resources, allocation_role="db")
    sources = sorted(
        (Source.Type.Name(r.disk.source.type), r.scalar.value)
        for r in offered
        if r.HasField("disk")
    )
    assert sources == [("MOUNT", 2048.0), ("PATH", 4096.0)]


def test_a_mount_disk_is_reserved_and_made_a_volume_only_whole() -> None:
    cluster, agent, _, _ = setup()
    half = one(
        operate(cluster, agent, reserve_op([disk(1024, Source.MOUNT, "/mnt/a", "db")])),
        CommandRejected,
    )
    assert half.status == 409 and "does not contain" in half.message
    whole = disk(2048, Source.MOUNT, "/mnt/a", "db")
    assert not any(
        isinstance(e, CommandRejected) for e in operate(cluster, agent, reserve_op([whole]))
    )
    part = on(disk(1024, Source.MOUNT, "/mnt/a", "db"), "v0")
    assert one(operate(cluster, agent, create_op([part])), CommandRejected).status == 409
    events = operate(cluster, agent, create_op([on(whole, "v1")]))
    assert one(events, AgentResourcesChanged)
    # A PATH disk is carved up as the root disk is.
    operate(cluster, agent, reserve_op([disk(1024, Source.PATH, "/mnt/b", "db")]))
    assert total(cluster, agent) == (
        "cpus:4;disk:1024;disk[PATH:/mnt/b]:3072;disk(db, ops)[PATH:/mnt/b]:1024"
        ";disk(db, ops)[MOUNT:/mnt/a,v1:data]:2048;mem:1024"
    )


def test_volumes_on_disks_survive_the_agent_reregistering() -> None:
    cluster, agent, _, _ = setup()
    whole = disk(2048, Source.MOUNT, "/mnt/a", "db")
    operate(cluster, agent, reserve_op([whole]))
    operate(cluster, agent, create_op([on(whole, "v1")]))
    operate(cluster, agent, reserve_op([disk(1024, Source.PATH, "/mnt/b", "db")]))
    before = cluster.state.agents[agent].total
    cluster.disconnect_agent(agent)
    events = cluster.reregister_agent(agent)  # declaring its disks as before
    assert one(events, AgentResourcesChanged).total == before
    assert cluster.state.agents[agent].total == before


def test_the_resource_model_keeps_the_source() -> None:
    mount = from_protos([on(disk(2048, Source.MOUNT, "/mnt/a", "db"), "v1")])
    ((key, _),) = mount.items.items()
    assert format_resources(Resources({unvolumed(key): 2048_000})) == (
        "disk(db, ops)[MOUNT:/mnt/a]:2048"
    )
    assert format_resources(Resources({declared(key): 2048_000})) == "disk[MOUNT:/mnt/a]:2048"
    plain = from_protos([disk(2048, Source.MOUNT, "/mnt/a")])
    assert not plain.shaped()  # agents declare disks; operations do not make them
    assert not plain.contains(from_protos([disk(1024, Source.MOUNT, "/mnt/a")]))
    assert plain.contains(plain)
    path = from_protos([disk(4096, Source.PATH, "/mnt/b")])
    assert path.contains(from_protos([disk(1024, Source.PATH, "/mnt/b")]))
    # The allocator offers a MOUNT disk whole or not at all under a limit.
    assert shrink_to_room(plain, {"disk": 2048_000}) == plain
    assert not shrink_to_room(plain, {"disk": 2047_000})
    both = plain + path
    assert shrink_to_room(both, {"disk": 5000_000}) == path  # what is left is not enough
    block = m.Resource(name="disk", type=m.Value.SCALAR)
    block.scalar.value = 1
    block.disk.source.type = Source.BLOCK
    with pytest.raises(ResourceError, match="BLOCK disk sources are not supported"):
        from_protos([block])
