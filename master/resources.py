"""Resource arithmetic in exact integers, keyed by (name, reservation role, shape).

Scalars are milli-units (Mesos rounds to 3 decimals), ranges are sorted,
merged, inclusive (begin, end) tuples, and sets are sorted tuples, so equal
resources compare equal and iterate identically on every replica. The
unreserved role is "*".

The shape is "" for plain resources (unreserved, or statically reserved to
the role); otherwise it is the deterministic encoding of what else tells the
resource apart (`shape_of`): its reservation stack (dynamic reservations with
principal and labels, refinements) and its disk info (a persistent volume, a
PATH or MOUNT disk source, or both). So a dynamic reservation never merges with
a static one or with another principal's, nor a disk with another disk, as in
Mesos. A MOUNT disk is used whole or not at all (`contains`), as a volume is.
Revocable, shared and resource-provider (BLOCK, RAW) resources are refused with
`ResourceError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import pairwise
from typing import cast

from meseta.master.exact import ratio
from meseta.master.ids import id_error, role_error
from meseta.proto.mesos.v1 import mesos_pb2

UNRESERVED = "*"
MILLI = 1000

Ranges = tuple[tuple[int, int], ...]
Items = tuple[str, ...]
Quantity = int | Ranges | Items
Key = tuple[str, str, str]  # (name, reservation role, shape)

Reservation = mesos_pb2.Resource.ReservationInfo
STATIC = Reservation.STATIC
DYNAMIC = Reservation.DYNAMIC
DiskInfo = mesos_pb2.Resource.DiskInfo
Source = DiskInfo.Source
PATH, MOUNT = Source.PATH, Source.MOUNT

_SCALAR = mesos_pb2.Value.SCALAR
_RANGES = mesos_pb2.Value.RANGES
_SET = mesos_pb2.Value.SET


class ResourceError(ValueError):
    """A resource that is malformed or not supported yet."""


def to_milli(value: float) -> int:
    if not math.isfinite(value) or value < 0:
        raise ResourceError(f"scalar must be finite and non-negative, got {value}")
    return round(value * MILLI)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(ranges):
        if begin > end:
            raise ResourceError(f"range [{begin}-{end}] has begin > end")
        if merged and begin <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((begin, end))
    return tuple(merged)


def subtract_ranges(left: Ranges, right: Ranges) -> Ranges:
    """`left` without `right`; both canonical (sorted, merged), as in every `Resources`."""
    out: list[tuple[int, int]] = []
    cut_index, cut_count = 0, len(right)
    # One merge-like pass: the cuts are sorted, so each is passed at most once.
    for begin, end in left:
        while cut_index < cut_count:
            cut_begin, cut_end = right[cut_index]
            if cut_end < begin:
                cut_index += 1
                continue
            if cut_begin > end:
                break
            if cut_begin > begin:
                out.append((begin, cut_begin - 1))
            if cut_end >= end:
                begin = end + 1
                break
            begin = cut_end + 1
            cut_index += 1
        if begin <= end:
            out.append((begin, end))
    return tuple(out)


def ranges_contain(outer: Ranges, inner: Ranges) -> bool:
    return not subtract_ranges(inner, outer)


def range_count(ranges: Ranges) -> int:
    return sum(end - begin + 1 for begin, end in ranges)


def is_items(quantity: Quantity) -> bool:
    return isinstance(quantity, tuple) and bool(quantity) and isinstance(quantity[0], str)


def add_quantity(left: Quantity, right: Quantity) -> Quantity:
    if isinstance(left, int):
        assert isinstance(right, int)
        return left + right
    assert isinstance(right, tuple)
    if is_items(left) or is_items(right):
        return tuple(sorted(dict.fromkeys(cast(Items, (*left, *right)))))
    return merge_ranges(cast(Ranges, (*left, *right)))


def subtract_quantity(have: Quantity, quantity: Quantity) -> Quantity:
    if isinstance(have, int):
        assert isinstance(quantity, int)
        return max(have - quantity, 0)
    if have and isinstance(have[0], str):
        drop = set(quantity)  # type: ignore[arg-type]
        return tuple(item for item in have if item not in drop)
    return subtract_ranges(have, quantity)  # type: ignore[arg-type]


def is_zero(quantity: Quantity) -> bool:
    return quantity == 0 or quantity == ()


class Resources:
    """An immutable bag of resources. Operations return new instances."""

    __slots__ = ("items",)

    def __init__(
        self,
        items: Mapping[Key, Quantity] | None = None,
        canonical: dict[Key, Quantity] | None = None,
    ) -> None:
        # The canonical form: insertion-sorted by key, zero quantities dropped. `canonical`
        # is adopted as it is: the arithmetic below builds its results in that form.
        if canonical is not None:
            self.items: dict[Key, Quantity] = canonical
        elif items:
            self.items = {key: items[key] for key in sorted(items) if not is_zero(items[key])}
        else:
            self.items = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and self.items == other.items

    def __hash__(self) -> int:
        return hash(tuple(self.items.items()))

    def __repr__(self) -> str:
        return f"Resources({format_resources(self)!r})"

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self) -> Iterator[tuple[Key, Quantity]]:
        return iter(self.items.items())

    def __add__(self, other: Resources) -> Resources:
        right = other.items
        if not right:
            return self
        left = self.items
        if not left:
            return other
        items = left.copy()
        new_key = False
        for key, quantity in right.items():
            have = items.get(key)
            if have is None:
                items[key] = quantity
                new_key = True
            elif type(have) is int and type(quantity) is int:
                # Scalars inline: the ledger adds cpus and mem for every offer and task.
                items[key] = have + quantity
            else:
                items[key] = add_quantity(have, quantity)
        if new_key:
            return Resources(items)
        # Sums of non-zero quantities are non-zero; only new keys break the order.
        return Resources(None, items)

    def __sub__(self, other: Resources) -> Resources:
        """Remove `other`; whatever `other` has that self lacks is ignored."""
        cuts = other.items
        if not cuts:
            return self
        items: dict[Key, Quantity] = {}
        # Walking self in its (sorted) order keeps the result canonical without a re-sort.
        for key, have in self.items.items():
            quantity = cuts.get(key)
            if quantity is None:
                items[key] = have
            elif type(have) is int and type(quantity) is int:
                # Scalars inline: the ledger takes cpus and mem back for every offer and task.
                if have > quantity:
                    items[key] = have - quantity
            else:
                left = subtract_quantity(have, quantity)
                if left:
                    items[key] = left
        return Resources(None, items)

    def contains(self, other: Resources) -> bool:
        items = self.items
        for key, quantity in other.items.items():
            have = items.get(key)
            if have is None:
                return False
            if isinstance(quantity, int):
                if not isinstance(have, int) or have < quantity:
                    return False
                if have != quantity and key[2] and is_whole(key):
                    return False  # a persistent volume or MOUNT disk is used whole
            elif quantity and isinstance(quantity[0], str):
                if not set(quantity).issubset(have):  # type: ignore[arg-type]
                    return False
            elif not ranges_contain(have, quantity):  # type: ignore[arg-type]
                return False
        return True

    def scalar(self, name: str) -> int:
        """Milli-units of `name` over all roles."""
        return sum(q for (n, _, _), q in self.items.items() if n == name and isinstance(q, int))

    def quantities(self) -> dict[str, int]:
        """Name -> amount over all roles: milli-units, or element counts for ranges/sets."""
        out: dict[str, int] = {}
        for (name, _, _), quantity in self.items.items():
            out[name] = out.get(name, 0) + count(quantity)
        return out

    def allocatable_to(self, role: str) -> Resources:
        """Unreserved resources plus those reserved for `role` or one of its ancestors."""
        items = self.items
        for _, reserved, _ in items:
            if reserved != UNRESERVED:
                break
        else:
            return self  # all unreserved (the common case): nothing to filter
        return _canonical(
            {k: q for k, q in items.items() if k[1] == UNRESERVED or is_subrole(role, k[1])}
        )

    def unreserved(self) -> Resources:
        return _canonical({k: q for k, q in self.items.items() if k[1] == UNRESERVED})

    def shaped(self) -> Resources:
        """What operations made: dynamic reservations and persistent volumes (not what an
        agent declares: static reservations and PATH or MOUNT disks)."""
        for _, _, shape in self.items:
            if shape:
                return _canonical(
                    {k: q for k, q in self.items.items() if k[2] and declared(k) != k}
                )
        return EMPTY  # the common case: nothing to copy

    def convert(self, convert_key: Callable[[Key], Key]) -> Resources:
        """Every item re-keyed (quantities of keys that meet add up)."""
        out = EMPTY
        for key, quantity in self.items.items():
            out = out + Resources({convert_key(key): quantity})
        return out


def _canonical(items: dict[Key, Quantity]) -> Resources:
    """Wrap `items` that are already key-sorted and zero-free (skips the constructor's sort)."""
    return Resources(None, items)


def count(quantity: Quantity) -> int:
    if isinstance(quantity, int):
        return quantity
    if quantity and isinstance(quantity[0], str):
        return len(quantity)
    return range_count(quantity)  # type: ignore[arg-type]


def is_subrole(role: str, ancestor: str) -> bool:
    return role == ancestor or role.startswith(ancestor + "/")


EMPTY = Resources()


# -- protobuf conversion ---------------------------------------------------------


def from_protos(resources: Iterable[mesos_pb2.Resource]) -> Resources:
    """Our form of Mesos resources, in either reservation format; ResourceError for
    malformed or unsupported ones (Mesos's messages where it has one)."""
    items: dict[Key, Quantity] = {}
    for resource in resources:
        key = resource_key(resource)
        quantity = proto_quantity(resource)
        if key in items and type(items[key]) is not type(quantity):
            raise ResourceError(f"resource '{resource.name}' has mixed types")
        items[key] = add_quantity(items[key], quantity) if key in items else quantity
    return Resources(items)


def resource_key(resource: mesos_pb2.Resource) -> Key:
    if not resource.name:
        raise ResourceError("Empty resource name")
    for unsupported in ("revocable", "shared", "provider_id"):
        if resource.HasField(unsupported):
            raise ResourceError(
                f"resource '{resource.name}' uses '{unsupported}': not supported yet"
            )
    disk = None
    if resource.HasField("disk") and resource.disk.ByteSize():
        disk = resource.disk
        if resource.name != "disk":
            raise ResourceError(f"DiskInfo should not be set for {resource.name} resource")
        if disk.HasField("source"):
            source_error(disk.source)
        elif not disk.HasField("persistence"):
            raise ResourceError("Non-persistent volume not supported")
    stack = reservation_stack(resource)
    if disk is not None and disk.HasField("persistence"):
        volume_shape_error(disk, stack)
    return make_key(resource.name, stack, disk)


def source_error(source: mesos_pb2.Resource.DiskInfo.Source) -> None:
    """PATH and MOUNT disks only (BLOCK and RAW ones come from resource providers)."""
    if source.type not in (PATH, MOUNT):
        kind = Source.Type.Name(source.type)
        raise ResourceError(f"{kind} disk sources are not supported (no resource providers)")
    for field in ("id", "metadata", "profile", "vendor"):
        if source.HasField(field):
            raise ResourceError(f"Disk source field '{field}' is not supported")


def volume_shape_error(disk: mesos_pb2.Resource.DiskInfo, stack: list[Reservation]) -> None:
    """Mesos's validateDiskInfo for a persistent volume."""
    if not stack:
        raise ResourceError("Persistent volumes cannot be created from unreserved resources")
    if not disk.HasField("volume"):
        raise ResourceError("Expecting 'volume' to be set for persistent volume")
    if disk.volume.HasField("host_path"):
        raise ResourceError("Expecting 'host_path' to be unset for persistent volume")
    error = id_error(disk.persistence.id, "ID")
    if error is not None:
        raise ResourceError(f"Invalid persistence ID for persistent volume: {error}")


def reservation_stack(resource: mesos_pb2.Resource) -> list[Reservation]:
    """The post-refinement reservations of a resource in either format, checked as
    Mesos's Resources::validate checks them."""
    if not resource.reservations:
        role = resource.role  # "*" when unset
        error = role_error(role)
        if error is not None:
            raise ResourceError(error)
        if resource.HasField("reservation"):
            given = resource.reservation
            if given.HasField("type"):
                raise ResourceError(
                    "'Resource.ReservationInfo.type' must not be set for"
                    " the 'Resource.reservation' field"
                )
            if given.HasField("role"):
                raise ResourceError(
                    "'Resource.ReservationInfo.role' must not be set for"
                    " the 'Resource.reservation' field"
                )
            if role == UNRESERVED:
                raise ResourceError('Invalid reservation: role "*" cannot be dynamically reserved')
            dynamic = Reservation(type=DYNAMIC, role=role)
            if given.HasField("principal"):
                dynamic.principal = given.principal
            if given.HasField("labels"):
                dynamic.labels.CopyFrom(given.labels)
            return [dynamic]
        return [] if role == UNRESERVED else [Reservation(type=STATIC, role=role)]
    stack = list(resource.reservations)
    for reservation in stack:
        if not reservation.HasField("type"):
            raise ResourceError(
                "Invalid reservation: 'Resource.ReservationInfo.type' field must be set."
            )
        if not reservation.HasField("role"):
            raise ResourceError(
                "Invalid reservation: 'Resource.ReservationInfo.role' field must be set."
            )
        error = role_error(reservation.role)
        if error is not None:
            raise ResourceError(error)
        if reservation.role == UNRESERVED:
            raise ResourceError('Invalid reservation: role "*" cannot be reserved')
    for parent, child in pairwise(stack):
        if child.type == STATIC:
            raise ResourceError(
                "Invalid refined reservation: A refined reservation cannot be STATIC"
            )
        if not child.role.startswith(parent.role + "/"):
            raise ResourceError(
                f"Invalid refined reservation: role '{child.role}'"
                f" is not a refinement of '{parent.role}'"
            )
    if resource.HasField("role") and len(stack) == 1 and resource.role != stack[0].role:
        raise ResourceError(
            f"Invalid resource format: 'Resource.role' field with '{resource.role}' does not"
            f" match the role '{stack[0].role}' in 'Resource.reservations'"
        )
    return stack


def make_key(
    name: str, stack: list[Reservation], disk: mesos_pb2.Resource.DiskInfo | None = None
) -> Key:
    role = stack[-1].role if stack else UNRESERVED
    if disk is None and (not stack or (len(stack) == 1 and stack[0].type == STATIC)):
        return (name, role, "")
    shape = mesos_pb2.Resource(name="", type=_SCALAR)  # required fields, fixed values
    for reservation in stack:
        shape.reservations.append(canonical_reservation(reservation))
    if disk is not None:
        shape.disk.CopyFrom(disk)
    return (name, role, shape.SerializeToString(deterministic=True).decode("latin-1"))


def canonical_reservation(reservation: Reservation) -> Reservation:
    """The fields that tell reservations apart (a static one has only its role)."""
    out = Reservation(type=reservation.type, role=reservation.role)
    if reservation.type == DYNAMIC:
        if reservation.HasField("principal"):
            out.principal = reservation.principal
        if reservation.HasField("labels"):
            out.labels.CopyFrom(reservation.labels)
    return out


_SHAPES: dict[str, mesos_pb2.Resource] = {}


def shape_of(key: Key) -> mesos_pb2.Resource:
    """A shaped key's reservations and disk info as a Resource (cached per shape and
    shared: never mutate it)."""
    assert key[2], "plain keys have no shape"
    shape = _SHAPES.get(key[2])
    if shape is None:
        shape = mesos_pb2.Resource.FromString(key[2].encode("latin-1"))
        _SHAPES[key[2]] = shape
    return shape


def key_stack(key: Key) -> list[Reservation]:
    if not key[2]:
        return [] if key[1] == UNRESERVED else [Reservation(type=STATIC, role=key[1])]
    return list(shape_of(key).reservations)


def key_disk(key: Key) -> mesos_pb2.Resource.DiskInfo | None:
    if not key[2]:
        return None
    shape = shape_of(key)
    return shape.disk if shape.HasField("disk") else None


def is_volume(key: Key) -> bool:
    return bool(key[2]) and shape_of(key).disk.HasField("persistence")


def key_source(key: Key) -> mesos_pb2.Resource.DiskInfo.Source | None:
    """The PATH or MOUNT disk the key's disk is on (None for the agent's root disk)."""
    if not key[2]:
        return None
    disk = shape_of(key).disk
    return disk.source if disk.HasField("source") else None


def is_whole(key: Key) -> bool:
    """Used whole or not at all: a persistent volume, or a MOUNT disk (Mesos's
    exclusive disks)."""
    shape = shape_of(key)
    if not shape.HasField("disk"):
        return False
    disk = shape.disk
    return disk.HasField("persistence") or (disk.HasField("source") and disk.source.type == MOUNT)


def source_disk(key: Key) -> mesos_pb2.Resource.DiskInfo | None:
    """The key's disk without a volume on it: its source alone, or None."""
    source = key_source(key)
    return None if source is None else DiskInfo(source=source)


def popped(key: Key) -> Key:
    """The key with its last (dynamic) reservation taken off."""
    return make_key(key[0], key_stack(key)[:-1], key_disk(key))


def unvolumed(key: Key) -> Key:
    """The key without its persistent volume: the disk it was made of."""
    return make_key(key[0], key_stack(key), source_disk(key))


_DECLARED: dict[Key, Key] = {}


def declared(key: Key) -> Key:
    """What an agent declared for this key: no volume, static reservations only, on the
    disk it is on (memoized: every re-registration of an agent with disks asks)."""
    if not key[2]:
        return key
    found = _DECLARED.get(key)
    if found is None:
        stack = [r for r in key_stack(key) if r.type == STATIC]
        found = _DECLARED[key] = make_key(key[0], stack, source_disk(key))
    return found


def proto_quantity(resource: mesos_pb2.Resource) -> Quantity:
    if resource.type == _SCALAR:
        if not resource.HasField("scalar"):
            raise ResourceError(f"scalar resource '{resource.name}' has no value")
        return to_milli(resource.scalar.value)
    if resource.type == _RANGES:
        return merge_ranges((r.begin, r.end) for r in resource.ranges.range)
    if resource.type == _SET:
        return tuple(sorted(dict.fromkeys(resource.set.item)))
    raise ResourceError(f"resource '{resource.name}' has unsupported type")


def to_protos(
    resources: Resources,
    *,
    allocation_role: str | None = None,
    refined: bool = True,
    endpoint: bool = False,
) -> list[mesos_pb2.Resource]:
    """Mesos resources; `refined=False` gives the pre-refinement format (`role` and a
    dynamic reservation's `reservation`), and `endpoint=True` the operator endpoints'
    hybrid (Mesos's ENDPOINT format): the reservations, and the pre-refinement fields
    too when there is at most one reservation ("*" when unreserved)."""
    out: list[mesos_pb2.Resource] = []
    for key, quantity in resources.items.items():
        name, role, shape = key
        resource = mesos_pb2.Resource(name=name)
        if isinstance(quantity, int):
            resource.type = _SCALAR
            resource.scalar.value = ratio(quantity, MILLI)
        elif quantity and isinstance(quantity[0], str):
            resource.type = _SET
            resource.set.item.extend(quantity)
        else:
            resource.type = _RANGES
            for begin, end in cast(Ranges, quantity):
                resource.ranges.range.add(begin=begin, end=end)
        if not shape:
            if refined and role != UNRESERVED:
                resource.reservations.add(type=STATIC, role=role)
            if endpoint or not refined:
                resource.role = role
        else:
            add_shape(resource, shape_of(key), refined, endpoint)
        if allocation_role is not None:
            resource.allocation_info.role = allocation_role
        out.append(resource)
    return out


def add_shape(
    resource: mesos_pb2.Resource, shape: mesos_pb2.Resource, refined: bool, endpoint: bool
) -> None:
    stack = shape.reservations
    if refined:
        resource.reservations.extend(stack)
    if (endpoint or not refined) and len(stack) <= 1:
        if stack:
            resource.role = stack[0].role
            if stack[0].type == DYNAMIC:
                resource.reservation.SetInParent()
                if stack[0].HasField("principal"):
                    resource.reservation.principal = stack[0].principal
                if stack[0].HasField("labels"):
                    resource.reservation.labels.CopyFrom(stack[0].labels)
        else:
            resource.role = UNRESERVED
    elif not refined:
        resource.role = stack[-1].role  # refined reservations have no older form
    if shape.HasField("disk"):
        resource.disk.CopyFrom(shape.disk)


# -- the flag syntax: "cpus:4;mem(role):1024;ports:[31000-32000];zones:{a,b}" -----------

_ITEM = re.compile(r"^\s*([^:(\s]+)\s*(?:\(([^)]*)\))?\s*:\s*(.+?)\s*$")


def parse(text: str, *, default_role: str = UNRESERVED) -> Resources:
    """Mesos's `--resources` text form. ResourceError names what is wrong."""
    items: dict[Key, Quantity] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        match = _ITEM.match(part)
        if not match:
            raise ResourceError(f"cannot parse resource '{part}': expected name[(role)]:value")
        name, role, value = match.group(1), match.group(2) or default_role, match.group(3)
        error = role_error(role)
        if error is not None:
            raise ResourceError(error)
        quantity = parse_value(name, value)
        key = (name, role, "")
        if key in items and type(items[key]) is not type(quantity):
            raise ResourceError(f"resource '{name}' has mixed types")
        items[key] = add_quantity(items[key], quantity) if key in items else quantity
    return Resources(items)


def parse_value(name: str, value: str) -> Quantity:
    if value.startswith("["):
        if not value.endswith("]"):
            raise ResourceError(f"resource '{name}': unterminated range list '{value}'")
        spans = []
        for span in filter(None, (s.strip() for s in value[1:-1].split(","))):
            begin, sep, end = span.partition("-")
            if not sep or not begin.strip().isdigit() or not end.strip().isdigit():
                raise ResourceError(f"resource '{name}': bad range '{span}'")
            spans.append((int(begin), int(end)))
        return merge_ranges(spans)
    if value.startswith("{"):
        if not value.endswith("}"):
            raise ResourceError(f"resource '{name}': unterminated set '{value}'")
        items = filter(None, (s.strip() for s in value[1:-1].split(",")))
        return tuple(sorted(dict.fromkeys(items)))
    try:
        number = float(value)
    except ValueError:
        raise ResourceError(f"resource '{name}': '{value}' is not a number") from None
    return to_milli(number)


def format_resources(resources: Resources) -> str:
    parts = []
    for key, quantity in resources.items.items():
        label = key_label(key)
        if isinstance(quantity, int):
            text = f"{ratio(quantity, MILLI):g}"
        elif quantity and isinstance(quantity[0], str):
            text = "{" + ",".join(quantity) + "}"
        else:
            text = "[" + ",".join(f"{b}-{e}" for b, e in cast(Ranges, quantity)) + "]"
        parts.append(f"{label}:{text}")
    return ";".join(parts)


def key_label(key: Key) -> str:
    """A resource's name as Mesos writes it: "disk(role, principal)[id:path]"."""
    name, role, _ = key
    label = name if role == UNRESERVED else f"{name}({role}{reservation_label(key)})"
    return label + volume_label(key)


def reservation_label(key: Key) -> str:
    """Mesos's text for what sets a dynamic reservation apart: ", principal, {labels}"."""
    if not key[2]:
        return ""
    top = shape_of(key).reservations[-1]
    text = f", {top.principal}" if top.type == DYNAMIC and top.HasField("principal") else ""
    if top.labels.labels:
        pairs = ", ".join(f"{label.key}: {label.value}" for label in top.labels.labels)
        text += f", {{{pairs}}}"
    return text


def volume_label(key: Key) -> str:
    """Mesos's text for a disk: "[MOUNT:/mnt/a,id:path]", "[PATH:/p]", "[id:path]"."""
    disk = key_disk(key)
    if disk is None:
        return ""
    parts = []
    if disk.HasField("source"):
        source = disk.source
        root = source.mount.root if source.type == MOUNT else source.path.root
        parts.append(Source.Type.Name(source.type) + (f":{root}" if root else ""))
    if disk.HasField("persistence"):
        parts.append(f"{disk.persistence.id}:{disk.volume.container_path}")
    return "[" + ",".join(parts) + "]"
