"""A scripted fake agent speaking meseta's agent link (JSON) over aiohttp.

It subscribes with some resources, collects what the master sends on its
stream (RUN_TASK, KILL_TASK, ACKNOWLEDGE, ...) into an `asyncio.Queue` of
decoded JSON events, and lets a test send UPDATEs, EXECUTOR_EXITED and
HEARTBEATs, re-subscribe with its agent id and task list, or disconnect.
Every wait is bounded; `close()` (or `async with`) releases the connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import Iterable
from typing import Any

import aiohttp
import orjson

from meseta.api import recordio

JSON = "application/json"
Json = dict[str, Any]
# Marks the end of a stream in the event queues.
CLOSED = "__CLOSED__"


def scalar(name: str, value: float) -> Json:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


DEFAULT_RESOURCES = [scalar("cpus", 4), scalar("mem", 1024)]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class AgentLinkError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text


class EventStream:
    """One open RecordIO response: decoded events go to `events`; `closed` at its end."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.events: asyncio.Queue[Json] = asyncio.Queue()
        self.history: list[Json] = []
        # Events taken off `events` but passed over by `expect`, oldest first.
        self.backlog: list[Json] = []
        self.closed = asyncio.Event()
        self.error: BaseException | None = None
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        decoder = recordio.Decoder()
        try:
            async for chunk in self.response.content.iter_any():
                for record in decoder.feed(chunk):
                    event = self.decode(record)
                    self.history.append(event)
                    self.events.put_nowait(event)
        except (TimeoutError, aiohttp.ClientError, recordio.RecordIOError) as error:
            self.error = error
        finally:
            self.closed.set()
            self.events.put_nowait({"type": CLOSED})

    def decode(self, record: bytes) -> Json:
        event: Json = orjson.loads(record)
        return event

    async def _receive(self, deadline: float) -> Json:
        """The next event off the wire, HEARTBEATs included; CLOSED stays at the end."""
        remaining = max(deadline - time.monotonic(), 0.001)
        event = await asyncio.wait_for(self.events.get(), remaining)
        if event["type"] == CLOSED:
            self.events.put_nowait(event)  # stays closed for later readers
        return event

    async def next_event(self, timeout_s: float = 5.0, *, heartbeats: bool = False) -> Json:
        """The oldest unconsumed event (HEARTBEATs dropped unless asked for);
        {"type": CLOSED} once the stream has ended."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.backlog:
                event = self.backlog.pop(0)
            else:
                try:
                    event = await self._receive(deadline)
                except TimeoutError:
                    raise AssertionError(f"no event within {timeout_s}s") from None
            if event["type"] == CLOSED or heartbeats or event["type"] != "HEARTBEAT":
                return event

    async def expect(self, kind: str, timeout_s: float = 5.0) -> Json:
        """The oldest unconsumed event of type `kind`; the events it passes over stay
        unconsumed (HEARTBEATs aside). Fails on timeout or at the end of the stream."""
        return (await self.expect_all(kind, timeout_s=timeout_s))[kind]

    async def expect_all(self, *kinds: str, timeout_s: float = 5.0) -> dict[str, Json]:
        """The oldest unconsumed event of each of `kinds`, in whatever order they come."""
        found: dict[str, Json] = {}
        for event in list(self.backlog):
            if event["type"] in kinds and event["type"] not in found:
                found[event["type"]] = event
                self.backlog.remove(event)
        deadline = time.monotonic() + timeout_s
        while len(found) < len(kinds):
            missing = [kind for kind in kinds if kind not in found]
            passed = [event["type"] for event in self.backlog]
            try:
                event = await self._receive(deadline)
            except TimeoutError:
                raise AssertionError(
                    f"no {missing} within {timeout_s}s; unconsumed: {passed}"
                ) from None
            if event["type"] == CLOSED:
                raise AssertionError(f"stream closed while waiting for {missing}; got {passed}")
            if event["type"] in missing:
                found[event["type"]] = event
            elif event["type"] != "HEARTBEAT":
                self.backlog.append(event)
        return found

    async def wait_closed(self, timeout_s: float = 5.0) -> list[Json]:
        """Wait for the end of the stream; return the events not yet consumed."""
        try:
            await asyncio.wait_for(self.closed.wait(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"the stream stayed open for {timeout_s}s") from None
        rest, self.backlog = self.backlog, []
        while not self.events.empty():
            event = self.events.get_nowait()
            if event["type"] != CLOSED:
                rest.append(event)
        self.events.put_nowait({"type": CLOSED})
        return rest

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        self.response.close()


class FakeAgent:
    def __init__(
        self,
        master_url: str,
        *,
        hostname: str = "127.0.0.1",
        port: int = 5051,
        resources: list[Json] | None = None,
        sock_read_s: float = 30.0,
    ) -> None:
        self.url = f"{master_url}/api/v1/agent"
        self.hostname = hostname
        self.port = port
        self.resources = resources if resources is not None else list(DEFAULT_RESOURCES)
        self.timeout = aiohttp.ClientTimeout(total=None, sock_read=sock_read_s)
        self.session: aiohttp.ClientSession | None = None
        self.stream: EventStream | None = None
        self.agent_id: str | None = None

    async def __aenter__(self) -> FakeAgent:
        self.session = aiohttp.ClientSession(timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.disconnect()
        if self.session is not None:
            await self.session.close()
            self.session = None

    # -- the stream ------------------------------------------------------------------

    def agent_info(self, agent_id: str | None, resources: list[Json] | None) -> Json:
        info: Json = {
            "hostname": self.hostname,
            "port": self.port,
            "resources": resources if resources is not None else self.resources,
        }
        if agent_id is not None:
            info["id"] = {"value": agent_id}
        return info

    async def subscribe(
        self,
        *,
        agent_id: str | None = None,
        tasks: Iterable[Json] = (),
        executors: Iterable[Json] = (),
        frameworks: Iterable[Json] = (),
        resources: list[Json] | None = None,
        ip: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 5.0,
    ) -> Json:
        """(Re-)register; return the stream's first event (SUBSCRIBED or ERROR).

        A previous stream is closed first. With `agent_id` this is a
        re-registration reporting `tasks`, `executors` and `frameworks`.
        """
        await self.disconnect()
        subscribe: Json = {"agent_info": self.agent_info(agent_id, resources)}
        if tasks:
            subscribe["tasks"] = list(tasks)
        if executors:
            subscribe["executors"] = list(executors)
        if frameworks:
            subscribe["frameworks"] = list(frameworks)
        if ip is not None:
            subscribe["ip"] = ip
        body = {"type": "SUBSCRIBE", "subscribe": subscribe}
        assert self.session is not None, "use `async with FakeAgent(...)`"
        response = await self.session.post(
            self.url,
            data=orjson.dumps(body),
            headers={"Content-Type": JSON, "Accept": JSON, **(headers or {})},
        )
        if response.status != 200:
            text = await response.text()
            response.release()
            raise AgentLinkError(response.status, text)
        self.stream = EventStream(response)
        first = await self.stream.next_event(timeout_s)
        if first["type"] == "SUBSCRIBED":
            self.agent_id = first["subscribed"]["agent_id"]["value"]
        return first

    async def disconnect(self) -> None:
        """Drop the stream (the master sees the connection close)."""
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.close()

    async def next_event(self, timeout_s: float = 5.0) -> Json:
        assert self.stream is not None, "not subscribed"
        return await self.stream.next_event(timeout_s)

    async def expect(self, kind: str, timeout_s: float = 5.0) -> Json:
        assert self.stream is not None, "not subscribed"
        return await self.stream.expect(kind, timeout_s)

    # -- calls -----------------------------------------------------------------------

    async def call(self, body: Json) -> tuple[int, str]:
        """POST one call; (status, body text)."""
        assert self.session is not None, "use `async with FakeAgent(...)`"
        async with self.session.post(
            self.url, data=orjson.dumps(body), headers={"Content-Type": JSON}
        ) as response:
            return response.status, await response.text()

    async def checked(self, body: Json, expect_status: int) -> None:
        status, text = await self.call(body)
        assert status == expect_status, f"{body['type']}: HTTP {status} {text!r}"

    def envelope(self, kind: str, agent_id: str | None = None) -> Json:
        agent_id = agent_id or self.agent_id
        assert agent_id is not None, "not registered"
        return {"type": kind, "agent_id": {"value": agent_id}}

    async def update(
        self,
        framework_id: str,
        task_id: str,
        state: str,
        *,
        status_uuid: bytes | None = None,
        with_uuid: bool = True,
        agent_id: str | None = None,
        expect_status: int = 202,
        **fields: str | None,
    ) -> bytes | None:
        """Send a status update; return its uuid (a fresh one unless given). `fields` are
        `update_body`'s (executor_id, reason, message, source, latest_state)."""
        if with_uuid and status_uuid is None:
            status_uuid = uuid.uuid4().bytes
        body = self.envelope("UPDATE", agent_id)
        agent = body["agent_id"]["value"]
        body["update"] = self.update_body(
            framework_id, task_id, state, status_uuid=status_uuid, agent_id=agent, **fields
        )
        await self.checked(body, expect_status)
        return status_uuid

    def update_body(
        self,
        framework_id: str,
        task_id: str,
        state: str,
        *,
        status_uuid: bytes | None = None,
        executor_id: str | None = None,
        reason: str | None = None,
        message: str | None = None,
        source: str = "SOURCE_EXECUTOR",
        latest_state: str | None = None,
        agent_id: str | None = None,
    ) -> Json:
        """One `Call.Update` as JSON (for UPDATE, or one of an UPDATES call's `updates`)."""
        status: Json = {
            "task_id": {"value": task_id},
            "state": state,
            "source": source,
            "agent_id": {"value": agent_id or self.agent_id},
            "timestamp": time.time(),
        }
        if status_uuid is not None:
            status["uuid"] = b64(status_uuid)
        if executor_id is not None:
            status["executor_id"] = {"value": executor_id}
        if reason is not None:
            status["reason"] = reason
        if message is not None:
            status["message"] = message
        update: Json = {"framework_id": {"value": framework_id}, "status": status}
        if latest_state is not None:
            update["latest_state"] = latest_state
        return update

    async def executor_exited(
        self,
        framework_id: str,
        executor_id: str,
        status: int | None = None,
        *,
        expect_status: int = 202,
    ) -> None:
        body = self.envelope("EXECUTOR_EXITED")
        exited: Json = {
            "framework_id": {"value": framework_id},
            "executor_id": {"value": executor_id},
        }
        if status is not None:
            exited["status"] = status
        body["executor_exited"] = exited
        await self.checked(body, expect_status)

    async def heartbeat(self, *, expect_status: int = 202) -> None:
        await self.checked(self.envelope("HEARTBEAT"), expect_status)

    async def message(
        self, framework_id: str, executor_id: str, data: bytes, *, expect_status: int = 202
    ) -> None:
        body = self.envelope("MESSAGE")
        body["message"] = {
            "framework_id": {"value": framework_id},
            "executor_id": {"value": executor_id},
            "data": b64(data),
        }
        await self.checked(body, expect_status)


def reported_task(run_task: Json, agent_id: str, state: str = "TASK_RUNNING", **extra: Any) -> Json:
    """The `mesos.v1.Task` an agent reports on re-registration, from a RUN_TASK event."""
    info = run_task["task"]
    task: Json = {
        "name": info["name"],
        "task_id": info["task_id"],
        "framework_id": run_task["framework_info"]["id"],
        "agent_id": {"value": agent_id},
        "state": state,
        "resources": info.get("resources", []),
    }
    task.update(extra)
    return task
