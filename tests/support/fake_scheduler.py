"""A raw v1 scheduler client over aiohttp, JSON or protobuf, for HTTP-level tests.

`post()` sends anything (bytes, a dict, a protobuf message) with any headers
and returns the whole reply; `subscribe()` opens a RecordIO event stream and
decodes its events (protobuf events are parsed as `scheduler_pb2.Event` and
also offered as Mesos-JSON dicts, so assertions read the same in both modes);
`call()` sends a non-SUBSCRIBE call with the framework id and the current
`Mesos-Stream-Id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from google.protobuf.message import Message
from multidict import CIMultiDictProxy

from meseta.api import mesos_json
from meseta.proto.mesos.v1.scheduler import scheduler_pb2
from support.fake_agent import EventStream

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
Json = dict[str, Any]
# Header values; None removes a header the client would otherwise send.
Headers = dict[str, str | None]
STREAM_ID = "Mesos-Stream-Id"


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class SchedulerStream(EventStream):
    def __init__(self, response: aiohttp.ClientResponse, media_type: str) -> None:
        self.media_type = media_type
        self.messages: list[scheduler_pb2.Event] = []
        self._message_of: dict[int, scheduler_pb2.Event] = {}
        super().__init__(response)

    @property
    def stream_id(self) -> str:
        return self.response.headers.get(STREAM_ID, "")

    def decode(self, record: bytes) -> Json:
        if self.media_type == JSON:
            return super().decode(record)
        event = scheduler_pb2.Event()
        event.ParseFromString(record)
        self.messages.append(event)
        decoded = mesos_json.to_dict(event)
        self._message_of[id(decoded)] = event
        return decoded

    async def expect_message(self, kind: str, timeout_s: float = 5.0) -> scheduler_pb2.Event:
        """Like `expect`, but the protobuf Event as received (protobuf streams only)."""
        return self._message_of[id(await self.expect(kind, timeout_s))]


def framework_info(name: str = "test-framework", **fields: Any) -> Json:
    info: Json = {"user": "", "name": name}
    info.update(fields)
    return info


class FakeScheduler:
    def __init__(self, master_url: str, *, media_type: str = JSON, path: str = "/api/v1/scheduler"):
        self.url = master_url + path
        self.media_type = media_type
        self.session: aiohttp.ClientSession | None = None
        self.streams: list[SchedulerStream] = []
        self.stream: SchedulerStream | None = None
        self.framework_id: str | None = None

    async def __aenter__(self) -> FakeScheduler:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=30.0)
        self.session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for stream in self.streams:
            await stream.close()
        self.streams.clear()
        self.stream = None
        if self.session is not None:
            await self.session.close()
            self.session = None

    def encode(self, body: bytes | Json | Message) -> bytes:
        if isinstance(body, bytes):
            return body
        if isinstance(body, Message):
            if self.media_type == JSON:
                return mesos_json.to_json(body)
            return body.SerializePartialToString()
        if self.media_type == JSON:
            return orjson.dumps(body)
        return mesos_json.from_dict(body, scheduler_pb2.Call).SerializeToString()

    def headers(self, extra: Headers | None, accept: bool) -> dict[str, str]:
        headers: Headers = {"Content-Type": self.media_type}
        if accept:
            headers["Accept"] = self.media_type
        headers.update(extra or {})
        return {k: v for k, v in headers.items() if v is not None}

    async def post(
        self,
        body: bytes | Json | Message = b"",
        *,
        headers: Headers | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> Reply:
        """Send a request and read the whole reply (never use it for a 200 SUBSCRIBE)."""
        assert self.session is not None, "use `async with FakeScheduler(...)`"
        async with self.session.request(
            method,
            url or self.url,
            data=self.encode(body) if method != "GET" else None,
            headers=self.headers(headers, accept=False),
            skip_auto_headers=("Content-Type",),
            allow_redirects=False,
        ) as response:
            return Reply(response.status, response.headers, await response.read())

    async def open(
        self, body: bytes | Json | Message, *, headers: Headers | None = None
    ) -> SchedulerStream | Reply:
        """POST a SUBSCRIBE: the stream when the answer is 200, else the whole reply."""
        assert self.session is not None, "use `async with FakeScheduler(...)`"
        sent = self.headers(headers, accept=True)
        response = await self.session.post(
            self.url,
            data=self.encode(body),
            headers=sent,
            skip_auto_headers=("Content-Type",),
            allow_redirects=False,
        )
        if response.status != 200:
            try:
                return Reply(response.status, response.headers, await response.read())
            finally:
                response.release()
        media_type = response.headers.get("Content-Type", "").split(";")[0]
        stream = SchedulerStream(response, media_type)
        self.streams.append(stream)
        return stream

    async def subscribe(
        self,
        info: Json | None = None,
        *,
        framework_id: str | None = None,
        headers: Headers | None = None,
        timeout_s: float = 5.0,
        **subscribe: Any,
    ) -> tuple[SchedulerStream, Json]:
        """SUBSCRIBE (resubscribe with `framework_id`); return the stream and its first event."""
        info = dict(info or framework_info())
        body: Json = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info, **subscribe}}
        if framework_id is not None:
            info["id"] = {"value": framework_id}
            body["framework_id"] = {"value": framework_id}
        opened = await self.open(body, headers=headers)
        assert isinstance(opened, SchedulerStream), f"SUBSCRIBE: HTTP {opened.status} {opened.text}"
        first = await opened.next_event(timeout_s)
        if first["type"] == "SUBSCRIBED":
            self.stream = opened
            self.framework_id = first["subscribed"]["framework_id"]["value"]
        return opened, first

    async def call(
        self,
        kind: str,
        *,
        headers: Headers | None = None,
        framework_id: str | None = None,
        **body: Any,
    ) -> Reply:
        """A non-SUBSCRIBE call with this framework's id and current stream id."""
        fid = framework_id or self.framework_id
        call: Json = {"type": kind, **body}
        if fid is not None:
            call["framework_id"] = {"value": fid}
        sent: Headers = {}
        if self.stream is not None:
            sent[STREAM_ID] = self.stream.stream_id
        sent.update(headers or {})
        return await self.post(call, headers=sent)


def sleeper_task(offer: Json, task_id: str) -> Json:
    """A task of cpus:0.5 running `sleep 1000` on the offer's agent."""
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
        "command": {"value": "sleep 1000"},
    }


async def subscribe_and_launch(scheduler: FakeScheduler, *task_ids: str) -> None:
    """Subscribe and launch a sleeper per id with one ACCEPT: one entry, one TASK_ADDED each."""
    stream, first = await scheduler.subscribe(framework_info())
    assert first["type"] == "SUBSCRIBED", first
    offer = (await stream.expect("OFFERS"))["offers"]["offers"][0]
    tasks = [sleeper_task(offer, task_id) for task_id in task_ids]
    accept = {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
    }
    assert (await scheduler.call("ACCEPT", accept=accept)).status == 202
