"""Sandbox garbage collection, as Mesos's agent does it (`--gc_delay`, `--gc_disk_headroom`,
`--disk_watch_interval`).

The run directory of an executor that has ended is removed `--gc_delay` after it ended; every
`--disk_watch_interval` the agent looks at its disk and removes sooner when the disk fills up:
with the disk a fraction `usage` full, everything due within
`gc_delay - gc_delay * max(0, 1 - gc_disk_headroom - usage)` goes now. After a restart, runs
found on disk that no live executor owns are scheduled from their modification time, and
directories left empty above a removed run (the executor's, the framework's, an old agent
id's) go with it. Completed executors stay in /state; their files are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("meseta.agent")
RUNS = "runs"
LATEST = "latest"


@dataclass
class GcCounters:
    succeeded: int = 0
    failed: int = 0


def prune_window_s(delay_s: float, headroom: float, usage: float) -> float:
    """How far ahead of its time a scheduled removal happens, at this disk usage (Mesos)."""
    return delay_s - delay_s * max(0.0, 1.0 - headroom - usage)


def disk_usage(path: Path) -> float:
    """The used share of the disk `path` is (or will be) on."""
    while not path.exists() and path.parent != path:
        path = path.parent  # `slaves/` appears with the first sandbox
    usage = shutil.disk_usage(path)
    return usage.used / usage.total if usage.total else 0.0


class SandboxCollector:
    def __init__(
        self,
        slaves_dir: Path,
        delay_s: float,
        headroom: float,
        interval_s: float,
        *,
        clock: Callable[[], float] = time.time,
        usage: Callable[[Path], float] = disk_usage,
    ) -> None:
        """`slaves_dir`: `<work_dir>/slaves`; nothing at or above it is ever removed."""
        self.slaves_dir = slaves_dir
        self.delay_s = delay_s
        self.headroom = headroom
        self.interval_s = interval_s
        self.clock = clock
        self.usage = usage
        self.due: dict[Path, float] = {}  # run directory -> when it goes (wall clock)
        self.counters = GcCounters()
        self.last_usage = 0.0  # the disk's used share at the last look

    def max_allowed_age_s(self) -> float:
        """How old an ended sandbox may grow at the last disk usage seen (Mesos's gauge
        `slave/executor_directory_max_allowed_age_secs`)."""
        return self.delay_s - prune_window_s(self.delay_s, self.headroom, self.last_usage)

    def schedule(self, run: Path, delay_s: float | None = None) -> None:
        """Remove `run` after `delay_s` (default `--gc_delay`)."""
        wait = self.delay_s if delay_s is None else max(delay_s, 0.0)
        self.due[run] = self.clock() + wait

    def recover(self, live: Iterable[Path]) -> int:
        """Schedule every run on disk that no live executor owns, counting from its mtime."""
        owned = {Path(path) for path in live}
        now = self.clock()
        found = 0
        for run in sorted(self.slaves_dir.glob(f"*/frameworks/*/executors/*/{RUNS}/*")):
            if run.name == LATEST or run in owned or run in self.due or run.is_symlink():
                continue
            with contextlib.suppress(OSError):
                self.schedule(run, self.delay_s - (now - run.stat().st_mtime))
                found += 1
        return found

    def due_now(self) -> list[Path]:
        """What goes at this disk usage, oldest first."""
        self.last_usage = self.usage(self.slaves_dir)
        window_s = prune_window_s(self.delay_s, self.headroom, self.last_usage)
        horizon = self.clock() + window_s
        ready = [(when, str(path), path) for path, when in self.due.items() if when <= horizon]
        return [path for _, _, path in sorted(ready)]

    async def collect(self) -> None:
        """Remove what is due (the tree in a thread; the empty parents in the event loop, where
        launches create theirs, so that none vanishes under a launch)."""
        for run in self.due_now():
            try:
                await asyncio.to_thread(_remove_tree, run)
            except OSError as error:
                log.warning("could not remove sandbox %s: %s", run, error)
                self.counters.failed += 1
            else:
                log.info("removed sandbox %s", run)
                self.counters.succeeded += 1
                self._remove_empty_parents(run)
            self.due.pop(run, None)

    async def run(self) -> None:
        while True:
            try:
                await self.collect()
            except OSError as error:  # e.g. the disk cannot be looked at: try again later
                log.warning("sandbox garbage collection failed: %s", error)
            await asyncio.sleep(self.interval_s)

    def _remove_empty_parents(self, run: Path) -> None:
        latest = run.parent / LATEST
        if latest.is_symlink() and not latest.exists():
            with contextlib.suppress(OSError):
                latest.unlink()
        parent = run.parent
        while parent != self.slaves_dir and self.slaves_dir in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                return  # not empty (or gone): what is above is in use too
            parent = parent.parent


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or not path.exists():
        return
    shutil.rmtree(path)
