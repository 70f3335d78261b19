"""Operator SUBSCRIBE streams read in a process of their own, for state_bench.py.

    cd benchmarks && python -m support.subscribers URL --count 100

Opens `count` operator subscriptions (JSON) on URL and prints `{"ready": ...}`. Then it
takes one JSON line at a time on stdin:

- `{"clear": true, "quiet_s": Q, "wait_s": S}`: wait (at most S) until nothing has
  arrived for Q seconds, so that a burst sent before (the writers' registration: a
  TASK_ADDED per task, for every subscriber) is taken in, then forget what arrived so far
  (answers `{"cleared": true, "settled_s": seconds waited}`);
- `{"acked": {uuid: wall time of the 202, ...}, "wait_s": S}`: wait (at most S) until every
  open subscriber has seen every acknowledged update, print the figures and exit.

For each TASK_UPDATED a subscriber keeps the status uuid, the time the agent sent it (the
status `timestamp`) and when it arrived. Each subscription is a socket of its own, read
as raw HTTP/1.1: only the chunks' size lines are read in Python (a `find` and an `int` per
chunk), and the two fields are found by two regular expressions over each run of
complete chunks (in C), kept raw with the run's arrival time and converted only at the
end. At 100 subscribers every event arrives 100 times, and any more per-event Python
work here (an HTTP client's, one call per chunk) would make this process, not the master,
the bottleneck. In a TASK_UPDATED event only the status has a `uuid` and a `timestamp`,
every update the writer sends has both, and neither marker can occur in chunk framing.
The writer runs in another process (the goal's method: subscribers in one process, the
writer apart).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from meseta.api import recordio
from support.stats import percentile

JSON = "application/json"
UPDATED = b'{"type":"TASK_UPDATED"'
STAMPS = re.compile(rb'"timestamp":([0-9.e+-]+)')
UUIDS = re.compile(rb'"uuid":"([^"]*)"')
READ_BYTES = 1 << 18


class Chunks:
    """An HTTP/1.1 chunked body as it arrives: `walk` finds where the complete chunks end,
    reading only their size lines (a chunk costs a `find` and an `int`, its data is not
    copied out). Raises ValueError on a malformed frame."""

    def __init__(self) -> None:
        self.buffer = b""
        self.at = 0  # where the next chunk's size line starts
        self.ended = False  # the last (empty) chunk came

    def feed(self, data: bytes) -> None:
        self.buffer = self.buffer[self.at :] + data
        self.at = 0

    def frame(self, at: int) -> tuple[int, int] | None:
        """Where the data of the chunk whose size line starts at `at` begins and ends; None
        while that line is incomplete."""
        line_end = self.buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(self.buffer[at:line_end].split(b";", 1)[0], 16)
        return line_end + 2, line_end + 2 + size

    def walk(self) -> tuple[int, int]:
        """(start, end) of the run of complete chunks after the previous walk, framing
        included; the next walk starts at `end`."""
        start = at = self.at
        while not self.ended and (frame := self.frame(at)) is not None:
            data_start, data_end = frame
            if data_end + 2 > len(self.buffer):
                break
            if self.buffer[data_end : data_end + 2] != b"\r\n":
                raise ValueError(f"chunk not followed by CRLF at {data_end}")
            at = data_end + 2
            self.ended = data_end == data_start
        self.at = at
        return start, at

    def pieces(self, start: int, end: int) -> Iterator[tuple[bytes, int]]:
        """Each chunk's data, and where the chunk ends, in the walked run [start, end)."""
        while start < end:
            frame = self.frame(start)
            assert frame is not None, "only a walked run"
            yield self.buffer[frame[0] : frame[1]], frame[1] + 2
            start = frame[1] + 2


