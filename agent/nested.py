"""Containers nested in the agent's executor containers, as Mesos's containerizer nests them:
what LAUNCH_NESTED_CONTAINER(_SESSION) and LAUNCH_CONTAINER with a parent start, and what
`mesos task exec` runs its command in.

Mesos runs a nested container in its parent's namespaces and cgroups. This agent's containers are
posix process trees (agent/isolator.py), so a nested container is a launcher tree of its own
(agent/launcher.py) in a session of its own, started by the agent, working in its root
container's sandbox, and destroyed before its parent is (nothing else would end it: it is not in
the parent's process tree). The layout is Mesos's:

- sandbox `<root sandbox>/containers/<child>[/containers/<grandchild>...]`, whose `stdout` and
  `stderr` files keep the container's output. A DEBUG container (a
  session's) works in its parent's directory with its parent's environment, as Mesos's do;
- runtime `<work_dir>/containers/<root>/containers/<child>/...`: `launch.json`, `pid` and the
  `termination` status, which WAIT_CONTAINER answers from after the container has ended, until
  REMOVE_NESTED_CONTAINER or the root's end removes it.

A DEBUG container, or one with a TTY, has an I/O switchboard (agent/switchboard.py); the others
cannot be attached to (Mesos's 500 "I/O switchboard server was disabled for this container").
A restarted agent recovers the others, as Mesos does, under the root containers it recovered:
they go on running, and WAIT answers for those that ended meanwhile. A container with a
switchboard cannot outlive the agent (its switchboard is in the agent), so it is destroyed when
the agent stops, and a restarted agent kills whatever an agent killed with -9 left of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meseta.agent import launcher
from meseta.agent.containerizer import (
    ContainerConfig,
    ContainerError,
    Containerizer,
    Termination,
    chown_tree,
    command_argv,
    container_environment,
    kill_launched,
    owner,
    sandbox_stdio,
    spawn_launcher,
    wait_exit,
)
from meseta.agent.fetcher import FetchError
from meseta.agent.isolator import tree_usage
from meseta.agent.switchboard import ProcessIO, Switchboard, set_window_size
from meseta.proto.mesos.v1 import mesos_pb2

# A container's ids from its root (an executor's container) down to itself.
ContainerPath = tuple[str, ...]
NESTED_DIR = "containers"
LAUNCH_FILE = "launch.json"
# Mesos's ContainerClass, DEFAULT or DEBUG; a container with a switchboard counts as DEBUG
# here: it cannot be recovered.
CLASS_FILE = "class"
PID_FILE = "pid"


def path_of(container_id: mesos_pb2.ContainerID) -> ContainerPath:
    parts = [container_id.value]
    while container_id.HasField("parent"):
        container_id = container_id.parent
        parts.append(container_id.value)
    return tuple(reversed(parts))


def container_id_of(path: ContainerPath) -> mesos_pb2.ContainerID:
    out = mesos_pb2.ContainerID(value=path[0])
    for value in path[1:]:
        child = mesos_pb2.ContainerID(value=value)
        child.parent.CopyFrom(out)
        out = child
    return out


def describe(path: ContainerPath) -> str:
    """Mesos's way of writing a ContainerID: `<root>.<child>.<grandchild>`."""
    return ".".join(path)


def below(base: Path, path: ContainerPath) -> Path:
    """Where a nested container's directory is under its root's `base` directory."""
    for value in path[1:]:
        base = base / NESTED_DIR / value
    return base


