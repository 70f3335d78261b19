"""The command executor (`python -m meseta.agent.command_executor`), contract 3.5.

It runs the one task it is given (TaskInfo.command, shell or argv form, with the command's
environment and user) as a child in a process group of its own, and reports TASK_STARTING and
TASK_RUNNING, then TASK_FINISHED (exit 0), TASK_KILLED (after KILL or SHUTDOWN) or TASK_FAILED
with "Command exited with status N" / "Command terminated with signal ...", as Mesos's command
executor does. KILL sends SIGTERM to the task's process tree and SIGKILL after the grace period
(KILL's kill policy, else the task's, else 3 s); TASK_KILLING goes first when the framework has
TASK_KILLING_STATE. A task still running after its max_completion_time is killed the same way
and reported TASK_FAILED with REASON_MAX_COMPLETION_TIME_REACHED. It exits once the terminal
update is acknowledged (60 s failsafe).
`TaskProcess` is shared with the default executor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
from collections.abc import Mapping
from typing import IO, Any

from meseta.agent import executor_driver, launcher
from meseta.agent.executor_driver import (
    ExecutorDriver,
    ExecutorEnvironment,
    grace_period_s,
)
from meseta.agent.executor_program import ExecutorProgram
from meseta.proto.mesos.v1 import mesos_pb2

State = mesos_pb2.TaskState
Reason = mesos_pb2.TaskStatus.Reason
ACK_FAILSAFE_S = 60.0
# Mesos keeps this much of the shutdown grace period for itself (reap interval + 1 s), so that
# the terminal update goes out before the agent destroys the container.
SHUTDOWN_MARGIN_S = 2.0
log = logging.getLogger("meseta.executor")


class TaskProcess:
    """A task's command running as a child process in a process group of its own (it stays in
    the container's session, so the containerizer finds it even if its executor is killed)."""

    def __init__(
        self,
        command: mesos_pb2.CommandInfo,
        working_dir: str,
        environment: Mapping[str, str],
        *,
        stdout: IO[Any] | None = None,
        stderr: IO[Any] | None = None,
        user: str | None = None,
    ) -> None:
        """`user`: who runs it when the command names nobody (None: the executor's user)."""
        self.command = command
        self.user = command.user if command.HasField("user") else user
        self.working_dir = working_dir
        self.environment = dict(environment)
        for variable in command.environment.variables:
            self.environment[variable.name] = variable.value
        self.stdout = stdout
        self.stderr = stderr
        self.killing = False
        self._process: asyncio.subprocess.Process | None = None
        self._start_time = 0
        self._escalation: asyncio.TimerHandle | None = None
        self._escalate_at = float("inf")

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start it; OSError/KeyError/ValueError say why it could not start."""
        if not self.command.HasField("value"):
            raise ValueError("the task's command has no value")
        if self.command.shell:
            program, argv = "/bin/sh", ["/bin/sh", "-c", self.command.value]
        else:
            program, argv = self.command.value, list(self.command.arguments) or [self.command.value]
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            executable=program,
            cwd=self.working_dir,
            env=self.environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self.stdout,
            stderr=self.stderr,
            process_group=0,  # its own group for signals, still in the container's session
            **_user_arguments(self.user),
        )
        self._start_time = launcher.start_time(self._process.pid) or 0

    async def wait(self) -> int:
        """The raw wait status once the task's process has ended."""
        assert self._process is not None
        code = await self._process.wait()
        if self._escalation is not None:
            self._escalation.cancel()
        return -code if code < 0 else code << 8

    def kill(self, grace_s: float) -> None:
        """SIGTERM the task's tree now and SIGKILL it after `grace_s`; a later kill with a
        shorter grace period brings the SIGKILL forward."""
        if self._process is None or not self.running:
            return
        loop = asyncio.get_running_loop()
        escalate_at = loop.time() + grace_s
        if not self.killing:
            self.killing = True
            launcher.signal_tree(self._process.pid, self._start_time, signal.SIGTERM)
        if escalate_at < self._escalate_at:
            if self._escalation is not None:
                self._escalation.cancel()
            self._escalate_at = escalate_at
            self._escalation = loop.call_at(escalate_at, self._escalate)

    def _escalate(self) -> None:
        if self._process is not None and self._process.returncode is None:
            launcher.kill_tree(self._process.pid, self._start_time, attempts=3)


def _user_arguments(user: str | None) -> dict[str, Any]:
    """Switch to `user` in the child, with its groups, when that is a change we may make."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)  # KeyError: no such user
    if entry.pw_uid == os.geteuid():
        return {}
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}


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
        await self.driver.update(new_status(task_id, State.TASK_STARTING))
        self.process = TaskProcess(
            task.command, self.environment.sandbox, os.environ, user=executor_user(self.driver)
        )
        try:
            await self.process.start()
        except (OSError, KeyError, ValueError) as error:
            message = f"Failed to launch task subprocess: {error}"
            await self._finish(new_status(task_id, State.TASK_FAILED, message))
            return
        running = new_status(task_id, State.TASK_RUNNING)
        running.container_status.executor_pid = os.getpid()
        await self.driver.update(running)
        if self._pending_kill is not None:
            self.process.kill(self._pending_kill)
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
        terminal = await self.driver.update(status)
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

    async def _kill_task(self, grace_s: float) -> None:
        assert self.task is not None
        if self.process is not None and self.process.pid is not None and not self.process.running:
            return  # it has ended already: its terminal update is on its way
        first = self._pending_kill is None and not (self.process and self.process.killing)
        if first and has_killing_state(self.driver.framework_info):
            await self.driver.update(new_status(self.task.task_id.value, State.TASK_KILLING))
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
