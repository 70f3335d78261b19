"""The command executor (`python -m meseta.agent.command_executor`), contract 3.5.

It runs the one task it is given (TaskInfo.command, shell or argv form, with the command's
environment and user) as a child in a process group of its own, and reports TASK_STARTING and
TASK_RUNNING, then TASK_FINISHED (exit 0), TASK_KILLED (after KILL or SHUTDOWN) or TASK_FAILED
with "Command exited with status N" / "Command terminated with signal ...", as Mesos's command
executor does. KILL sends SIGTERM to the task's process tree and SIGKILL after the grace period
(KILL's kill policy, else the task's, else 3 s); TASK_KILLING goes first when the framework has
TASK_KILLING_STATE. A task still running after its max_completion_time is killed the same way
(without TASK_KILLING) and reported TASK_FAILED with REASON_MAX_COMPLETION_TIME_REACHED. The
task's check and health check run while it runs (`agent/checker.py`); a task that fails its
health check `consecutive_failures` times is killed and ends TASK_KILLED with `healthy: false`.
It exits once the terminal update is acknowledged (60 s failsafe).
"""

from __future__ import annotations

import asyncio
import logging
import os

from meseta.agent import executor_driver, launcher
from meseta.agent.checker import CommandContext, TaskChecks
from meseta.agent.executor_driver import (
    ExecutorDriver,
    ExecutorEnvironment,
    grace_period_s,
)
from meseta.agent.executor_program import ExecutorProgram
from meseta.agent.task_process import TaskProcess
from meseta.proto.mesos.v1 import mesos_pb2

State = mesos_pb2.TaskState
Reason = mesos_pb2.TaskStatus.Reason
ACK_FAILSAFE_S = 60.0
# Mesos keeps this much of the shutdown grace period for itself (reap interval + 1 s), so that
# the terminal update goes out before the agent destroys the container.
SHUTDOWN_MARGIN_S = 2.0
log = logging.getLogger("meseta.executor")


def terminal_status(
    task_id: str, status: int, *, killed: bool, timed_out: bool = False
) -> mesos_pb2.TaskStatus:
    """The terminal update for a task's wait status, as Mesos's executors word it: KILLED
    after a kill, FAILED with REASON_MAX_COMPLETION_TIME_REACHED after running out of time,
    FINISHED on exit 0, FAILED otherwise."""
    reason: int | None = None
    if timed_out:
        state, reason = State.TASK_FAILED, Reason.REASON_MAX_COMPLETION_TIME_REACHED
    elif killed:
        state = State.TASK_KILLED
    elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        state = State.TASK_FINISHED
    else:
        state = State.TASK_FAILED
    return new_status(task_id, state, f"Command {launcher.describe_status(status)}", reason)


def new_status(
    task_id: str, state: int, message: str | None = None, reason: int | None = None
) -> mesos_pb2.TaskStatus:
    status = mesos_pb2.TaskStatus(state=state)  # type: ignore[arg-type]
    status.task_id.value = task_id
    if message is not None:
        status.message = message
    if reason is not None:
        status.reason = reason  # type: ignore[assignment]
    return status


def max_completion_s(task: mesos_pb2.TaskInfo) -> float | None:
    if not task.HasField("max_completion_time"):
        return None
    return max(task.max_completion_time.nanoseconds, 0) / 1e9


def executor_user(driver: ExecutorDriver) -> str | None:
    """The user of the executor's own CommandInfo, from SUBSCRIBED: tasks that name no user
    run as it (our executors themselves may run as the agent's user)."""
    info = driver.executor_info
    if info is not None and info.command.HasField("user"):
        return info.command.user
    return None


def has_killing_state(framework: mesos_pb2.FrameworkInfo | None) -> bool:
    capability = mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE
    return framework is not None and any(c.type == capability for c in framework.capabilities)


