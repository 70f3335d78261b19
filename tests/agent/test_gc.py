"""Sandbox garbage collection (agent/gc.py): Mesos's schedule, its disk-pressure rule, recovery
from what is on disk, and empty parents going with the last run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meseta.agent.gc import SandboxCollector, disk_usage, prune_window_s

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def run_dir(slaves: Path, agent: str, framework: str, executor: str, run: str) -> Path:
    path = slaves / agent / "frameworks" / framework / "executors" / executor / "runs" / run
    path.mkdir(parents=True)
    (path / "stdout").write_text("output\n")
    return path


def collector(slaves: Path, clock: Clock, usage: float = 0.0) -> SandboxCollector:
    return SandboxCollector(slaves, 7 * DAY, 0.1, 60.0, clock=clock, usage=lambda _: usage)


def test_the_prune_window_grows_as_the_disk_fills() -> None:
    assert prune_window_s(100.0, 0.1, 0.0) == pytest.approx(10.0)  # headroom only
    assert prune_window_s(100.0, 0.1, 0.5) == pytest.approx(60.0)
    assert prune_window_s(100.0, 0.1, 0.95) == pytest.approx(100.0)  # everything scheduled
    assert prune_window_s(100.0, 0.0, 0.0) == 0.0


async def test_a_run_goes_after_the_delay_with_its_empty_parents(tmp_path: Path) -> None:
    slaves, clock = tmp_path / "slaves", Clock()
    old = run_dir(slaves, "S1", "fw", "ex", "c1")
    kept = run_dir(slaves, "S1", "fw", "other", "c2")
    (old.parent / "latest").symlink_to("c1")
    gc = collector(slaves, clock)
    gc.schedule(old)
    clock.now += 6 * DAY  # with 10% headroom, due 0.7 days early: not yet
    await gc.collect()
    assert old.exists() and gc.counters.succeeded == 0
    clock.now += 0.31 * DAY
    await gc.collect()
    assert not old.exists() and not old.parents[1].exists()  # executors/ex went too
    assert kept.exists() and (slaves / "S1" / "frameworks" / "fw" / "executors").exists()
    assert (gc.counters.succeeded, gc.counters.failed, gc.due) == (1, 0, {})


async def test_a_full_disk_removes_everything_scheduled_at_once(tmp_path: Path) -> None:
    slaves, clock = tmp_path / "slaves", Clock()
    runs = [run_dir(slaves, "S1", "fw", f"ex{n}", "c") for n in range(3)]
    gc = collector(slaves, clock, usage=0.95)
    for run in runs:
        gc.schedule(run)
    await gc.collect()
    assert not any(run.exists() for run in runs)
    assert gc.max_allowed_age_s() == 0.0  # Mesos's gauge: nothing may wait any more
    assert not (slaves / "S1").exists() and slaves.exists()  # never the slaves dir itself


async def test_recovery_schedules_unowned_runs_from_their_modification_time(
    tmp_path: Path,
) -> None:
    slaves, clock = tmp_path / "slaves", Clock()
    live = run_dir(slaves, "S2", "fw", "ex", "live")
    recent = run_dir(slaves, "S2", "fw", "ex", "recent")
    ancient = run_dir(slaves, "S1", "fw", "ex", "ancient")  # of an agent id gone by
    (live.parent / "latest").symlink_to("live")
    os.utime(recent, (clock.now - DAY, clock.now - DAY))
    os.utime(ancient, (clock.now - 30 * DAY, clock.now - 30 * DAY))
    gc = collector(slaves, clock)
    assert gc.recover([live]) == 2
    assert gc.due[recent] == pytest.approx(clock.now + 6 * DAY)
    await gc.collect()
    assert not ancient.exists() and not (slaves / "S1").exists()
    assert recent.exists() and live.exists() and (live.parent / "latest").exists()


def test_disk_usage_is_read_before_the_first_sandbox_exists(tmp_path: Path) -> None:
    assert 0.0 <= disk_usage(tmp_path / "slaves" / "not" / "yet") <= 1.0


async def test_the_max_allowed_age_follows_the_disk(tmp_path: Path) -> None:
    gc = collector(tmp_path / "slaves", Clock(), usage=0.5)
    await gc.collect()
    assert gc.max_allowed_age_s() == pytest.approx(7 * DAY * 0.4)  # gc_delay * (1 - 0.1 - 0.5)
