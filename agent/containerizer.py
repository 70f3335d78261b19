"""The containerizer: runs each executor as its own process tree in its sandbox (seam 1).

A container's root is a launcher process (agent/launcher.py) in a session of its own; its
runtime files live in `<work_dir>/containers/<container_id>/`: `launch.json` (what to run),
`pid` (`<pid> <start_time>`, for finding orphans after a restart) and `termination` (the raw
wait status the launcher recorded). The agent waits on a pidfd, so it can wait equally for a
container it started and for one it re-attached to after its own restart (no longer its child).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from meseta.agent import launcher
from meseta.agent.fetcher import Fetcher, FetchError
from meseta.agent.isolator import Isolator, Limitation, PosixIsolator, RecoveredContainer
from meseta.proto.mesos.v1 import mesos_pb2

RUNTIME_DIR = "containers"
FETCH_CACHE_DIR = "fetch"
# After the tree was SIGKILLed, how long the launcher gets to reap it and record the status.
LAUNCHER_REAP_S = 2.0
# Terminations kept for late `wait` calls, oldest dropped first.
KEEP_TERMINATED = 1000


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    container_id: str
    sandbox: Path  # created if missing; stdout/stderr files go here
    command: mesos_pb2.CommandInfo  # shell/value/arguments/environment/uris/user
    environment: Mapping[str, str]  # the agent's MESOS_* variables; command.environment wins
    resources: tuple[mesos_pb2.Resource, ...] = ()
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Launched:
    container_id: str
    pid: int
    start_time: int  # field 22 of /proc/<pid>/stat: tells a reused pid apart after a restart


@dataclass(frozen=True, slots=True)
class Termination:
    container_id: str
    status: int | None  # raw wait status, None if unknown
    message: str
    reason: int | None = None  # a mesos_pb2.TaskStatus.Reason for isolator limits, else None


class ContainerError(Exception):
    """A launch failed (fetch failed, bad command, unknown user...): the message says why."""


@dataclass
class _Container:
    launched: Launched
    resources: tuple[mesos_pb2.Resource, ...]
    termination: asyncio.Future[Termination]
    limitation: Limitation | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    destroying: asyncio.Task[Termination] | None = None


class Nested(Protocol):
    """The containers nested in this containerizer's (agent/nested.py): they end with their
    root, and what an earlier agent left of them goes at recovery."""

    async def destroy_under(self, root: str) -> None: ...

    async def recover(self, roots: Sequence[str]) -> None: ...


class Containerizer:
    def __init__(
        self, work_dir: Path, isolators: Sequence[Isolator] = (), fetcher: Fetcher | None = None
    ) -> None:
        """No isolators means Mesos's default isolation, posix/cpu,posix/mem."""
        self.work_dir = work_dir
        self.runtime_dir = work_dir / RUNTIME_DIR
        self.isolators: tuple[Isolator, ...] = tuple(isolators) or (PosixIsolator(),)
        self.fetcher = fetcher or Fetcher(work_dir / FETCH_CACHE_DIR)
        self._containers: dict[str, _Container] = {}
        self._terminated: dict[str, Termination] = {}
        self._launching: dict[str, None] = {}
        self._background: set[asyncio.Task[None]] = set()  # strong references until done
        self.destroy_errors = 0  # containerizer/mesos/container_destroy_errors
        self.nested: Nested | None = None  # set by agent/nested.py's NestedContainers

    # -- launch ---------------------------------------------------------------------------------

    async def launch(self, config: ContainerConfig) -> Launched:
        cid = config.container_id
        if not cid or "/" in cid or cid in (".", ".."):
            raise ContainerError(f"'{cid}' is not a valid container id")
        if cid in self._containers or cid in self._launching:
            raise ContainerError(f"Container '{cid}' already exists")
        self._launching[cid] = None
        try:
            return await self._launch(config)
        finally:
            del self._launching[cid]

    async def _launch(self, config: ContainerConfig) -> Launched:
        cid = config.container_id
        user = config.user or (config.command.user if config.command.HasField("user") else None)
        argv = command_argv(config.command)
        environment = container_environment(config)
        runtime = self.runtime_dir / cid
        shutil.rmtree(runtime, ignore_errors=True)
        runtime.mkdir(parents=True)
        config.sandbox.mkdir(parents=True, exist_ok=True)
        try:
            ids = owner(user)
            await self.fetcher.fetch(config.command.uris, config.sandbox, user)
            join_files: list[str] = []
            for isolator in self.isolators:
                info = await isolator.prepare(cid, config)
                if info is not None:
                    environment.update(info.environment)
                    join_files.extend(info.join_files)
            if ids is not None and os.geteuid() == 0:
                await asyncio.to_thread(chown_tree, config.sandbox, ids)
            spec = launcher.LaunchSpec(
                path=argv[0] if config.command.shell else config.command.value,
                argv=tuple(argv),
                environment=environment,
                working_dir=str(config.sandbox),
                user=user,
                termination_file=str(runtime / launcher.TERMINATION_FILE),
                join_files=tuple(join_files),
            )
            (runtime / "launch.json").write_text(spec.to_json())
            pid = spawn_launcher(runtime / "launch.json", sandbox_stdio(config.sandbox))
        except ContainerError:
            await self._abort(cid)
            raise
        except FetchError as error:
            _append(config.sandbox / "stderr", f"{error}\n")
            await self._abort(cid)
            raise ContainerError(str(error)) from error
        except OSError as error:
            await self._abort(cid)
            raise ContainerError(f"Failed to launch container '{cid}': {error}") from error
        started = launcher.start_time(pid) or 0
        (runtime / "pid").write_text(f"{pid} {started}")
        launched = Launched(cid, pid, started)
        await self._track(launched, config.resources)
        for isolator in self.isolators:
            await isolator.isolate(cid, pid, started)
        return launched

    async def _abort(self, container_id: str) -> None:
        shutil.rmtree(self.runtime_dir / container_id, ignore_errors=True)
        await self._cleanup_isolators(container_id)

    async def _track(self, launched: Launched, resources: tuple[mesos_pb2.Resource, ...]) -> None:
        loop = asyncio.get_running_loop()
        container = _Container(launched, resources, loop.create_future())
        self._containers[launched.container_id] = container
        container.tasks.append(loop.create_task(self._supervise(container)))
        for isolator in self.isolators:
            container.tasks.append(loop.create_task(self._watch(container, isolator)))

    # -- termination ----------------------------------------------------------------------------

    async def wait(self, container_id: str) -> Termination:
        """Resolves when the container's root process has ended and its tree is gone."""
        container = self._containers.get(container_id)
        if container is not None:
            return await asyncio.shield(container.termination)
        if container_id in self._terminated:
            return self._terminated[container_id]
        raise ContainerError(f"Unknown container '{container_id}'")

    def pending(self) -> list[tuple[str, str]]:
        """(operation, container id) of every launch and destroy under way, as Mesos's
        `/containerizer/debug` names them."""
        out = [("MesosContainerizer::launch", cid) for cid in self._launching]
        for cid, container in self._containers.items():
            if container.destroying is not None and not container.destroying.done():
                out.append(("MesosContainerizer::destroy", cid))
        return out

    async def destroy(self, container_id: str, grace_s: float = 0.0) -> Termination:
        """SIGTERM the whole tree, wait up to `grace_s`, SIGKILL what is left. Idempotent."""
        container = self._containers.get(container_id)
        if container is None:
            return await self.wait(container_id)
        if container.destroying is None:
            container.destroying = asyncio.get_running_loop().create_task(
                self._destroy(container, grace_s)
            )
            container.destroying.add_done_callback(self._count_destroy_error)
        return await asyncio.shield(container.destroying)

    def _count_destroy_error(self, destroying: asyncio.Task[Termination]) -> None:
        if not destroying.cancelled() and destroying.exception() is not None:
            self.destroy_errors += 1

    async def _destroy(self, container: _Container, grace_s: float) -> Termination:
        pid, started = container.launched.pid, container.launched.start_time
        await self._destroy_nested(container.launched.container_id)
        if grace_s > 0 and launcher.is_alive(pid, started):
            # The launcher forwards SIGTERM to every process of its tree.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(container.termination), grace_s)
        await kill_launched(pid, started, container.termination)
        return await asyncio.shield(container.termination)

    async def _supervise(self, container: _Container) -> None:
        launched = container.launched
        status = await wait_exit(launched.pid, launched.start_time)
        # Whatever escaped the launcher's own clean-up (it was killed, say) goes now, and
        # so do the containers nested in it.
        await asyncio.to_thread(launcher.kill_tree, launched.pid, launched.start_time)
        await self._destroy_nested(launched.container_id)
        runtime = self.runtime_dir / launched.container_id
        recorded = launcher.read_termination(runtime / launcher.TERMINATION_FILE)
        self._finish(container, recorded if recorded is not None else status)

    async def _destroy_nested(self, container_id: str) -> None:
        if self.nested is not None:
            await self.nested.destroy_under(container_id)

    async def _watch(self, container: _Container, isolator: Isolator) -> None:
        limitation = await isolator.watch(container.launched.container_id)
        if container.limitation is None and not container.termination.done():
            container.limitation = limitation
            await self.destroy(container.launched.container_id)

    def _finish(self, container: _Container, status: int | None) -> None:
        cid = container.launched.container_id
        limitation = container.limitation
        if limitation is not None:
            termination = Termination(cid, status, limitation.message, limitation.reason)
        else:
            termination = Termination(cid, status, f"Executor {launcher.describe_status(status)}")
        self._containers.pop(cid, None)
        self._terminated[cid] = termination
        while len(self._terminated) > KEEP_TERMINATED:
            del self._terminated[next(iter(self._terminated))]
        shutil.rmtree(self.runtime_dir / cid, ignore_errors=True)
        current = asyncio.current_task()
        for task in container.tasks:
            if task is not current:
                task.cancel()
        cleanup = asyncio.get_running_loop().create_task(
            self._cleanup_then_resolve(container, termination)
        )
        self._background.add(cleanup)
        cleanup.add_done_callback(self._background.discard)

    async def _cleanup_then_resolve(self, container: _Container, termination: Termination) -> None:
        try:
            await self._cleanup_isolators(termination.container_id)
        finally:
            if not container.termination.done():
                container.termination.set_result(termination)

    async def _cleanup_isolators(self, container_id: str) -> None:
        for isolator in self.isolators:
            await isolator.cleanup(container_id)

    # -- recovery -------------------------------------------------------------------------------

    async def recover(self, known: Sequence[Launched]) -> list[str]:
        """Re-attach to the known containers still alive; their ids are returned. A dead one
        resolves `wait` with the status its launcher recorded, or None. Containers found in the
        runtime directory but not known (orphans) are killed. The nested containers of the
        live ones are recovered (agent/nested.py); those of the others are killed."""
        alive: list[Launched] = []
        dead: list[Launched] = []
        for launched in known:
            if launched.container_id in self._containers:
                alive.append(launched)
            elif launcher.is_alive(launched.pid, launched.start_time):
                await self._track(launched, ())
                alive.append(launched)
            else:
                dead.append(launched)
        if self.nested is not None:
            await self.nested.recover([launched.container_id for launched in alive])
        for launched in dead:
            await self._recover_dead(launched)
        known_ids = {launched.container_id: launched for launched in known}
        for orphan in self._orphans(known_ids):
            await asyncio.to_thread(launcher.kill_tree, orphan.pid, orphan.start_time)
            shutil.rmtree(self.runtime_dir / orphan.container_id, ignore_errors=True)
        recovered = [RecoveredContainer(c.container_id, c.pid, c.start_time) for c in alive]
        for isolator in self.isolators:
            await isolator.recover(recovered)
        return [launched.container_id for launched in alive]

    async def _recover_dead(self, launched: Launched) -> None:
        await asyncio.to_thread(launcher.kill_tree, launched.pid, launched.start_time)
        loop = asyncio.get_running_loop()
        container = _Container(launched, (), loop.create_future())
        runtime = self.runtime_dir / launched.container_id
        self._finish(container, launcher.read_termination(runtime / launcher.TERMINATION_FILE))

    def _orphans(self, known: Mapping[str, Launched]) -> list[Launched]:
        orphans: list[Launched] = []
        if not self.runtime_dir.is_dir():
            return orphans
        for entry in sorted(self.runtime_dir.iterdir()):
            if entry.name in known or entry.name in self._containers:
                continue
            try:
                pid, started = (int(part) for part in (entry / "pid").read_text().split())
            except (OSError, ValueError):
                shutil.rmtree(entry, ignore_errors=True)  # never started
                continue
            orphans.append(Launched(entry.name, pid, started))
        return orphans

    # -- resources ------------------------------------------------------------------------------

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        container = self._live(container_id)
        statistics = mesos_pb2.ResourceStatistics(timestamp=0.0)
        for isolator in self.isolators:
            statistics.MergeFrom(await isolator.usage(container_id))
        statistics.timestamp = time.time()
        cpus = _scalar(container.resources, "cpus")
        mem = _scalar(container.resources, "mem")
        if cpus is not None:
            statistics.cpus_limit = cpus
        if mem is not None:
            statistics.mem_limit_bytes = int(mem * 1024 * 1024)
        return statistics

    async def update(self, container_id: str, resources: Sequence[mesos_pb2.Resource]) -> None:
        container = self._live(container_id)
        container.resources = tuple(resources)
        for isolator in self.isolators:
            await isolator.update(container_id, resources)

    def containers(self) -> list[str]:
        return list(self._containers)

    def is_destroying(self, container_id: str) -> bool:
        container = self._containers.get(container_id)
        return container is not None and container.destroying is not None

    def _live(self, container_id: str) -> _Container:
        container = self._containers.get(container_id)
        if container is None:
            raise ContainerError(f"Unknown container '{container_id}'")
        return container


