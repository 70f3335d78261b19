"""Resource operations: RESERVE, UNRESERVE, CREATE, DESTROY, GROW_VOLUME and
SHRINK_VOLUME, Mesos's speculative offer operations, from a scheduler's ACCEPT or an
operator's call.

Each is checked as Mesos's master checks it (master/validation.cpp, with its
messages) and turned into a conversion: what it consumes and what it makes in
its place (Mesos's getResourceConversions). Applying one swaps the two in the
agent's total, and in an ACCEPT in the pool of offered resources too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meseta.master.ids import agent_pid
from meseta.master.resources import (
    DYNAMIC,
    UNRESERVED,
    Key,
    ResourceError,
    Resources,
    format_resources,
    from_protos,
    is_volume,
    key_disk,
    key_label,
    key_source,
    key_stack,
    popped,
    to_milli,
    unvolumed,
)
from meseta.master.state import Agent, Framework
from meseta.proto.mesos.v1 import mesos_pb2

Operation = mesos_pb2.Offer.Operation
KINDS = (
    Operation.RESERVE,
    Operation.UNRESERVE,
    Operation.CREATE,
    Operation.DESTROY,
    Operation.GROW_VOLUME,
    Operation.SHRINK_VOLUME,
)
# Their results are not in the pool for later operations of the same ACCEPT (Mesos
# calls them speculative for now, but means them not to be).
RESIZES = (Operation.GROW_VOLUME, Operation.SHRINK_VOLUME)
RESIZE_VOLUME = mesos_pb2.AgentInfo.Capability.RESIZE_VOLUME


class OperationError(ValueError):
    """An operation Mesos would refuse; the message is Mesos's."""


@dataclass(frozen=True, slots=True)
class Conversion:
    consumed: Resources
    converted: Resources


def conversion(
    operation: Operation, agent: Agent, framework: Framework | None = None, role: str = ""
) -> Conversion:
    """The checked operation's conversion; OperationError says why it is refused.
    `framework` and its offers' allocation `role` are None and "" for an operator's call."""
    kind = operation.type
    if kind == Operation.RESERVE:
        return reserve(operation.reserve, framework, role)
    if kind == Operation.UNRESERVE:
        return unreserve(operation.unreserve.resources)
    if kind == Operation.CREATE:
        return create(operation.create.volumes, agent, framework)
    if kind == Operation.DESTROY:
        return destroy(operation.destroy.volumes, agent)
    if kind == Operation.GROW_VOLUME:
        return grow(operation.grow_volume, agent)
    if kind == Operation.SHRINK_VOLUME:
        return shrink(operation.shrink_volume, agent)
    raise OperationError(f"Operation {Operation.Type.Name(kind)} is not supported yet")


def reserve(body: Operation.Reserve, framework: Framework | None, role: str) -> Conversion:
    resources = parsed(body.resources, "Invalid resources")
    if body.source:
        source = parsed(body.source, "Invalid source")
        for given, what in ((body.source, "Invalid source"), (body.resources, "Invalid resources")):
            if len({(key[1], key[2]) for key in from_protos(given).items}) > 1:
                raise OperationError(f"{what}: Mixed reservations are not supported")
        if to_unreserved(source) != to_unreserved(resources):
            raise OperationError(
                "Source and target resources should refer to identical resource quantities: "
                f"{format_resources(to_unreserved(source))} vs."
                f" {format_resources(to_unreserved(resources))}"
            )
    for key in resources.items:
        require_dynamic(key)
    if framework is None:
        if any(resource.HasField("allocation_info") for resource in body.resources):
            raise OperationError(
                "A reserve operation was attempted with an allocated resource, but the operator"
                " API only allows reservations to be made to unallocated resources"
            )
    else:
        principal_error(framework, resources)
        for key in resources.items:
            if key[1] != role:
                raise OperationError(
                    f"A reserve operation was attempted for a resource with role '{key[1]}',"
                    f" but the resource was allocated to role '{role}'"
                )
    consumed = source if body.source else resources.convert(popped)
    return Conversion(consumed, resources)


