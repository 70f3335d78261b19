"""The fold compiled by mypyc (a wheel install, setup.py) must fold exactly as interpreted.

The golden replays and digest tests run in both builds (CI tests the wheel, an editable
install runs interpreted); these pin the known difference between the two.
"""

from __future__ import annotations

import os

import pytest

from meseta.master import fold
from meseta.master.exact import ratio
from meseta.master.resources import UNRESERVED, Resources, format_resources, to_protos
from meseta.master.statuses import master_status

# Above 2**53: dividing the two ints as doubles (what compiled `/` does) is off by one bit.
NOW_NS = 1_700_000_600_014_000_000


def test_ratio_rounds_once_as_interpreted_python_does() -> None:
    assert ratio(NOW_NS, 1_000_000_000) == 1700000600.014
    assert float(NOW_NS) / 1e9 != 1700000600.014  # the double-rounded quotient differs
    assert ratio(7, 2) == 3.5


def test_master_status_timestamps_are_exact() -> None:
    status = master_status(task_id="t", state=0, reason=0, message="", now_ns=NOW_NS)
    assert status.timestamp == 1700000600.014


def test_huge_scalars_convert_exactly() -> None:
    milli = 3_717_808_958_748_060_383  # its quotient by 1000 differs when taken as doubles
    assert float(milli) / 1000 != milli / 1000
    resources = Resources({("mem", UNRESERVED, ""): milli})
    (proto,) = to_protos(resources)
    assert proto.scalar.value == milli / 1000
    assert format_resources(resources) == f"mem:{milli / 1000:g}"


@pytest.mark.skipif(
    not os.environ.get("MESETA_REQUIRE_COMPILED"),
    reason="only where the install must be compiled (CI sets MESETA_REQUIRE_COMPILED=1)",
)
def test_the_installed_fold_is_compiled() -> None:
    assert fold.compiled()
