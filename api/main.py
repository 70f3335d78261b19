"""`meseta master`: run one master replica (Raft log + fold + HTTP API)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from meseta.api.flags import add_logging_arguments, configure_logging, ip_flag
from meseta.api.master import MasterReplica, master_info
from meseta.log.raft import RaftConfig, RaftLog
from meseta.master import fold
from meseta.master.allocator import AllocatorConfig, parse_min_allocatable
from meseta.master.durations import parse_duration_ns
from meseta.master.heap import tune_collector
from meseta.master.leader import LeaderConfig
from meseta.master.v1 import commands_pb2
from meseta.projections.operator_stream import DEFAULT_MAX_SUBSCRIBERS

NS_PER_S = 1e9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hostname", default=None, help="name advertised in MasterInfo (default: the IP)"
    )
    parser.add_argument("--ip", default="127.0.0.1", help="address the HTTP API listens on")
    parser.add_argument(
        "--advertise_ip", default=None, help="IP advertised to reach this master (default: --ip)"
    )
    parser.add_argument("--port", type=int, default=5050)
    parser.add_argument("--work_dir", type=Path, required=True, help="this replica's data")
    parser.add_argument(
        "--raft_address", default=None, help="host:port for log replication (voting replicas)"
    )
    parser.add_argument(
        "--read_replica",
        action="store_true",
        help="a non-voting read replica: follows the log from --peers and serves reads from "
        "its own view, never votes or leads, redirects writes (no --raft_address)",
    )
    parser.add_argument("--peers", required=True, help="comma-separated raft addresses of all")
    parser.add_argument("--secret_file", type=Path, required=True, help="shared peer secret")
    parser.add_argument(
        "--raft_election_timeout",
        default="500ms",
        help="a follower that hears no leader for a random time in [T, 2T] starts an election; "
        "shorter fails over faster, longer rides out busy hosts (GIL, CPU contention)",
    )
    parser.add_argument("--allocation_interval", default="1secs")
    parser.add_argument("--offer_timeout", default=None, help="unset: offers never time out")
    parser.add_argument("--agent_reregister_timeout", default="10mins")
    parser.add_argument("--agent_ping_timeout", default="15secs")
    parser.add_argument("--max_agent_ping_timeouts", type=int, default=5)
    parser.add_argument("--min_allocatable_resources", default="cpus:0.01|mem:32")
    parser.add_argument("--max_completed_tasks_per_framework", type=int, default=1000)
    parser.add_argument(
        "--max_operator_event_stream_subscribers",
        type=int,
        default=DEFAULT_MAX_SUBSCRIBERS,
        help="operator SUBSCRIBE and /api/v1/events streams; beyond it the oldest is closed",
    )
    parser.add_argument(
        "--warm_encodings",
        default="legacy,protobuf",
        help="what every replica keeps encoded in the background, so that a new leader or a "
        "standby answers its first big read at once: any of legacy (/state, /frameworks, "
        "/slaves, /tasks), protobuf and json (v1 operator reads); json costs about 3.5 "
        "times legacy per changed task; empty: none",
    )
    parser.add_argument(
        "--cluster", default=None, help="a human-readable name for the cluster (in /state, UI)"
    )
    parser.add_argument(
        "--publish_per_framework_metrics",
        default="true",
        help="publish master/frameworks/<name>/<id>/* in /metrics/snapshot for every "
        "framework not removed (calls, events, offers, operations, tasks, suppressed roles)",
    )
    add_logging_arguments(parser)


def raft_address(options: argparse.Namespace) -> str | None:
    """This replica's Raft address; None for a read replica."""
    if options.read_replica:
        if options.raft_address:
            raise ValueError("a --read_replica does not vote, so it takes no --raft_address")
        return None
    if not options.raft_address:
        raise ValueError("--raft_address is required (or --read_replica)")
    return str(options.raft_address)


def leader_config(options: argparse.Namespace) -> LeaderConfig:
    master_config = commands_pb2.MasterConfig(
        offer_timeout_ns=parse_duration_ns(options.offer_timeout) if options.offer_timeout else 0,
        agent_reregister_timeout_ns=parse_duration_ns(options.agent_reregister_timeout),
        max_completed_tasks_per_framework=options.max_completed_tasks_per_framework,
    )
    return LeaderConfig(
        master_info=master_info(
            options.hostname,
            options.ip,
            options.port,
            ip_flag(options.advertise_ip, "advertise_ip"),
        ),
        master_config=master_config,
        allocator=AllocatorConfig(
            min_allocatable=parse_min_allocatable(options.min_allocatable_resources)
        ),
        allocation_interval_s=parse_duration_ns(options.allocation_interval) / NS_PER_S,
        agent_ping_timeout_s=parse_duration_ns(options.agent_ping_timeout) / NS_PER_S,
        max_agent_ping_timeouts=options.max_agent_ping_timeouts,
    )


def raft_config(options: argparse.Namespace) -> RaftConfig:
    low_s = parse_duration_ns(options.raft_election_timeout) / NS_PER_S
    if low_s <= 0:
        raise ValueError("--raft_election_timeout must be positive")
    high_s = 2 * low_s
    address = raft_address(options)  # flag mistakes before reading files
    return RaftConfig(
        data_dir=options.work_dir,
        secret=options.secret_file.read_text().strip(),
        address=address,
        peers=tuple(p for p in options.peers.split(",") if p),
        election_timeout_s=(low_s, high_s),
        # An isolated leader steps down a little after the others can have elected anew.
        leader_step_down_s=max(1.2, 1.2 * high_s),
        connection_timeout_s=max(1.0, high_s),
    )


WARM_ENCODINGS = {"legacy": "legacy", "protobuf": "pb", "json": "json"}


def warm_forms(text: str) -> tuple[str, ...]:
    """`--warm_encodings` as the warmer's encoding kinds."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WARM_ENCODINGS]
    if unknown:
        choices = ", ".join(WARM_ENCODINGS)
        raise ValueError(f"--warm_encodings: unknown {', '.join(unknown)} (choose from {choices})")
    return tuple(dict.fromkeys(WARM_ENCODINGS[name] for name in names))


def given_flags(options: argparse.Namespace) -> dict[str, str]:
    """The flags as Mesos's /flags lists them: every set flag, its value as a string."""
    values = vars(options)
    return {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in values.items()
        if name not in ("command", "run") and value is not None
    }


async def serve(options: argparse.Namespace) -> None:
    config = leader_config(options)
    forms = warm_forms(options.warm_encodings)
    raft = RaftLog(raft_config(options))
    replica = MasterReplica.build(
        raft,
        config,
        options.ip,
        options.port,
        view_dir=options.work_dir / "views",
        max_operator_subscribers=options.max_operator_event_stream_subscribers,
        flags=given_flags(options),
        warm_forms=forms,
    )
    await replica.start()
    logging.getLogger("meseta").info(
        "master listening on %s:%d (fold %s)",
        options.ip,
        options.port,
        "compiled" if fold.compiled() else "interpreted",
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        await replica.stop()
        await raft.close()


def run(options: argparse.Namespace) -> int:
    try:
        configure_logging(options.logging_level, options.log_dir, "master", quiet=options.quiet)
        raft_config(options)  # flag errors before anything starts
        leader_config(options)
        warm_forms(options.warm_encodings)
    except (ValueError, OSError) as error:
        raise SystemExit(f"meseta master: {error}") from None
    tune_collector()
    asyncio.run(serve(options))
    return 0
