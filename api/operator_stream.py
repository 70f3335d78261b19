"""Operator SUBSCRIBE (contract 4.2): the master's event stream as chunked RecordIO.

The stream starts with SUBSCRIBED carrying the full GetState of the cluster
view, then every TASK_ADDED, TASK_UPDATED, AGENT_ADDED, AGENT_REMOVED and
FRAMEWORK_ADDED/UPDATED/REMOVED the view produces, and a HEARTBEAT right
after SUBSCRIBED and then every 15 seconds (Mesos's readonly handler sends the
first at once). The snapshot and the
subscription are taken in the same step of the event loop, between two
entries, so the events continue exactly where the snapshot ends.

Any replica serves it from its own view (reads never need the leader). A
subscriber that falls behind the broker's ring, or that is one too many
(`--max_operator_event_stream_subscribers`), is closed, as Mesos closes a
stream: the client subscribes again and starts from a new SUBSCRIBED. So is
every stream of a replica cut off from the leader, when its next HEARTBEAT is
due (api/consistency.py): a heartbeat tells the client its view is live.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from starlette.types import Receive, Scope, Send

from meseta.api import chunked, consistency, encodings, mesos_json, recordio
from meseta.api.chunked import ChunkWriter
from meseta.api.context import MasterContext
from meseta.api.streams import JSON, RAW_SEND, encode, wait_disconnect
from meseta.master.wire import proto_field
from meseta.projections.operator_stream import Published, StreamCut, Subscription
from meseta.proto.mesos.v1.master import master_pb2

Event = master_pb2.Event
# Events written at once; what is queued beyond waits for the next turn of the loop.
BATCH_EVENTS = 512


def subscribed_payload(context: MasterContext, media_type: str) -> bytes:
    """SUBSCRIBED with the full GetState, joined from the view's cached entity encodings
    (warm them first: `encodings.warm`), so a large state is not serialized per subscriber."""
    interval = context.operator_events.heartbeat_interval_s
    state = context.cluster.state_message(encodings.encoding(media_type)).join()
    if media_type == JSON:
        return (
            b'{"type":"SUBSCRIBED","subscribed":{"get_state":'
            + state
            + b',"heartbeat_interval_seconds":'
            + orjson.dumps(interval)
            + b"}}"
        )
    # `subscribed` framed once around the joined state, as Mesos writes it (some decoders
    # keep only the last occurrence of a repeated sub-message).
    rest = Event.Subscribed(heartbeat_interval_seconds=interval).SerializeToString()
    head = Event(type=Event.SUBSCRIBED).SerializeToString()
    return head + proto_field(2, proto_field(1, state) + rest)


def payload(record: Published, media_type: str) -> bytes:
    """`record` serialized as `media_type`, once for every stream (SSE uses the JSON)."""
    key = "payload " + media_type
    data = record.encoded.get(key)
    if data is None:
        message = record.event
        data = mesos_json.to_json(message) if media_type == JSON else message.SerializeToString()
        record.encoded[key] = data
    return data


def event_bytes(record: Published, media_type: str) -> bytes:
    """`record` as one RecordIO record, encoded once per media type for all subscribers."""
    data = record.encoded.get(media_type)
    if data is None:
        data = record.encoded[media_type] = recordio.encode(payload(record, media_type))
    return data


class OperatorStream:
    """One operator subscription as an ASGI application (a chunked 200)."""

    def __init__(self, context: MasterContext, media_type: str) -> None:
        # No await between the snapshot and the subscription: no entry slips in.
        self.media_type = media_type
        self.first = recordio.encode(subscribed_payload(context, media_type))
        self.broker = context.operator_events
        self.subscription: Subscription = self.broker.subscribe()
        self.chunks_kind = "chunks " + media_type
        self.heartbeat = encode(Event(type=Event.HEARTBEAT), media_type)
        self.heartbeat_interval_s = self.broker.heartbeat_interval_s
        self.context = context
        self.linger_s = self.broker.linger_s
        self.headers = consistency.headers(context)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self.media_type.encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # A client that leaves closes the subscription, which wakes the pump.
        gone = asyncio.ensure_future(wait_disconnect(receive))
        gone.add_done_callback(lambda _: self.subscription.close("the client left"))
        try:
            await self.pump(scope.get(RAW_SEND, send))
        finally:
            gone.cancel()
            self.subscription.close()

    def encode(self, record: Published) -> bytes:
        return event_bytes(record, self.media_type)

    def chunk(self, record: Published) -> bytes:
        return chunked.chunk(event_bytes(record, self.media_type))

    async def write(self, writer: ChunkWriter, batch: list[Published]) -> None:
        if writer.direct:
            # Framed once for every subscriber that reads the same run of the ring.
            await writer.write_chunks(self.broker.encoded(batch, self.chunks_kind, self.chunk))
        else:
            await writer.write([self.encode(record) for record in batch])

    async def pump(self, send: Send) -> None:
        writer = ChunkWriter(send)
        # SUBSCRIBED, then at once a HEARTBEAT (as Mesos's readonly handler sends them).
        await writer.write((self.first, self.heartbeat))
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + self.heartbeat_interval_s
        while True:
            try:
                batch = await self.subscription.next_batch(
                    BATCH_EVENTS, max(0.0, next_heartbeat - loop.time()), self.linger_s
                )
            except StreamCut:
                with contextlib.suppress(OSError):
                    await writer.end()
                return
            if batch:
                await self.write(writer, batch)
                # Every subscriber is woken by the same publish: a burst goes out a batch
                # per subscriber at a time, with the fold and the writes in between.
                await asyncio.sleep(0)
            if loop.time() >= next_heartbeat:
                if not consistency.in_contact(self.context):
                    self.subscription.close("this replica lost contact with the leader")
                    continue  # the next batch raises the cut, which ends the response
                await writer.write((self.heartbeat,))
                next_heartbeat = loop.time() + self.heartbeat_interval_s


async def subscribe(context: MasterContext, media_type: str) -> OperatorStream:
    """The response to an operator SUBSCRIBE call (already parsed, `Accept` negotiated)."""
    await encodings.warm(master_pb2.Call.GET_STATE, context.cluster, encodings.encoding(media_type))
    # No await from here on: the snapshot and the subscription see the same index.
    return OperatorStream(context, media_type)