# -- helpers ------------------------------------------------------------------------------------


def command_argv(command: mesos_pb2.CommandInfo) -> list[str]:
    if not command.HasField("value"):
        raise ContainerError("The command has no value")
    if command.shell:
        return ["/bin/sh", "-c", command.value]
    return list(command.arguments) or [command.value]


def container_environment(config: ContainerConfig) -> dict[str, str]:
    """What the container's command runs with: the agent's variables, then the command's."""
    variables: list[tuple[str, str]] = []
    for variable in config.command.environment.variables:
        if variable.type == mesos_pb2.Environment.Variable.SECRET:
            raise ContainerError(
                f"Environment variable '{variable.name}' is a secret, and this agent has no "
                "secret resolver"
            )
        variables.append((variable.name, variable.value))
    environment = launcher.container_environment(config.environment, variables)
    environment.setdefault("MESOS_SANDBOX", str(config.sandbox))
    return environment


def owner(user: str | None) -> tuple[int, int] | None:
    """The (uid, gid) to give a container's files to; ContainerError for an unknown user."""
    if user is None:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ContainerError(f"Failed to get user information for '{user}': no such user") from None
    return entry.pw_uid, entry.pw_gid


def chown_tree(root: Path, ids: tuple[int, int]) -> None:
    os.chown(root, *ids)
    for directory, subdirectories, files in os.walk(root):
        for name in (*subdirectories, *files):
            os.chown(os.path.join(directory, name), *ids, follow_symlinks=False)


