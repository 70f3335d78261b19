"""The agent daemon: the imperative shell around the pure core and status update manager.

`Agent` owns the bookkeeping (`core`), the status update manager, the LMDB
checkpoints, the link to the leading master and the containerizer; the
executor API (agent/executor_api.py) and C's endpoints call into it. All of
it runs on one asyncio loop; a checkpoint write is a short fsynced LMDB
transaction done inline, before the agent acknowledges what it recorded.

Life cycle: `recover()` (read checkpoints, reattach to live executors, wait
for them to re-subscribe), then `start()` (subscribe with the master, send
status updates, heartbeats). Status updates: accepted from executors (or
generated here), checkpointed, acknowledged to the executor, and posted to
the master head-first per task until the scheduler's ACKNOWLEDGE comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meseta.agent import core as agent_core
from meseta.agent import launch_config, volumes
from meseta.agent.checkpoint import Checkpoints
from meseta.agent.containerizer import ContainerError, Containerizer, Launched
from meseta.agent.core import (
    AgentCore,
    ExecutorKind,
    ExecutorRecord,
    ExecutorState,
    FrameworkRecord,
    FrameworkState,
    TaskRecord,
)
from meseta.agent.flags import AgentFlags, format_duration
from meseta.agent.gc import SandboxCollector
from meseta.agent.master_client import MasterClient
from meseta.agent.nested import NestedContainers
from meseta.agent.status_updates import Acked, Received, StatusUpdateManager
from meseta.api.http import HttpError
from meseta.api.streams import Stream
from meseta.master import resources as res
from meseta.proto.agent_link.v1 import agent_link_pb2
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.executor import executor_pb2

LinkCall = agent_link_pb2.Call
LinkEvent = agent_link_pb2.Event
ExecutorCall = executor_pb2.Call
ExecutorEvent = executor_pb2.Event
Reason = mesos_pb2.TaskStatus.Reason
VERSION = "1.11.0"
# Every capability but those of what the agent lacks: resource providers, and the
# operation feedback that comes with them.
CAPABILITIES = tuple(
    value
    for name, value in mesos_pb2.AgentInfo.Capability.Type.items()
    if name not in ("UNKNOWN", "RESOURCE_PROVIDER", "AGENT_OPERATION_FEEDBACK")
)

log = logging.getLogger(__name__)


class RecoveryError(Exception):
    """The checkpointed state cannot be recovered (e.g. an incompatible reconfiguration)."""


@dataclass(slots=True)
class Counters:
    """What /metrics/snapshot reports (slave/* names)."""

    registered: bool = False
    recovery_errors: int = 0
    recovery_time_s: float = 0.0
    container_launch_errors: int = 0
    valid_status_updates: int = 0
    invalid_status_updates: int = 0
    valid_framework_messages: int = 0
    invalid_framework_messages: int = 0
    executors_terminated: int = 0
    executors_preempted: int = 0
    updates_sent: int = 0
    updates_acknowledged: int = 0
    messages_sent: int = 0


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class Agent:
    def __init__(
        self, flags: AgentFlags, info: mesos_pb2.AgentInfo, containerizer: Containerizer
    ) -> None:
        self.flags_ = flags
        self.info = info
        self.containerizer = containerizer
        self.nested = NestedContainers(containerizer)  # containers in its executors' ones
        self.core = AgentCore()
        self.started_s = time.time()
        self.counters = Counters()
        self.updates = StatusUpdateManager(
            flags.status_update_retry_min_s, flags.status_update_retry_max_s
        )
        self.checkpoints = Checkpoints(flags.work_dir)
        self.gc = SandboxCollector(
            flags.work_dir / "slaves",
            flags.gc_delay_s,
            flags.gc_disk_headroom,
            flags.disk_watch_interval_s,
        )
        self.client = MasterClient(
            flags.masters, backoff_factor_s=flags.registration_backoff_factor_s
        )
        self.streams: dict[tuple[str, str], Stream] = {}
        self.waiters: dict[str, asyncio.Task[None]] = {}  # container id -> its wait
        self.launches: dict[str, asyncio.Task[None]] = {}  # container id -> launch under way
        # Why the agent itself ended a container (reason, message), for its tasks' updates.
        self.kill_reasons: dict[str, tuple[int, str]] = {}
        # KILL_TASKs for tasks whose executor has not re-subscribed yet, with their policies.
        self.pending_kills: dict[tuple[str, str], mesos_pb2.KillPolicy | None] = {}
        self.wakeup = asyncio.Event()
        self.shutdown_requested = asyncio.Event()
        self.terminating = False  # killing everything, to exit when done
        self.leaving = False  # shutting executors down (SIGUSR1, the master's SHUTDOWN)
        self.link: asyncio.Task[None] | None = None  # the subscription with the master
        # The agent's total as the master last checkpointed it here (reservations and
        # persistent volumes included); None until it sends one (then the declared total).
        self.checkpointed_resources: res.Resources | None = None
        # An operator's drain, from the master, until no framework is left here.
        self.drain_config: mesos_pb2.DrainConfig | None = None
        self.drain_started_s = 0.0
        self.background: list[asyncio.Task[None]] = []
        self.heartbeat_interval_s = 15.0
        self.recovered = False  # executor calls get 503 until the checkpoints are read back
        # Until recover() is done (executors re-subscribed or timed out): /state and the v1
        # operator API answer 503, as Mesos does while its agent is RECOVERING.
        self.recovering = True

    # -- seam 3: what endpoints read ------------------------------------------------------

    @property
    def flags(self) -> dict[str, str]:
        return self.flags_.as_mesos()

    @property
    def master_address(self) -> str | None:
        return self.client.leader

    @property
    def agent_id(self) -> str:
        return str(self.info.id.value)

    def uptime_s(self) -> float:
        return time.time() - self.started_s

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe with the master and keep status updates and heartbeats flowing."""
        loop = asyncio.get_running_loop()
        self.link = loop.create_task(
            self.client.run(self._subscribe_call, self._on_event, self._on_disconnected)
        )
        self.background = [
            self.link,
            loop.create_task(self._send_updates()),
            loop.create_task(self._send_heartbeats()),
            loop.create_task(self.gc.run()),
        ]

    async def stop(self) -> None:
        """Leave executors and their nested containers running (they survive the agent, as
        in Mesos) and let go; containers attached to the agent's switchboards go."""
        await self.nested.destroy_attached()
        self.nested.release()
        tasks = [*self.background, *self.launches.values(), *self.waiters.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for stream in list(self.streams.values()):
            stream.close()
        await self.client.close()
        self.checkpoints.close()

    # -- recovery --------------------------------------------------------------------------

    async def recover(self) -> bool:
        """Rebuild from checkpoints; False when `--recover=cleanup` finished the job."""
        started = time.monotonic()
        try:
            recovered = await self._recover()
        finally:
            self.recovering = False
            self.counters.recovery_time_s = time.monotonic() - started
        live = [Path(e.directory) for e in self.core.executors() if e.directory]
        scheduled = self.gc.recover(live)
        if scheduled:
            log.info("scheduled %d sandboxes of ended executors for removal", scheduled)
        return recovered

    async def _recover(self) -> bool:
        recovered = self.checkpoints.load()
        if recovered.info is not None:
            error = agent_core.reconfiguration_error(
                recovered.info, self.info, self.flags_.reconfiguration_policy
            )
            if error is not None:
                self.counters.recovery_errors += 1
                if self.flags_.strict:
                    raise RecoveryError(
                        f"Incompatible agent info ({self.flags_.reconfiguration_policy}"
                        f" policy): {error}"
                    )
                log.warning("incompatible agent info (%s): registering as a new agent", error)
                await self.containerizer.recover(launched(recovered.executors))
                await self._destroy_all(recovered.executors)
                self.checkpoints.wipe()
                self.recovered = True
                return True
            self.info.id.CopyFrom(recovered.info.id)
        if recovered.resources is not None:
            self.checkpointed_resources = res.from_protos(recovered.resources)
        lost = self.core.restore(recovered.frameworks, recovered.executors, recovered.tasks)
        now_s = time.time()
        for stream in recovered.streams:
            self.updates.restore(stream, now_s)
        alive = await self.containerizer.recover(launched(self.core.executors()))
        if self.flags_.recover == "cleanup":
            await self._destroy_all(self.core.executors())
            for framework_id in list(self.core.frameworks):
                self.checkpoints.remove_framework(framework_id)
            self.recovered = True
            return False
        for task in lost:
            framework = self.core.frameworks[task.framework_id]
            self._agent_update(
                task, agent_core.lost_state(framework), Reason.REASON_AGENT_RESTARTED,
                "Task launched during agent restart",
            )  # fmt: skip
        for executor in self.core.executors():
            executor.state = ExecutorState.REGISTERING
            self._watch(executor)
            if executor.container_id not in alive:
                continue
            self._arm_timeout(
                executor, self.flags_.executor_reregistration_timeout_s,
                Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
                "Executor did not re-register within"
                f" {format_duration(self.flags_.executor_reregistration_timeout_s)}",
            )  # fmt: skip
        # Only now may executors subscribe: one accepted while the containerizer was still
        # re-attaching (an await above) was set back to REGISTERING here and timed out.
        self.recovered = True
        if recovered.drain is not None:
            log.info("recovered a drain that had not finished: draining on")
            self.drain(recovered.drain)  # kills wait for the executors to re-subscribe
        if self.core.executors():
            log.info(
                "recovered %d executors; waiting up to %s for them to re-subscribe",
                len(self.core.executors()),
                format_duration(self.flags_.executor_reregistration_timeout_s),
            )
        await self._await_reregistrations(self.flags_.executor_reregistration_timeout_s + 1.0)
        return True

    async def _await_reregistrations(self, timeout_s: float) -> None:
        """Mesos re-registers with the master only after its executors re-subscribed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(
            e.state is ExecutorState.REGISTERING for e in self.core.executors()
        ):
            await asyncio.sleep(0.05)

    def request_unregister(self, why: str) -> None:
        """`unregister` in the background (from a signal handler)."""
        self._spawn(self.unregister(why))

    async def unregister(self, why: str) -> None:
        """Leave for good, as Mesos's agent on SIGUSR1: unregister from the master (which
        removes this agent and reports its tasks lost), then shut down. An agent that is
        not registered, or whose master does not answer, shuts down all the same (the
        master then finds it unreachable)."""
        if self.leaving or self.terminating:
            return
        self.leaving = True
        log.warning("%s; unregistering and shutting down", why)
        if self.info.HasField("id"):
            taken = await self.client.post(LinkCall(type=LinkCall.UNREGISTER))
            if not taken:
                log.warning("the master did not take the unregistration")
        await self._shut_executors_down()

    async def shut_down(self, why: str) -> None:
        """Mesos's agent shutdown (the master's ShutdownMessage): shut the executors down,
        then terminate."""
        if self.leaving or self.terminating:
            return
        self.leaving = True
        log.warning("%s; shutting down", why)
        await self._shut_executors_down()

    async def _shut_executors_down(self) -> None:
        # Leaving: a new subscription would only be refused (the master removed this agent).
        if self.link is not None:
            self.link.cancel()
        # As Mesos shuts its frameworks down: each executor gets SHUTDOWN and its grace
        # period before its container is destroyed.
        executors = [self.shutdown_executor(e) for e in self.core.executors()]
        await asyncio.gather(*executors, return_exceptions=True)
        await self.terminate()

    async def terminate(self) -> None:
        """Kill every executor, forget this agent (a restart registers a new one) and ask
        `meseta agent` to exit."""
        if self.terminating:
            return
        self.terminating = True
        await self._destroy_all(self.core.executors())
        self.checkpoints.wipe()
        self.shutdown_requested.set()

    async def _destroy_all(self, executors: list[ExecutorRecord]) -> None:
        for executor in executors:
            with contextlib.suppress(Exception):
                await self.containerizer.destroy(executor.container_id, 0.0)

    # -- the master link --------------------------------------------------------------------

    def _subscribe_call(self) -> LinkCall:
        call = LinkCall(type=LinkCall.SUBSCRIBE)
        body = call.subscribe
        body.agent_info.CopyFrom(self.info)
        for capability in CAPABILITIES:
            body.capabilities.add(type=capability)
        body.version = VERSION
        if self.flags_.advertised_ip is not None:
            body.ip = self.flags_.advertised_ip
        if self.info.HasField("id"):
            body.tasks.extend(self.core.reported_tasks(self.agent_id))
            body.executors.extend(e.info for e in self.core.executors())
            body.frameworks.extend(f.info for f in self.core.frameworks.values())
        return call

    async def _on_disconnected(self) -> None:
        self.counters.registered = False
        if not (self.leaving or self.terminating):  # else leaving: nothing to look for
            log.info("lost the master; looking for the leader again")

    async def _on_event(self, event: LinkEvent) -> None:
        kind = event.type
        if kind == LinkEvent.SUBSCRIBED:
            self._subscribed(event.subscribed)
        elif kind == LinkEvent.RUN_TASK:
            body = event.run_task
            executor_info = body.executor_info if body.HasField("executor_info") else None
            await self.run_tasks(body.framework_info, executor_info, [body.task], group=False)
        elif kind == LinkEvent.RUN_TASK_GROUP:
            group = event.run_task_group
            tasks = list(group.task_group.tasks)
            await self.run_tasks(group.framework_info, group.executor_info, tasks, group=True)
        elif kind == LinkEvent.KILL_TASK:
            kill = event.kill_task
            policy = kill.kill_policy if kill.HasField("kill_policy") else None
            await self.kill_task(kill.framework_id.value, kill.task_id.value, policy)
        elif kind == LinkEvent.ACKNOWLEDGE:
            ack = event.acknowledge
            self.acknowledge(ack.framework_id.value, ack.task_id.value, ack.uuid)
        elif kind == LinkEvent.SHUTDOWN_EXECUTOR:
            body_ = event.shutdown_executor
            executor = self.core.executor(body_.framework_id.value, body_.executor_id.value)
            if executor is not None:
                self._spawn(self.shutdown_executor(executor))
        elif kind == LinkEvent.SHUTDOWN_FRAMEWORK:
            self.shutdown_framework(event.shutdown_framework.framework_id.value)
        elif kind == LinkEvent.RECONCILE_TASKS:
            self.reconcile(event.reconcile_tasks)
        elif kind == LinkEvent.DRAIN:
            self.drain(event.drain.config)
        elif kind == LinkEvent.CHECKPOINT_RESOURCES:
            await self.checkpoint_resources(list(event.checkpoint_resources.resources))
        elif kind == LinkEvent.MESSAGE:
            message = event.message
            stream = self.streams.get((message.framework_id.value, message.executor_id.value))
            if stream is not None:
                out = ExecutorEvent(type=ExecutorEvent.MESSAGE)
                out.message.data = message.data
                stream.send(out)
        elif kind == LinkEvent.SHUTDOWN:
            # Leaving already: this is the master's answer to UNREGISTER.
            why = f" because '{event.error.message}'" if event.HasField("error") else ""
            self._spawn(self.shut_down(f"the master asked this agent to shut down{why}"))

    def _subscribed(self, body: LinkEvent.Subscribed) -> None:
        if self.info.id.value != body.agent_id.value:
            self.info.id.CopyFrom(body.agent_id)
            self.checkpoints.write_agent_info(self.info, boot_id())
        elif self.counters.registered is False:
            self.checkpoints.write_agent_info(self.info, boot_id())
        if body.HasField("heartbeat_interval_seconds") and body.heartbeat_interval_seconds > 0:
            self.heartbeat_interval_s = body.heartbeat_interval_seconds
        self.counters.registered = True
        log.info("registered with master %s as agent %s", self.client.leader, self.agent_id)
        self.updates.resend_all(time.time())
        self.wakeup.set()

    async def checkpoint_resources(self, resources: list[mesos_pb2.Resource]) -> None:
        """Mesos's CheckpointResourcesMessage: the agent's whole total, with the reservations
        and persistent volumes its master made. The volume directories are made to match
        first, then the total is checkpointed: an agent that dies in between does it again
        when its master sends the total on re-registration."""
        try:
            total = res.from_protos(resources)
        except res.ResourceError as error:
            log.error("ignoring the resources the master asked to checkpoint: %s", error)
            return
        old = res.to_protos(self.checkpointed_resources or res.EMPTY)
        await self._sync_volumes(agent_core.volume_changes(old, resources, self.core.executors()))
        self.checkpoints.write_resources(resources)
        self.checkpointed_resources = total
        log.info("checkpointed resources %s", res.format_resources(total))

    async def _sync_volumes(self, changes: agent_core.VolumeChanges) -> None:
        work_dir = self.flags_.work_dir
        for volume in changes.create:
            try:
                volumes.create(work_dir, volume)
            except (OSError, volumes.VolumeError) as error:
                log.error("cannot create the directory of a persistent volume: %s", error)
        for volume in changes.busy:
            log.warning(
                "persistent volume %s was destroyed but is still in use: its directory stays",
                work_dir.joinpath(*volume.directory),
            )
        for volume in changes.remove:
            try:
                await asyncio.to_thread(volumes.remove, work_dir, volume)
            except (OSError, volumes.VolumeError) as error:
                log.error("cannot delete the directory of a destroyed persistent volume: %s", error)

    async def _send_updates(self) -> None:
        """Post due status updates to the master; wake on new ones, acks and registration."""
        while True:
            self.wakeup.clear()
            if self.counters.registered:
                # Everything due goes at once (UPDATES), so under load an agent makes one
                # request per round trip, not one per update.
                due = self.updates.due(time.time())
                if due:
                    self.counters.updates_sent += await self.client.post_updates(due)
            next_s = self.updates.next_due_s()
            wait_s = 1.0 if next_s is None else min(max(next_s - time.time(), 0.01), 1.0)
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self.wakeup.wait()

    async def _send_heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            if self.counters.registered:
                await self.client.post(LinkCall(type=LinkCall.HEARTBEAT))

    # -- tasks and executors ----------------------------------------------------------------

    async def run_tasks(
        self,
        framework_info: mesos_pb2.FrameworkInfo,
        executor_info: mesos_pb2.ExecutorInfo | None,
        tasks: list[mesos_pb2.TaskInfo],
        *,
        group: bool,
    ) -> None:
        framework = self.core.add_framework(framework_info)
        if framework.checkpoint:
            self.checkpoints.write_framework(framework_info)
        if framework.state is FrameworkState.TERMINATING:
            return  # Mesos drops tasks of a framework being shut down
        if self.drain_config is not None:
            why = "Task was received while agent was already draining"
            for info in tasks:
                record = TaskRecord(info, framework.framework_id, "")
                dropped = agent_core.lost_state(framework)
                self._agent_update(record, dropped, Reason.REASON_AGENT_DRAINING, why)
            if not framework.executors:
                self.core.remove_framework(framework)
                self._update_drain_status()
            return
        if executor_info is None and tasks[0].HasField("executor"):
            executor_info = tasks[0].executor
        kind = ExecutorKind.CUSTOM
        if executor_info is None:
            executor_info = agent_core.command_executor_info(
                tasks[0], framework.framework_id, launch_config.COMMAND_EXECUTOR
            )
            executor_info.resources.extend(
                res.to_protos(res.parse(agent_core.COMMAND_EXECUTOR_OVERHEAD), refined=False)
            )
            kind = ExecutorKind.COMMAND
        elif executor_info.type == mesos_pb2.ExecutorInfo.DEFAULT:
            kind = ExecutorKind.DEFAULT
        executor = self.core.executor(framework.framework_id, executor_info.executor_id.value)
        if executor is not None and executor.state in (
            ExecutorState.TERMINATING, ExecutorState.TERMINATED
        ):  # fmt: skip
            for info in tasks:
                record = TaskRecord(info, framework.framework_id, executor.executor_id)
                self._agent_update(record, agent_core.lost_state(framework),
                                   Reason.REASON_EXECUTOR_TERMINATED,
                                   "Executor terminating")  # fmt: skip
            return
        new = executor is None
        if executor is None:
            executor = self._new_executor(framework, executor_info, kind)
        elif not self._link_task_volumes(framework, executor, tasks):
            return
        records = self.core.queue_tasks(executor, tasks, group=group)
        if framework.checkpoint:
            for record in records:
                self.checkpoints.write_task(record, queued=True)
        if new:
            # In the background: fetching may take long, and the master's stream must flow.
            launch = asyncio.get_running_loop().create_task(self._launch(framework, executor))
            self.launches[executor.container_id] = launch
            launch.add_done_callback(lambda _: self.launches.pop(executor.container_id, None))
        elif executor.state is ExecutorState.RUNNING:
            self._deliver(framework, executor)

    def _new_executor(
        self, framework: FrameworkRecord, info: mesos_pb2.ExecutorInfo, kind: ExecutorKind
    ) -> ExecutorRecord:
        if not info.HasField("framework_id"):
            info.framework_id.value = framework.framework_id
        container_id = str(uuid.uuid4())
        run = launch_config.run_directory(
            self.flags_.work_dir, self.agent_id, framework.framework_id,
            info.executor_id.value, container_id,
        )  # fmt: skip
        executor = ExecutorRecord(
            info=info,
            framework_id=framework.framework_id,
            kind=kind,
            container_id=container_id,
            directory=str(run),
            launched_ns=time.time_ns(),
        )
        self.core.add_executor(framework.framework_id, executor)
        return executor

    def _link_volumes(self, executor: ExecutorRecord, resources: list[mesos_pb2.Resource]) -> None:
        """Show the persistent volumes among `resources` in the executor's sandbox, owned by
        its user; ContainerError when one cannot be."""
        found = agent_core.persistent_volumes(resources)
        if found:
            command = executor.info.command
            user = command.user if command.HasField("user") else None
            volumes.link(self.flags_.work_dir, Path(executor.directory), found, user)

    def _link_task_volumes(
        self, framework: FrameworkRecord, executor: ExecutorRecord, tasks: list[mesos_pb2.TaskInfo]
    ) -> bool:
        """Tasks for an executor that exists already (launched or launching): their volumes
        are linked first, as Mesos updates the container before it sends them; if that
        fails, they fail."""
        try:
            self._link_volumes(executor, [r for info in tasks for r in info.resources])
        except ContainerError as error:
            why = f"Failed to update resources for container: {error}"
            for info in tasks:
                record = TaskRecord(info, framework.framework_id, executor.executor_id)
                failed, reason = mesos_pb2.TASK_FAILED, Reason.REASON_CONTAINER_UPDATE_FAILED
                self._agent_update(record, failed, reason, why)
            return False
        return True

    async def _launch(self, framework: FrameworkRecord, executor: ExecutorRecord) -> None:
        config = launch_config.container_config(self.flags_, self.agent_id, framework, executor)
        try:
            unsupported = launch_config.unsupported_container(executor)
            if unsupported is not None:
                raise ContainerError(unsupported)
            self._link_volumes(executor, list(config.resources))
            launched = await self.containerizer.launch(config)
        except ContainerError as error:
            log.warning("launching executor %s failed: %s", executor.executor_id, error)
            self.counters.container_launch_errors += 1
            self._fail_tasks(framework, executor, mesos_pb2.TASK_FAILED,
                             Reason.REASON_CONTAINER_LAUNCH_FAILED, str(error))  # fmt: skip
            self._executor_gone(framework, executor)
            return
        executor.pid, executor.start_time = launched.pid, launched.start_time
        launch_config.link_latest(Path(executor.directory))
        if framework.checkpoint:
            self.checkpoints.write_executor(executor)
        self._watch(executor)
        self._arm_timeout(
            executor, self.flags_.executor_registration_timeout_s,
            Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
            "Executor did not register within"
            f" {format_duration(self.flags_.executor_registration_timeout_s)}",
        )  # fmt: skip

    def _watch(self, executor: ExecutorRecord) -> None:
        async def wait() -> None:
            try:
                ended = await self.containerizer.wait(executor.container_id)
                status, message, reason = ended.status, ended.message, ended.reason
            except ContainerError:  # checkpointed before its launch completed
                status, message, reason = None, "Executor container not found", None
            self.waiters.pop(executor.container_id, None)
            self.executor_terminated(executor, status, message, reason)

        self.waiters[executor.container_id] = asyncio.get_running_loop().create_task(wait())

    def _arm_timeout(self, executor: ExecutorRecord, after_s: float, reason: int, why: str) -> None:
        async def expire() -> None:
            await asyncio.sleep(after_s)
            if executor.state is ExecutorState.REGISTERING:
                log.warning("executor %s: %s", executor.executor_id, why)
                self.kill_reasons[executor.container_id] = (reason, why)
                executor.state = ExecutorState.TERMINATING
                await self.containerizer.destroy(executor.container_id, 0.0)

        self._spawn(expire())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.background.append(task)
        task.add_done_callback(
            lambda done: self.background.remove(done) if done in self.background else None
        )

    def _deliver(self, framework: FrameworkRecord, executor: ExecutorRecord) -> None:
        """Send the queued tasks to a subscribed executor."""
        stream = self.streams.get((framework.framework_id, executor.executor_id))
        if stream is None:
            return
        for group, as_group in self.core.take_queued(executor):
            if as_group:
                event = ExecutorEvent(type=ExecutorEvent.LAUNCH_GROUP)
                event.launch_group.task_group.tasks.extend(r.info for r in group)
            else:
                event = ExecutorEvent(type=ExecutorEvent.LAUNCH)
                event.launch.task.CopyFrom(group[0].info)
            stream.send(event)
            if framework.checkpoint:
                for record in group:
                    self.checkpoints.write_task(record, queued=False)

    async def kill_task(
        self, framework_id: str, task_id: str, policy: mesos_pb2.KillPolicy | None
    ) -> None:
        framework = self.core.frameworks.get(framework_id)
        found = self.core.task(framework_id, task_id)
        if framework is None or found is None:
            record = TaskRecord(mesos_pb2.TaskInfo(name=task_id), framework_id, "")
            record.info.task_id.value = task_id
            record.info.agent_id.value = self.agent_id
            state = agent_core.lost_state(framework) if framework else mesos_pb2.TASK_LOST
            self._agent_update(record, state, Reason.REASON_EXECUTOR_TERMINATED,
                               "Cannot find the task on this agent")  # fmt: skip
            return
        executor, record = found
        if task_id in executor.queued:
            self._agent_update(record, mesos_pb2.TASK_KILLED,
                               Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                               "Killed before delivery to the executor")  # fmt: skip
            if not executor.live_tasks() and executor.state is ExecutorState.REGISTERING:
                self._spawn(self.shutdown_executor(executor))
            return
        stream = self.streams.get((framework_id, executor.executor_id))
        if stream is None:  # re-subscribing after an agent restart: kill once it is back
            self.pending_kills[(framework_id, task_id)] = policy
            return
        stream.send(kill_event(task_id, policy))

    def drain(self, config: mesos_pb2.DrainConfig) -> None:
        """Mesos's Slave::drain: kill every task, each with its kill policy's grace period
        capped by the drain's; tasks that arrive meanwhile are dropped. Draining ends when
        no framework is left here (`_update_drain_status`)."""
        if not self.core.frameworks:
            log.info("asked to drain: nothing runs here, so the drain is already complete")
            self.checkpoints.write_drain(None)
            return
        log.warning("draining: killing every task")
        if self.drain_config is None:
            self.drain_started_s = time.time()
        self.drain_config = config
        # Checkpointed, as Mesos does: restarted meanwhile, the agent drains on at once.
        self.checkpoints.write_drain(config)
        for framework in list(self.core.frameworks.values()):
            for executor in list(framework.executors.values()):
                for record in executor.live_tasks():
                    info = record.info
                    own = info.kill_policy if info.HasField("kill_policy") else None
                    policy = agent_core.drain_kill_policy(config, own)
                    self._spawn(self.kill_task(framework.framework_id, record.task_id, policy))

    def _update_drain_status(self) -> None:
        if self.drain_config is not None and not self.core.frameworks:
            log.info("finished draining")
            self.drain_config, self.drain_started_s = None, 0.0
            self.checkpoints.write_drain(None)

    async def shutdown_executor(self, executor: ExecutorRecord) -> None:
        """SHUTDOWN to the executor; destroy its container after the grace period."""
        if executor.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
            return
        executor.state = ExecutorState.TERMINATING
        launch = self.launches.get(executor.container_id)
        if launch is not None:
            await asyncio.shield(launch)
        grace_s = self.flags_.executor_shutdown_grace_period_s
        if executor.info.HasField("shutdown_grace_period"):
            grace_s = executor.info.shutdown_grace_period.nanoseconds / 1e9
        stream = self.streams.get((executor.framework_id, executor.executor_id))
        waiter = self.waiters.get(executor.container_id)
        if stream is not None and waiter is not None:
            stream.send(ExecutorEvent(type=ExecutorEvent.SHUTDOWN))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await asyncio.shield(waiter)
            if not waiter.done():
                await self.containerizer.destroy(executor.container_id, 0.0)
        elif waiter is not None:
            await self.containerizer.destroy(executor.container_id, grace_s)
        else:  # never launched
            framework = self.core.frameworks.get(executor.framework_id)
            if framework is not None:
                self._executor_gone(framework, executor)

    def shutdown_framework(self, framework_id: str) -> None:
        framework = self.core.frameworks.get(framework_id)
        if framework is None:
            return
        framework.state = FrameworkState.TERMINATING
        for key in [k for k in self.updates.streams if k[0] == framework_id]:
            self.updates.forget(*key)
        self.checkpoints.remove_framework(framework_id)
        if not framework.executors:
            self.core.remove_framework(framework)
        for executor in list(framework.executors.values()):
            self._spawn(self.shutdown_executor(executor))

    def reconcile(self, body: LinkEvent.ReconcileTasks) -> None:
        """The master knows these tasks here; those the agent does not know are gone."""
        framework = self.core.frameworks.get(body.framework_id.value)
        for task_id in body.task_ids:
            if self.core.task(body.framework_id.value, task_id.value) is not None:
                continue
            if any(
                t.task_id == task_id.value
                for e in (framework.completed_executors if framework else [])
                for t in e.completed
            ):
                continue
            record = TaskRecord(mesos_pb2.TaskInfo(name=task_id.value),
                                body.framework_id.value, "")  # fmt: skip
            record.info.task_id.CopyFrom(task_id)
            self._agent_update(record, mesos_pb2.TASK_DROPPED, Reason.REASON_RECONCILIATION,
                               "Task is unknown to the agent")  # fmt: skip

    def executor_terminated(
        self, executor: ExecutorRecord, status: int | None, message: str, reason: int | None
    ) -> None:
        """The container ended: live tasks get terminal updates (contract 3.3)."""
        framework = self.core.frameworks.get(executor.framework_id)
        executor.exit_status = status
        stream = self.streams.pop((executor.framework_id, executor.executor_id), None)
        if stream is not None:
            stream.close()
        self.counters.executors_terminated += 1
        for record in executor.live_tasks():
            self.pending_kills.pop((executor.framework_id, record.task_id), None)
        if framework is None:
            return
        own = self.kill_reasons.pop(executor.container_id, None)
        if own is not None:
            state: int = mesos_pb2.TASK_FAILED
            why, message = own
        else:
            state, why = agent_core.termination_state(framework, executor, reason)
            message = message or "Executor terminated"
        if framework.state is not FrameworkState.TERMINATING:
            self._fail_tasks(framework, executor, state, why, message)
        self._executor_gone(framework, executor)
        if executor.kind is not ExecutorKind.COMMAND:
            # As Mesos's agent: the scheduler hears of its own executors exiting (FAILURE),
            # not of the command executors made for its tasks.
            self._spawn(self._post_executor_exited(executor))

    def _fail_tasks(
        self, framework: FrameworkRecord, executor: ExecutorRecord, state: int, reason: int,
        message: str,
    ) -> None:  # fmt: skip
        # Queued tasks, never delivered, end the same way (Mesos's
        # sendExecutorTerminatedStatusUpdate: TASK_FAILED unless the container says more).
        for record in executor.live_tasks():
            self._agent_update(record, state, reason, message)

    def _executor_gone(self, framework: FrameworkRecord, executor: ExecutorRecord) -> None:
        executor.state = ExecutorState.TERMINATED
        if executor.directory:
            self.gc.schedule(Path(executor.directory))
        if framework.checkpoint:
            self.checkpoints.remove_executor(executor)
        self.core.remove_executor(executor)
        if framework.framework_id not in self.core.frameworks and framework.checkpoint:
            self.checkpoints.remove_framework_info(framework.framework_id)
        self._update_drain_status()

    async def _post_executor_exited(self, executor: ExecutorRecord) -> None:
        call = LinkCall(type=LinkCall.EXECUTOR_EXITED)
        call.executor_exited.framework_id.value = executor.framework_id
        call.executor_exited.executor_id.CopyFrom(executor.info.executor_id)
        if executor.exit_status is not None:
            call.executor_exited.status = executor.exit_status
        await self.client.post(call)

    # -- status updates ---------------------------------------------------------------------

    def _agent_update(self, record: TaskRecord, state: int, reason: int, message: str) -> None:
        status = agent_core.agent_status(
            record, state, reason, message,
            agent_id=self.agent_id, status_uuid=uuid.uuid4().bytes, now_s=time.time(),
        )  # fmt: skip
        if not record.executor_id:
            status.ClearField("executor_id")
        self.handle_status(record.framework_id, status)

    def handle_status(self, framework_id: str, status: mesos_pb2.TaskStatus) -> Received:
        """Accept one status update: record, checkpoint, then queue it for the master."""
        if self.drain_config is not None:
            framework = self.core.frameworks.get(framework_id)
            aware = framework is not None and framework.partition_aware()
            agent_core.mark_drained(status, self.drain_config, aware)
        outcome = self.updates.receive(framework_id, status, time.time())
        if outcome is not Received.ACCEPTED:
            return outcome
        record = self.core.apply_status(status, framework_id)
        if self._checkpointing(framework_id):
            if record is not None:
                self.checkpoints.write_task(record, queued=False)
            self.checkpoints.write_stream(
                self.updates.streams[(framework_id, status.task_id.value)]
            )
        self.wakeup.set()
        return outcome

    def _checkpointing(self, framework_id: str) -> bool:
        """Whether the framework's updates go to disk (a finished framework's still may)."""
        framework = self.core.frameworks.get(framework_id)
        if framework is None:
            done = [f for f in self.core.completed_frameworks if f.framework_id == framework_id]
            framework = done[-1] if done else None
        return framework is not None and framework.checkpoint

    def acknowledge(self, framework_id: str, task_id: str, status_uuid: bytes) -> None:
        outcome = self.updates.acknowledge(framework_id, task_id, status_uuid, time.time())
        if outcome is Acked.ACCEPTED:
            self.counters.updates_acknowledged += 1
            if self._checkpointing(framework_id):
                self.checkpoints.write_stream(self.updates.streams[(framework_id, task_id)])
        elif outcome is Acked.FINISHED:
            self.counters.updates_acknowledged += 1
            self.updates.forget(framework_id, task_id)
            self.checkpoints.remove_stream(framework_id, task_id)
        self.wakeup.set()

    # -- the executor API (agent/executor_api.py calls these) -------------------------------

    def _find(self, call: ExecutorCall) -> tuple[FrameworkRecord, ExecutorRecord]:
        if not self.recovered:  # executors retry; a 400 now would make them give up
            raise HttpError(503, "Agent has not finished recovery")
        framework = self.core.frameworks.get(call.framework_id.value)
        if framework is None:
            raise HttpError(400, f"Framework '{call.framework_id.value}' not found")
        executor = framework.executors.get(call.executor_id.value)
        if executor is None:
            raise HttpError(400, f"Executor '{call.executor_id.value}' not found")
        return framework, executor

    def executor_subscribe(self, call: ExecutorCall, stream: Stream) -> None:
        framework, executor = self._find(call)
        key = (framework.framework_id, executor.executor_id)
        if framework.state is FrameworkState.TERMINATING or executor.state in (
            ExecutorState.TERMINATING, ExecutorState.TERMINATED
        ):  # fmt: skip
            stream.send(ExecutorEvent(type=ExecutorEvent.SHUTDOWN))
            stream.close()
            return
        old = self.streams.get(key)
        if old is not None:
            old.close()
        log.info("executor %s of framework %s subscribed", key[1], key[0])
        self.streams[key] = stream
        stream.on_close.append(lambda closed: self._stream_closed(key, closed))
        replayed = [
            self._executor_status(call, executor, u.status)
            for u in call.subscribe.unacknowledged_updates
        ]
        for status in replayed:
            self.handle_status(framework.framework_id, status)
        unacked = {t.task_id.value for t in call.subscribe.unacknowledged_tasks}
        for record in list(executor.tasks.values()):
            if record.state == mesos_pb2.TASK_STAGING and record.task_id not in unacked:
                self._agent_update(record, agent_core.lost_state(framework),
                                   Reason.REASON_AGENT_RESTARTED,
                                   "Task never reached the executor")  # fmt: skip
        executor.state = ExecutorState.RUNNING
        subscribed = ExecutorEvent(type=ExecutorEvent.SUBSCRIBED)
        subscribed.subscribed.executor_info.CopyFrom(executor.info)
        subscribed.subscribed.framework_info.CopyFrom(framework.info)
        subscribed.subscribed.agent_info.CopyFrom(self.info)
        subscribed.subscribed.container_id.value = executor.container_id
        stream.send(subscribed)
        for status in replayed:  # now durably accepted: the executor may forget them
            stream.send(acknowledged(status))
        had_queued = bool(executor.queued)
        self._deliver(framework, executor)
        for task_id in list(executor.tasks):
            key = (framework.framework_id, task_id)
            if key in self.pending_kills:
                stream.send(kill_event(task_id, self.pending_kills.pop(key)))
        if had_queued is False and not executor.tasks and not executor.completed:
            # every task was killed before it could be delivered
            self._spawn(self.shutdown_executor(executor))

    def _stream_closed(self, key: tuple[str, str], stream: Stream) -> None:
        if self.streams.get(key) is stream:
            del self.streams[key]

    def _executor_status(
        self, call: ExecutorCall, executor: ExecutorRecord, status: mesos_pb2.TaskStatus
    ) -> mesos_pb2.TaskStatus:
        out = mesos_pb2.TaskStatus()
        out.CopyFrom(status)
        out.agent_id.CopyFrom(self.info.id)
        if not out.HasField("executor_id"):
            out.executor_id.CopyFrom(call.executor_id)
        if not out.HasField("timestamp"):
            out.timestamp = time.time()
        self._add_container_status(out.container_status, executor)
        return out

    def _add_container_status(
        self, status: mesos_pb2.ContainerStatus, executor: ExecutorRecord
    ) -> None:
        """What Mesos's agent merges into every update an executor sends: the container's id
        and pid (the containerizer's, over whatever the executor said) and, when the executor
        named no network, the agent's address (service discovery such as mesos-dns reads the
        task's IP from `network_infos`)."""
        if not status.HasField("container_id"):
            status.container_id.value = executor.container_id
        own = status.container_id.value == executor.container_id
        if own and not status.container_id.HasField("parent") and executor.pid:
            status.executor_pid = executor.pid
        ip = self.flags_.advertised_ip
        if not status.network_infos and ip is not None:
            status.network_infos.add().ip_addresses.add(ip_address=ip)

    async def executor_update(self, call: ExecutorCall) -> None:
        try:
            framework, executor = self._find(call)
        except HttpError:
            self.counters.invalid_status_updates += 1
            raise
        status = self._executor_status(call, executor, call.update.status)
        if framework.state is FrameworkState.TERMINATING:
            # Mesos drops updates of a framework being shut down (nobody would ack them)
            self.counters.invalid_status_updates += 1
        else:
            self.handle_status(framework.framework_id, status)
            self.counters.valid_status_updates += 1
        stream = self.streams.get((framework.framework_id, call.executor_id.value))
        if stream is not None:
            stream.send(acknowledged(status))

    async def executor_message(self, call: ExecutorCall) -> None:
        try:
            self._find(call)
        except HttpError:
            self.counters.invalid_framework_messages += 1
            raise
        self.counters.valid_framework_messages += 1
        message = LinkCall(type=LinkCall.MESSAGE)
        message.message.framework_id.CopyFrom(call.framework_id)
        message.message.executor_id.CopyFrom(call.executor_id)
        message.message.data = call.message.data
        if await self.client.post(message):
            self.counters.messages_sent += 1


def launched(executors: list[ExecutorRecord]) -> list[Launched]:
    """What the containerizer needs to reattach to checkpointed executors."""
    return [
        Launched(e.container_id, e.pid, e.start_time or 0) for e in executors if e.pid is not None
    ]


def kill_event(task_id: str, policy: mesos_pb2.KillPolicy | None) -> ExecutorEvent:
    event = ExecutorEvent(type=ExecutorEvent.KILL)
    event.kill.task_id.value = task_id
    if policy is not None:
        event.kill.kill_policy.CopyFrom(policy)
    return event


def acknowledged(status: mesos_pb2.TaskStatus) -> ExecutorEvent:
    """ACKNOWLEDGED: the agent has durably accepted this update (not the scheduler's ack)."""
    event = ExecutorEvent(type=ExecutorEvent.ACKNOWLEDGED)
    event.acknowledged.task_id.CopyFrom(status.task_id)
    event.acknowledged.uuid = status.uuid
    return event
