"""Mesos flag value formats (contract 7.10): durations such as `15secs`, `10mins`."""

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
    """The largest unit that shows the value as a whole number (e.g. `5secs`)."""
    for unit, size in reversed(UNITS_NS.items()):
        if ns and ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"
