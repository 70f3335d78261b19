"""A log replica as a process, with a small JSON control API on loopback.

    python -m meseta.log.node --data DIR --address 127.0.0.1:7001 \\
        --peers 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 \\
        --control 127.0.0.1:8001 --secret-file SECRET

Used by the integration tests and benchmarks (and handy for poking at the log
by hand). Omit --address for a non-voting read replica. The control API:

  GET  /status                      this replica's LogStatus and counters
  POST /append   {"id", "size"}     propose one entry (id: hex proposal id)
  POST /load     {"count", "size", "window", "prefix"}
                                    propose `count` entries from inside this
                                    process, `window` at a time; latency stats
  POST /barrier                     linearizable-read barrier; its index
  GET  /entries?start=&stop=        [index, proposal id hex, timestamp_ns, size]
  POST /snapshot                    force a snapshot now
  POST /members  {"add"|"remove": address}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from meseta.log.errors import (
    EntryTooLarge,
    LogCorrupted,
    LogError,
    NotLeaderError,
    ProposalTimeout,
)
from meseta.log.raft import RaftConfig, RaftLog, fail_stop
from meseta.log.v1.entries_pb2 import Entry

LOG_KEY: web.AppKey[RaftLog] = web.AppKey("log", RaftLog)


def _entry(proposal_id: bytes, size: int, *, incompressible: bool = False) -> Entry:
    entry = Entry()
    entry.header.proposal_id = proposal_id
    if incompressible:
        entry.events = os.urandom(size)
    else:
        entry.events = (proposal_id.hex().encode() * (size // 32 + 1))[:size]
    return entry


def _error_response(error: LogError) -> web.Response:
    body: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    if isinstance(error, NotLeaderError):
        body["leader"] = error.leader
        return web.json_response(body, status=503)
    if isinstance(error, EntryTooLarge):
        return web.json_response(body, status=413)
    if isinstance(error, ProposalTimeout):
        return web.json_response(body, status=504)
    return web.json_response(body, status=500)


async def status(request: web.Request) -> web.Response:
    log = request.app[LOG_KEY]
    body = asdict(log.status())
    body["counters"] = asdict(log.counters)
    body["snapshots_made"] = log.snapshots.snapshots_made
    body["snapshots_installed"] = log.snapshots.snapshots_installed
    body["journal_length"] = len(log.journal)
    body["snapshot_building"] = log.snapshots.building
    if request.query.get("raft"):
        body["raft"] = log.raft_debug()
    return web.json_response(body)


async def append(request: web.Request) -> web.Response:
    log = request.app[LOG_KEY]
    body = await request.json()
    try:
        index = await log.propose(
            _entry(
                bytes.fromhex(body["id"]),
                int(body.get("size", 200)),
                incompressible=bool(body.get("random", False)),
            ),
            timeout_s=float(body.get("timeout_s", 5.0)),
        )
    except LogError as error:
        return _error_response(error)
    return web.json_response({"index": index})


async def load(request: web.Request) -> web.Response:
    """Propose many entries from inside this process; report rate and latency."""
    log = request.app[LOG_KEY]
    body = await request.json()
    count, size = int(body["count"]), int(body.get("size", 200))
    window = int(body.get("window", 1000))
    timeout_s = float(body.get("timeout_s", 10.0))
    prefix = bytes.fromhex(body.get("prefix", "00"))
    latencies: list[float] = []
    errors: dict[str, int] = {}

    next_number = 0

    async def worker() -> None:
        nonlocal next_number
        while next_number < count:
            number, next_number = next_number, next_number + 1
            entry = _entry(prefix + number.to_bytes(8, "big"), size)
            started = time.perf_counter()
            try:
                await log.propose(entry, timeout_s=timeout_s)
            except LogError as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(window, count))))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return web.json_response(
        {
            "acked": len(latencies),
            "errors": errors,
            "elapsed_s": elapsed,
            "per_s": len(latencies) / elapsed if elapsed else 0.0,
            "p50_ms": percentile(0.50) * 1000,
            "p99_ms": percentile(0.99) * 1000,
        }
    )


async def barrier(request: web.Request) -> web.Response:
    try:
        index = await request.app[LOG_KEY].barrier()
    except LogError as error:
        return _error_response(error)
    return web.json_response({"index": index})


async def entries(request: web.Request) -> web.Response:
    log = request.app[LOG_KEY]
    start = int(request.query.get("start", "1"))
    stop = int(request.query.get("stop", str(log.applied_index() + 1)))
    rows = []
    while start < stop:
        chunk = log.read_raw(start, stop)
        if not chunk:
            break
        for index, payload in chunk:
            header = _header_of(payload)
            rows.append([index, header.proposal_id.hex(), header.timestamp_ns, len(payload)])
        start = chunk[-1][0] + 1
    return web.json_response(rows)


def _header_of(payload: bytes) -> Any:
    entry = Entry()
    entry.ParseFromString(payload)
    return entry.header


async def snapshot(request: web.Request) -> web.Response:
    request.app[LOG_KEY].force_snapshot()
    return web.json_response({})


async def members(request: web.Request) -> web.Response:
    log = request.app[LOG_KEY]
    body = await request.json()
    try:
        if "add" in body:
            await log.add_replica(body["add"])
        else:
            await log.remove_replica(body["remove"])
    except LogError as error:
        return _error_response(error)
    return web.json_response({})


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m meseta.log.node", description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--address", default=None, help="host:port; omit for a read replica")
    parser.add_argument("--peers", required=True, help="comma-separated voting replicas")
    parser.add_argument("--control", required=True, help="host:port of the control API")
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--snapshot-min-entries", type=int, default=5000)
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--tick-s", type=float, default=0.05)
    parser.add_argument("--snapshot-delay-s", type=float, default=0.0, help="fault injection")
    parser.add_argument(
        "--unsafe-no-fsync",
        action="store_true",
        help="never fsync (acknowledged data may be lost on power failure); benchmarks only",
    )
    return parser.parse_args(argv)


async def serve(options: argparse.Namespace) -> None:
    config = RaftConfig(
        data_dir=options.data,
        secret=options.secret_file.read_text().strip(),
        address=options.address,
        peers=tuple(p for p in options.peers.split(",") if p),
        snapshot_min_entries=options.snapshot_min_entries,
        max_in_flight_batches=options.max_in_flight,
        tick_s=options.tick_s,
        snapshot_publish_delay_s=options.snapshot_delay_s,
        fsync=not options.unsafe_no_fsync,
    )
    try:
        log = RaftLog(config)
    except LogCorrupted as error:
        fail_stop(f"the log store at {options.data} is corrupt: {error}")
    app = web.Application()
    app[LOG_KEY] = log
    app.add_routes(
        [
            web.get("/status", status),
            web.post("/append", append),
            web.post("/load", load),
            web.post("/barrier", barrier),
            web.get("/entries", entries),
            web.post("/snapshot", snapshot),
            web.post("/members", members),
        ]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = options.control.rsplit(":", 1)
    await web.TCPSite(runner, host, int(port)).start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
        await log.close()


def main(argv: list[str] | None = None) -> None:
    # A test that gives up on this node asks where each thread is (log/testing.py).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    # Elections, pre-votes and pauses, for whoever reads a test's or a benchmark's output.
    logging.getLogger("meseta.log.raft").setLevel(logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
