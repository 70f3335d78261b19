"""Replicated-log benchmark: our log next to the machine's ceilings and baselines, in one run.

    python benchmarks/log_bench.py [--quick] [--seed N] [--workdir DIR] [--keep]

Stages (docs: performance-anchors.md sections 4.4, 6, 7 and 9, rows 1-3 and 11):
  1. machine ceilings: 4 KB append + fsync, and LMDB durable group commit;
  2. our log, 3 replicas on loopback: durable events/s with 1,000 in flight,
     then lone-writer commit latency (both measured inside the leader by /load);
  3. failover: SIGKILL the leader while clients write, time to the first new
     commit, then check the log for lost and duplicated acknowledged ids;
  4. baseline: plain pysyncobj with default settings, same payload and window;
  5. etcd via `etcdctl check perf`, only when both binaries are installed.

A table goes to stdout, then the last line is one JSON object. Progress goes
to stderr. Every child process is tracked by pid and killed in `finally`,
every loop is bounded by count and deadline, and only 127.0.0.1 is used. The
exit status is 1 when a safety check fails (lost, duplicated or misplaced
acknowledged entries, replicas disagreeing), otherwise 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import lmdb
from support.procstat import cpu_seconds

from meseta.log.testing import (
    LocalCluster,
    NodeProcess,
    free_port,
    get_status,
    wait_for_leader,
    wait_until,
)

EVENT_BYTES = 200
WINDOW = 1000


@dataclass(frozen=True)
class Profile:
    name: str
    warmup_events: int
    load_events: int
    lone_events: int
    failover_trials: int
    pre_kill_s: tuple[float, float]  # uniform range: the kill lands at a random moment
    post_recovery_s: float  # keep writing under the new leader this long
    baseline_events: int
    writers: int = 3
    writer_interval_s: float = 0.005  # each writer proposes every 5 ms, as in the anchors
    failover_deadline_s: float = 5.0  # a trial with no new commit by then counts as this long
    stage_budget_s: float = 120.0


QUICK = Profile("quick", 2_000, 30_000, 300, 4, (0.3, 0.8), 0.2, 20_000, stage_budget_s=40.0)
FULL = Profile("full", 5_000, 60_000, 1_000, 20, (0.5, 2.0), 0.5, 60_000, stage_budget_s=240.0)

REQUIRED_KEYS = (
    "events_per_s", "p50_ms", "p99_ms", "lone_p50_ms", "lone_p99_ms",
    "failover_p50_s", "failover_p99_s", "lost", "duplicates", "fsync_ms",
    "lmdb_probe_puts_per_s", "baseline_pysyncobj_events_per_s", "etcd_writes_per_s",
)  # fmt: skip

# Goals from performance-anchors.md section 9: (comparison, bound).
TARGETS: dict[str, tuple[str, float]] = {
    "events_per_s": (">=", 25_000),
    "p99_ms": ("<=", 50),
    "lone_p50_ms": ("<=", 2),
    "lone_p99_ms": ("<=", 5),
    "failover_p50_s": ("<=", 0.5),
    "failover_p99_s": ("<=", 1.0),
    "lost": ("==", 0),
    "duplicates": ("==", 0),
}


def log(message: str) -> None:
    print(f"[log_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile, the same rule the node's /load uses."""
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


# -- process bookkeeping -----------------------------------------------------------


class Children:
    """Every process this benchmark starts, so that `close` can kill each one by pid."""

    def __init__(self) -> None:
        self.clusters: list[LocalCluster] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def cluster(self, root: Path, extra_args: list[str] | None = None) -> LocalCluster:
        cluster = LocalCluster(root, extra_args=list(extra_args or []))
        self.clusters.append(cluster)
        return cluster

    def spawn(self, command: list[str], output: Path) -> subprocess.Popen[bytes]:
        with open(output, "ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def kill_processes(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()  # SIGKILL to this pid only
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.processes.clear()

    def close(self) -> None:
        for cluster in self.clusters:
            with contextlib.suppress(Exception):
                cluster.close()
        self.kill_processes()


def node_log_counts(cluster: LocalCluster) -> dict[str, int]:
    """Warnings worth reporting, counted over every replica's output."""
    patterns = {
        "role_changes": "raft role",
        "truncation_warnings": "truncating already-applied",
        "fail_stops": "fail-stop",
        "tracebacks": "Traceback",
    }
    counts = dict.fromkeys(patterns, 0)
    for node in cluster.nodes:
        text = node.output()
        for key, needle in patterns.items():
            counts[key] += text.count(needle)
    return counts


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        # Other work on the box skews every figure; the 1-minute load average says how much.
        "loadavg_1m_start": os.getloadavg()[0],
    }


# -- stage 1: machine ceilings -----------------------------------------------------