class NestedError(Exception):
    """A call on a nested container fails with this HTTP status and message (Mesos's)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class NestedConfig:
    path: ContainerPath
    command: mesos_pb2.CommandInfo
    debug: bool  # Mesos's ContainerClass DEBUG: a session's container
    tty: mesos_pb2.TTYInfo | None
    root_sandbox: Path
    root_environment: Mapping[str, str]  # what the root's command runs with
    root_user: str | None


@dataclass
class _Nested:
    path: ContainerPath
    pid: int
    start_time: int
    working_dir: Path
    environment: dict[str, str]
    user: str | None
    switchboard: Switchboard | None
    termination: asyncio.Future[Termination]
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    destroying: asyncio.Task[Termination] | None = None


class NestedContainers:
    def __init__(self, containerizer: Containerizer) -> None:
        self.containerizer = containerizer
        containerizer.nested = self
        self.runtime_dir = containerizer.runtime_dir
        self._live: dict[ContainerPath, _Nested] = {}
        self._launching: dict[ContainerPath, None] = {}
        self._background: set[asyncio.Task[Any]] = set()  # strong references until done

    def runtime(self, path: ContainerPath) -> Path:
        return below(self.runtime_dir / path[0], path)

    def live(self) -> list[ContainerPath]:
        return list(self._live)

    async def usage(self, path: ContainerPath) -> tuple[int, mesos_pb2.ResourceStatistics] | None:
        """A running container's launcher pid and what its tree uses; None once it ended."""
        nested = self._live.get(path)
        if nested is None:
            return None
        statistics = await tree_usage(nested.pid, nested.start_time)
        statistics.timestamp = time.time()
        return nested.pid, statistics

    def switchboard(self, path: ContainerPath) -> Switchboard:
        """The container's switchboard; NestedError 500 as Mesos's containerizer fails."""
        nested = self._live.get(path)
        if nested is None:
            raise NestedError(500, f"Unknown container {describe(path)}")
        if nested.switchboard is None:
            raise NestedError(500, "I/O switchboard server was disabled for this container")
        return nested.switchboard

    # -- launch ---------------------------------------------------------------------------------

    async def launch(self, config: NestedConfig) -> bool:
        """Start the container; False if it exists already (Mesos answers 202 then)."""
        path = config.path
        if path in self._live or path in self._launching:
            return False
        self._check_parent(path)
        self._launching[path] = None
        try:
            await self._launch(config)
        except ContainerError as error:
            raise NestedError(400, str(error)) from None
        finally:
            del self._launching[path]
        return True

    def _check_parent(self, path: ContainerPath) -> None:
        parent = path[:-1]
        root = path[0]
        nested = self._live.get(parent)
        exists = root in self.containerizer.containers()
        exists = exists and (len(parent) == 1 or nested is not None)
        if not exists:
            raise NestedError(400, f"Parent container {describe(parent)} does not exist")
        destroying = (
            self.containerizer.is_destroying(root)
            if len(parent) == 1
            else nested is not None and nested.destroying is not None
        )
        if destroying:
            raise NestedError(400, f"Parent container {describe(parent)} is in 'DESTROYING' state")

    async def _launch(self, config: NestedConfig) -> None:
        path, command = config.path, config.command
        parent = self._live.get(path[:-1])
        sandbox = below(config.root_sandbox, path)
        user = command.user if command.HasField("user") else None
        user = user or (parent.user if parent is not None else config.root_user)
        if config.debug:  # the parent's environment and directory, as Mesos's DEBUG containers
            base = dict(parent.environment if parent is not None else config.root_environment)
            working_dir = parent.working_dir if parent is not None else config.root_sandbox
        else:
            base, working_dir = {"MESOS_SANDBOX": str(sandbox)}, sandbox
        environment = container_environment(
            ContainerConfig(describe(path), sandbox, command, base, user=user)
        )
        argv = command_argv(command)
        runtime = self.runtime(path)
        shutil.rmtree(runtime, ignore_errors=True)
        try:
            runtime.mkdir(parents=True)
            sandbox.mkdir(parents=True, exist_ok=True)
            ids = owner(user)
            await self.containerizer.fetcher.fetch(command.uris, sandbox, user)
            if ids is not None and os.geteuid() == 0:
                await asyncio.to_thread(chown_tree, sandbox, ids)
            spec = launcher.LaunchSpec(
                path=argv[0] if command.shell else command.value,
                argv=tuple(argv),
                environment=environment,
                working_dir=str(working_dir),
                user=user,
                termination_file=str(runtime / launcher.TERMINATION_FILE),
                tty=config.tty is not None,
            )
            (runtime / LAUNCH_FILE).write_text(spec.to_json())
            (runtime / CLASS_FILE).write_text(_container_class(config))
            switchboard, pid = self._spawn(config, sandbox, runtime / LAUNCH_FILE)
        except (ContainerError, FetchError, OSError) as error:
            shutil.rmtree(runtime, ignore_errors=True)  # no termination to wait for
            if isinstance(error, ContainerError):
                raise
            raise ContainerError(f"Failed to launch container {describe(path)}: {error}") from None
        started = launcher.start_time(pid) or 0
        (runtime / PID_FILE).write_text(f"{pid} {started}")
        loop = asyncio.get_running_loop()
        nested = _Nested(path, pid, started, working_dir, environment, user, switchboard,
                         loop.create_future())  # fmt: skip
        self._live[path] = nested
        nested.tasks.append(loop.create_task(self._supervise(nested)))
        if switchboard is not None:
            nested.tasks.append(loop.create_task(switchboard.run()))

    @staticmethod
    def _spawn(
        config: NestedConfig, sandbox: Path, spec_file: Path
    ) -> tuple[Switchboard | None, int]:
        """Start the launcher with its output in the sandbox's files, or on a switchboard's
        pipes or terminal (DEBUG and TTY containers)."""
        if not config.debug and config.tty is None:
            return None, spawn_launcher(spec_file, sandbox_stdio(sandbox))
        switchboard, stdio, theirs = _switchboard(config, sandbox)
        try:
            return switchboard, spawn_launcher(spec_file, stdio)
        except OSError:
            switchboard.abandon()
            raise
        finally:
            for fd in theirs:
                os.close(fd)

    # -- termination ----------------------------------------------------------------------------

    async def _supervise(self, nested: _Nested) -> None:
        status = await wait_exit(nested.pid, nested.start_time)
        await asyncio.to_thread(launcher.kill_tree, nested.pid, nested.start_time)
        await self.destroy_children(nested.path)
        termination_file = self.runtime(nested.path) / launcher.TERMINATION_FILE
        recorded = launcher.read_termination(termination_file)
        if recorded is None and status is not None:  # the launcher itself was killed
            launcher.write_termination(str(termination_file), status)
        self._live.pop(nested.path, None)
        if nested.switchboard is not None:
            nested.switchboard.close()
        nested.termination.set_result(
            Termination(describe(nested.path), recorded if recorded is not None else status, "")
        )

    async def wait(self, path: ContainerPath) -> Termination | None:
        """The container's termination once it has ended; None for an unknown container."""
        nested = self._live.get(path)
        if nested is not None:
            return await asyncio.shield(nested.termination)
        status = launcher.read_termination(self.runtime(path) / launcher.TERMINATION_FILE)
        if status is None:
            return None
        return Termination(describe(path), status, "")

    async def kill(self, path: ContainerPath, signum: int) -> bool:
        """Signal the container's command (SIGKILL destroys it); False if it is not running."""
        nested = self._live.get(path)
        if nested is None:
            return False
        tree = await asyncio.to_thread(
            launcher.tree, nested.pid, nested.start_time, include_root=False
        )
        commands = [process.pid for process in tree if process.ppid == nested.pid]
        if signum == signal.SIGKILL or not commands:
            await self.destroy(path)  # not started yet: Mesos destroys it too
            return True
        for pid in commands:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return True

    async def destroy(self, path: ContainerPath) -> Termination | None:
        """Kill the container's tree (its own nested containers first). Idempotent."""
        nested = self._live.get(path)
        if nested is None:
            return await self.wait(path)
        if nested.destroying is None:
            nested.destroying = asyncio.get_running_loop().create_task(self._destroy(nested))
        return await asyncio.shield(nested.destroying)

    def destroy_later(self, path: ContainerPath) -> None:
        """Destroy the container in the background (a session's, once its client left)."""
        task = asyncio.get_running_loop().create_task(self.destroy(path))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _destroy(self, nested: _Nested) -> Termination:
        await self.destroy_children(nested.path)
        await kill_launched(nested.pid, nested.start_time, nested.termination)
        return await asyncio.shield(nested.termination)

    async def destroy_children(self, parent: ContainerPath) -> None:
        children = [path for path in self._live if path[:-1] == parent]
        await asyncio.gather(*(self.destroy(path) for path in children))

    async def destroy_under(self, root: str) -> None:
        await self.destroy_children((root,))

    def remove(self, path: ContainerPath, root_sandbox: Path | None) -> None:
        """Forget an ended container: its runtime directory and its sandbox."""
        if path in self._live or path in self._launching:
            raise NestedError(500, "Nested container has not terminated yet")
        if path[0] not in self.containerizer.containers():
            raise NestedError(500, "Unknown root container")
        shutil.rmtree(self.runtime(path), ignore_errors=True)
        if root_sandbox is not None:
            shutil.rmtree(below(root_sandbox, path), ignore_errors=True)

    async def destroy_attached(self) -> None:
        """Destroy the containers with a switchboard (the agent is stopping: their clients go
        with it). The others run on, for the next agent to recover."""
        attached = [path for path, nested in self._live.items() if nested.switchboard is not None]
        await asyncio.gather(*(self.destroy(path) for path in attached))

    def release(self) -> None:
        """Stop supervising (the agent stops): the containers run on, for the next agent."""
        for nested in self._live.values():
            for task in nested.tasks:
                task.cancel()
        self._live.clear()

    async def recover(self, roots: Sequence[str]) -> None:
        """Take back what an earlier agent left under the recovered `roots`: a DEFAULT
        container still running is supervised again, one that ended keeps its termination
        for WAIT. Every other container left running (a DEBUG one, or one under a root that
        is gone) is killed, its termination recorded as Mesos's destroy would."""
        if not self.runtime_dir.is_dir():
            return
        recovered = set(roots)
        # Parents before their children: a child is recovered only under a recovered parent.
        found = sorted(self.runtime_dir.glob(f"*/{NESTED_DIR}/**/{PID_FILE}"),
                       key=lambda pid_file: (len(pid_file.parts), pid_file))  # fmt: skip
        for pid_file in found:
            path = self._path_of_runtime(pid_file.parent)
            try:
                pid, started = (int(part) for part in pid_file.read_text().split())
            except (OSError, ValueError):
                continue
            if not launcher.is_alive(pid, started):
                continue
            parent_recovered = len(path) == 2 or path[:-1] in self._live
            if path[0] in recovered and parent_recovered and self._adopt(path, pid, started):
                continue
            await asyncio.to_thread(launcher.kill_tree, pid, started)
            termination = pid_file.parent / launcher.TERMINATION_FILE
            if launcher.read_termination(termination) is None:
                launcher.write_termination(str(termination), signal.SIGKILL)

    def _path_of_runtime(self, runtime: Path) -> ContainerPath:
        parts = runtime.relative_to(self.runtime_dir).parts
        return (parts[0], *parts[2::2])  # <root>/containers/<child>/containers/<grandchild>...

    def _adopt(self, path: ContainerPath, pid: int, started: int) -> bool:
        """Supervise a DEFAULT container an earlier agent launched; False if it cannot be."""
        runtime = self.runtime(path)
        try:
            if (runtime / CLASS_FILE).read_text() != DEFAULT_CLASS:
                return False
            spec = launcher.LaunchSpec.from_json((runtime / LAUNCH_FILE).read_text())
        except (OSError, ValueError, KeyError):
            return False
        loop = asyncio.get_running_loop()
        nested = _Nested(path, pid, started, Path(spec.working_dir), dict(spec.environment),
                         spec.user, None, loop.create_future())  # fmt: skip
        self._live[path] = nested
        nested.tasks.append(loop.create_task(self._supervise(nested)))
        return True


