"""Hierarchical DRF order for one allocation cycle, kept on scratch copies of the shares.

Roles are slash paths forming a tree. Each level orders its children by
dominant share (scalar resources only, over the cluster total) divided by
weight, where a node's allocation is the sum over its subtree; ties go to
the smaller path. A role that has both frameworks and subroles competes with
its subroles through a virtual leaf "<role>/." holding its own allocation,
which, as in Mesos's sorter, carries the default weight. Frameworks in a
role are ordered by their share of that role's allocation, ties by id.
Mesos breaks share ties by allocation count first; that count is not part
of our state (Mesos does not persist it either), so ids decide.

Shares are exact integers: with L the lcm of the scalar totals and W the
lcm of the weights in play, share(n) * L * W / weight is an integer, so
equal shares tie exactly and no float ever picks between alternatives.

Every order is a sorted list of (key, path, item) tuples; after an
allocation only the entries whose share changed are moved (bisect, delete,
insort), so nothing is re-sorted per agent.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterator, Mapping
from operator import itemgetter
from typing import Generic, TypeVar

from meseta.master.resources import Resources

DEFAULT_WEIGHT = 1000  # milli
SELF = "."  # the virtual leaf's name, as in Mesos

Scale = tuple[tuple[str, int], ...]  # scalar name -> L // total

T = TypeVar("T")

_ITEM = itemgetter(2)


def share_scale(cluster_total: Resources) -> Scale:
    totals: dict[str, int] = {}
    for (name, _, _), quantity in cluster_total.items.items():
        if isinstance(quantity, int):
            totals[name] = totals.get(name, 0) + quantity
    positive = {name: total for name, total in sorted(totals.items()) if total > 0}
    if not positive:
        return ()
    common = math.lcm(*positive.values())
    return tuple((name, common // total) for name, total in positive.items())


def dominant(amounts: Mapping[str, int], scale: Scale) -> int:
    best = 0
    for name, multiplier in scale:
        amount = amounts.get(name)
        if amount and amount * multiplier > best:
            best = amount * multiplier
    return best


def grow(amounts: dict[str, int], counts: Mapping[str, int], scale: Scale) -> int:
    """Add `counts` to `amounts` (the scaled names only); the new dominant share."""
    best = 0
    for name, multiplier in scale:
        amount = amounts[name] + counts.get(name, 0)
        amounts[name] = amount
        if amount * multiplier > best:
            best = amount * multiplier
    return best


def scalar_amounts(resources: Resources | None, scale: Scale) -> dict[str, int]:
    """The amounts of the scaled (scalar) names, over all reservation roles."""
    amounts = dict.fromkeys((name for name, _ in scale), 0)
    if resources is not None:
        for (name, _, _), quantity in resources.items.items():
            if name in amounts and isinstance(quantity, int):
                amounts[name] += quantity
    return amounts


class Ordered(Generic[T]):
    """Items in ascending (key, path) order; keys only grow within a cycle."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[tuple[int, str, T]] = []

    def add(self, key: int, path: str, item: T) -> None:
        self.entries.append((key, path, item))

    def sort(self) -> None:
        self.entries.sort(key=lambda entry: (entry[0], entry[1]))

    def move(self, old_key: int, new_key: int, path: str, item: T) -> None:
        """Re-key one entry; `new_key` >= `old_key`, so it can only move right."""
        entries = self.entries
        # (key, path) is a proper prefix of its entry, so bisect_left lands on it.
        index = bisect_left(entries, (old_key, path))
        del entries[index]
        insort(entries, (new_key, path, item), lo=index)

    def move_at(self, index: int, new_key: int, path: str, item: T) -> None:
        """Re-key the entry at `index` (its key can only have grown)."""
        entries = self.entries
        del entries[index]
        insort(entries, (new_key, path, item), lo=index)


class RoleNode(Generic[T]):
    """A role in the tree; `T` is the allocator's per-framework record."""

    __slots__ = (
        "children",
        "frameworks",
        "key",
        "multiplier",
        "own",
        "own_key",
        "own_ranked",
        "parent",
        "path",
        "ranked",
        "subtree",
    )

    def __init__(self, path: str, parent: RoleNode[T] | None, multiplier: int) -> None:
        self.path = path
        self.parent = parent
        self.multiplier = multiplier  # W // weight
        self.subtree: dict[str, int] = {}  # scalar allocation of the whole subtree
        self.key = 0
        self.own: dict[str, int] = {}  # this role's own allocation (the virtual leaf)
        self.own_key = 0
        # Children with frameworks below them; the node itself (the virtual leaf) under SELF.
        self.children: Ordered[RoleNode[T]] = Ordered()
        self.frameworks: Ordered[T] = Ordered()
        # Whether key / own key have siblings to be ordered against (else never read).
        self.ranked = False
        self.own_ranked = False


