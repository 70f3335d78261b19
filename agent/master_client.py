"""The agent's link to the leading master (proto/agent_link/v1/agent_link.proto).

`MasterClient.run()` finds the leader among the `--master` addresses (a
follower answers 307 naming it, a master without one 503, a hung one nothing
within SUBSCRIBE_TIMEOUT_S, so the next is tried), POSTs SUBSCRIBE
and reads the RecordIO event stream, handing each event to the daemon. When
the stream ends (leader lost, master killed, link silent for three heartbeat
intervals) it subscribes again, after a random delay in [0, b·2^k] capped at
one minute (contract 7.8). Other calls are separate POSTs to the current
leader; a failed POST returns False and the caller retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from meseta.agent.status_updates import Delivery
from meseta.api import recordio
from meseta.proto.agent_link.v1 import agent_link_pb2

Call = agent_link_pb2.Call
Event = agent_link_pb2.Event
PROTOBUF = "application/x-protobuf"
PATH = "/api/v1/agent"
MAX_BACKOFF_S = 60.0
MASTER_HEARTBEAT_S = 15.0  # the master's stream heartbeat (api/event_router.py)
CALL_TIMEOUT_S = 30.0
# A master that accepts the connection but never answers SUBSCRIBE (hung, SIGSTOPped) is
# passed over after this long; a live one answers within its 5 s proposal timeout.
SUBSCRIBE_TIMEOUT_S = 10.0
# One UPDATES call is one log entry on the master (at most 512 KiB, and at most 1,000 updates
# per call): stay well inside both, so a call never fails for its size alone.
UPDATES_PER_CALL = 500
UPDATE_BYTES_PER_CALL = 256 * 1024

log = logging.getLogger(__name__)


class RegistrationRefused(Exception):
    """The master answered SUBSCRIBE with an ERROR event."""


class MasterClient:
    def __init__(
        self,
        masters: Sequence[str],
        *,
        backoff_factor_s: float = 1.0,
        stream_timeout_s: float = 3 * MASTER_HEARTBEAT_S,
        subscribe_timeout_s: float = SUBSCRIBE_TIMEOUT_S,
    ) -> None:
        self.masters = list(masters)
        self.backoff_factor_s = backoff_factor_s
        self.stream_timeout_s = stream_timeout_s
        self.subscribe_timeout_s = subscribe_timeout_s
        self.leader: str | None = None  # host:port of the master we are subscribed with
        self.agent_id: str | None = None
        self.session: aiohttp.ClientSession | None = None
        # Whether the leader takes UPDATES; one that predates it (answering 400 or 501) gets
        # UPDATE calls until the agent subscribes again (masters upgrade one at a time).
        self.batches_updates = True

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0)
            )
        return self.session

    # -- the subscription ---------------------------------------------------------------

    async def run(
        self,
        subscribe_call: Callable[[], Call],
        on_event: Callable[[Event], Awaitable[None]],
        on_disconnected: Callable[[], Awaitable[None]],
    ) -> None:
        """Stay subscribed forever (until cancelled), re-subscribing after every loss."""
        attempt = 0
        while True:
            try:
                subscribed = await self._subscribe_once(subscribe_call(), on_event)
            except RegistrationRefused as error:
                log.warning("master refused registration: %s", error)
                subscribed = False
            if self.leader is not None:
                self.leader = None
                await on_disconnected()
            attempt = 0 if subscribed else attempt + 1
            cap = min(self.backoff_factor_s * 2**attempt, MAX_BACKOFF_S)
            await asyncio.sleep(random.uniform(0, cap))

    async def _subscribe_once(
        self, call: Call, on_event: Callable[[Event], Awaitable[None]]
    ) -> bool:
        """One SUBSCRIBE; True if it was accepted (its stream has ended since)."""
        response = await self._open_stream(call)
        if response is None:
            return False
        address = response.url.host, response.url.port
        decoder = recordio.Decoder()
        subscribed = False
        try:
            while True:
                async with asyncio.timeout(self.stream_timeout_s):
                    chunk = await response.content.readany()
                if not chunk:
                    return subscribed
                for record in decoder.feed(chunk):
                    event = Event.FromString(record)
                    if event.type == Event.ERROR:
                        raise RegistrationRefused(event.error.message)
                    if event.type == Event.SUBSCRIBED:
                        subscribed = True
                        self.leader = f"{address[0]}:{address[1]}"
                        self.batches_updates = True
                        self.agent_id = event.subscribed.agent_id.value
                    await on_event(event)
        except (TimeoutError, aiohttp.ClientError, recordio.RecordIOError) as error:
            log.info("stream from master ended: %r", error)
            return subscribed
        finally:
            response.close()

    async def _open_stream(self, call: Call) -> aiohttp.ClientResponse | None:
        """POST SUBSCRIBE to each master in turn, following a redirect to the leader."""
        body = call.SerializeToString()
        candidates = list(self.masters)
        tried: list[str] = []
        while candidates:
            address = candidates.pop(0)
            if address in tried:
                continue
            tried.append(address)
            try:
                async with asyncio.timeout(self.subscribe_timeout_s):
                    response = await self._session().post(
                        f"http://{address}{PATH}",
                        data=body,
                        headers={"Content-Type": PROTOBUF, "Accept": PROTOBUF},
                        allow_redirects=False,
                    )
            except TimeoutError:
                log.info("master %s did not answer SUBSCRIBE in %gs", address,
                         self.subscribe_timeout_s)  # fmt: skip
                continue
            except (aiohttp.ClientError, OSError) as error:
                log.debug("master %s unreachable: %r", address, error)
                continue
            if response.status == 200:
                return response
            text = await response.text()
            response.release()
            if response.status == 307:
                leader = _redirect_address(response.headers.get("Location", ""))
                if leader is not None:
                    candidates.insert(0, leader)
            elif response.status != 503:
                log.warning("master %s refused SUBSCRIBE: %s %s", address, response.status, text)
        return None

    # -- other calls --------------------------------------------------------------------

    async def post_updates(self, deliveries: Sequence[Delivery]) -> int:
        """Post `deliveries` (see `update_calls`); how many the leader took. An UPDATES call
        that the leader does not know goes again at once as one UPDATE per update."""
        calls = update_calls(deliveries, batched=self.batches_updates)
        taken = 0
        while calls:
            call = calls.pop(0)
            if await self.post(call):
                taken += max(1, len(call.updates))
            elif call.type == Call.UPDATES and not self.batches_updates:
                calls[:0] = [Call(type=Call.UPDATE, update=update) for update in call.updates]
        return taken

    async def post(self, call: Call) -> bool:
        """Send one call to the current leader; True if it answered 202."""
        leader = self.leader
        if leader is None or self.agent_id is None:
            return False
        call.agent_id.value = self.agent_id
        try:
            async with self._session().post(
                f"http://{leader}{PATH}",
                data=call.SerializeToString(),
                headers={"Content-Type": PROTOBUF},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S),
            ) as response:
                if response.status == 202:
                    return True
                text = await response.text()
                if call.type == Call.UPDATES and response.status in (400, 501):
                    # An older master parses type 6 as no type at all (400), or refuses it.
                    log.warning("master %s refused UPDATES (%s %s): sending updates one by one",
                                leader, response.status, text)  # fmt: skip
                    self.batches_updates = False
                    return False
                log.info("master answered %s to %s: %s", response.status,
                         Call.Type.Name(call.type), text)  # fmt: skip
                return False
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            log.info("posting %s failed: %r", Call.Type.Name(call.type), error)
            return False


def update_calls(deliveries: Sequence[Delivery], *, batched: bool = True) -> list[Call]:
    """The calls that carry `deliveries`: one UPDATE for a lone update, otherwise UPDATES
    of at most UPDATES_PER_CALL updates and about UPDATE_BYTES_PER_CALL bytes each, in
    order (a task has at most one update due at a time, so order only keeps it fair).
    Not `batched`: one UPDATE per update."""
    if len(deliveries) == 1 or not batched:
        singles = [Call(type=Call.UPDATE) for _ in deliveries]
        for call, delivery in zip(singles, deliveries, strict=True):
            _fill(call.update, delivery)
        return singles
    calls: list[Call] = []
    size = 0
    for delivery in deliveries:
        if not calls or len(calls[-1].updates) >= UPDATES_PER_CALL or size >= UPDATE_BYTES_PER_CALL:
            calls.append(Call(type=Call.UPDATES))
            size = 0
        update = calls[-1].updates.add()
        _fill(update, delivery)
        size += update.ByteSize()
    return calls


def _fill(update: Call.Update, delivery: Delivery) -> None:
    update.framework_id.value = delivery.framework_id
    update.status.CopyFrom(delivery.status)
    update.latest_state = delivery.latest_state  # type: ignore[assignment]


def _redirect_address(location: str) -> str | None:
    """`//host:port/master/api/v1/agent` -> `host:port`."""
    rest = location.removeprefix("http:").removeprefix("https:")
    if not rest.startswith("//"):
        return None
    host_port = rest[2:].split("/", 1)[0]
    return host_port or None
