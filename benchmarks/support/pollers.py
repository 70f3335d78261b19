"""`clients` loops reading /state back to back, in a process of their own.

    python benchmarks/support/pollers.py URL [URL ...] --clients 20 --seconds 10

Prints one JSON object: every latency in seconds, the failed reads and the bytes of the
last body. The clients are spread over the URLs in turn. state_bench.py runs this beside its
writer, so the pollers' client work (20 loops taking in hundreds of MB/s) does not sit on the
event loop whose write latencies are measured: operators' pollers are other processes too.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp
import orjson


async def poll(urls: list[str], clients: int, seconds: float) -> dict[str, object]:
    latencies: list[float] = []
    errors: list[str] = []
    size = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        stop_at = time.perf_counter() + seconds

        async def client(url: str) -> None:
            nonlocal size
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    # As Mesos's benchmark reads (curl, the other client, asks for
                    # no compression either).
                    identity = {"Accept-Encoding": "identity"}
                    async with session.get(f"{url}/state", headers=identity) as response:
                        body = await response.read()
                        if response.status != 200:
                            raise RuntimeError(f"HTTP {response.status} {body[:120]!r}")
                    latencies.append(time.perf_counter() - started)
                    size = len(body)
                except (RuntimeError, aiohttp.ClientError, TimeoutError) as error:
                    # A replica busy past its election timeout can lose leadership and
                    # restart its HTTP server's connections.
                    errors.append(repr(error)[:120])
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(client(urls[n % len(urls)]) for n in range(clients)))
    return {"latencies": latencies, "errors": errors, "size": size, "cpu_s": time.process_time()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(poll(args.urls, args.clients, args.seconds))
    sys.stdout.buffer.write(orjson.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
