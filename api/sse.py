"""The operator events as Server-Sent Events: GET /api/v1/events (and /master/api/v1/events).

The same events as operator SUBSCRIBE (api/operator_stream.py), for browsers
and `curl -N`: each is one SSE event named after its type (`event:
TASK_ADDED`) whose data is the Mesos JSON of the `mesos.v1.master.Event`.

Event ids are log indexes. The id of an entry's last (usually only) event is
the entry's index `N`; when one entry produced several events, the earlier
ones are `N.0`, `N.1`, ... A connection without `Last-Event-ID` starts with
SUBSCRIBED (the full state) whose id is the index it reflects. Reconnecting
with `Last-Event-ID` (or `?last_event_id=`, for clients that cannot set
headers) continues right after that event, with no gap and no duplicate, on
any replica: indexes name the same entries everywhere, and a replica that
has not applied that index yet waits for it (up to 10 s).

A subscriber that falls behind the ring buffer, or resumes from an event that
is no longer buffered, gets one `resync` event and the stream ends. Its data
is `{"reason": ..., "index": <the replica's index>}` and its id is empty, so a
browser's EventSource reconnects without `Last-Event-ID` and starts again
from a full SUBSCRIBED. The master never waits for a subscriber.

Keep-alive: an SSE comment every heartbeat interval (15 s). A replica cut off
from the leader (api/consistency.py) ends its streams within an interval and
answers 503 to new ones, so no keep-alive suggests a live view that is not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from meseta.api import consistency, encodings
from meseta.api.context import MasterContext
from meseta.api.encodings import JSON_ENCODING
from meseta.api.http import HttpError, method_not_allowed
from meseta.api.operator_stream import payload, subscribed_payload
from meseta.api.streams import JSON
from meseta.projections.operator_stream import (
    Position,
    Published,
    StreamCut,
    Subscription,
    format_point,
    parse_point,
)
from meseta.proto.mesos.v1.master import master_pb2

MEDIA_TYPE = "text/event-stream"
SEPARATOR = "\n"
BATCH_EVENTS = 512
# How long a resuming client waits for this replica to reach its Last-Event-ID.
RESUME_WAIT_S = 10.0
# A client that accepts no bytes for this long is dropped.
SEND_TIMEOUT_S = 60.0


def sse_bytes(event_type: int, event_id: str, data: bytes) -> bytes:
    return ServerSentEvent(
        data.decode(), event=master_pb2.Event.Type.Name(event_type), id=event_id, sep=SEPARATOR
    ).encode()


def published_bytes(record: Published) -> bytes:
    data = record.encoded.get(MEDIA_TYPE)
    if data is None:
        json = payload(record, JSON)
        data = record.encoded[MEDIA_TYPE] = sse_bytes(
            record.event.type, format_point(record.point), json
        )
    return data


def resync_bytes(reason: str, index: int) -> bytes:
    data = orjson.dumps({"reason": reason, "index": index}).decode()
    return ServerSentEvent(data, event="resync", id="", sep=SEPARATOR).encode()


def last_event_point(request: Request) -> Position | None:
    text = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if not text:
        return None
    try:
        return parse_point(text)
    except ValueError:
        raise HttpError(
            400, f"Failed to parse 'Last-Event-ID': '{text}' is not an event id"
        ) from None


async def open_stream(context: MasterContext, after: Position | None) -> AsyncIterator[bytes]:
    """The first bytes are decided now (snapshot or resume point); the rest stream later."""
    consistency.check_contact(context)
    broker = context.operator_events
    if after is None:
        await encodings.warm(master_pb2.Call.GET_STATE, context.cluster, JSON_ENCODING)
        # No await from here on: the snapshot and the subscription see the same index.
        snapshot = subscribed_payload(context, JSON)
        first = sse_bytes(master_pb2.Event.SUBSCRIBED, str(broker.applied_index), snapshot)
        return events(context, first, broker.subscribe())
    if after[0] > broker.applied_index:
        await context.service.wait_applied(after[0], RESUME_WAIT_S)
    if after > broker.head:
        reason = f"this replica has not applied index {after[0]} yet"
        return resync(context, StreamCut(reason, resync=True))
    try:
        subscription = broker.subscribe(after)
    except StreamCut as cut:
        return resync(context, cut)
    return events(context, b"", subscription)


async def resync(context: MasterContext, cut: StreamCut) -> AsyncIterator[bytes]:
    yield resync_bytes(cut.reason, context.operator_events.applied_index)


async def events(
    context: MasterContext, first: bytes, subscription: Subscription
) -> AsyncIterator[bytes]:
    broker = subscription.broker
    # Woken at least once an interval, to end the stream (and its pings) when cut off.
    idle_s = broker.heartbeat_interval_s
    try:
        if first:
            yield first
        while True:
            batch = await subscription.next_batch(BATCH_EVENTS, idle_s, broker.linger_s)
            if batch:
                yield broker.encoded(batch, MEDIA_TYPE, published_bytes)
            elif not consistency.in_contact(context):
                return
    except StreamCut as cut:
        if cut.resync:
            yield resync_bytes(cut.reason, broker.applied_index)
    finally:
        subscription.close()


async def endpoint(request: Request) -> Response:
    context: MasterContext = request.app.state.context
    if request.method not in ("GET", "HEAD"):
        # The path is ours, not the operator API's catch-all under /api/v1/.
        return method_not_allowed(request, "GET", "HEAD").response()
    if request.method == "HEAD":  # no stream, so no subscription to leave behind
        return Response(headers=consistency.headers(context), media_type=MEDIA_TYPE)
    try:
        stream = await open_stream(context, last_event_point(request))
    except HttpError as error:
        response = error.response()
        response.headers.update(consistency.headers(context))
        return response
    return EventSourceResponse(
        stream,
        headers=consistency.headers(context),
        ping=context.operator_events.heartbeat_interval_s,
        sep=SEPARATOR,
        send_timeout=SEND_TIMEOUT_S,
    )
