"""The skeleton both of our executors share: run the driver until done, turn events into jobs.

Subclasses say what LAUNCH, LAUNCH_GROUP, KILL and SHUTDOWN do; each event's handling runs
as a job of its own (so the driver's read loop never waits on a task), and every job still
running when the executor is done is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any

from meseta.agent.executor_driver import ExecutorDriver, ExecutorEnvironment
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.executor import executor_pb2

Event = executor_pb2.Event
log = logging.getLogger("meseta.executor")


class ExecutorProgram(ABC):
    def __init__(self, environment: ExecutorEnvironment) -> None:
        self.environment = environment
        self.driver = ExecutorDriver(environment, self._on_event)
        self._done = asyncio.Event()
        self._jobs: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        """Until a subclass sets `_done`; then stop the driver and cancel what still runs."""
        driver = asyncio.get_running_loop().create_task(self.driver.run())
        try:
            await self._done.wait()
        finally:
            self.driver.stop()
            for job in self._jobs:
                job.cancel()
            await asyncio.gather(driver, *self._jobs, return_exceptions=True)

    def _on_event(self, event: executor_pb2.Event) -> None:
        if event.type == Event.LAUNCH:
            self._spawn(self._on_launch(event.launch.task))
        elif event.type == Event.LAUNCH_GROUP:
            self._spawn(self._on_launch_group(event.launch_group.task_group))
        elif event.type == Event.KILL:
            policy = event.kill.kill_policy if event.kill.HasField("kill_policy") else None
            self._spawn(self._on_kill(event.kill.task_id.value, policy))
        elif event.type == Event.SHUTDOWN:
            self._spawn(self._on_shutdown())
        elif event.type == Event.ERROR:
            log.error("Error from the agent: %s", event.error.message)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        self._jobs.append(asyncio.get_running_loop().create_task(job))

    @abstractmethod
    async def _on_launch(self, task: mesos_pb2.TaskInfo) -> None: ...

    @abstractmethod
    async def _on_launch_group(self, group: mesos_pb2.TaskGroupInfo) -> None: ...

    @abstractmethod
    async def _on_kill(self, task_id: str, policy: mesos_pb2.KillPolicy | None) -> None:
        """KILL: `policy` is the one the KILL carries, if any."""

    @abstractmethod
    async def _on_shutdown(self) -> None: ...