def ancestry(role: str) -> list[str]:
    """Role "a/b/c" -> ["a", "a/b", "a/b/c"]."""
    parts = role.split("/")
    return ["/".join(parts[: depth + 1]) for depth in range(len(parts))]


class RoleTree(Generic[T]):
    """The roles that have candidate frameworks, with their ancestors, in DRF order."""

    def __init__(
        self,
        roles: list[str],
        weights: Mapping[str, int],
        role_allocated: Mapping[str, Resources],
        scale: Scale,
    ) -> None:
        self.scale = scale
        paths: dict[str, None] = {}
        for role in roles:
            paths.update(dict.fromkeys(ancestry(role)))
        used = [max(weights.get(path, DEFAULT_WEIGHT), 1) for path in paths]
        common = math.lcm(DEFAULT_WEIGHT, *used)
        self.self_multiplier = common // DEFAULT_WEIGHT
        self.root: RoleNode[T] = RoleNode("", None, 0)
        self.flat = False
        self.nodes: dict[str, RoleNode[T]] = {}
        for path in sorted(paths):  # parents sort before their children
            parent = self.nodes.get(path.rpartition("/")[0], self.root)
            weight = max(weights.get(path, DEFAULT_WEIGHT), 1)
            node: RoleNode[T] = RoleNode(path, parent, common // weight)
            node.subtree = scalar_amounts(None, scale)
            node.own = scalar_amounts(None, scale)
            self.nodes[path] = node
        self.charge_existing(role_allocated)
        own_roles = dict.fromkeys(roles)
        for path, node in self.nodes.items():
            node.key = dominant(node.subtree, scale) * node.multiplier
            node.own_key = dominant(node.own, scale) * self.self_multiplier
            assert node.parent is not None
            node.parent.children.add(node.key, path, node)
            if path in own_roles:
                node.children.add(node.own_key, path + "/" + SELF, node)

    def charge_existing(self, role_allocated: Mapping[str, Resources]) -> None:
        for role, resources in role_allocated.items():
            amounts = scalar_amounts(resources, self.scale)
            node = self.nodes.get(role)
            if node is not None:
                grow(node.own, amounts, self.scale)
            for path in ancestry(role):
                prefix = self.nodes.get(path)
                if prefix is not None:
                    grow(prefix.subtree, amounts, self.scale)

    def finish(self) -> None:
        """Sort every level once; call after adding the frameworks."""
        self.root.children.sort()
        for node in self.nodes.values():
            node.children.sort()
            node.frameworks.sort()
            assert node.parent is not None
            node.ranked = len(node.parent.children.entries) > 1
            node.own_ranked = len(node.children.entries) > 1
        # Only top-level roles, all with frameworks: the walk is the root's order.
        self.flat = all(
            node.parent is self.root and node.children.entries and not node.own_ranked
            for node in self.nodes.values()
        )

    def walk(self) -> Iterator[RoleNode[T]]:
        """Roles with frameworks, in DRF order (pre-order over the sorted levels)."""
        if self.flat:
            return map(_ITEM, self.root.children.entries)
        return walk(self.root)

    def charge(self, node: RoleNode[T], counts: Mapping[str, int]) -> None:
        """Account an allocation to `node`'s role and reorder what it changed.

        Amounts feed only keys, and keys only order siblings, so a level
        without siblings is skipped (a lone role costs nothing here).
        """
        scale = self.scale
        if node.own_ranked:
            old = node.own_key
            node.own_key = grow(node.own, counts, scale) * self.self_multiplier
            node.children.move(old, node.own_key, node.path + "/" + SELF, node)
        current: RoleNode[T] | None = node
        while current is not None and current.parent is not None:
            if current.ranked:
                old = current.key
                current.key = grow(current.subtree, counts, scale) * current.multiplier
                current.parent.children.move(old, current.key, current.path, current)
            current = current.parent


def walk(node: RoleNode[T]) -> Iterator[RoleNode[T]]:
    for _, _, child in node.children.entries:
        if child is node or (child.frameworks.entries and not child.own_ranked):
            yield child  # the virtual leaf, or a role without subroles below it
        else:
            yield from walk(child)