@dataclass
class Subscriber:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    chunks: Chunks
    # (arrival time, [(timestamp, uuid) of each TASK_UPDATED in the batch]), raw
    batches: list[tuple[float, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    closed: bool = False
    task: asyncio.Task[None] | None = None
    last_arrival: ClassVar[float] = 0.0  # monotonic time anything last arrived, any stream

    def arrivals(self) -> list[tuple[bytes, float, float]]:
        """(uuid, time sent, time arrived) of each TASK_UPDATED."""
        return [(uuid, float(stamp), came) for came, found in self.batches for stamp, uuid in found]

    async def read(self) -> None:
        try:
            while not self.chunks.ended and (data := await self.reader.read(READ_BYTES)):
                now = time.time()
                Subscriber.last_arrival = time.monotonic()
                self.chunks.feed(data)
                start, end = self.chunks.walk()
                if end > start:
                    # Chunk framing holds neither marker: scan the chunks as they came.
                    self.scan(self.chunks.buffer[start:end], now)
        except (OSError, ValueError):
            pass
        finally:
            self.closed = True

    def scan(self, records: bytes, now: float) -> None:
        updated = records.count(UPDATED)
        if not updated:
            return
        stamps, uuids = STAMPS.findall(records), UUIDS.findall(records)
        if len(stamps) == len(uuids) == updated:
            self.batches.append((now, list(zip(stamps, uuids, strict=True))))
            return
        # Other events with a timestamp or a uuid in the batch: pair them event by event.
        found = []
        for record in records.split(UPDATED)[1:]:
            stamp, uuid = STAMPS.search(record), UUIDS.search(record)
            found.append((stamp.group(1) if stamp else b"0", uuid.group(1) if uuid else b""))
        self.batches.append((now, found))

    def count(self) -> int:
        return sum(len(found) for _, found in self.batches)

    def close(self) -> None:
        self.writer.close()
        if self.task is not None:
            self.task.cancel()


async def subscribe(url: str) -> Subscriber:
    """An operator SUBSCRIBE over a socket of its own: the response's head, then its chunks
    until the first record, which must be SUBSCRIBED; what follows is scanned as it comes."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    body = orjson.dumps({"type": "SUBSCRIBE"})
    head = (
        f"POST /api/v1 HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: {JSON}\r\n"
        f"Accept: {JSON}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    response = await reader.readuntil(b"\r\n\r\n")
    status = response.split(b" ", 2)[1]
    if status != b"200" or b"transfer-encoding: chunked" not in response.lower():
        writer.close()
        raise RuntimeError(f"operator SUBSCRIBE: {response[:200]!r}")
    chunks, decoder = Chunks(), recordio.Decoder()
    first: list[bytes] = []
    start = end = 0
    while not first:
        data = await reader.read(READ_BYTES)
        if not data:
            raise RuntimeError("operator SUBSCRIBE: the stream ended before SUBSCRIBED")
        chunks.feed(data)
        start, end = chunks.walk()
        for data, chunk_end in chunks.pieces(start, end):  # SUBSCRIBED may span chunks
            first = decoder.feed(data)
            start = chunk_end
            if first:
                break
    if orjson.loads(first[0]).get("type") != "SUBSCRIBED":
        raise RuntimeError(f"operator SUBSCRIBE: first event {first[0][:200]!r}")
    subscriber = Subscriber(reader, writer, chunks)
    subscriber.scan(chunks.buffer[start:end], time.time())  # whatever came with it
    subscriber.task = asyncio.get_running_loop().create_task(subscriber.read())
    return subscriber


def figures(
    subscribers: list[Subscriber], acked: dict[str, float], elapsed: float, cpu: float
) -> dict[str, Any]:
    arrivals = [s.arrivals() for s in subscribers]
    # Lag from the agent sending the update (includes its commit through Raft), and from
    # the writer holding the 202 (the update is visible; negative when the event came first).
    from_send = [came - sent for got in arrivals for _, sent, came in got]
    from_ack = [
        came - acked[uuid.decode()]
        for got in arrivals
        for uuid, _, came in got
        if uuid.decode() in acked
    ]
    missing = sum(len(acked.keys() - {uuid.decode() for uuid, _, _ in got}) for got in arrivals)
    duplicates = sum(len(got) - len({u for u, _, _ in got}) for got in arrivals)
    return {
        "deliveries": len(from_send),
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "p50_lag_ms": percentile(from_send, 0.5) * 1000,
        "p99_lag_ms": percentile(from_send, 0.99) * 1000,
        "max_lag_ms": max(from_send, default=0.0) * 1000,
        "p99_lag_after_ack_ms": percentile(from_ack, 0.99) * 1000,
        "cut_off": sum(1 for s in subscribers if s.closed),  # the master ended the stream
        "missing_deliveries": missing,
        "duplicate_deliveries": duplicates,
    }


def say(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
    sys.stdout.flush()


async def serve(url: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)  # the acked map is one (long) line
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    began = time.perf_counter()
    subscribers = await asyncio.gather(*(subscribe(url) for _ in range(count)))
    say({"ready": time.perf_counter() - began})
    started, cpu = time.perf_counter(), time.process_time()
    while line := await reader.readline():
        command = orjson.loads(line)
        if command.get("clear"):
            settled = time.monotonic()
            deadline = settled + command.get("wait_s", 0.0)
            quiet_s = command.get("quiet_s", 0.0)
            while time.monotonic() < min(deadline, Subscriber.last_arrival + quiet_s):
                await asyncio.sleep(0.05)
            for subscriber in subscribers:
                subscriber.batches.clear()
            started, cpu = time.perf_counter(), time.process_time()
            say({"cleared": True, "settled_s": time.monotonic() - settled})
            continue
        acked: dict[str, float] = command["acked"]
        deadline = time.monotonic() + command.get("wait_s", 10.0)
        while time.monotonic() < deadline and any(
            s.count() < len(acked) and not s.closed for s in subscribers
        ):
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        say(figures(list(subscribers), acked, elapsed, time.process_time() - cpu))
        break
    for subscriber in subscribers:
        subscriber.close()
    tasks = [s.task for s in subscribers if s.task is not None]
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(serve(args.url, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
