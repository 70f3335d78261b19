"""What the host says about itself, in the `system/*` metrics both daemons report (contract
6.5) and libprocess's `/system/stats.json`, and Mesos's timer metrics (a last value with its
count and percentiles)."""

from __future__ import annotations

import os
from collections.abc import Iterable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meseta.api.http import ANY_METHOD, jsonp_response

PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999),
               ("p9999", 0.9999))  # fmt: skip


def system_metrics() -> dict[str, float]:
    load1, load5, load15 = os.getloadavg()
    page = os.sysconf("SC_PAGE_SIZE")
    return {
        "system/cpus_total": float(os.cpu_count() or 0),
        "system/load_1min": load1,
        "system/load_5min": load5,
        "system/load_15min": load15,
        "system/mem_total_bytes": float(page * os.sysconf("SC_PHYS_PAGES")),
        "system/mem_free_bytes": float(page * os.sysconf("SC_AVPHYS_PAGES")),
    }


def system_stats() -> dict[str, float | int]:
    """libprocess's `/system/stats.json`: the same figures under its older names."""
    metrics = system_metrics()
    return {
        "avg_load_1min": metrics["system/load_1min"],
        "avg_load_5min": metrics["system/load_5min"],
        "avg_load_15min": metrics["system/load_15min"],
        "cpus_total": int(metrics["system/cpus_total"]),
        "mem_total_bytes": int(metrics["system/mem_total_bytes"]),
        "mem_free_bytes": int(metrics["system/mem_free_bytes"]),
    }


async def system_stats_endpoint(request: Request) -> Response:
    return jsonp_response(request, orjson.dumps(system_stats()))


def system_routes() -> list[Route]:
    """Served by every libprocess process, master and agent alike."""
    return [Route("/system/stats.json", system_stats_endpoint, methods=ANY_METHOD)]


def timer_metrics(name: str, samples: Iterable[float], count: int) -> dict[str, float]:
    """`name` (the last sample), `name/count` (all time) and, over the samples kept,
    `name/min|max|p50|p90|p95|p99|p999|p9999`, as libprocess's Timer reports them; nothing
    but the count before the first sample."""
    kept = list(samples)
    out = {f"{name}/count": float(count)}
    if not kept:
        return out
    ordered = sorted(kept)
    out[name] = kept[-1]
    out[f"{name}/min"] = ordered[0]
    out[f"{name}/max"] = ordered[-1]
    for label, share in PERCENTILES:
        out[f"{name}/{label}"] = ordered[min(len(ordered) - 1, int(share * len(ordered)))]
    return out
