"""The client side of the Mesos v1 executor API (contract section 3), shared by our executors.

`ExecutorDriver.run` subscribes to the agent at MESOS_AGENT_ENDPOINT and hands every event to a
callback. It keeps each update it sends until the agent ACKNOWLEDGES it, and the tasks it was
given until one of their updates is acknowledged; both go into every SUBSCRIBE, so the agent
replays what it missed. When the connection drops, a checkpointing executor re-subscribes after
a random back-off bounded by MESOS_SUBSCRIPTION_BACKOFF_MAX for up to MESOS_RECOVERY_TIMEOUT
(the agent may be restarting); otherwise, or once that runs out, the driver hands the executor a
SHUTDOWN event, as Mesos's executor library does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from meseta.agent.flags import FlagError, duration_s
from meseta.api import mesos_json, recordio
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.executor import executor_pb2

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
TOKEN = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
Event = executor_pb2.Event
Call = executor_pb2.Call
log = logging.getLogger("meseta.executor")
CALL_TIMEOUT_S = 30.0  # UPDATE and MESSAGE (the session itself has none: it holds the stream)
# An UPDATE without an answer is posted again after 0.1, 0.2, 0.4... s, at most 2 s apart.
UPDATE_POST_ATTEMPTS = 8
UPDATE_RETRY_S = 0.1
UPDATE_RETRY_MAX_S = 2.0


class ExecutorEnvironmentError(ValueError):
    """A variable of contract 3.4 is missing or malformed."""


@dataclass(frozen=True, slots=True)
class ExecutorEnvironment:
    """What the agent tells an executor through its environment (contract 3.4)."""

    framework_id: str
    executor_id: str
    agent_endpoint: str  # ip:port
    sandbox: str
    checkpoint: bool
    shutdown_grace_s: float = 5.0
    subscription_backoff_max_s: float = 2.0
    recovery_timeout_s: float = 900.0
    token: str | None = None  # MESOS_EXECUTOR_AUTHENTICATION_TOKEN, sent as a Bearer token

    @property
    def url(self) -> str:
        return f"http://{self.agent_endpoint}/api/v1/executor"

    @staticmethod
    def from_environ(environ: Mapping[str, str]) -> ExecutorEnvironment:
        def required(name: str) -> str:
            value = environ.get(name)
            if not value:
                raise ExecutorEnvironmentError(f"Expecting '{name}' to be set in the environment")
            return value

        def duration(name: str, default: float) -> float:
            text = environ.get(name)
            if text is None:
                return default
            try:
                return duration_s(text, name)
            except FlagError as error:
                raise ExecutorEnvironmentError(str(error)) from None

        return ExecutorEnvironment(
            framework_id=required("MESOS_FRAMEWORK_ID"),
            executor_id=required("MESOS_EXECUTOR_ID"),
            agent_endpoint=required("MESOS_AGENT_ENDPOINT"),
            sandbox=environ.get("MESOS_SANDBOX") or required("MESOS_DIRECTORY"),
            checkpoint=environ.get("MESOS_CHECKPOINT") == "1",
            shutdown_grace_s=duration("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", 5.0),
            subscription_backoff_max_s=duration("MESOS_SUBSCRIPTION_BACKOFF_MAX", 2.0),
            recovery_timeout_s=duration("MESOS_RECOVERY_TIMEOUT", 900.0),
            token=environ.get(TOKEN) or None,
        )


class _Fatal(Exception):
    """The agent refused the subscription for good (4xx)."""


class ExecutorDriver:
    def __init__(
        self,
        environment: ExecutorEnvironment,
        on_event: Callable[[executor_pb2.Event], None],
        *,
        media_type: str = JSON,
    ) -> None:
        self.environment = environment
        self.on_event = on_event
        self.media_type = media_type
        self.subscribed = asyncio.Event()
        self.framework_info: mesos_pb2.FrameworkInfo | None = None
        self.executor_info: mesos_pb2.ExecutorInfo | None = None
        self._tasks: dict[str, mesos_pb2.TaskInfo] = {}  # launched, no update acknowledged yet
        self._updates: dict[bytes, executor_pb2.Call.Update] = {}  # by uuid, oldest first
        self._acknowledgement = asyncio.Event()  # set at each ACKNOWLEDGED
        self._stopping = False
        self._gone = asyncio.Event()  # run() has ended: nobody will acknowledge anything
        self._session: aiohttp.ClientSession | None = None
        self._stream: aiohttp.ClientResponse | None = None

    # -- what the executor calls ------------------------------------------------------------------

    def launched(self, task: mesos_pb2.TaskInfo) -> None:
        """Remember a task until one of its updates is acknowledged (SUBSCRIBE resends it)."""
        self._tasks[task.task_id.value] = task

    async def update(self, status: mesos_pb2.TaskStatus) -> bytes:
        """Send a status update; it gets a fresh uuid, the executor's id, SOURCE_EXECUTOR and a
        timestamp, and is kept (and resent on re-subscription) until acknowledged."""
        status.uuid = uuid.uuid4().bytes
        status.source = mesos_pb2.TaskStatus.SOURCE_EXECUTOR
        status.executor_id.value = self.environment.executor_id
        status.timestamp = time.time()
        update = executor_pb2.Call.Update(status=status)
        self._updates[status.uuid] = update
        await self._post(self._call(executor_pb2.Call.UPDATE, update=update))
        return status.uuid

    async def message(self, data: bytes) -> None:
        await self._post(
            self._call(executor_pb2.Call.MESSAGE, message=executor_pb2.Call.Message(data=data))
        )

    def unacknowledged(self) -> list[executor_pb2.Call.Update]:
        return list(self._updates.values())

    async def wait_acknowledged(
        self, timeout_s: float, uuids: Collection[bytes] | None = None
    ) -> bool:
        """Wait until the updates with `uuids` (default: all sent so far) are acknowledged;
        False on timeout, or as soon as the driver has given up on the agent."""

        def acknowledged() -> bool:
            if uuids is None:
                return not self._updates
            return not any(uuid_ in self._updates for uuid_ in uuids)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not acknowledged() and not self._gone.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._acknowledgement.clear()
            waits = [asyncio.ensure_future(e.wait()) for e in (self._acknowledgement, self._gone)]
            try:
                await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        return acknowledged()

    def stop(self) -> None:
        self._stopping = True
        if self._stream is not None:
            self._stream.close()

    # -- the subscription ------------------------------------------------------------------------

    async def run(self) -> None:
        """Subscribe and dispatch events until `stop()`, or until the agent is gone for good."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            try:
                await self._subscribe_loop(session)
            finally:
                self._session = None
                self._gone.set()

    async def _subscribe_loop(self, session: aiohttp.ClientSession) -> None:
        disconnected_at: float | None = None
        while not self._stopping:
            try:
                await self._subscribe_once(session)
            except _Fatal as error:
                log.error("%s", error)
                self._dispatch(_error_event(str(error)))
                self._dispatch(Event(type=Event.SHUTDOWN))
                return
            except (aiohttp.ClientError, OSError, TimeoutError, recordio.RecordIOError) as error:
                if self._stopping:
                    return  # `stop()` closed the stream
                log.warning("Connection to the agent failed: %s", error)
            if self._stopping:
                return
            now = time.monotonic()
            if self.subscribed.is_set() or disconnected_at is None:
                disconnected_at = now  # we were subscribed: a new outage starts now
            self.subscribed.clear()
            if not self.environment.checkpoint:
                log.warning("Disconnected from the agent and not checkpointing: shutting down")
                self._dispatch(Event(type=Event.SHUTDOWN))
                return
            if now - disconnected_at >= self.environment.recovery_timeout_s:
                log.warning("The agent did not come back within the recovery timeout")
                self._dispatch(Event(type=Event.SHUTDOWN))
                return
            await asyncio.sleep(random.uniform(0, self.environment.subscription_backoff_max_s))

    async def _subscribe_once(self, session: aiohttp.ClientSession) -> None:
        subscribe = executor_pb2.Call.Subscribe(
            unacknowledged_tasks=list(self._tasks.values()),
            unacknowledged_updates=list(self._updates.values()),
        )
        call = self._call(executor_pb2.Call.SUBSCRIBE, subscribe=subscribe)
        async with session.post(
            self.environment.url, data=self._encode(call), headers=self._headers()
        ) as response:
            if response.status != 200:
                text = await response.text()
                if response.status >= 500:  # e.g. 503 while the agent recovers: retry
                    raise aiohttp.ClientError(f"SUBSCRIBE got {response.status}: {text}")
                raise _Fatal(f"The agent refused SUBSCRIBE ({response.status}): {text}")
            self._stream = response
            try:
                await self._read(response)
            finally:
                self._stream = None

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        decoder = recordio.Decoder()
        async for chunk in response.content.iter_any():
            for record in decoder.feed(chunk):
                self._dispatch(self._decode(record))
        decoder.finish()

    def _dispatch(self, event: executor_pb2.Event) -> None:
        if event.type == Event.SUBSCRIBED:
            self.framework_info = event.subscribed.framework_info
            self.executor_info = event.subscribed.executor_info
            self.subscribed.set()
            log.info(
                "Subscribed to the agent with %d unacknowledged updates and %d tasks",
                len(self._updates),
                len(self._tasks),
            )
        elif event.type == Event.ACKNOWLEDGED:
            self._on_acknowledged(event.acknowledged)
        elif event.type == Event.HEARTBEAT:
            return
        self.on_event(event)

    def _on_acknowledged(self, acknowledged: executor_pb2.Event.Acknowledged) -> None:
        update = self._updates.pop(acknowledged.uuid, None)
        if update is not None:
            state = mesos_pb2.TaskState.Name(update.status.state)
            log.info("The agent acknowledged %s of task '%s'", state, acknowledged.task_id.value)
        self._tasks.pop(acknowledged.task_id.value, None)
        self._acknowledgement.set()

    # -- calls -----------------------------------------------------------------------------------

    def _call(self, kind: int, **body: object) -> executor_pb2.Call:
        call = executor_pb2.Call(type=kind, **body)  # type: ignore[arg-type]
        call.framework_id.value = self.environment.framework_id
        call.executor_id.value = self.environment.executor_id
        return call

    async def _post(self, call: executor_pb2.Call) -> None:
        """Post a call; failures are logged, not raised: updates go again with SUBSCRIBE.

        An UPDATE that got no answer at all is posted again while the stream stays up: the
        agent may have closed an idle kept-alive connection just as the call went out on it,
        and no re-subscription would follow to resend the update. A repeat is harmless, as
        the agent acknowledges a uuid it has seen without recording it twice."""
        attempts = UPDATE_POST_ATTEMPTS if call.type == Call.UPDATE else 1
        for attempt in range(attempts):
            session = self._session
            if session is None or not self.subscribed.is_set():
                return
            if attempt and call.update.status.uuid not in self._updates:
                return  # acknowledged meanwhile: the agent had it after all
            try:
                async with session.post(
                    self.environment.url,
                    data=self._encode(call),
                    headers=self._headers(),
                    timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S),
                ) as response:
                    if response.status != 202:
                        text = await response.text()
                        log.warning(
                            "The agent answered %s to %s: %s", response.status, call.type, text
                        )
                    return
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                log.warning("Posting a call to the agent failed: %s", error)
            if attempt + 1 < attempts:
                await asyncio.sleep(min(UPDATE_RETRY_S * 2**attempt, UPDATE_RETRY_MAX_S))

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.media_type, "Accept": self.media_type}
        if self.environment.token is not None:
            headers["Authorization"] = f"Bearer {self.environment.token}"
        return headers

    def _encode(self, call: executor_pb2.Call) -> bytes:
        if self.media_type == JSON:
            return mesos_json.to_json(call)
        return call.SerializeToString()

    def _decode(self, record: bytes) -> executor_pb2.Event:
        if self.media_type == JSON:
            return mesos_json.from_json(record, executor_pb2.Event)
        return mesos_json.from_protobuf(record, executor_pb2.Event)


def _error_event(message: str) -> executor_pb2.Event:
    return Event(type=Event.ERROR, error=executor_pb2.Event.Error(message=message))


def grace_period_s(*policies: mesos_pb2.KillPolicy | None, default_s: float = 3.0) -> float:
    """The first policy with a grace period wins (KILL event > TaskInfo > 3 s, as in Mesos)."""
    for policy in policies:
        if policy is not None and policy.HasField("grace_period"):
            return max(policy.grace_period.nanoseconds, 0) / 1e9
    return default_s


class Runnable(Protocol):
    async def run(self) -> None: ...


def main(make_executor: Callable[[ExecutorEnvironment], Runnable]) -> None:
    """The `python -m` entry of our executors: log to stderr (a sandbox file), read the
    environment, keep the authentication token from the tasks (as Mesos's library does), run."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        environment = ExecutorEnvironment.from_environ(os.environ)
    except ExecutorEnvironmentError as error:
        sys.stderr.write(f"{error}\n")
        sys.exit(1)
    os.environ.pop(TOKEN, None)
    asyncio.run(make_executor(environment).run())