DEFAULT_CLASS, DEBUG_CLASS = "DEFAULT", "DEBUG"


def _container_class(config: NestedConfig) -> str:
    return DEBUG_CLASS if config.debug or config.tty is not None else DEFAULT_CLASS


def _switchboard(
    config: NestedConfig, sandbox: Path
) -> tuple[Switchboard, list[tuple[Any, ...]], list[int]]:
    """The switchboard of a new container, the file actions giving the container the other
    ends of its pipes or terminal, and those ends (closed once it is spawned)."""
    if config.tty is not None:
        terminal, theirs = os.openpty()
        if config.tty.HasField("window_size"):
            size = config.tty.window_size
            set_window_size(terminal, size.rows, size.columns)
        stdio = [(os.POSIX_SPAWN_DUP2, theirs, fd) for fd in (0, 1, 2)]
        # Read and written through two descriptors: each end is closed on its own.
        outputs = {os.dup(terminal): ProcessIO.Data.STDOUT}
        return Switchboard(outputs, terminal, True, config.debug, sandbox), stdio, [theirs]
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    stderr_read, stderr_write = os.pipe()
    stdio = [
        (os.POSIX_SPAWN_DUP2, stdin_read, 0),
        (os.POSIX_SPAWN_DUP2, stdout_write, 1),
        (os.POSIX_SPAWN_DUP2, stderr_write, 2),
    ]
    outputs = {stdout_read: ProcessIO.Data.STDOUT, stderr_read: ProcessIO.Data.STDERR}
    switchboard = Switchboard(outputs, stdin_write, False, config.debug, sandbox)
    return switchboard, stdio, [stdin_read, stdout_write, stderr_write]
