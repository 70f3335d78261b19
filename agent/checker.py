"""Runs a task's check and health check for our executors (the rules are in `agent/checks.py`).

COMMAND probes run the check's CommandInfo like the task itself (its sandbox, environment and
user; output to the executor's stderr) and kill the probe's process tree when it times out.
HTTP probes GET the task's port on loopback, following redirects and trusting any certificate
(as Mesos's `curl -k -L`); TCP probes connect to it. Tasks share the executor's network, so
loopback is the task's. Probes pause while the executor is disconnected from the agent and run
at once when it is back, as Mesos's checkers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp

from meseta.agent import checks, launcher
from meseta.agent.checks import CheckInfo, CheckTracker, HealthTracker, Probe
from meseta.agent.task_process import TaskProcess
from meseta.proto.mesos.v1 import mesos_pb2

log = logging.getLogger("meseta.executor")
Reason = mesos_pb2.TaskStatus.Reason
NO_TIMEOUT = aiohttp.ClientTimeout(total=None)


class ProbeFailed(Exception):
    """The probe could not be performed (or timed out): no result to judge."""


@dataclass(frozen=True)
class CommandContext:
    """Where COMMAND probes run: the task's sandbox, environment and user."""

    working_dir: str
    environment: Mapping[str, str]
    user: str | None = None


async def perform(probe: Probe, context: CommandContext) -> mesos_pb2.CheckStatusInfo:
    """One probe's result; ProbeFailed when there is none."""
    try:
        if probe.kind == CheckInfo.COMMAND:
            return await _command(probe, context)
        if probe.kind == CheckInfo.HTTP:
            return await asyncio.wait_for(_http(probe), probe.timeout_s)
        return await _tcp(probe)
    except TimeoutError:
        raise ProbeFailed(f"{probe.name} check timed out after {probe.timeout_s}s") from None
    except (OSError, ValueError, OverflowError, aiohttp.ClientError) as error:
        raise ProbeFailed(f"{probe.name} check could not run: {error}") from None


async def _command(probe: Probe, context: CommandContext) -> mesos_pb2.CheckStatusInfo:
    assert probe.command is not None
    process = TaskProcess(
        probe.command,
        context.working_dir,
        context.environment,
        stdout=sys.stderr,
        stderr=sys.stderr,
        user=context.user,
    )
    try:
        await process.start()
    except (OSError, KeyError, ValueError) as error:
        raise ProbeFailed(f"Failed to launch the check command: {error}") from None
    try:
        status = await asyncio.wait_for(process.wait(), probe.timeout_s)
    except BaseException:
        await process.destroy()  # timed out or cancelled: nothing of the probe outlives it
        raise
    process.kill(0.0)  # the command ended; anything it left behind in its group goes too
    if not os.WIFEXITED(status):
        raise ProbeFailed(f"Command {launcher.describe_status(status)}")
    result = checks.empty_status(CheckInfo.COMMAND)
    result.command.exit_code = os.WEXITSTATUS(status)
    return result


async def _http(probe: Probe) -> mesos_pb2.CheckStatusInfo:
    try:
        async with (
            # The probe's own timeout (wait_for) is the only one: 0 means none, not aiohttp's 5 min.
            aiohttp.ClientSession(timeout=NO_TIMEOUT) as session,
            session.get(probe.url, ssl=False, allow_redirects=True) as response,
        ):
            code = response.status
    except aiohttp.ClientError as error:
        raise ProbeFailed(f"GET {probe.url} failed: {error or type(error).__name__}") from None
    result = checks.empty_status(CheckInfo.HTTP)
    result.http.status_code = code
    return result


async def _tcp(probe: Probe) -> mesos_pb2.CheckStatusInfo:
    result = checks.empty_status(CheckInfo.TCP)
    try:
        connect = asyncio.open_connection(probe.host, probe.port)
        _, writer = await asyncio.wait_for(connect, probe.timeout_s)
    except TimeoutError:
        raise  # no answer at all: no result (unlike a refusal)
    except OSError:
        result.tcp.succeeded = False
        return result
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    result.tcp.succeeded = True
    return result


Outcome = Callable[[mesos_pb2.CheckStatusInfo | None, str | None], Awaitable[None]]


