"""A scripted agent side of the v1 executor API (aiohttp, 127.0.0.1) for executor tests.

It serves /api/v1/executor and /slave(1)/api/v1/executor: SUBSCRIBE gets a 200 RecordIO stream
that starts with SUBSCRIBED, then carries whatever the test `send`s (LAUNCH, KILL, SHUTDOWN...);
UPDATE is checked as Mesos checks it (uuid, source, state), recorded, answered 202 and, with
`auto_ack`, ACKNOWLEDGED on the stream. `stop()` drops every connection like a killed agent and
`start()` brings it back on the same port. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from meseta.agent.containerizer import ContainerConfig, Containerizer, Launched
from meseta.api import mesos_json, recordio
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.executor import executor_pb2

Event = executor_pb2.Event
Call = executor_pb2.Call
JSON = "application/json"
PROTOBUF = "application/x-protobuf"


def command_task(
    task_id: str,
    command: str | None = None,
    *,
    argv: list[str] | None = None,
    grace_s: float | None = None,
    environment: dict[str, str] | None = None,
) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=task_id)
    task.task_id.value = task_id
    task.agent_id.value = "agent-1"
    if argv is not None:
        task.command.shell = False
        task.command.value = argv[0]
        task.command.arguments.extend(argv)
    else:
        task.command.value = command or "true"
    for name, value in (environment or {}).items():
        task.command.environment.variables.add(name=name, value=value)
    if grace_s is not None:
        task.kill_policy.grace_period.nanoseconds = int(grace_s * 1e9)
    return task


def launch(task: mesos_pb2.TaskInfo) -> executor_pb2.Event:
    return Event(type=Event.LAUNCH, launch=Event.Launch(task=task))


def launch_group(*tasks: mesos_pb2.TaskInfo) -> executor_pb2.Event:
    group = mesos_pb2.TaskGroupInfo(tasks=list(tasks))
    return Event(type=Event.LAUNCH_GROUP, launch_group=Event.LaunchGroup(task_group=group))


def kill(task_id: str, grace_s: float | None = None) -> executor_pb2.Event:
    event = Event(type=Event.KILL)
    event.kill.task_id.value = task_id
    if grace_s is not None:
        event.kill.kill_policy.grace_period.nanoseconds = int(grace_s * 1e9)
    return event


SHUTDOWN = Event(type=Event.SHUTDOWN)


class FakeExecutorApi:
    def __init__(
        self,
        framework_id: str = "framework-1",
        executor_id: str = "executor-1",
        *,
        auto_ack: bool = True,
        capabilities: tuple[int, ...] = (),
        executor_user: str | None = None,
    ) -> None:
        self.framework_id = framework_id
        self.executor_id = executor_id
        self.auto_ack = auto_ack
        self.capabilities = capabilities
        self.executor_user = executor_user  # ExecutorInfo.command.user in SUBSCRIBED
        self.port = 0
        self.calls: list[executor_pb2.Call] = []
        self.authorizations: list[str | None] = []  # the Authorization header of each call
        # Statuses to answer the next SUBSCRIBEs with instead of a stream, e.g. [503, 503].
        self.refusals: list[int] = []
        # How many of the next UPDATEs to drop unanswered, their connection closed.
        self.dropped_updates = 0
        self.subscribes: asyncio.Queue[executor_pb2.Call] = asyncio.Queue()
        self.updates: asyncio.Queue[mesos_pb2.TaskStatus] = asyncio.Queue()
        self._outbox: asyncio.Queue[executor_pb2.Event | None] | None = None
        self._media = JSON
        self._runner: web.AppRunner | None = None
        self._streams: list[web.StreamResponse] = []

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def environment(self, sandbox: str, *, checkpoint: bool = True) -> dict[str, str]:
        """The contract 3.4 variables an executor under this fake agent gets."""
        return {
            "MESOS_FRAMEWORK_ID": self.framework_id,
            "MESOS_EXECUTOR_ID": self.executor_id,
            "MESOS_AGENT_ENDPOINT": self.endpoint,
            "MESOS_SLAVE_PID": f"slave(1)@{self.endpoint}",
            "MESOS_DIRECTORY": sandbox,
            "MESOS_SANDBOX": sandbox,
            "MESOS_CHECKPOINT": "1" if checkpoint else "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs",
            "MESOS_SUBSCRIPTION_BACKOFF_MAX": "100ms",
            "MESOS_RECOVERY_TIMEOUT": "15secs",
        }

    async def __aenter__(self) -> FakeExecutorApi:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        for path in ("/api/v1/executor", "/slave(1)/api/v1/executor"):
            app.router.add_post(path, self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Drop the stream and every connection, like an agent killed with -9."""
        if self._outbox is not None:
            self._outbox.put_nowait(None)
            self._outbox = None
        for stream in self._streams:
            with contextlib.suppress(Exception):
                stream.force_close()
        self._streams.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def send(self, event: executor_pb2.Event) -> None:
        assert self._outbox is not None, "no executor is subscribed"
        self._outbox.put_nowait(event)

    async def next_subscribe(self, timeout_s: float = 20.0) -> executor_pb2.Call:
        return await asyncio.wait_for(self.subscribes.get(), timeout_s)

    async def next_update(self, timeout_s: float = 20.0) -> mesos_pb2.TaskStatus:
        return await asyncio.wait_for(self.updates.get(), timeout_s)

    async def updates_until_terminal(
        self, count: int = 1, timeout_s: float = 30.0
    ) -> list[mesos_pb2.TaskStatus]:
        """Updates until `count` terminal ones have arrived."""
        terminal = {
            mesos_pb2.TASK_FINISHED,
            mesos_pb2.TASK_FAILED,
            mesos_pb2.TASK_KILLED,
            mesos_pb2.TASK_ERROR,
            mesos_pb2.TASK_LOST,
        }
        seen: list[mesos_pb2.TaskStatus] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while sum(s.state in terminal for s in seen) < count:
            seen.append(await self.next_update(max(deadline - loop.time(), 0.01)))
        return seen

    # -- the handler -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        media = request.headers.get("Content-Type", "")
        body = await request.read()
        try:
            if media == JSON:
                call = mesos_json.from_json(body, Call)
            elif media == PROTOBUF:
                call = mesos_json.from_protobuf(body, Call)
            else:
                return web.Response(status=415, text=f"Unsupported '{media}'")
        except Exception as error:
            return web.Response(status=400, text=f"Failed to parse the call: {error}")
        self.calls.append(call)
        self.authorizations.append(request.headers.get("Authorization"))
        if call.type == Call.SUBSCRIBE:
            if self.refusals:
                return web.Response(status=self.refusals.pop(0), text="refused by the test")
            return await self._subscribe(request, call, media)
        if call.type == Call.UPDATE and self.dropped_updates > 0:
            self.dropped_updates -= 1
            assert request.transport is not None
            request.transport.abort()  # as a server closing an idle connection would
            return web.Response(status=202)
        if call.type == Call.UPDATE:
            problem = _validate_update(call)
            if problem is not None:
                return web.Response(status=400, text=problem)
            self._record(call.update.status)
            return web.Response(status=202)
        if call.type in (Call.MESSAGE, Call.HEARTBEAT):
            return web.Response(status=202)
        return web.Response(status=501)

    def _record(self, status: mesos_pb2.TaskStatus) -> None:
        self.updates.put_nowait(status)
        if self.auto_ack and self._outbox is not None:
            ack = Event(type=Event.ACKNOWLEDGED)
            ack.acknowledged.task_id.CopyFrom(status.task_id)
            ack.acknowledged.uuid = status.uuid
            self._outbox.put_nowait(ack)

    async def _subscribe(
        self, request: web.Request, call: executor_pb2.Call, media: str
    ) -> web.StreamResponse:
        if self._outbox is not None:  # a new subscription replaces the old stream
            self._outbox.put_nowait(None)
        outbox: asyncio.Queue[executor_pb2.Event | None] = asyncio.Queue()
        self._outbox, self._media = outbox, media
        response = web.StreamResponse(status=200, headers={"Content-Type": media})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self._streams.append(response)
        outbox.put_nowait(self._subscribed())
        for update in call.subscribe.unacknowledged_updates:  # the agent replays them
            self._record(update.status)
        self.subscribes.put_nowait(call)
        try:
            while (event := await outbox.get()) is not None:
                payload = mesos_json.to_json(event) if media == JSON else event.SerializeToString()
                await response.write(recordio.encode(payload))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    def _subscribed(self) -> executor_pb2.Event:
        event = Event(type=Event.SUBSCRIBED)
        subscribed = event.subscribed
        subscribed.executor_info.executor_id.value = self.executor_id
        if self.executor_user is not None:
            subscribed.executor_info.command.user = self.executor_user
        subscribed.framework_info.user = "root"
        subscribed.framework_info.name = "fake"
        subscribed.framework_info.id.value = self.framework_id
        for capability in self.capabilities:
            subscribed.framework_info.capabilities.add(type=capability)  # type: ignore[arg-type]
        subscribed.agent_info.hostname = "127.0.0.1"
        subscribed.container_id.value = str(uuid.uuid4())
        return event


