"""Allocator settings and the minimum-allocatable rule (contract 7.3).

A minimum is an OR of alternatives, each an AND of `name -> milli-units`.
Ranges and sets count elements, so `ports:1` (1000 milli) means one port.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from meseta.master.resources import MILLI, ResourceError, to_milli
from meseta.proto.mesos.v1 import mesos_pb2

MinAllocatable = tuple[Mapping[str, int], ...]


@dataclass(frozen=True, slots=True)
class AllocatorConfig:
    # Mesos's default `--min_allocatable_resources=cpus:0.01|mem:32`; () allows anything.
    min_allocatable: MinAllocatable = ({"cpus": 10}, {"mem": 32 * MILLI})
    # Mesos's `--filter_gpu_resources`: GPU agents only go to GPU_RESOURCES frameworks.
    filter_gpu_resources: bool = True


def parse_min_allocatable(text: str) -> tuple[dict[str, int], ...]:
    """Mesos's flag syntax, e.g. "cpus:0.01|mem:32"; "" gives () (anything goes).

    As in Mesos: empty tokens are skipped, zero quantities dropped, and a
    name repeated within an alternative adds up.
    """
    alternatives: list[dict[str, int]] = []
    for alternative in text.split("|"):
        if alternative.strip():
            alternatives.append(parse_alternative(alternative))
    return tuple(alternatives)


def parse_alternative(text: str) -> dict[str, int]:
    quantities: dict[str, int] = {}
    for token in filter(None, (part.strip() for part in text.split(";"))):
        fields = token.split(":")
        if len(fields) != 2 or not fields[0].strip():
            raise ValueError(f"min_allocatable: cannot parse '{token}': expected name:quantity")
        name, value = fields[0].strip(), fields[1].strip()
        milli = quantity_milli(name, value)
        if milli:
            quantities[name] = quantities.get(name, 0) + milli
    return quantities


def quantity_milli(name: str, value: str) -> int:
    try:
        number = float(value)
        milli = to_milli(number)
    except (ValueError, ResourceError):
        raise ValueError(
            f"min_allocatable: '{name}:{value}' needs a finite, non-negative number"
        ) from None
    # A positive amount below one milli still requires some of the resource.
    return max(milli, 1) if number > 0 else 0


def framework_minimum(info: mesos_pb2.FrameworkInfo, role: str) -> MinAllocatable | None:
    """The framework's own minimum for `role` (contract 7.3), or None to use the global one."""
    if role not in info.offer_filters:
        return None
    filters = info.offer_filters[role]
    if not filters.HasField("min_allocatable_resources"):
        return None
    alternatives: list[dict[str, int]] = []
    for quantities in filters.min_allocatable_resources.quantities:
        alternative: dict[str, int] = {}
        for name, scalar in sorted(quantities.quantities.items()):
            value = scalar.value
            if math.isfinite(value) and value > 0:
                alternative[name] = max(round(value * MILLI), 1)
        alternatives.append(alternative)
    return tuple(alternatives)


def satisfies(counts: Mapping[str, int], minimum: MinAllocatable) -> bool:
    """Whether a chunk with these per-name counts holds one alternative; () takes anything."""
    if not minimum:
        return True
    for alternative in minimum:
        for name, need in alternative.items():
            if counts.get(name, 0) < need:
                break
        else:
            return True
    return False
