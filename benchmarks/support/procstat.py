"""Process figures read from /proc, shared by the benchmarks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total
