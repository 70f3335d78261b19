"""A task's command as a child process of its executor: started in a process group of its own,
as the task's user, killed as a whole tree (SIGTERM, then SIGKILL after a grace period).

Both of our executors run their tasks this way, and run their tasks' command checks this way too.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
from collections.abc import Mapping
from typing import IO, Any

from meseta.agent import launcher
from meseta.proto.mesos.v1 import mesos_pb2


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

    async def destroy(self) -> None:
        """SIGKILL the task's tree now and reap it, so that no process or transport outlives
        its owner (a probe that timed out, a launch that was cancelled)."""
        if self._process is None:
            return
        if self.running:
            self.killing = True
            launcher.kill_tree(self._process.pid, self._start_time, attempts=3)
        await self.wait()

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