def probe_fsync(directory: Path, iterations: int = 200) -> dict[str, Any]:
    """4 KB append + fsync, the per-commit cost of the disk (section 7)."""
    directory.mkdir(parents=True, exist_ok=True)
    block = os.urandom(4096)
    latencies: list[float] = []
    fd = os.open(directory / "fsync.probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(iterations):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
    latencies.sort()
    return {
        "fsync_ms": _ms(percentile(latencies, 0.5)),
        "fsync_p99_ms": _ms(percentile(latencies, 0.99)),
        "fsync_per_s": iterations / elapsed,
    }


def probe_lmdb(directory: Path, txns: int = 200, puts_per_txn: int = 100) -> dict[str, Any]:
    """LMDB durable group commit: the ceiling for fsync-before-ack batching (section 7)."""
    directory.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(directory), sync=True, lib_version=0, map_size=1 << 34)
    value = os.urandom(EVENT_BYTES)
    latencies: list[float] = []
    try:
        started = time.perf_counter()
        for txn_number in range(txns):
            t0 = time.perf_counter()
            with env.begin(write=True) as txn:
                base = txn_number * puts_per_txn
                for key in range(base, base + puts_per_txn):
                    txn.put(key.to_bytes(8, "big"), value, append=True)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    finally:
        env.close()
    latencies.sort()
    return {
        "lmdb_probe_puts_per_s": txns * puts_per_txn / elapsed,
        "lmdb_probe_txn_p50_ms": _ms(percentile(latencies, 0.5)),
        "lmdb_probe_txn_p99_ms": _ms(percentile(latencies, 0.99)),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


# -- stage 2: our log, throughput and lone writer --------------------------------


async def post_json(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], timeout_s: float
) -> tuple[int, dict[str, Any]]:
    async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
        return r.status, dict(await r.json())


LOAD_ATTEMPTS = 2


async def run_load(
    session: aiohttp.ClientSession, leader: NodeProcess, count: int, window: int
) -> dict[str, Any]:
    """POST /load with a fresh id prefix (a reused prefix would be dropped as duplicates)."""
    body = {"count": count, "size": EVENT_BYTES, "window": window, "prefix": secrets.token_hex(4)}
    # Generous but bounded: even 1,000 events/s would finish well inside it.
    status, result = await post_json(session, f"{leader.url}/load", body, count / 1000 + 30)
    if status != 200:
        raise RuntimeError(f"/load answered {status}: {result}")
    if not result["acked"]:  # the node reports 0.0 ms when nothing committed
        result["p50_ms"] = result["p99_ms"] = None
    return result


async def measured_load(
    session: aiohttp.ClientSession, cluster: LocalCluster, what: str, count: int, window: int
) -> tuple[dict[str, Any], list[dict[str, int]]]:
    """A load at the current leader; rerun once if leadership moved under it.

    Returns the last attempt and the errors of every attempt: a leader lost
    mid-load (no kill involved) is a finding, reported rather than hidden.
    """
    errors: list[dict[str, int]] = []
    result: dict[str, Any] = {}
    for attempt in range(1, LOAD_ATTEMPTS + 1):
        leader = await wait_for_leader(session, cluster, timeout_s=15)
        result = await run_load(session, leader, count, window)
        errors.append(result["errors"])
        log(f"{what} attempt {attempt} at {leader.name}: {result}")
        if not result["errors"]:
            break
    return result, errors


async def bench_throughput(
    session: aiohttp.ClientSession,
    children: Children,
    root: Path,
    profile: Profile,
    extra_args: list[str] | None = None,
) -> dict[str, Any]:
    cluster = children.cluster(root, extra_args)
    try:
        cluster.start_all()
        leader = await wait_for_leader(session, cluster, timeout_s=30)
        term_before = await leader_term(session, leader)
        await run_load(session, leader, profile.warmup_events, WINDOW)
        pids = [n.process.pid for n in cluster.nodes if n.process is not None]
        cpu_before, wall_before = cpu_seconds(pids), time.perf_counter()
        load, load_errors = await measured_load(
            session, cluster, "load", profile.load_events, WINDOW
        )
        cpu_pct = 100 * (cpu_seconds(pids) - cpu_before) / (time.perf_counter() - wall_before)
        lone, lone_errors = await measured_load(session, cluster, "lone", profile.lone_events, 1)
        leader = await wait_for_leader(session, cluster, timeout_s=15)
        status = await get_status(session, leader) or {}
        return {
            "events_per_s": load["per_s"],
            "p50_ms": load["p50_ms"],
            "p99_ms": load["p99_ms"],
            "load_events": profile.load_events,
            "load_acked": load["acked"],
            "load_errors": load_errors,
            "load_cpu_pct": cpu_pct,
            "lone_p50_ms": lone["p50_ms"],
            "lone_p99_ms": lone["p99_ms"],
            "lone_events": profile.lone_events,
            "lone_errors": lone_errors,
            # Terms beyond the first election: the leader changed with nobody killed.
            "load_unforced_elections": (status.get("term") or 0) - (term_before or 0),
            "load_leader_counters": status.get("counters"),
            "load_node_logs": node_log_counts(cluster),
            "load_unexpected_exits": unexpected_exits(cluster, killed=set()),
        }
    finally:
        cluster.close()


