"""Durations as stout writes and reads them."""

from __future__ import annotations

import pytest

from meseta.master.durations import format_duration, parse_duration_ns


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (600_000_000_000, "10mins"),
        (90_000_000_000, "1.5mins"),
        (1_500_000_000, "1.5secs"),
        (250_000_000, "250ms"),
        (5_000, "5us"),
        (7, "7ns"),
        (0, "0ns"),
        (86_400_000_000_000, "1days"),
        (3 * 604_800_000_000_000, "3weeks"),
        (-2_000_000_000, "-2secs"),
    ],
)
def test_format_duration_as_stout(ns: int, text: str) -> None:
    assert format_duration(ns) == text
    if ns >= 0:
        assert parse_duration_ns(text) == ns


def test_parse_refuses_what_mesos_refuses() -> None:
    with pytest.raises(ValueError, match="invalid duration '10 minutes'"):
        parse_duration_ns("10 minutes")
