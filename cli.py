"""The `meseta` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from meseta import __version__


def _require_store(data: Path) -> bool:
    if (data / "store" / "data.mdb").exists():
        return True
    print(
        f"meseta: no log store under {data} (expected {data / 'store' / 'data.mdb'})",
        file=sys.stderr,
    )
    return False


def log_verify(options: argparse.Namespace) -> int:
    """Check every stored entry's CRC and the index sequence."""
    if not _require_store(options.data):
        return 2
    from meseta.log.disk import LogDisk
    from meseta.log.errors import LogCorrupted
    from meseta.log.store import EventStore

    try:
        disk = LogDisk(options.data / "store")
        try:
            count = EventStore(disk).verify()
        finally:
            disk.close()
    except LogCorrupted as error:
        print(f"CORRUPT: {error}", file=sys.stderr)
        return 1
    print(f"ok: {count} entries verified in {options.data / 'store'}")
    return 0


def log_dump(options: argparse.Namespace) -> int:
    """Print stored entries as JSON lines (header fields and body size)."""
    if not _require_store(options.data):
        return 2
    from meseta.log.codec import decode_entry
    from meseta.log.disk import LogDisk
    from meseta.log.store import EventStore

    disk = LogDisk(options.data / "store")
    try:
        store = EventStore(disk)
        stop = options.stop if options.stop is not None else store.last_index + 1
        for index, payload in store.iter_all(options.start):
            if index >= stop:
                break
            entry = decode_entry(payload)
            header = entry.header
            row = {
                "index": index,
                "proposal_id": header.proposal_id.hex(),
                "timestamp_ns": header.timestamp_ns,
                "proposer_term": header.proposer_term,
                "schema_version": header.schema_version,
                "ignorable_if_unknown": header.ignorable_if_unknown,
                "events_bytes": len(entry.events),
            }
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
    finally:
        disk.close()
    return 0


def log_node(options: argparse.Namespace) -> int:
    from meseta.log import node

    node.main(options.args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meseta", description="meseta cluster manager")
    parser.add_argument("--version", action="version", version=f"meseta {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    log = commands.add_parser("log", help="inspect and run the replicated log")
    log_commands = log.add_subparsers(dest="log_command", required=True)
    verify = log_commands.add_parser("verify", help=log_verify.__doc__)
    verify.add_argument("--data", type=Path, required=True, help="a replica's data directory")
    verify.set_defaults(run=log_verify)
    dump = log_commands.add_parser("dump", help=log_dump.__doc__)
    dump.add_argument("--data", type=Path, required=True, help="a replica's data directory")
    dump.add_argument("--start", type=int, default=1)
    dump.add_argument("--stop", type=int, default=None, help="first index not printed")
    dump.set_defaults(run=log_dump)
    node = log_commands.add_parser(
        "node", help="run one log replica with a JSON control API (see --help)", add_help=False
    )
    node.add_argument("args", nargs=argparse.REMAINDER)
    node.set_defaults(run=log_node)

    from meseta.api import main as master_main

    master = commands.add_parser("master", help="run one master replica")
    master_main.add_arguments(master)
    master.set_defaults(run=master_main.run)

    from meseta.master import replay as master_replay

    replay = commands.add_parser("replay", help="replay a log through the master fold")
    master_replay.add_arguments(replay)
    replay.set_defaults(run=master_replay.run)

    from meseta.agent import main as agent_main

    agent = commands.add_parser("agent", help="run an agent (executors, status updates)")
    agent_main.add_arguments(agent)
    agent.set_defaults(run=agent_main.run)

    from meseta import local_cluster

    up = commands.add_parser("up", help="run a local cluster: 3 masters and 1 agent")
    local_cluster.add_arguments(up)
    up.set_defaults(run=local_cluster.run)

    from meseta import cluster_cli

    for view, text in (
        ("agents", "list the agents, their resources in use and in total"),
        ("frameworks", "list the frameworks and what they use"),
        ("tasks", "list the tasks, their states and health (like mesos-ps)"),
        ("cat", "print a file of a task's sandbox, stdout by default (-f: follow it)"),
        ("ls", "list the files of a task's sandbox, or of a folder in it (like mesos-ls)"),
    ):
        cluster_cli.add_arguments(commands.add_parser(view, help=text), view)

    from meseta import events_cli

    events = commands.add_parser(
        "events", help="follow the operator event stream, across master failovers"
    )
    events_cli.add_arguments(events)

    from meseta import exec_cli, execute

    exec_parser = commands.add_parser(
        "exec", help="run a command in a running task's container (mesos task exec)"
    )
    exec_cli.add_arguments(exec_parser)

    run_task = commands.add_parser("execute", help="run one task and follow it (mesos-execute)")
    execute.add_arguments(run_task)
    run_task.set_defaults(run=execute.run)
    return parser


# The daemons take their flags the way Mesos's do (environment, booleans, file:// values).
MESOS_STYLE_COMMANDS = ("master", "agent")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in MESOS_STYLE_COMMANDS:
        from meseta.api.flags import FlagLoadError, mesos_argv

        try:
            words[1:] = mesos_argv(words[1:], os.environ, subcommand(parser, words[0]))
        except FlagLoadError as error:
            print(f"meseta {words[0]}: {error}", file=sys.stderr)
            return 1
    options = parser.parse_args(words)
    return int(options.run(options))


def subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    raise KeyError(name)


if __name__ == "__main__":
    sys.exit(main())
