"""Resource arithmetic in exact integers, keyed by (name, reservation role).

Scalars are milli-units (Mesos rounds to 3 decimals), ranges are sorted,
merged, inclusive (begin, end) tuples, and sets are sorted tuples, so equal
resources compare equal and iterate identically on every replica. The
unreserved role is "*". Dynamic reservations, persistent volumes, revocable
and shared resources arrive with the resource-management issue; until then
`from_protos` rejects them with `ResourceError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import cast

from meseta.master.exact import ratio
from meseta.proto.mesos.v1 import mesos_pb2

UNRESERVED = "*"
MILLI = 1000

Ranges = tuple[tuple[int, int], ...]
Items = tuple[str, ...]
Quantity = int | Ranges | Items
Key = tuple[str, str]  # (name, reservation role)

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
            elif quantity and isinstance(quantity[0], str):
                if not set(quantity).issubset(have):  # type: ignore[arg-type]
                    return False
            elif not ranges_contain(have, quantity):  # type: ignore[arg-type]
                return False
        return True

    def scalar(self, name: str) -> int:
        """Milli-units of `name` over all roles."""
        return sum(q for (n, _), q in self.items.items() if n == name and isinstance(q, int))

    def quantities(self) -> dict[str, int]:
        """Name -> amount over all roles: milli-units, or element counts for ranges/sets."""
        out: dict[str, int] = {}
        for (name, _), quantity in self.items.items():
            out[name] = out.get(name, 0) + count(quantity)
        return out

    def allocatable_to(self, role: str) -> Resources:
        """Unreserved resources plus those reserved for `role` or one of its ancestors."""
        items = self.items
        for _, reserved in items:
            if reserved != UNRESERVED:
                break
        else:
            return self  # all unreserved (the common case): nothing to filter
        return _canonical(
            {k: q for k, q in items.items() if k[1] == UNRESERVED or is_subrole(role, k[1])}
        )

    def unreserved(self) -> Resources:
        return _canonical({k: q for k, q in self.items.items() if k[1] == UNRESERVED})


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


def reservation_role(resource: mesos_pb2.Resource) -> str:
    if resource.reservations:
        return resource.reservations[-1].role
    if resource.HasField("role") and resource.role:
        return resource.role
    return UNRESERVED


def from_protos(resources: Iterable[mesos_pb2.Resource]) -> Resources:
    """Our form of Mesos resources; ResourceError for malformed or unsupported ones."""
    items: dict[Key, Quantity] = {}
    for resource in resources:
        check_supported(resource)
        key = (resource.name, reservation_role(resource))
        quantity = proto_quantity(resource)
        if key in items and type(items[key]) is not type(quantity):
            raise ResourceError(f"resource '{resource.name}' has mixed types")
        items[key] = add_quantity(items[key], quantity) if key in items else quantity
    return Resources(items)


def check_supported(resource: mesos_pb2.Resource) -> None:
    if not resource.name:
        raise ResourceError("resource without a name")
    for unsupported in ("disk", "revocable", "shared", "provider_id"):
        if resource.HasField(unsupported) and not (
            unsupported == "disk" and resource.disk.ByteSize() == 0
        ):
            raise ResourceError(
                f"resource '{resource.name}' uses '{unsupported}': not supported yet"
            )
    if resource.HasField("reservation") or any(
        r.type == mesos_pb2.Resource.ReservationInfo.DYNAMIC for r in resource.reservations
    ):
        raise ResourceError(
            f"resource '{resource.name}' is dynamically reserved: not supported yet"
        )


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
    """Mesos resources; `refined=False` gives the pre-refinement format (`role` set), and
    `endpoint=True` the operator endpoints' hybrid (Mesos's ENDPOINT format): the
    reservations and the deprecated `role` both, "*" when unreserved."""
    out: list[mesos_pb2.Resource] = []
    for (name, role), quantity in resources.items.items():
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
        if refined and role != UNRESERVED:
            resource.reservations.add(type=mesos_pb2.Resource.ReservationInfo.STATIC, role=role)
        if endpoint or not refined:
            resource.role = role
        if allocation_role is not None:
            resource.allocation_info.role = allocation_role
        out.append(resource)
    return out


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
        quantity = parse_value(name, value)
        key = (name, role)
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
    for (name, role), quantity in resources.items.items():
        label = name if role == UNRESERVED else f"{name}({role})"
        if isinstance(quantity, int):
            text = f"{ratio(quantity, MILLI):g}"
        elif quantity and isinstance(quantity[0], str):
            text = "{" + ",".join(quantity) + "}"
        else:
            text = "[" + ",".join(f"{b}-{e}" for b, e in cast(Ranges, quantity)) + "]"
        parts.append(f"{label}:{text}")
    return ";".join(parts)
