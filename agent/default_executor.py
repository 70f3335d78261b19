"""The default executor (`python -m meseta.agent.default_executor`) for LAUNCH_GROUP.

Each task of a group runs as a child process (a process group of its own) in its own sandbox
`<executor sandbox>/tasks/<task_id>`, with MESOS_SANDBOX pointing there and its stdout/stderr files
in it; all of them share the executor's container. As in Mesos's default executor: every task gets
TASK_STARTING, then TASK_RUNNING once the group is started; a task ends TASK_KILLED if it was being
killed, TASK_FINISHED on exit 0, else TASK_FAILED ("Command exited with status N"); when a task of
a group fails or is killed, the other tasks of that group are killed; KILL honours the kill policy
(KILL's, else the task's, else 3 s) with TASK_KILLING first if the framework understands it; a task
past its max_completion_time is killed and fails with REASON_MAX_COMPLETION_TIME_REACHED (which
kills its group too). Each task's check and health check run while it runs; a task failing its
health check `consecutive_failures` times is killed (ending TASK_KILLED with `healthy: false`,
which kills its group). Further LAUNCH_GROUPs are accepted while the executor runs; it shuts down
once no task is left (after its updates are acknowledged, 60 s failsafe), or on SHUTDOWN after
killing every task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from meseta.agent import checks, executor_driver
from meseta.agent.checker import CommandContext, TaskChecks
from meseta.agent.command_executor import (
    ACK_FAILSAFE_S,
    executor_user,
    has_killing_state,
    max_completion_s,
    new_status,
    terminal_status,
)
from meseta.agent.executor_driver import ExecutorEnvironment, grace_period_s
from meseta.agent.executor_program import ExecutorProgram
from meseta.agent.task_process import TaskProcess
from meseta.proto.mesos.v1 import mesos_pb2

State = mesos_pb2.TaskState
TASKS_DIR = "tasks"
log = logging.getLogger("meseta.executor")


@dataclass
class _Task:
    info: mesos_pb2.TaskInfo
    group: tuple[str, ...]  # the ids of its group's tasks
    process: TaskProcess
    checks: TaskChecks
    killing_group: bool = False
    timed_out: bool = False  # killed for running past max_completion_time

    @property
    def task_id(self) -> str:
        return self.info.task_id.value


class DefaultExecutor(ExecutorProgram):
    def __init__(self, environment: ExecutorEnvironment) -> None:
        super().__init__(environment)
        self.active: dict[str, _Task] = {}
        self.shutting_down = False

    async def _on_launch(self, task: mesos_pb2.TaskInfo) -> None:
        message = "The default executor runs task groups only (LAUNCH_GROUP), not LAUNCH"
        await self.driver.update(new_status(task.task_id.value, State.TASK_FAILED, message))

    async def _on_launch_group(self, group: mesos_pb2.TaskGroupInfo) -> None:
        if self.shutting_down:
            log.warning("Ignoring LAUNCH_GROUP: the executor is shutting down")
            return
        ids = tuple(task.task_id.value for task in group.tasks)
        for info in group.tasks:  # as Mesos's: every task is STARTING before any starts
            self.driver.launched(info)
            starting = new_status(info.task_id.value, State.TASK_STARTING)
            await self.driver.update(checks.with_check_status(starting, info))
        started: list[_Task] = []
        failure: str | None = None
        for info in group.tasks:
            task_id = info.task_id.value
            if failure is not None:
                message = f"Not launched: task '{failure}' of its group failed to launch"
                await self.driver.update(new_status(task_id, State.TASK_FAILED, message))
                continue
            try:
                started.append(await self._start(info, ids))
            except (OSError, KeyError, ValueError) as error:
                failure = task_id
                message = f"Failed to launch task: {error}"
                await self.driver.update(new_status(task_id, State.TASK_FAILED, message))
        for task in started:
            self.active[task.task_id] = task
            await task.checks.send(new_status(task.task_id, State.TASK_RUNNING))
            if failure is None:
                task.checks.start()
            self._spawn(self._watch(task))
        if failure is not None:
            for task in started:
                task.killing_group = True
                await self._kill(task, None)

    async def _start(self, info: mesos_pb2.TaskInfo, group: tuple[str, ...]) -> _Task:
        sandbox = Path(self.environment.sandbox) / TASKS_DIR / info.task_id.value
        sandbox.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ, MESOS_SANDBOX=str(sandbox))
        with (sandbox / "stdout").open("ab") as out, (sandbox / "stderr").open("ab") as err:
            process = TaskProcess(
                info.command,
                str(sandbox),
                environment,
                stdout=out,
                stderr=err,
                user=executor_user(self.driver),
            )
            if process.user is not None and os.geteuid() == 0:
                entry = pwd.getpwnam(process.user)  # KeyError: no such user
                for path in (sandbox, sandbox / "stdout", sandbox / "stderr"):
                    os.chown(path, entry.pw_uid, entry.pw_gid)  # its sandbox is its own
            await process.start()
        context = CommandContext(str(sandbox), process.environment, process.user)
        task: _Task

        def kill_unhealthy() -> None:
            self._spawn(self._kill(task, None))

        task_checks = TaskChecks(
            info, context, self.driver.subscribed, self.driver.update, kill_unhealthy
        )
        task = _Task(info, group, process, task_checks)
        return task

    async def _watch(self, task: _Task) -> None:
        deadline = max_completion_s(task.info)
        timer = None
        if deadline is not None:
            timer = asyncio.get_running_loop().call_later(deadline, self._out_of_time, task)
        status = await task.process.wait()
        if timer is not None:
            timer.cancel()
        update = terminal_status(
            task.task_id, status, killed=task.process.killing, timed_out=task.timed_out
        )
        state = update.state
        await task.checks.send_terminal(update)
        self.active.pop(task.task_id, None)
        if not self.active:
            await self._finish()
            return
        if self.shutting_down or task.killing_group:
            return
        if state in (State.TASK_FAILED, State.TASK_KILLED):
            log.info("Killing task group %s", list(task.group))
            for task_id in task.group:
                other = self.active.get(task_id)
                if other is not None:
                    other.killing_group = True
                    await self._kill(other, None)

    def _out_of_time(self, task: _Task) -> None:
        if task.process.running and not task.process.killing:
            log.info("Task '%s' exceeded its max_completion_time: killing it", task.task_id)
            task.timed_out = True
            self._spawn(self._kill(task, None))

    async def _on_kill(self, task_id: str, policy: mesos_pb2.KillPolicy | None) -> None:
        task = self.active.get(task_id)
        if self.shutting_down or task is None:
            log.warning("Ignoring kill for task '%s': not active or shutting down", task_id)
            return
        await self._kill(task, policy)

    async def _kill(self, task: _Task, policy: mesos_pb2.KillPolicy | None) -> None:
        if task.process.killing or not task.process.running:
            return
        task.checks.stop()  # no check or health update once a kill has begun
        if not task.timed_out and has_killing_state(self.driver.framework_info):
            await task.checks.send(new_status(task.task_id, State.TASK_KILLING))
        task_policy = task.info.kill_policy if task.info.HasField("kill_policy") else None
        task.process.kill(grace_period_s(policy, task_policy))

    async def _on_shutdown(self) -> None:
        if self.shutting_down:
            return
        self.shutting_down = True
        if not self.active:
            await self._finish()
            return
        for task in list(self.active.values()):
            await self._kill(task, None)

    async def _finish(self) -> None:
        if not await self.driver.wait_acknowledged(ACK_FAILSAFE_S):
            log.warning("Updates were not acknowledged within %ss", ACK_FAILSAFE_S)
        self._done.set()


if __name__ == "__main__":
    executor_driver.main(DefaultExecutor)
