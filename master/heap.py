"""The cyclic garbage collector's settings for any process that holds the master's state.

Such a process keeps a large, long-lived heap (the fold state, the read view) and
allocates briskly (an event per command, per request). With CPython's default
thresholds (700, 10, 10) a busy leader spent about a tenth of its CPU in the cyclic
collector, mostly re-scanning that heap in full collections (~100 ms each at 10k
tasks), and a replay lost a sixth of its speed the same way. These thresholds collect
young objects every 20,000 allocations instead of 700, and look at the whole heap after
some 10^8 allocations instead of 70,000 (and, as always, only once it grew by a
quarter). Reference counting still frees at once everything that is not in a cycle.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (20_000, 50, 100)


def tune_collector() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
