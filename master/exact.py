"""Arithmetic that gives the same bits whether the fold runs interpreted or compiled.

CPython divides two ints exactly and rounds once; code compiled by mypyc converts both
to doubles first, so a quotient of ints above 2**53 (nanosecond timestamps, large
milli-resources) can differ in its last bit. Every replica must fold to the same state,
so such quotients go through here (`operator.truediv` is CPython's own division).
"""

from __future__ import annotations

import operator
from typing import Final


def ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator, correctly rounded, as interpreted Python computes it."""
    quotient: float = _truediv(numerator, denominator)
    return quotient


_truediv: Final = operator.truediv