def _validate_update(call: executor_pb2.Call) -> str | None:
    status = call.update.status
    if len(status.uuid) != 16:
        return "'uuid' is not a valid UUID"
    if status.source != mesos_pb2.TaskStatus.SOURCE_EXECUTOR:
        return "Received Call from executor with 'source' != 'SOURCE_EXECUTOR'"
    if status.state == mesos_pb2.TASK_STAGING:
        return "Received TASK_STAGING from executor"
    if status.HasField("executor_id") and status.executor_id != call.executor_id:
        return "ExecutorID in Call and in TaskStatus do not match"
    return None


def executor_command(module: str) -> mesos_pb2.CommandInfo:
    """`python -m <module>` in argv form, as the agent starts our executors."""
    command = mesos_pb2.CommandInfo(shell=False, value=sys.executable)
    command.arguments.extend([sys.executable, "-m", module])
    return command


async def start_executor(
    module: str,
    api: FakeExecutorApi,
    containerizer: Containerizer,
    tmp_path: Path,
    *,
    checkpoint: bool = True,
    extra_environment: Mapping[str, str] | None = None,
) -> tuple[Launched, Path]:
    """`python -m <module>` as an executor of `api` in a container with its sandbox under
    `tmp_path`, once it has subscribed; the launch and the sandbox."""
    sandbox = tmp_path / "sandbox"
    environment = api.environment(str(sandbox), checkpoint=checkpoint) | dict(
        extra_environment or {}
    )
    config = ContainerConfig("executor", sandbox, executor_command(module), environment)
    launched = await containerizer.launch(config)
    await api.next_subscribe()
    return launched, sandbox
