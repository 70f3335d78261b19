"""Read consistency on every replica (design C.5; Nomad's blocking queries and stale reads).

Every replica, leader, voting follower or non-voting read replica, answers
reads from its own read models. Each read response says what it reflects:

* `X-Meseta-Index`: the log index the response was built at;
* `X-Meseta-Known-Leader`: `true` when this replica knows a leader that has
  taken office in the current term, and then `X-Meseta-Leader`: its HTTP
  `host:port`;
* `X-Meseta-Last-Contact`: milliseconds since this replica last applied an
  entry from the leader (0 on the leader). The leader commits a tick every
  second, so on a healthy replica this stays near or below a second.

Two query parameters make reads stronger:

* `?min_index=N` waits until this replica has applied index N, for at most
  `?wait=` (a Mesos duration, default 10secs, at most 60secs); 503 if it has
  not by then. Reading your own writes: pass the index of the write.
* `?consistent=true` is a linearizable read: on the leader, a barrier entry
  goes through Raft and the read waits until it is applied; a standby
  redirects it to the leader (307, contract 1.6), or answers 503 when no
  leader is known.

A replica whose log has not caught up with the leader since it started
answers 503 unless the request names a `min_index` (design C.5).

Event streams (operator SUBSCRIBE, /api/v1/events) promise more than a read:
in Mesos a stream's HEARTBEATs come from the elected master, and a
subscriber that hears none for a few intervals resubscribes. So a replica
that has applied nothing from a leader for `CONTACT_LOST_S` is cut off: its
streams end instead of heartbeating, and new subscriptions get a 503 until
it hears from a leader again. Nor does its /state or GET_MASTER name a leader.

Read endpoints use `read_endpoint`; `IndexHeaders` adds the same headers to
every other response, writes included: the index on a 202 is at or after the
entry it acknowledges, so a client can read its own write on any replica
with `?min_index=`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meseta.api.context import MasterContext
from meseta.api.http import HttpError
from meseta.log.errors import LogClosed, NotLeaderError, ProposalTimeout
from meseta.master.durations import parse_duration_ns

INDEX_HEADER = "X-Meseta-Index"
KNOWN_LEADER_HEADER = "X-Meseta-Known-Leader"
LEADER_HEADER = "X-Meseta-Leader"
LAST_CONTACT_HEADER = "X-Meseta-Last-Contact"

# The leader commits a tick every second and a failover takes about one: a replica that
# has applied nothing for this long is cut off from the leader (partitioned, or no quorum).
CONTACT_LOST_S = 5.0

DEFAULT_WAIT_S = 10.0
MAX_WAIT_S = 60.0

Endpoint = Callable[[Request], Awaitable[Response]]


def read_index(context: MasterContext) -> int:
    """The log index the read models reflect right now."""
    return context.cluster.applied_index


def last_contact_ms(context: MasterContext) -> int:
    if context.service.log.is_leader():
        return 0
    return int((time.monotonic() - context.applied_at_s) * 1000)


def in_contact(context: MasterContext) -> bool:
    """Whether this replica leads or has heard from a leader lately (streams may go on)."""
    return last_contact_ms(context) <= CONTACT_LOST_S * 1000


def live_leader(context: MasterContext) -> str | None:
    """The leader reads name (`host:port`): the one this replica knows, while it is in
    contact; None mid-election or when cut off, as a Mesos master that knows no leader."""
    return context.leader_location() if in_contact(context) else None


def check_contact(context: MasterContext) -> None:
    """503 on a replica cut off from the leader: it starts no event stream."""
    if not in_contact(context):
        raise HttpError(503, "This replica has lost contact with the leader")


def headers(context: MasterContext, index: int | None = None) -> dict[str, str]:
    """The consistency headers of a response built at `index` (default: now)."""
    leader = context.leader_location()
    out = {
        INDEX_HEADER: str(read_index(context) if index is None else index),
        KNOWN_LEADER_HEADER: "true" if leader is not None else "false",
        LAST_CONTACT_HEADER: str(last_contact_ms(context)),
    }
    if leader is not None:
        out[LEADER_HEADER] = leader
    return out


def parse_min_index(request: Request) -> int | None:
    text = request.query_params.get("min_index")
    if text is None:
        return None
    if not text.isdigit():
        raise HttpError(400, f"Failed to parse 'min_index': '{text}' is not a log index")
    return int(text)


def parse_consistent(request: Request) -> bool:
    text = request.query_params.get("consistent")
    if text is None or text == "false":
        return False
    if text in ("true", ""):
        return True
    raise HttpError(400, f"Failed to parse 'consistent': expected true or false, got '{text}'")


def parse_wait_s(request: Request) -> float:
    text = request.query_params.get("wait")
    if text is None:
        return DEFAULT_WAIT_S
    try:
        wait_s = parse_duration_ns(text) / 1e9
    except ValueError as error:
        raise HttpError(400, f"Failed to parse 'wait': {error}") from None
    return min(wait_s, MAX_WAIT_S)


async def barrier_index(request: Request, context: MasterContext) -> int:
    """On the leader: the index of a barrier entry; elsewhere 307 to the leader (or 503)."""
    context.check_leader(request)
    try:
        return await context.service.log.barrier()
    except (NotLeaderError, LogClosed):
        context.check_leader(request)  # deposed meanwhile: send the client on
        raise HttpError(503, "No leader elected") from None
    except ProposalTimeout:
        raise HttpError(503, "The read barrier did not commit in time") from None


async def wait_index(context: MasterContext, index: int, wait_s: float) -> None:
    """Return once the read models reflect `index`; 503 after `wait_s`."""
    if read_index(context) >= index:
        return
    await context.service.wait_applied(index, wait_s)
    if read_index(context) < index:
        raise HttpError(
            503,
            f"This replica has applied index {read_index(context)}, not {index}, "
            f"after waiting {wait_s:g}s",
        )


async def settle(request: Request, context: MasterContext) -> None:
    """Wait for what the request asks (`min_index`, `consistent`); HttpError if it cannot be."""
    min_index = parse_min_index(request)
    wait_s = parse_wait_s(request)
    if parse_consistent(request):
        min_index = max(min_index or 0, await barrier_index(request, context))
    if min_index is None:
        if not context.service.log.status().ready:
            raise HttpError(503, "This replica has not caught up with the log yet")
        return
    await wait_index(context, min_index, wait_s)


def read_endpoint(handler: Endpoint) -> Endpoint:
    """Make `handler` a consistent read: settle the request first, add the headers after.

    A handler whose body was built at an earlier index (a shared build, see
    api/read_cache.py) sets `X-Meseta-Index` to that index itself; otherwise it
    must build its body from the read models without awaiting in between (the
    fold only runs between awaits), so the index taken when it returns is the
    index the body reflects. Errors carry the headers too.
    """

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        context: MasterContext = request.app.state.context
        try:
            await settle(request, context)
            response = await handler(request)
        except HttpError as error:
            response = error.response()
        for name, value in headers(context).items():
            response.headers.setdefault(name, value)
        return response

    return endpoint


class IndexHeaders:
    """ASGI middleware: the consistency headers on every response that lacks them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context: MasterContext = scope["app"].state.context

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in raw}
                for name, value in headers(context).items():
                    key = name.lower().encode()
                    if key not in present:
                        raw.append((key, value.encode()))
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)
