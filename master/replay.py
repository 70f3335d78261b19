"""Replay a log through the master fold: a debugging tool (in the spirit of Nomad's raftutil).

    python -m meseta.master.replay (--data DIR | --file FILE) [--until INDEX]
                                   [--events] [--check] [--state]
    meseta replay ...  (the same)

Reads committed entries from a replica's event store (`--data`, as `meseta log
dump` does) or from an entry file (`--file`: each entry as a 4-byte big-endian
length and the encoded `Entry`, indexes counted from 1), applies them with
`fold.apply` up to `--until`, and prints one JSON object as the last line: the
last applied index, entry and command counts and the state digest.

  --events  every domain event as a JSON line ({"index", "event", fields...})
  --check   run `invariants.check` after every entry; stop at the first violation
  --state   a JSON summary of the final state before the last line

Exit status: 0 done, 1 an invariant broke, 2 nothing to read. This module is
an I/O shell around the pure fold; the rendering helpers (`event_fields`,
`render_event`) are shared with the golden tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message

from meseta.log.codec import decode_entry
from meseta.master import fold, invariants
from meseta.master.digest import digest
from meseta.master.events import DomainEvent
from meseta.master.heap import tune_collector
from meseta.master.resources import Resources, format_resources
from meseta.master.state import InverseOffer, Offer, State, Task
from meseta.proto.mesos.v1 import mesos_pb2

ENTRY_LENGTH = struct.Struct(">I")

# Fields that only echo what a command carried; `render_event(brief=True)` leaves them out.
ECHO_FIELDS = frozenset({"info", "framework_info", "master_info"})

EventSink = Callable[[int, list[DomainEvent]], None]


class InvariantBroken(Exception):
    def __init__(self, index: int, errors: list[str]) -> None:
        super().__init__(f"invariants broken after entry {index}: {errors}")
        self.index = index
        self.errors = errors


@dataclasses.dataclass(slots=True)
class Replayed:
    state: State
    entries: int = 0


# -- reading entries ---------------------------------------------------------------


def write_entry_file(path: Path, payloads: Iterable[bytes]) -> int:
    """Write encoded entries as length-prefixed records; return how many."""
    count = 0
    with path.open("wb") as file:
        for payload in payloads:
            file.write(ENTRY_LENGTH.pack(len(payload)))
            file.write(payload)
            count += 1
    return count


def read_entry_records(file: BinaryIO, source: str) -> Iterator[tuple[int, bytes]]:
    index = 0
    while True:
        head = file.read(ENTRY_LENGTH.size)
        if not head:
            return
        index += 1
        if len(head) != ENTRY_LENGTH.size:
            raise ValueError(f"{source}: entry {index} has a truncated length prefix")
        (length,) = ENTRY_LENGTH.unpack(head)
        payload = file.read(length)
        if len(payload) != length:
            raise ValueError(f"{source}: entry {index} is truncated")
        yield index, payload


def read_entry_file(path: Path) -> Iterator[tuple[int, bytes]]:
    """(index, encoded entry) of an entry file, indexes counted from 1."""
    with path.open("rb") as file:
        yield from read_entry_records(file, str(path))


def read_store(data: Path, start: int = 1) -> Iterator[tuple[int, bytes]]:
    """(index, encoded entry) of a replica's event store under `data`."""
    from meseta.log.disk import LogDisk
    from meseta.log.store import EventStore

    disk = LogDisk(data / "store")
    try:
        yield from EventStore(disk).iter_all(start)
    finally:
        disk.close()


def import_entries(data: Path, payloads: Iterable[bytes], *, chunk: int = 4096) -> int:
    """Append encoded entries to the event store under `data` (tests and benchmarks only).

    Entries go straight into the store, as a replica's apply step would put them,
    in transactions of `chunk` entries. Never point this at a live replica.
    """
    from meseta.log.codec import encode_batch
    from meseta.log.disk import LogDisk
    from meseta.log.sequencer import sequence_batch
    from meseta.log.store import EventStore
    from meseta.log.v1.replication_pb2 import Batch

    disk = LogDisk(data / "store", fsync=False)
    try:
        store = EventStore(disk)
        pending: list[bytes] = []
        count = 0

        def flush() -> None:
            batch = Batch()
            batch.ParseFromString(encode_batch(pending))
            sequenced = sequence_batch(batch, store.last_index, store.index_of)
            store.stage(sequenced, store.last_raft_index + 1)
            disk.commit()
            pending.clear()

        for payload in payloads:
            pending.append(payload)
            count += 1
            if len(pending) >= chunk:
                flush()
        if pending:
            flush()
        return count
    finally:
        disk.close()


# -- replaying -----------------------------------------------------------------------


def replay(
    entries: Iterable[tuple[int, bytes]],
    *,
    until: int | None = None,
    check: bool = False,
    on_events: EventSink | None = None,
    state: State | None = None,
) -> Replayed:
    """Apply encoded entries in order; InvariantBroken when `check` finds a violation."""
    result = Replayed(state if state is not None else State())
    apply = fold.apply
    for index, payload in entries:
        if until is not None and index > until:
            break
        entry = decode_entry(payload)
        events = apply(result.state, entry, index)
        result.entries += 1
        if check:
            errors = invariants.check(result.state)
            if errors:
                raise InvariantBroken(index, errors)
        if on_events is not None:
            on_events(index, events)
    return result


# -- rendering -----------------------------------------------------------------------


def sorted_keys(value: Any) -> Any:
    """JSON with every object's keys sorted: protobuf maps iterate in an order that
    depends on the process's hash seed."""
    if isinstance(value, dict):
        return {key: sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(item) for item in value]
    return value


