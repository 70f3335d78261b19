"""What every projection is: a fold of domain events that knows how far it got."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from meseta.master.events import DomainEvent


class Projection(Protocol):
    # The log index of the last entry folded in; entries at or below it are skipped,
    # so a projection restored from its checkpoint can be fed the log from anywhere
    # before that index while it catches up.
    applied_index: int

    def apply(self, index: int, events: Sequence[DomainEvent], now_ns: int | None = None) -> object:
        """Fold the events of entry `index` (time `now_ns`, the entry timestamp)."""
        ...