def unexpected_exits(cluster: LocalCluster, killed: set[str]) -> dict[str, int | None]:
    """Replicas that stopped without us killing them (fail-stop exits with 70)."""
    return {
        n.name: n.process.poll()
        for n in cluster.nodes
        if n.process is not None and n.name not in killed and n.process.poll() is not None
    }


# -- stage 3: failover -----------------------------------------------------------

APPEND_CLIENT_TIMEOUT_S = 2.0
APPEND_SERVER_TIMEOUT_S = 1.5  # the node gives up first, so we see its 504 instead of a cut
MAX_ATTEMPTS_PER_ID = 1_000


@dataclass
class Ack:
    sent: float
    acked: float
    node: str


@dataclass
class Writers:
    """What the client side saw: acknowledged ids and when, errors, the leader it trusts."""

    acked: dict[str, int] = field(default_factory=dict)  # id -> index it was acknowledged at
    acks: list[Ack] = field(default_factory=list)  # this trial's acknowledgements
    errors: Counter[str] = field(default_factory=Counter)
    conflicting_acks: int = 0  # one id acknowledged at two different indexes
    leader: NodeProcess | None = None
    give_up_at: float = 0.0  # hard stop for every writer, retries included
    stopping: bool = False


async def append_once(
    session: aiohttp.ClientSession, node: NodeProcess, ident: str
) -> tuple[str, int | None, str | None]:
    """One POST /append: ("ok", index, None) or (error kind, None, leader hint)."""
    body = {"id": ident, "size": EVENT_BYTES, "timeout_s": APPEND_SERVER_TIMEOUT_S}
    try:
        status, reply = await post_json(
            session, f"{node.url}/append", body, APPEND_CLIENT_TIMEOUT_S
        )
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        return type(error).__name__, None, None
    if status == 200:
        return "ok", int(reply["index"]), None
    return str(reply.get("error", f"http_{status}")), None, reply.get("leader")


def next_target(
    cluster: LocalCluster,
    failed: NodeProcess,
    hint: NodeProcess | None,
    trusted: NodeProcess | None,
) -> NodeProcess:
    """Where to retry: the leader the replica named, the last good leader, else the next node.

    Like a real client, this does not know which replica was killed; a dead
    node costs one refused connection.
    """
    if hint is not None and hint is not failed:
        return hint
    if trusted is not None and trusted is not failed:
        return trusted
    return cluster.nodes[(cluster.nodes.index(failed) + 1) % len(cluster.nodes)]


async def writer(
    session: aiohttp.ClientSession, cluster: LocalCluster, state: Writers, interval_s: float
) -> None:
    by_address = {n.address: n for n in cluster.nodes}
    target = state.leader or cluster.nodes[0]
    while not state.stopping and time.monotonic() < state.give_up_at:
        ident = secrets.token_hex(16)
        started = time.monotonic()
        # Retries reuse the id: the log's dedup must make them land once.
        for _ in range(MAX_ATTEMPTS_PER_ID):
            if time.monotonic() >= state.give_up_at:
                break
            sent = time.monotonic()
            outcome, index, hint = await append_once(session, target, ident)
            if outcome == "ok" and index is not None:
                record_ack(state, ident, index, Ack(sent, time.monotonic(), target.name))
                state.leader = target
                break
            state.errors[outcome] += 1
            hinted = by_address.get(hint) if hint else None
            target = next_target(cluster, target, hinted, state.leader)
            if hinted is None:
                await asyncio.sleep(0.01)  # nobody knows the leader yet: do not spin
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))


def record_ack(state: Writers, ident: str, index: int, ack: Ack) -> None:
    earlier = state.acked.get(ident)
    if earlier is not None and earlier != index:
        state.conflicting_acks += 1
    state.acked[ident] = index
    state.acks.append(ack)


@dataclass
class Trial:
    number: int
    killed: str
    failover_s: float | None
    gap_s: float | None
    new_leader: str | None
    term_before: int | None
    term_after: int | None
    leader_moved_before_kill: bool
    acks: int
    errors: dict[str, int]
    catch_up_s: float | None


def first_ack_after(acks: Sequence[Ack], moment: float) -> Ack | None:
    after = [a for a in acks if a.sent > moment]
    return min(after, key=lambda a: a.acked) if after else None


async def leader_term(session: aiohttp.ClientSession, node: NodeProcess | None) -> int | None:
    status = await get_status(session, node) if node is not None else None
    return None if status is None else int(status["term"])