class Prober:
    """Runs one probe after its delay, then again an interval after each result."""

    def __init__(
        self, probe: Probe, context: CommandContext, connected: asyncio.Event, outcome: Outcome
    ) -> None:
        self.probe = probe
        self.context = context
        self.connected = connected
        self.outcome = outcome
        self._job: asyncio.Task[None] | None = None
        self._stopped = False
        self._delivering = False  # an outcome is being reported: let it finish

    def start(self) -> None:
        self._job = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        self._stopped = True
        if self._job is not None and not self._delivering:
            self._job.cancel()

    async def _run(self) -> None:
        await asyncio.sleep(self.probe.delay_s)
        while True:
            await self.connected.wait()
            try:
                result, error = await perform(self.probe, self.context), None
            except ProbeFailed as failure:
                result, error = None, str(failure)
            if self._stopped:
                return
            if self.connected.is_set():  # not a probe begun before a disconnection
                self._delivering = True
                try:
                    await self.outcome(result, error)
                finally:
                    self._delivering = False
                if self._stopped:
                    return
            await asyncio.sleep(self.probe.interval_s)


Send = Callable[[mesos_pb2.TaskStatus], Awaitable[bytes]]


class TaskChecks:
    """One task's check and health check, and the status updates they lead to.

    Every update of the task goes through `send`, which attaches `check_status` (Mesos sets
    it on every status of a checked task) and remembers the status that check and health
    updates are built on. `stop()` (the task is being killed or has ended) ends both probes and
    drops any result still on its way, so nothing follows a terminal update.
    """

    def __init__(
        self,
        task: mesos_pb2.TaskInfo,
        context: CommandContext,
        connected: asyncio.Event,
        update: Send,
        kill: Callable[[], None],
    ) -> None:
        """`kill`: start killing the task (it must not wait for the kill: it runs inside a
        probe's job, which the kill stops)."""
        self.task = task
        self.update = update
        self.kill = kill
        self.last: mesos_pb2.TaskStatus | None = None
        self.unhealthy = False  # killed for failing its health check
        self.stopped = False
        self._probers: list[Prober] = []
        # One update of the task at a time, so they reach the agent in the order they were made
        # (a probe's update and the task's own may be under way together).
        self._sending = asyncio.Lock()
        self._check = CheckTracker(task.check.type) if task.HasField("check") else None
        self._health: HealthTracker | None = None
        if task.HasField("check"):
            probe = checks.check_probe(task.check)
            self._probers.append(Prober(probe, context, connected, self._on_check))
        if task.HasField("health_check"):
            probe = checks.health_probe(task.health_check)
            self._probers.append(Prober(probe, context, connected, self._on_health))

    @property
    def task_id(self) -> str:
        return self.task.task_id.value

    async def send(self, status: mesos_pb2.TaskStatus) -> bytes:
        checks.with_check_status(status, self.task)
        async with self._sending:
            self.last = status
            return await self.update(status)

    async def send_terminal(self, status: mesos_pb2.TaskStatus) -> bytes:
        """The task's last update: `healthy: false` too when its health check killed it."""
        self.stop()
        if self.unhealthy:
            status.healthy = False
        return await self.send(status)

    def start(self) -> None:
        """Once the task runs (after its TASK_RUNNING)."""
        if self.task.HasField("health_check"):
            self._health = HealthTracker(self.task.health_check, time.monotonic())
        for prober in self._probers:
            prober.start()

    def stop(self) -> None:
        self.stopped = True
        for prober in self._probers:
            prober.stop()

    async def _on_check(self, result: mesos_pb2.CheckStatusInfo | None, error: str | None) -> None:
        if error is not None:
            log.warning("The check of task '%s' failed: %s", self.task_id, error)
        assert self._check is not None
        changed = self._check.observe(result)
        if changed is not None and not self.stopped and self.last is not None:
            reason = Reason.REASON_TASK_CHECK_STATUS_UPDATED
            await self.send(checks.follow_up(self.last, reason, check_status=changed))

    async def _on_health(self, result: mesos_pb2.CheckStatusInfo | None, error: str | None) -> None:
        assert self._health is not None
        why = error if result is None else checks.failure_of(result)
        if why is None:
            report = self._health.succeeded()
        else:
            log.warning("The health check of task '%s' failed: %s", self.task_id, why)
            report = self._health.failed(time.monotonic())
        if report is None or self.stopped or self.last is None:
            return
        reason = Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
        await self.send(checks.follow_up(self.last, reason, healthy=report.healthy))
        if report.kill_task:
            log.warning(
                "Task '%s' failed its health check %d times in a row: killing it",
                self.task_id,
                report.consecutive_failures,
            )
            self.unhealthy = True
            self.kill()