def require_dynamic(key: Key) -> None:
    """Only dynamic reservations are made or undone: the key's last one must be."""
    stack = key_stack(key)
    if not stack or stack[-1].type != DYNAMIC:
        raise OperationError(f"Resource {key_label(key)} is not dynamically reserved")


def principal_error(framework: Framework, resources: Resources) -> None:
    """A framework with a principal reserves in its own name only (Mesos's check)."""
    if not framework.info.HasField("principal"):
        return
    for key in resources.items:
        top = key_stack(key)[-1]
        check_principal(
            framework.info.principal,
            top.principal if top.HasField("principal") else None,
            "A reserve operation was attempted",
            "a reserved resource in the request",
        )


def check_principal(
    principal: str, found: str | None, attempt: str, holder: str, place: str = ""
) -> None:
    """Mesos's words when what an operation makes names no principal, or another one."""
    if found is None:
        where = f" in {place}" if place else ""
        raise OperationError(
            f"{attempt} by principal '{principal}', but there is {holder} with no principal"
            f" set{where}"
        )
    if found != principal:
        where = f" set in {place}" if place else ""
        raise OperationError(
            f"{attempt} by authenticated principal '{principal}', which does not match"
            f" {holder} with principal '{found}'{where}"
        )


def unreserve(given: Sequence[mesos_pb2.Resource]) -> Conversion:
    resources = parsed(given, "Invalid resources")
    for key in resources.items:
        require_dynamic(key)
        if is_volume(key):
            raise OperationError(
                f"A dynamically reserved persistent volume {key_label(key)} cannot be unreserved"
                " directly. Please destroy the persistent volume first then unreserve the"
                " resource"
            )
    return Conversion(resources, resources.convert(popped))


def create(
    given: Sequence[mesos_pb2.Resource], agent: Agent, framework: Framework | None
) -> Conversion:
    volumes = parsed(given, "Invalid resources")
    volume_error(given)
    taken = persistence_ids(agent.total)
    for key in volumes.items:
        disk = key_disk(key)
        assert disk is not None  # volume_error checked
        if (key[1], disk.persistence.id) in taken:
            raise OperationError(f"Persistence ID '{disk.persistence.id}' is not unique")
        taken[(key[1], disk.persistence.id)] = None
    if framework is not None and framework.info.HasField("principal"):
        for resource in given:
            persistence = resource.disk.persistence
            check_principal(
                framework.info.principal,
                persistence.principal if persistence.HasField("principal") else None,
                "Create volume operation attempted",
                "a volume in the operation",
                "'disk.persistence'",
            )
    return Conversion(volumes.convert(unvolumed), volumes)


def destroy(given: Sequence[mesos_pb2.Resource], agent: Agent) -> Conversion:
    volumes = parsed(given, "Invalid resources")
    volume_error(given)
    if not agent.total.contains(volumes):
        raise OperationError("Persistent volumes not found")
    held = [task.resources for task in agent.tasks.values() if task.holds_resources]
    held += [executor.resources for executor in agent.executors.values()]
    if any(key in resources.items for resources in held for key in volumes.items):
        raise OperationError("Persistent volumes in use")
    return Conversion(volumes, volumes.convert(unvolumed))


def grow(body: Operation.GrowVolume, agent: Agent) -> Conversion:
    """The volume and the addition become one bigger volume."""
    volume = one_resource(body.volume, "Invalid resource in the 'GrowVolume.volume' field")
    addition = one_resource(body.addition, "Invalid resource in the 'GrowVolume.addition' field")
    if not body.addition.scalar.value > 0:
        raise OperationError("The size of 'GrowVolume.addition' field must be greater than zero")
    volume_error([body.volume], "Invalid persistent volume in the 'GrowVolume.volume' field")
    ((key, size),) = volume.items.items()
    ((added_key, added),) = addition.items.items()
    if unvolumed(key) != added_key:
        raise OperationError(
            "Incompatible resources in the 'GrowVolume.volume' and 'GrowVolume.addition' fields"
        )
    if is_whole_disk(key):  # a MOUNT disk is never split, so nothing can be added to it
        raise OperationError("Growing a volume on a MOUNT disk is not supported")
    resize_error(agent, key, "grown")
    assert isinstance(size, int) and isinstance(added, int)  # disk: volume_error checked
    return Conversion(volume + addition, Resources({key: size + added}))