async def failover_trial(
    number: int,
    session: aiohttp.ClientSession,
    cluster: LocalCluster,
    state: Writers,
    profile: Profile,
    rng: random.Random,
) -> Trial:
    leader = await wait_for_leader(session, cluster, timeout_s=15)
    term_before = await leader_term(session, leader)
    state.leader, state.acks, state.stopping = leader, [], False
    state.give_up_at = time.monotonic() + profile.pre_kill_s[1] + profile.failover_deadline_s + 10
    errors_before = Counter(state.errors)
    tasks = [
        asyncio.create_task(writer(session, cluster, state, profile.writer_interval_s))
        for _ in range(profile.writers)
    ]
    try:
        await asyncio.sleep(rng.uniform(*profile.pre_kill_s))
        # Kill whoever leads now; a change since the trial began is itself worth reporting.
        victim = await wait_for_leader(session, cluster, timeout_s=5)
        kill_at = time.monotonic()
        cluster.kill(victim)
        deadline = kill_at + profile.failover_deadline_s
        while time.monotonic() < deadline and first_ack_after(state.acks, kill_at) is None:
            await asyncio.sleep(0.005)
        await asyncio.sleep(profile.post_recovery_s)
    finally:
        # Let in-flight ids settle (each retry is bounded by give_up_at), then stop.
        state.stopping = True
        state.give_up_at = min(state.give_up_at, time.monotonic() + 3 * APPEND_CLIENT_TIMEOUT_S)
        await asyncio.wait(tasks, timeout=4 * APPEND_CLIENT_TIMEOUT_S)
        for task in tasks:
            task.cancel()
    first = first_ack_after(state.acks, kill_at)
    before = [a.acked for a in state.acks if a.acked <= kill_at]
    new_leader = next((n for n in cluster.nodes if first and n.name == first.node), None)
    term_after = await leader_term(session, new_leader)
    catch_up_s = await restart_and_catch_up(session, cluster, victim)
    return Trial(
        number=number,
        killed=victim.name,
        failover_s=first.acked - kill_at if first else None,
        gap_s=first.acked - max(before) if first and before else None,
        new_leader=first.node if first else None,
        term_before=term_before,
        term_after=term_after,
        leader_moved_before_kill=victim is not leader,
        acks=len(state.acks),
        errors=dict(state.errors - errors_before),
        catch_up_s=catch_up_s,
    )


async def restart_and_catch_up(
    session: aiohttp.ClientSession, cluster: LocalCluster, node: NodeProcess
) -> float | None:
    """Bring the killed replica back and wait (bounded) until it has applied everything."""
    started = time.monotonic()
    cluster.start(node)
    leader = await wait_for_leader(session, cluster, timeout_s=15)
    target = await get_status(session, leader)
    if target is None:
        return None
    try:
        await wait_until(
            session, node, lambda s: s["applied_index"] >= target["applied_index"], timeout_s=20
        )
    except TimeoutError:
        log(f"{node.name} did not catch up within 20 s")
        return None
    return time.monotonic() - started


async def converge(session: aiohttp.ClientSession, cluster: LocalCluster) -> bool:
    """Wait (bounded) until every running replica has applied the same index."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses = [await get_status(session, n) for n in cluster.nodes if n.running]
        applied = {s["applied_index"] for s in statuses if s is not None}
        if None not in statuses and len(applied) == 1:
            return True
        await asyncio.sleep(0.1)
    return False


async def fetch_entries(session: aiohttp.ClientSession, node: NodeProcess) -> list[list[Any]]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with session.get(f"{node.url}/entries", params={"start": "1"}, timeout=timeout) as r:
        return list(await r.json())


def check_log(rows: list[list[Any]], acked: dict[str, int]) -> dict[str, int]:
    """Lost, duplicated and misplaced acknowledged ids in one replica's log."""
    ids = [row[1] for row in rows]
    present = set(ids)
    by_index = {int(row[0]): row[1] for row in rows}
    gaps = sum(1 for position, row in enumerate(rows, start=1) if int(row[0]) != position)
    return {
        "entries": len(rows),
        "lost": sum(1 for ident in acked if ident not in present),
        "duplicates": len(ids) - len(present),
        "misplaced": sum(1 for ident, index in acked.items() if by_index.get(index) != ident),
        "index_gaps": gaps,
    }


async def verify_log(
    session: aiohttp.ClientSession, cluster: LocalCluster, acked: dict[str, int]
) -> dict[str, Any]:
    converged = await converge(session, cluster)
    per_node: dict[str, dict[str, int]] = {}
    logs: list[list[tuple[int, str]]] = []
    for node in (n for n in cluster.nodes if n.running):
        rows = await fetch_entries(session, node)
        per_node[node.name] = check_log(rows, acked)
        logs.append([(int(r[0]), r[1]) for r in rows])
    worst = {
        key: max((c[key] for c in per_node.values()), default=0)
        for key in ("lost", "duplicates", "misplaced", "index_gaps")
    }
    return {
        "lost": worst["lost"],
        "duplicates": worst["duplicates"],
        "misplaced_acks": worst["misplaced"],
        "index_gaps": worst["index_gaps"],
        "replicas_converged": converged,
        "replicas_agree": all(entries == logs[0] for entries in logs) if logs else False,
        "replicas_checked": len(logs),
        "log_check_per_replica": per_node,
    }


