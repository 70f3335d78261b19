"""Operator SUBSCRIBE streams read in a process of their own, for state_bench.py.

    cd benchmarks && python -m support.subscribers URL --count 100

Opens `count` operator subscriptions (JSON) on URL and prints `{"ready": ...}`. Then it
takes one JSON line at a time on stdin:

- `{"clear": true}`: forget what arrived so far (answers `{"cleared": true}`);
- `{"acked": {uuid: wall time of the 202, ...}, "wait_s": S}`: wait (at most S) until every
  open subscriber has seen every acknowledged update, print the figures and exit.

For each TASK_UPDATED a subscriber keeps the status uuid, the time the agent sent it (the
status `timestamp`) and when it arrived. The bytes are framed by hand and the two fields
found by two regular expressions over each batch of complete records (in C), kept raw with
the batch's arrival time and converted only at the end: at 100 subscribers every event
arrives 100 times, and any per-event Python work here would make this process, not the
master, the bottleneck. In a TASK_UPDATED event only the status has a `uuid` and a
`timestamp`, and every update the writer sends has both. The writer runs
in another process (the goal's method: subscribers in one process, the writer apart).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from meseta.api import recordio
from support.stats import percentile

JSON = "application/json"
UPDATED = b'{"type":"TASK_UPDATED"'
STAMPS = re.compile(rb'"timestamp":([0-9.e+-]+)')
UUIDS = re.compile(rb'"uuid":"([^"]*)"')


@dataclass
class Subscriber:
    response: aiohttp.ClientResponse
    # (arrival time, [(timestamp, uuid) of each TASK_UPDATED in the batch]), raw
    batches: list[tuple[float, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    closed: bool = False
    reader: asyncio.Task[None] | None = None

    def arrivals(self) -> list[tuple[bytes, float, float]]:
        """(uuid, time sent, time arrived) of each TASK_UPDATED."""
        return [(uuid, float(stamp), came) for came, found in self.batches for stamp, uuid in found]

    async def read(self, pending: bytes) -> None:
        buffer = pending
        try:
            async for chunk in self.response.content.iter_any():
                now = time.time()
                buffer += chunk
                end = complete_records(buffer)
                if end:
                    self.scan(buffer[:end], now)
                    buffer = buffer[end:]
        except (aiohttp.ClientError, TimeoutError):
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


def complete_records(buffer: bytes) -> int:
    """Where the complete RecordIO records at the start of `buffer` end (0: none yet).

    Only the last record's header is looked at (JSON records hold no newline, so the last
    newline ends the last length prefix): whatever precedes that record is complete."""
    newline = buffer.rfind(b"\n")
    if newline < 0:
        return 0
    start = newline
    while start > 0 and 0x30 <= buffer[start - 1] <= 0x39:  # the prefix's digits
        start -= 1
    end = newline + 1 + int(buffer[start:newline])
    return end if end <= len(buffer) else start


async def subscribe(session: aiohttp.ClientSession, url: str) -> Subscriber:
    body = orjson.dumps({"type": "SUBSCRIBE"})
    response = await session.post(
        f"{url}/api/v1", data=body, headers={"Content-Type": JSON, "Accept": JSON}
    )
    if response.status != 200:
        text = await response.text()
        response.release()
        raise RuntimeError(f"operator SUBSCRIBE: HTTP {response.status} {text[:200]}")
    buffer = b""
    end = 0
    async for chunk in response.content.iter_any():
        buffer += chunk
        end = complete_records(buffer)
        if end:
            break
    first = recordio.Decoder().feed(buffer[:end])[:1]
    if not first or orjson.loads(first[0]).get("type") != "SUBSCRIBED":
        raise RuntimeError(f"operator SUBSCRIBE: first event {buffer[:200]!r}")
    subscriber = Subscriber(response)
    subscriber.scan(buffer[len(recordio.encode(first[0])) : end], time.time())
    subscriber.reader = asyncio.get_running_loop().create_task(subscriber.read(buffer[end:]))
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
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        subscribers = await asyncio.gather(*(subscribe(session, url) for _ in range(count)))
        say({"ready": time.perf_counter() - began})
        started, cpu = time.perf_counter(), time.process_time()
        while line := await reader.readline():
            command = orjson.loads(line)
            if command.get("clear"):
                for subscriber in subscribers:
                    subscriber.batches.clear()
                started, cpu = time.perf_counter(), time.process_time()
                say({"cleared": True})
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
            subscriber.response.close()
            if subscriber.reader is not None:
                subscriber.reader.cancel()
        await asyncio.gather(
            *(s.reader for s in subscribers if s.reader is not None), return_exceptions=True
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(serve(args.url, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