class CommandExecutor(ExecutorProgram):
    def __init__(self, environment: ExecutorEnvironment) -> None:
        super().__init__(environment)
        self.task: mesos_pb2.TaskInfo | None = None
        self.process: TaskProcess | None = None
        self.checks: TaskChecks | None = None
        self._pending_kill: float | None = None  # grace of a kill that came before the start
        self._timed_out = False

    async def _on_launch_group(self, group: mesos_pb2.TaskGroupInfo) -> None:
        for task in group.tasks:
            await self._refuse(task, "The command executor cannot run task groups")

    async def _refuse(self, task: mesos_pb2.TaskInfo, message: str) -> None:
        await self.driver.update(new_status(task.task_id.value, State.TASK_FAILED, message))

    async def _on_launch(self, task: mesos_pb2.TaskInfo) -> None:
        if self.task is not None:
            await self._refuse(task, 'Attempted to run multiple tasks using a "command" executor')
            return
        self.task = task
        self.driver.launched(task)
        task_id = task.task_id.value
        sandbox, user = self.environment.sandbox, executor_user(self.driver)
        self.process = TaskProcess(task.command, sandbox, os.environ, user=user)
        # Checks see what the task sees: its sandbox, environment and user.
        context = CommandContext(sandbox, self.process.environment, self.process.user)
        self.checks = TaskChecks(
            task, context, self.driver.subscribed, self.driver.update, self._kill_unhealthy
        )
        await self.checks.send(new_status(task_id, State.TASK_STARTING))
        try:
            await self.process.start()
        except (OSError, KeyError, ValueError) as error:
            message = f"Failed to launch task subprocess: {error}"
            await self._finish(new_status(task_id, State.TASK_FAILED, message))
            return
        await self.checks.send(new_status(task_id, State.TASK_RUNNING))
        if self._pending_kill is not None:
            self.process.kill(self._pending_kill)
        else:
            self.checks.start()
        deadline = max_completion_s(task)
        timer = None
        if deadline is not None:
            timer = asyncio.get_running_loop().call_later(deadline, self._out_of_time)
        status = await self.process.wait()
        if timer is not None:
            timer.cancel()
        killed, timed_out = self.process.killing, self._timed_out
        await self._finish(terminal_status(task_id, status, killed=killed, timed_out=timed_out))

    def _out_of_time(self) -> None:
        """max_completion_time passed: kill it as a KILL would, then report it FAILED."""
        if self.process is not None and self.process.running and not self.process.killing:
            log.info("The task exceeded its max_completion_time: killing it")
            self._timed_out = True
            assert self.task is not None
            policy = self.task.kill_policy if self.task.HasField("kill_policy") else None
            self._spawn(self._kill_task(grace_period_s(policy)))

    async def _finish(self, status: mesos_pb2.TaskStatus) -> None:
        assert self.checks is not None
        terminal = await self.checks.send_terminal(status)
        # Like Mesos's command executor: go once the terminal update is acknowledged.
        if not await self.driver.wait_acknowledged(ACK_FAILSAFE_S, [terminal]):
            log.warning("The terminal update was not acknowledged in %ss", ACK_FAILSAFE_S)
        self._done.set()

    async def _on_kill(self, task_id: str, policy: mesos_pb2.KillPolicy | None) -> None:
        if self.task is None or self.task.task_id.value != task_id:
            log.warning("Ignoring kill for unknown task '%s'", task_id)
            return
        task_policy = self.task.kill_policy if self.task.HasField("kill_policy") else None
        await self._kill_task(grace_period_s(policy, task_policy))

    def _kill_unhealthy(self) -> None:
        """The health check gave up on the task: kill it as a KILL without a policy would."""
        assert self.task is not None
        task_policy = self.task.kill_policy if self.task.HasField("kill_policy") else None
        self._spawn(self._kill_task(grace_period_s(task_policy)))

    async def _kill_task(self, grace_s: float) -> None:
        assert self.task is not None
        if self.process is not None and self.process.pid is not None and not self.process.running:
            return  # it has ended already: its terminal update is on its way
        assert self.checks is not None
        self.checks.stop()  # no check or health update once a kill has begun
        first = self._pending_kill is None and not (self.process and self.process.killing)
        # Like Mesos, no TASK_KILLING when the task ran out of time: it is going to fail.
        if first and not self._timed_out and has_killing_state(self.driver.framework_info):
            await self.checks.send(new_status(self.task.task_id.value, State.TASK_KILLING))
        if self.process is not None and self.process.pid is not None:
            self.process.kill(grace_s)
        else:
            pending = self._pending_kill
            self._pending_kill = grace_s if pending is None else min(grace_s, pending)

    async def _on_shutdown(self) -> None:
        if self.task is None:
            self._done.set()
            return
        await self._kill_task(max(self.environment.shutdown_grace_s - SHUTDOWN_MARGIN_S, 0.0))


if __name__ == "__main__":
    executor_driver.main(CommandExecutor)