async def bench_failover(
    session: aiohttp.ClientSession,
    children: Children,
    root: Path,
    profile: Profile,
    rng: random.Random,
) -> dict[str, Any]:
    cluster = children.cluster(root)
    state = Writers()
    trials: list[Trial] = []
    try:
        cluster.start_all()
        await wait_for_leader(session, cluster, timeout_s=30)
        for number in range(1, profile.failover_trials + 1):
            trial = await failover_trial(number, session, cluster, state, profile, rng)
            trials.append(trial)
            log(f"failover trial {number}: {trial}")
        verification = await verify_log(session, cluster, state.acked)
        return (
            summarize_failover(trials, state, profile)
            | verification
            | {
                "failover_node_logs": node_log_counts(cluster),
                # Every killed replica was restarted: any stopped one stopped on its own.
                "failover_unexpected_exits": unexpected_exits(cluster, killed=set()),
            }
        )
    finally:
        cluster.close()


def summarize_failover(trials: list[Trial], state: Writers, profile: Profile) -> dict[str, Any]:
    # A trial with no new commit by its deadline counts as the deadline (a floor, flagged).
    times = sorted(
        t.failover_s if t.failover_s is not None else profile.failover_deadline_s for t in trials
    )
    gaps = sorted(t.gap_s for t in trials if t.gap_s is not None)
    # Elections beyond the one each kill forces: split votes, flapping, restart disruption.
    extra = 0
    for previous, trial in zip([None, *trials[:-1]], trials, strict=True):
        if trial.term_before is not None and trial.term_after is not None:
            extra += max(0, trial.term_after - trial.term_before - 1)
        if previous and previous.term_after is not None and trial.term_before is not None:
            extra += max(0, trial.term_before - previous.term_after)
    return {
        "failover_p50_s": percentile(times, 0.5),
        "failover_p99_s": percentile(times, 0.99),
        "failover_max_s": times[-1] if times else None,
        "failover_gap_p50_s": percentile(gaps, 0.5),
        "failover_trials": len(trials),
        "failover_timeouts": sum(1 for t in trials if t.failover_s is None),
        "failover_times_s": [
            None if t.failover_s is None else round(t.failover_s, 4) for t in trials
        ],
        "failover_extra_elections": extra,
        "failover_leader_moved_before_kill": sum(t.leader_moved_before_kill for t in trials),
        "failover_catch_up_max_s": max((t.catch_up_s or 0.0 for t in trials), default=None),
        "failover_acked": len(state.acked),
        "failover_conflicting_acks": state.conflicting_acks,
        "failover_client_errors": dict(state.errors),
    }


