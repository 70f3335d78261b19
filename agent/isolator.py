"""Isolators: the pluggable part of a container (Mesos's `mesos::slave::Isolator`).

The containerizer calls, per container: `prepare` before the launch (an isolator may ask the
launcher to join files such as cgroup.procs, or add environment), `isolate` once the root pid is
known, `watch` for a resource limitation (which makes the containerizer destroy the container and
report the limitation's reason), `update` on resource changes, `usage` for statistics, and
`cleanup` after the container's processes are gone. `recover` runs once after an agent restart
with the containers that are still alive. The real cgroups/namespaces isolators are a later
issue; `PosixIsolator` is Mesos's default `posix/cpu,posix/mem`: usage from /proc, no limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from meseta.agent import launcher
from meseta.proto.mesos.v1 import mesos_pb2

if TYPE_CHECKING:
    from meseta.agent.containerizer import ContainerConfig


@dataclass(frozen=True, slots=True)
class LaunchInfo:
    """What an isolator needs from the launch: more environment, files to write the root pid to
    before it forks the executor (so every descendant inherits the membership)."""

    environment: Mapping[str, str] = field(default_factory=dict)
    join_files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Limitation:
    """A container went over a limit; it is destroyed and its tasks fail with `reason`."""

    reason: int  # mesos_pb2.TaskStatus.Reason
    message: str
    resources: tuple[mesos_pb2.Resource, ...] = ()


@dataclass(frozen=True, slots=True)
class RecoveredContainer:
    container_id: str
    pid: int
    start_time: int


class Isolator(Protocol):
    @property
    def name(self) -> str: ...

    async def recover(self, containers: Sequence[RecoveredContainer]) -> None: ...

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None: ...

    async def isolate(self, container_id: str, pid: int, start_time: int) -> None: ...

    async def watch(self, container_id: str) -> Limitation:
        """Resolves only when the container hits a limit (cancelled at cleanup)."""
        ...

    async def update(self, container_id: str, resources: Sequence[mesos_pb2.Resource]) -> None: ...

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics: ...

    async def cleanup(self, container_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Root:
    pid: int
    start_time: int


class PosixIsolator:
    """Usage of the container's process tree from /proc (`tree_usage`); enforces nothing
    (like Mesos's posix isolators)."""

    name = "posix/cpu,posix/mem"

    def __init__(self) -> None:
        self._roots: dict[str, _Root] = {}

    async def recover(self, containers: Sequence[RecoveredContainer]) -> None:
        for container in containers:
            self._roots[container.container_id] = _Root(container.pid, container.start_time)

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        return None

    async def isolate(self, container_id: str, pid: int, start_time: int) -> None:
        self._roots[container_id] = _Root(pid, start_time)

    async def watch(self, container_id: str) -> Limitation:
        await asyncio.get_running_loop().create_future()  # posix never limits
        raise AssertionError("unreachable")

    async def update(self, container_id: str, resources: Sequence[mesos_pb2.Resource]) -> None:
        return None

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        root = self._roots.get(container_id)
        if root is None:
            return mesos_pb2.ResourceStatistics(timestamp=0.0)
        return await tree_usage(root.pid, root.start_time)

    async def cleanup(self, container_id: str) -> None:
        self._roots.pop(container_id, None)


async def tree_usage(pid: int, start_time: int) -> mesos_pb2.ResourceStatistics:
    """What a process tree uses, from /proc: CPU times count the live processes plus what
    their reaped children used."""
    members = await asyncio.to_thread(launcher.tree, pid, start_time)
    ticks = float(launcher.CLOCK_TICKS)
    statistics = mesos_pb2.ResourceStatistics(timestamp=0.0)
    statistics.processes = len(members)
    statistics.threads = sum(member.threads for member in members)
    statistics.cpus_user_time_secs = sum(m.utime + m.cutime for m in members) / ticks
    statistics.cpus_system_time_secs = sum(m.stime + m.cstime for m in members) / ticks
    statistics.mem_rss_bytes = sum(m.rss_pages for m in members) * launcher.PAGE_SIZE
    return statistics
