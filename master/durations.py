"""Durations as Mesos writes and reads them (stout's Duration): `15secs`, `10mins`, `1.5hrs`."""

from __future__ import annotations

import re

UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "secs": 1_000_000_000,
    "mins": 60 * 1_000_000_000,
    "hrs": 3600 * 1_000_000_000,
    "days": 86400 * 1_000_000_000,
    "weeks": 7 * 86400 * 1_000_000_000,
}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ns|us|ms|secs|mins|hrs|days|weeks)\s*$")


def parse_duration_ns(text: str) -> int:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(
            f"invalid duration '{text}': expected a number and one of {', '.join(UNITS_NS)}"
        )
    return round(float(match.group(1)) * UNITS_NS[match.group(2)])


def format_duration(ns: int) -> str:
    """As stout prints a Duration: in the largest unit it reaches, to 15 significant
    digits (`10mins`, `1.5secs`, `250ms`)."""
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    unit, size = "ns", 1
    for name, unit_ns in UNITS_NS.items():
        if ns >= unit_ns:
            unit, size = name, unit_ns
    return f"{sign}{ns / size:.15g}{unit}"