def shrink(body: Operation.ShrinkVolume, agent: Agent) -> Conversion:
    """The volume gives `subtract` back as the disk it was made of."""
    volume = one_resource(body.volume, "Invalid resource in the 'ShrinkVolume.volume' field")
    if not body.subtract.value > 0:
        raise OperationError("Value of 'ShrinkVolume.subtract' must be greater than zero")
    ((key, size),) = volume.items.items()
    subtract = to_milli(body.subtract.value)
    if not isinstance(size, int) or size <= subtract:
        raise OperationError(
            "Value of 'ShrinkVolume.subtract' must be smaller than the size of"
            " 'ShrinkVolume.volume'"
        )
    volume_error([body.volume], "Invalid persistent volume in the 'ShrinkVolume.volume' field")
    if is_whole_disk(key):
        raise OperationError("Shrinking a volume on a MOUNT disk is not supported")
    resize_error(agent, key, "shrunk")
    freed = Resources({unvolumed(key): subtract})
    return Conversion(volume, Resources({key: size - subtract}) + freed)


def is_whole_disk(key: Key) -> bool:
    source = key_source(key)
    return source is not None and source.type == mesos_pb2.Resource.DiskInfo.Source.MOUNT


def one_resource(given: mesos_pb2.Resource, what: str) -> Resources:
    resources = parsed([given], what)
    if len(resources.items) != 1:
        raise OperationError(f"{what}: Resource must not be empty")
    return resources


def resize_error(agent: Agent, key: Key, done: str) -> None:
    if RESIZE_VOLUME not in agent.capabilities:
        raise OperationError(
            f"Volume {key_label(key)} cannot be {done} on an agent without RESIZE_VOLUME capability"
        )


def volume_error(
    volumes: Iterable[mesos_pb2.Resource], what: str = "Not a persistent volume"
) -> None:
    """Mesos's validatePersistentVolume."""
    for volume in volumes:
        if not volume.HasField("disk"):
            error = f"Resource {volume.name} does not have DiskInfo"
        elif not volume.disk.HasField("persistence"):
            error = "'persistence' is not set in DiskInfo"
        elif not volume.disk.HasField("volume"):
            error = "Expecting 'volume' to be set for persistent volume"
        elif volume.disk.volume.mode == mesos_pb2.Volume.RO:
            error = "Read-only persistent volume not supported"
        else:
            continue
        raise OperationError(f"{what}: {error}")


def persistence_ids(resources: Resources) -> dict[tuple[str, str], None]:
    """(role, persistence id) of every persistent volume in `resources`."""
    out: dict[tuple[str, str], None] = {}
    for key in resources.items:
        disk = key_disk(key)
        if disk is not None and disk.HasField("persistence"):
            out[(key[1], disk.persistence.id)] = None
    return out


def parsed(given: Sequence[mesos_pb2.Resource], what: str) -> Resources:
    try:
        return from_protos(given)
    except ResourceError as exc:
        raise OperationError(f"{what}: {exc}") from None


def to_unreserved(resources: Resources) -> Resources:
    return resources.convert(lambda key: (key[0], UNRESERVED, ""))


def agent_label(agent: Agent) -> str:
    """Mesos's stringify(Slave): "<id> at <pid> (<hostname>)"."""
    pid = agent_pid(agent.info.hostname, agent.ip, agent.info.port)
    return f"{agent.id} at {pid} ({agent.info.hostname})"
