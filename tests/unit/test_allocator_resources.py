"""The `Resources` fast paths the allocator leans on (master/resources.py).

Subtraction walks the left operand in order and skips the constructor's
sort; range subtraction is one merge-like pass. Both are checked against
plain set arithmetic and against the canonical constructor.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meseta.master.resources import (
    Ranges,
    Resources,
    merge_ranges,
    parse,
    ranges_contain,
    subtract_ranges,
)


def points(ranges: Ranges) -> set[int]:
    return {value for begin, end in ranges for value in range(begin, end + 1)}


def as_ranges(values: set[int]) -> Ranges:
    return merge_ranges((value, value) for value in values)


range_sets = st.sets(st.integers(0, 60), max_size=40).map(as_ranges)


@settings(max_examples=500, deadline=None, database=None)
@given(left=range_sets, right=range_sets)
def test_subtract_ranges_is_set_difference(left: Ranges, right: Ranges) -> None:
    result = subtract_ranges(left, right)
    assert result == as_ranges(points(left) - points(right))
    assert ranges_contain(left, right) == (points(right) <= points(left))


def canonical(resources: Resources) -> bool:
    return Resources(resources.items).items == resources.items and list(resources.items) == sorted(
        resources.items
    )


texts = st.lists(
    st.sampled_from(
        (
            "cpus:1",
            "cpus:2.5",
            "mem:64",
            "cpus(a):1",
            "mem(a/b):32",
            "disk:10",
            "ports:[1-5]",
            "ports:[3-9,20-22]",
            "ports(a):[7-8]",
            "zones:{x,y}",
            "zones:{y}",
        )
    ),
    max_size=5,
).map(";".join)


@settings(max_examples=300, deadline=None, database=None)
@given(left=texts, right=texts)
def test_add_and_sub_stay_canonical(left: str, right: str) -> None:
    a, b = parse(left), parse(right)
    total, rest = a + b, a - b
    assert canonical(total) and canonical(rest)
    assert total.contains(a) and total.contains(b)
    assert a.contains(rest)
    assert (total - b).contains(a - b)
    for role in ("a", "a/b", "c"):
        assert canonical(rest.allocatable_to(role))
    assert canonical(rest.unreserved())


def test_sub_drops_what_is_used_up() -> None:
    assert parse("cpus:2;mem:64") - parse("cpus:2") == parse("mem:64")
    assert parse("ports:[1-5]") - parse("ports:[1-5];cpus:1") == Resources()
    assert parse("zones:{x,y}") - parse("zones:{x}") == parse("zones:{y}")
    assert (parse("cpus:1") - parse("cpus:3")).items == {}