async def bench_our_log(
    root: Path, children: Children, profile: Profile, seed: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        log("stage 2: our log, throughput and lone writer")
        results |= await guarded(
            "our_log_load",
            asyncio.wait_for(
                bench_throughput(session, children, root / "load", profile), profile.stage_budget_s
            ),
        )
        log("stage 2b: the same without fsync, to show what durability costs")
        unsafe = await guarded(
            "our_log_no_fsync",
            asyncio.wait_for(
                bench_throughput(
                    session, children, root / "nofsync", profile, ["--unsafe-no-fsync"]
                ),
                profile.stage_budget_s,
            ),
        )
        results |= {
            f"nofsync_{key}": unsafe.get(key)
            for key in ("events_per_s", "p50_ms", "p99_ms", "lone_p50_ms", "lone_p99_ms")
        }
        log(f"stage 3: failover, {profile.failover_trials} trials")
        results |= await guarded(
            "failover",
            asyncio.wait_for(
                bench_failover(session, children, root / "failover", profile, random.Random(seed)),
                profile.stage_budget_s,
            ),
        )
    return results


async def guarded(stage: str, work: Any) -> dict[str, Any]:
    """Run one stage; a failure is reported in the JSON instead of losing the whole run."""
    try:
        return dict(await work)
    except Exception as error:
        log(f"stage {stage} failed: {error!r}")
        return {f"error_{stage}": repr(error)}


# -- stage 4: pysyncobj baseline -------------------------------------------------

PYSYNCOBJ_SCRIPT = r'''
"""One plain pysyncobj replica, DEFAULT settings; the leader runs the load, prints JSON."""
import json
import os
import secrets
import sys
import threading
import time

from pysyncobj import FAIL_REASON, SyncObj, replicated


class Events(SyncObj):
    def __init__(self, me, peers):
        super().__init__(me, peers)  # default conf: memory journal, batching on, no password
        self.count = 0
        self.last = None

    @replicated
    def append(self, event):
        self.count += 1
        self.last = event


def event(seq, size):
    head = '{"seq":%d,"ts":%d,"id":"%s","pad":"' % (seq, time.time_ns(), secrets.token_hex(16))
    return ((head + "x" * size)[: size - 2] + '"}').encode()


def main():
    me, peers = sys.argv[1], [p for p in sys.argv[2].split(",") if p != sys.argv[1]]
    count, window, size = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    deadline = time.monotonic() + float(sys.argv[6])
    node = Events(me, peers)
    while node._getLeader() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(1.0)  # settle, as in the anchor runs
    if not node._isLeader():
        while time.monotonic() < deadline:
            time.sleep(0.1)
        return
    slots = threading.BoundedSemaphore(window)
    lock = threading.Lock()
    latencies, errors, state = [], {}, {"done": 0, "last": 0.0}

    def callback_for(started):
        def callback(result, error):
            now = time.perf_counter()
            with lock:
                if error == FAIL_REASON.SUCCESS:
                    latencies.append(now - started)
                else:
                    errors[str(error)] = errors.get(str(error), 0) + 1
                state["done"] += 1
                state["last"] = now
            slots.release()
        return callback

    submitted = 0
    first = time.perf_counter()
    for seq in range(count):
        if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            break
        node.append(event(seq, size), callback=callback_for(time.perf_counter()))
        submitted += 1
    while state["done"] < submitted and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = (state["last"] or time.perf_counter()) - first
    latencies.sort()

    def pct(p):
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    print(json.dumps({"acked": len(latencies), "submitted": submitted, "errors": errors,
                      "elapsed_s": elapsed, "per_s": len(latencies) / elapsed if elapsed else 0.0,
                      "p50_ms": pct(0.5), "p99_ms": pct(0.99)}), flush=True)
    os._exit(0)


main()
'''


def bench_pysyncobj(root: Path, children: Children, profile: Profile) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    script = root / "pysyncobj_replica.py"
    script.write_text(PYSYNCOBJ_SCRIPT)
    peers = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    budget_s = 30 + profile.baseline_events / 1000  # >= 1,000 events/s or give up
    outputs = [root / f"replica{i}.out" for i in range(3)]
    try:
        for peer, output in zip(peers, outputs, strict=True):
            command = [
                sys.executable,
                str(script),
                peer,
                ",".join(peers),
                str(profile.baseline_events),
                str(WINDOW),
                str(EVENT_BYTES),
                str(budget_s),
            ]
            children.spawn(command, output)
        result = wait_for_json_line(outputs, time.monotonic() + budget_s + 10)
    finally:
        children.kill_processes()
    if result is None:
        tails = {o.name: o.read_text(errors="replace")[-500:] for o in outputs if o.exists()}
        raise RuntimeError(f"no pysyncobj leader reported within {budget_s:.0f} s: {tails}")
    log(f"pysyncobj default: {result}")
    return {
        "baseline_pysyncobj_events_per_s": result["per_s"],
        "baseline_pysyncobj_p50_ms": result["p50_ms"],
        "baseline_pysyncobj_p99_ms": result["p99_ms"],
        "baseline_pysyncobj_events": profile.baseline_events,
        "baseline_pysyncobj_errors": result["errors"],
    }


def wait_for_json_line(outputs: Sequence[Path], deadline: float) -> dict[str, Any] | None:
    while time.monotonic() < deadline:
        for output in outputs:
            for line in output.read_text(errors="replace").splitlines() if output.exists() else []:
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        return dict(json.loads(line))
        time.sleep(0.1)
    return None


# -- stage 5: etcd ---------------------------------------------------------------

ETCD_LOAD = "l"  # load s only targets 150 writes/s; l (8,000/s) finds the ceiling, as in section 6


def bench_etcd(root: Path, children: Children, profile: Profile) -> dict[str, Any]:
    if not (shutil.which("etcd") and shutil.which("etcdctl")):
        return {"etcd_writes_per_s": None, "etcd_note": "skipped: etcd not installed"}
    if profile.name == "quick":
        return {
            "etcd_writes_per_s": None,
            "etcd_note": "skipped in --quick: etcdctl check perf always runs 60 s",
        }
    root.mkdir(parents=True, exist_ok=True)
    members = [(f"m{i}", free_port(), free_port()) for i in range(3)]
    initial = ",".join(f"{name}=http://127.0.0.1:{peer}" for name, _, peer in members)
    endpoints = ",".join(f"http://127.0.0.1:{client}" for _, client, _ in members)
    token = f"log-bench-{secrets.token_hex(4)}"
    try:
        for name, client, peer in members:
            children.spawn(
                etcd_command(root, name, client, peer, initial, token), root / f"{name}.out"
            )
        if not etcd_healthy(endpoints, time.monotonic() + 30):
            raise RuntimeError("etcd did not become healthy within 30 s")
        _, out = etcdctl(endpoints, ["check", "perf", f"--load={ETCD_LOAD}"], timeout_s=150)
    finally:
        children.kill_processes()
    match = re.search(r"(\d+) writes/s", out)
    log(f"etcd check perf: {out.strip().splitlines()[-4:]}")
    return {
        "etcd_writes_per_s": int(match.group(1)) if match else None,
        "etcd_note": f"etcdctl check perf --load={ETCD_LOAD}, 3 members on loopback",
    }


def etcd_command(
    root: Path, name: str, client: int, peer: int, initial: str, token: str
) -> list[str]:
    return [
        "etcd",
        "--name",
        name,
        "--data-dir",
        str(root / name),
        "--listen-client-urls",
        f"http://127.0.0.1:{client}",
        "--advertise-client-urls",
        f"http://127.0.0.1:{client}",
        "--listen-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-cluster",
        initial,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        token,
    ]


def etcdctl(endpoints: str, args: list[str], timeout_s: float) -> tuple[int, str]:
    """Run etcdctl (subprocess.run kills it on timeout): exit status, stdout + stderr."""
    done = subprocess.run(
        ["etcdctl", f"--endpoints={endpoints}", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "ETCDCTL_API": "3"},
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def etcd_healthy(endpoints: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            status, out = etcdctl(endpoints, ["endpoint", "health"], 10)
            if status == 0 and "unhealthy" not in out:
                return True
        time.sleep(0.5)
    return False


# -- report ----------------------------------------------------------------------


def add_verdicts(results: dict[str, Any]) -> None:
    """target_* booleans and in-run ratios."""
    for key, (op, bound) in TARGETS.items():
        value = results.get(key)
        results[f"target_{key}"] = None if value is None else meets(value, op, bound)

    def ratio(numerator: str, denominator: str) -> float | None:
        a, b = results.get(numerator), results.get(denominator)
        return None if a is None or not b else a / b

    results["ratio_events_vs_pysyncobj"] = ratio("events_per_s", "baseline_pysyncobj_events_per_s")
    results["ratio_p99_vs_pysyncobj"] = ratio("p99_ms", "baseline_pysyncobj_p99_ms")
    results["ratio_events_vs_lmdb_probe"] = ratio("events_per_s", "lmdb_probe_puts_per_s")
    results["ratio_events_vs_etcd"] = ratio("events_per_s", "etcd_writes_per_s")
    results["ratio_lone_p50_vs_fsync"] = ratio("lone_p50_ms", "fsync_ms")
    results["ratio_lone_p99_vs_fsync"] = ratio("lone_p99_ms", "fsync_ms")


def meets(value: float, op: str, bound: float) -> bool:
    return {">=": value >= bound, "<=": value <= bound, "==": value == bound}[op]


def safety_ok(results: dict[str, Any]) -> bool:
    return (
        results.get("lost") == 0
        and results.get("duplicates") == 0
        and results.get("misplaced_acks") == 0
        and results.get("index_gaps") == 0
        and results.get("failover_conflicting_acks") == 0
        and bool(results.get("replicas_agree"))
    )


def fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def fmt_ratio(value: Any, what: str) -> str:
    return "" if value is None else f"{value:.2f}x {what}"


def table(r: dict[str, Any]) -> str:
    def verdict(key: str) -> str:
        ok = r.get(f"target_{key}")
        return "-" if ok is None else ("PASS" if ok else "FAIL")

    etcd = (
        fmt(r.get("etcd_writes_per_s"), "/s")
        if r.get("etcd_writes_per_s")
        else r.get("etcd_note", "-")
    )
    rows: list[tuple[str, str, str, str, str]] = [
        ("fsync probe p50 (4 KB append)", fmt(r.get("fsync_ms"), " ms", 3), "", "", "ceiling"),
        (
            "LMDB group commit (100/txn)",
            fmt(r.get("lmdb_probe_puts_per_s"), " puts/s", 0),
            "",
            "",
            "ceiling",
        ),
        (
            "pysyncobj default events/s",
            fmt(r.get("baseline_pysyncobj_events_per_s"), "/s", 0),
            "",
            "",
            f"p50 {fmt(r.get('baseline_pysyncobj_p50_ms'), ' ms')}, "
            f"p99 {fmt(r.get('baseline_pysyncobj_p99_ms'), ' ms')}",
        ),
        (
            "etcd check perf writes/s",
            etcd,
            "",
            "",
            fmt_ratio(r.get("ratio_events_vs_etcd"), "ours/etcd"),
        ),
        (
            "durable events/s (W=1000)",
            fmt(r.get("events_per_s"), "/s", 0),
            ">= 25,000",
            verdict("events_per_s"),
            fmt_ratio(r.get("ratio_events_vs_pysyncobj"), "pysyncobj")
            + ", "
            + fmt_ratio(r.get("ratio_events_vs_lmdb_probe"), "LMDB probe"),
        ),
        ("  p50 latency", fmt(r.get("p50_ms"), " ms"), "", "", ""),
        (
            "  p99 latency",
            fmt(r.get("p99_ms"), " ms"),
            "<= 50 ms",
            verdict("p99_ms"),
            fmt_ratio(r.get("ratio_p99_vs_pysyncobj"), "pysyncobj p99"),
        ),
        (
            "same without fsync (unsafe)",
            fmt(r.get("nofsync_events_per_s"), "/s", 0),
            "",
            "",
            f"p99 {fmt(r.get('nofsync_p99_ms'), ' ms')}, "
            f"lone p50 {fmt(r.get('nofsync_lone_p50_ms'), ' ms', 2)}: the cost of durability",
        ),
        (
            "lone-writer commit p50",
            fmt(r.get("lone_p50_ms"), " ms", 2),
            "<= 2 ms",
            verdict("lone_p50_ms"),
            fmt_ratio(r.get("ratio_lone_p50_vs_fsync"), "fsync p50"),
        ),
        (
            "lone-writer commit p99",
            fmt(r.get("lone_p99_ms"), " ms", 2),
            "<= 5 ms",
            verdict("lone_p99_ms"),
            fmt_ratio(r.get("ratio_lone_p99_vs_fsync"), "fsync p50"),
        ),
        (
            "failover p50 (kill -> commit)",
            fmt(r.get("failover_p50_s"), " s", 3),
            "<= 0.5 s",
            verdict("failover_p50_s"),
            f"{fmt(r.get('failover_trials'))} trials; pysyncobj tuned here: 0.47 s",
        ),
        (
            "failover p99",
            fmt(r.get("failover_p99_s"), " s", 3),
            "<= 1.0 s",
            verdict("failover_p99_s"),
            f"timeouts {fmt(r.get('failover_timeouts'))}",
        ),
        (
            "lost acknowledged ids",
            fmt(r.get("lost")),
            "0",
            verdict("lost"),
            f"of {fmt(r.get('failover_acked'))} acked",
        ),
        (
            "duplicate ids in the log",
            fmt(r.get("duplicates")),
            "0",
            verdict("duplicates"),
            f"replicas agree: {r.get('replicas_agree')}",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    header = ("figure", "measured", "target", "ok", "ratio / note")
    widths = [max(w, len(h)) for w, h in zip(widths, header[:4], strict=True)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join([*lines, *notes(r)])


def notes(r: dict[str, Any]) -> list[str]:
    """What a reader must know before trusting the table."""
    out = []
    machine = r.get("machine", {})
    load = (machine.get("loadavg_1m_start"), machine.get("loadavg_1m_end"))
    out.append(
        f"machine: {machine.get('cpus')} CPUs, 1-min load average {fmt(load[0])} at start, "
        f"{fmt(load[1])} at end; run took {fmt(r.get('wall_s'), ' s')}"
    )
    if max(x or 0 for x in load) > 1.0:
        out.append("note: other work was running on this machine; the figures are skewed by it")
    for key in ("load_errors", "lone_errors"):
        attempts = r.get(key) or []
        if any(attempts):
            out.append(
                f"note: the leader changed during the {key.split('_')[0]} run with nobody "
                f"killed; errors per attempt {attempts}, figures from the last attempt"
            )
    if r.get("load_unforced_elections"):
        out.append(f"note: {r['load_unforced_elections']} unforced election(s) in the load stage")
    if r.get("failover_extra_elections"):
        out.append(
            f"note: {r['failover_extra_elections']} election(s) in the failover stage "
            "beyond one per kill (split votes or disruption)"
        )
    out += [f"error in stage {k[6:]}: {v}" for k, v in r.items() if k.startswith("error_")]
    if not r.get("safety_ok"):
        keys = (
            "lost",
            "duplicates",
            "misplaced_acks",
            "index_gaps",
            "failover_conflicting_acks",
            "replicas_agree",
        )
        out.append("SAFETY CHECK FAILED: " + ", ".join(f"{k}={r.get(k)}" for k in keys))
    return out


# -- main ------------------------------------------------------------------------


def run_stage(results: dict[str, Any], stage: str, work: Callable[[], dict[str, Any]]) -> None:
    try:
        results |= work()
    except Exception as error:
        log(f"stage {stage} failed: {error!r}")
        results[f"error_{stage}"] = repr(error)


def run(profile: Profile, root: Path, seed: int, children: Children) -> dict[str, Any]:
    results: dict[str, Any] = {"profile": profile.name, "seed": seed, "machine": machine_info()}
    log("stage 1: fsync and LMDB probes")
    run_stage(results, "fsync_probe", lambda: probe_fsync(root / "fsync"))
    run_stage(results, "lmdb_probe", lambda: probe_lmdb(root / "lmdb"))
    run_stage(results, "our_log", lambda: asyncio.run(bench_our_log(root, children, profile, seed)))
    log("stage 4: pysyncobj baseline (default settings)")
    run_stage(results, "pysyncobj", lambda: bench_pysyncobj(root / "pysyncobj", children, profile))
    log("stage 5: etcd")
    run_stage(results, "etcd", lambda: bench_etcd(root / "etcd", children, profile))
    for key in REQUIRED_KEYS:
        results.setdefault(key, None)  # a failed stage still leaves its keys, as null
    add_verdicts(results)
    results["safety_ok"] = safety_ok(results)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 60 s")
    parser.add_argument("--seed", type=int, default=None, help="seed for the kill moments")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path.cwd(),
        help="where the temp dir goes (the filesystem the probes measure)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (replica logs)")
    return parser.parse_args(argv)


def terminate(signum: int, frame: Any) -> None:
    # Turn SIGTERM into an exception so every `finally` (and its kills) runs.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, terminate)
    profile = QUICK if options.quick else FULL
    seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
    root = Path(tempfile.mkdtemp(prefix="log_bench-", dir=options.workdir))
    children = Children()
    started = time.monotonic()
    try:
        results = run(profile, root, seed, children)
    finally:
        children.close()
        if options.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["wall_s"] = time.monotonic() - started
    results["machine"]["loadavg_1m_end"] = os.getloadavg()[0]
    print(table(results))
    print(json.dumps(results, sort_keys=True))
    return 0 if results["safety_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