async def kill_launched(pid: int, started: int, ended: asyncio.Future[Any]) -> None:
    """SIGKILL a launcher's tree: what is below the launcher first, so that it reaps and
    records the status (`ended` resolves then); the launcher too if it does not."""
    below = await asyncio.to_thread(launcher.tree, pid, started, include_root=False)
    if below and not ended.done():
        await asyncio.to_thread(launcher.kill_tree, pid, started, include_root=False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ended), LAUNCHER_REAP_S)
    if not ended.done():
        await asyncio.to_thread(launcher.kill_tree, pid, started)


def sandbox_stdio(sandbox: Path) -> list[tuple[Any, ...]]:
    """posix_spawn file actions: no stdin, output appended to the sandbox's files."""
    append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    return [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(sandbox / "stdout"), append, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, str(sandbox / "stderr"), append, 0o644),
    ]


def spawn_launcher(spec_file: Path, stdio: Sequence[tuple[Any, ...]]) -> int:
    """Start the launcher on `spec_file` in a new session, its stdio set up by `stdio`."""
    argv = [sys.executable, "-m", "meseta.agent.launcher", str(spec_file)]
    return os.posix_spawn(sys.executable, argv, os.environ, file_actions=stdio, setsid=True)


async def wait_exit(pid: int, started: int) -> int | None:
    """Wait for the process to end; its raw wait status if it was our child, else None."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return _reap(pid)
    try:
        if launcher.start_time(pid) != started:
            return None  # the pid now names another process: ours is long gone
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        loop.add_reader(pidfd, _resolve, ended)
        try:
            await ended
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)
    return _reap(pid)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _reap(pid: int) -> int | None:
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None  # not our child (re-attached after a restart): init reaps it
    return status if reaped == pid else None


def _append(path: Path, text: str) -> None:
    with contextlib.suppress(OSError), path.open("a") as file:
        file.write(text)


def _scalar(resources: Sequence[mesos_pb2.Resource], name: str) -> float | None:
    values = [
        r.scalar.value for r in resources if r.name == name and r.type == mesos_pb2.Value.SCALAR
    ]
    return sum(values) if values else None