def jsonable(value: object) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Message):
        return sorted_keys(json_format.MessageToDict(value, preserving_proto_field_name=True))
    if isinstance(value, Resources):
        return format_resources(value)
    if isinstance(value, Task):
        return {
            "task_id": value.task_id,
            "framework_id": value.framework_id,
            "agent_id": value.agent_id,
            "executor_id": value.executor_id,
            "role": value.role,
            "state": mesos_pb2.TaskState.Name(value.state),
            "resources": format_resources(value.resources),
        }
    if isinstance(value, Offer):
        offer = {
            "id": value.id,
            "framework_id": value.framework_id,
            "agent_id": value.agent_id,
            "role": value.role,
            "resources": format_resources(value.resources),
        }
        if value.unavailability is not None:
            offer["unavailability"] = jsonable(value.unavailability)
        return offer
    if isinstance(value, InverseOffer):
        return {
            "id": value.id,
            "framework_id": value.framework_id,
            "agent_id": value.agent_id,
            "unavailability": jsonable(value.unavailability),
        }
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    raise TypeError(f"cannot render {type(value).__name__}")


def event_fields(event: DomainEvent, *, brief: bool = False) -> dict[str, Any]:
    """An event's fields as JSON-ready values (task states by name, bytes in hex).

    `brief` leaves out the echo fields, and fields left empty at an empty default: a
    field added to an event later comes with such a default, so golden files written
    before it stay valid and show it only where it is set."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(event):
        if brief and field.name in ECHO_FIELDS:
            continue
        value = getattr(event, field.name)
        if brief and not value and field.default is not dataclasses.MISSING and not field.default:
            continue
        if field.name == "state" and isinstance(value, int):
            out[field.name] = mesos_pb2.TaskState.Name(value)
        else:
            out[field.name] = jsonable(value)
    return out


def render_event(event: DomainEvent, *, brief: bool = True) -> str:
    """One stable line: the event's name, then `field=<compact JSON>` for each field."""
    parts = [type(event).__name__]
    for name, value in event_fields(event, brief=brief).items():
        parts.append(f"{name}={orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()}")
    return " ".join(parts)


def state_summary(state: State) -> dict[str, Any]:
    tasks_by_state: dict[str, int] = {}
    frameworks = {}
    for framework in state.frameworks.values():
        for task in [*framework.tasks.values(), *framework.unreachable_tasks.values()]:
            name = mesos_pb2.TaskState.Name(task.state)
            tasks_by_state[name] = tasks_by_state.get(name, 0) + 1
        frameworks[framework.id] = {
            "name": framework.info.name,
            "status": framework.status.value,
            "roles": list(framework.roles),
            "tasks": len(framework.tasks),
            "unreachable_tasks": len(framework.unreachable_tasks),
            "offers": len(framework.offers),
            "allocated": {role: format_resources(r) for role, r in framework.allocated.items()},
        }
    agents = {
        agent.id: {
            "hostname": agent.hostname,
            "status": agent.status.value,
            "total": format_resources(agent.total),
            "allocated": format_resources(agent.allocated),
            "tasks": len(agent.tasks),
            "executors": len(agent.executors),
            "offers": len(agent.offers),
        }
        for agent in state.agents.values()
    }
    return {
        "cluster_id": state.cluster_id,
        "applied_index": state.applied_index,
        "now_ns": state.now_ns,
        "leader_term": state.leader_term,
        "offers": len(state.offers),
        "tasks_by_state": dict(sorted(tasks_by_state.items())),
        "cluster_total": format_resources(state.cluster_total),
        "dirty_agents": len(state.dirty_agents),
        "awaiting_agents": len(state.awaiting_agents),
        "failover_deadlines": len(state.failover_deadlines),
        "recent_proposals": len(state.recent_proposals),
        "frameworks": frameworks,
        "agents": agents,
    }


# -- the command line ----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meseta replay", description="Replay a log through the master fold."
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a replica's data directory")
    source.add_argument("--file", type=Path, help="a file of length-prefixed encoded entries")
    parser.add_argument("--until", type=int, default=None, help="last index to apply")
    parser.add_argument("--events", action="store_true", help="print domain events (JSON lines)")
    parser.add_argument("--check", action="store_true", help="check invariants after each entry")
    parser.add_argument("--state", action="store_true", help="print a JSON summary of the state")


def write_line(row: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(row).decode() + "\n")


def print_events(index: int, events: list[DomainEvent]) -> None:
    for event in events:
        write_line({"index": index, "event": type(event).__name__, **event_fields(event)})


def main(argv: Sequence[str] | None = None) -> int:
    tune_collector()  # as the master process runs its fold
    return run(build_parser().parse_args(argv))


def run(options: argparse.Namespace) -> int:
    if options.data is not None:
        if not (options.data / "store" / "data.mdb").exists():
            print(f"meseta replay: no log store under {options.data}", file=sys.stderr)
            return 2
        entries = read_store(options.data)
    else:
        if not options.file.is_file():
            print(f"meseta replay: no entry file at {options.file}", file=sys.stderr)
            return 2
        entries = read_entry_file(options.file)
    try:
        result = replay(
            entries,
            until=options.until,
            check=options.check,
            on_events=print_events if options.events else None,
        )
    except InvariantBroken as broken:
        print(f"meseta replay: {broken}", file=sys.stderr)
        return 1
    state = result.state
    if options.state:
        write_line(state_summary(state))
    write_line(
        {"last_index": state.applied_index, "entries": result.entries, "digest": digest(state)}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
