"""Master fold benchmark: the pure fold and a replay from LMDB, next to a decode-only baseline.

    python benchmarks/fold_bench.py [--quick] [--events N] [--workdir DIR] [--keep] [--default-gc]

An "event" is one command in an entry's CommandBatch. The workload is a
steady state of a busy cluster, dominated by status updates and their
acknowledgements: allocation cycles offer agents to frameworks, each ACCEPT
launches 4 tasks, and every task reports STARTING, RUNNING, two health-check
updates and FINISHED, each acknowledged by its scheduler (about 10 commands per
task: 97% updates and acks, 3% offers and accepts). Commands travel 64 per
entry, as the leader batches concurrent proposals.

Stages:
  1. build the log (not timed) and check it folds cleanly: every task completes,
     no command is rejected, the invariants hold;
  2. baseline: decode every entry (Entry, CommandBatch, each command's case)
     without applying it, the floor any fold pays;
  3. pure fold: apply the batched entries to a fresh state, then the same
     commands as one entry each (a share of them), in events/s and entries/s;
  4. replay from LMDB: import the batched entries into a real event store (not
     timed), then read, decode and fold all of them as `meseta replay` does.

The fold runs under the master's collector thresholds (meseta.master.heap), as in
the master process and `meseta replay`; `--default-gc` keeps CPython's defaults.
It runs compiled by mypyc when meseta was installed from a wheel (`pip install .`,
see setup.py) and interpreted in an editable install; the table and the JSON
(`fold_compiled`) say which.

`--quick` takes the best of two runs of stages 2-4 (the same for each, so fold
and replay compare fairly: reading LMDB and checking CRCs adds about 2%).

A table goes to stdout, then the last line is one JSON object (keys include
`replay_events_per_s`). Progress goes to stderr. `--quick` (200k events) runs
in well under 60 s; the full run replays 1M events. The exit status is 1 when
the workload does not fold cleanly, otherwise 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meseta.log.codec import decode_entry
from meseta.log.v1.entries_pb2 import Entry
from meseta.master import fold, invariants, replay
from meseta.master.decide import SCHEMA_VERSION
from meseta.master.events import CommandRejected, TaskCompleted
from meseta.master.heap import tune_collector
from meseta.master.resources import parse, to_protos
from meseta.master.state import State
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m
from meseta.proto.mesos.v1.scheduler import scheduler_pb2 as s

BATCH = 64
AGENTS = 200
FRAMEWORKS = 10
WAVE_AGENTS = 16  # agents offered per allocation cycle
TASKS_PER_ACCEPT = 4
HEALTH_UPDATES = 2
TARGET_EVENTS_PER_S = 200_000
TARGET_REPLAY_S = 5.0  # for 1M events
T0_NS = 1_700_000_000_000_000_000
CLUSTER = "bench"


@dataclass(frozen=True)
class Profile:
    name: str
    events: int
    single_share: float  # share of the events also folded as one entry each


QUICK = Profile("quick", 200_000, 0.25)
FULL = Profile("full", 1_000_000, 0.2)


def log(message: str) -> None:
    print(f"[fold_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the workload ------------------------------------------------------------------


def framework_id(n: int) -> str:
    return f"{CLUSTER}-{n:04d}"


def setup_commands() -> Iterator[c.Command]:
    yield c.Command(init_cluster=c.InitCluster(cluster_id=CLUSTER))
    info = m.MasterInfo(id="master-1", ip=0x7F000001, port=5050)
    yield c.Command(elect_leader=c.ElectLeader(term=1, master_info=info, config=c.MasterConfig()))
    agent_resources = to_protos(parse("cpus:16;mem:65536;disk:100000;ports:[31000-32000]"))
    for n in range(AGENTS):
        agent = m.AgentInfo(hostname=f"agent-{n}.example", port=5051)
        agent.resources.extend(agent_resources)
        yield c.Command(register_agent=c.RegisterAgent(agent_info=agent, stream_id=f"as-{n}"))
    for n in range(FRAMEWORKS):
        info = m.FrameworkInfo(user="svc", name=f"framework-{n}", failover_timeout=604800)
        info.capabilities.add(type=m.FrameworkInfo.Capability.PARTITION_AWARE)
        yield c.Command(
            subscribe_framework=c.SubscribeFramework(framework_info=info, stream_id=f"fs-{n}")
        )


class Workload:
    """Steady-state commands; ids are predictable because every command is valid."""

    def __init__(self) -> None:
        self.offers = 0
        self.tasks = 0
        self.uuids = 0
        self.wave = 0
        self.offer_resources = to_protos(parse("cpus:4;mem:8192"))
        self.task_resources = to_protos(parse("cpus:1;mem:2048"))

    def uuid(self) -> bytes:
        self.uuids += 1
        return self.uuids.to_bytes(16, "big")

    def status(self, fid: str, aid: str, tid: str, state: int, **fields: Any) -> c.Command:
        status = m.TaskStatus(
            state=state,  # type: ignore[arg-type]
            uuid=self.uuid(),
            source=m.TaskStatus.SOURCE_EXECUTOR,
            timestamp=1.7e9 + self.uuids / 1000,
            **fields,
        )
        status.task_id.value = tid
        status.agent_id.value = aid
        status.executor_id.value = tid  # the command executor runs one task
        update = c.UpdateTaskStatus(agent_id=aid, framework_id=fid, status=status)
        update.latest_state = state  # type: ignore[assignment]
        return c.Command(update_task_status=update)

    def ack(self, update: c.Command) -> c.Command:
        body = update.update_task_status
        ack = c.AcknowledgeTaskStatus(
            framework_id=body.framework_id,
            agent_id=body.agent_id,
            task_id=body.status.task_id.value,
            uuid=body.status.uuid,
        )
        return c.Command(acknowledge_task_status=ack)

    def wave_commands(self) -> list[c.Command]:
        """One allocation cycle and the whole life of the tasks it launches."""
        agents = [(self.wave * WAVE_AGENTS + i) % AGENTS for i in range(WAVE_AGENTS)]
        self.wave += 1
        create = c.CreateOffers(base_index=0)
        launched: list[tuple[str, str, str]] = []
        accepts = []
        for n in agents:
            fid, aid = framework_id(n % FRAMEWORKS), f"{CLUSTER}-S{n}"
            decision = create.offers.add(framework_id=fid, agent_id=aid, role="*")
            decision.resources.extend(self.offer_resources)
            self.offers += 1
            accept = s.Call.Accept()
            accept.offer_ids.add(value=f"{CLUSTER}-O{self.offers}")
            accept.filters.refuse_seconds = 0
            operation = accept.operations.add(type=m.Offer.Operation.LAUNCH)
            for _ in range(TASKS_PER_ACCEPT):
                self.tasks += 1
                tid = f"task-{self.tasks:09d}"
                task = operation.launch.task_infos.add(name=tid)
                task.task_id.value = tid
                task.agent_id.value = aid
                task.command.value = "/usr/bin/serve --port $PORT0"
                task.resources.extend(self.task_resources)
                launched.append((fid, aid, tid))
            accepts.append(c.Command(accept_offers=c.AcceptOffers(framework_id=fid, accept=accept)))
        out = [c.Command(create_offers=create), *accepts]
        steps: list[tuple[int, dict[str, Any]]] = [(m.TASK_STARTING, {}), (m.TASK_RUNNING, {})]
        steps += [(m.TASK_RUNNING, {"healthy": True})] * HEALTH_UPDATES
        steps.append((m.TASK_FINISHED, {"message": "Command exited with status 0"}))
        for state, fields in steps:
            updates = [self.status(fid, aid, tid, state, **fields) for fid, aid, tid in launched]
            out += updates
            out += [self.ack(update) for update in updates]
        return out


def build_commands(events: int) -> list[c.Command]:
    commands = list(setup_commands())
    workload = Workload()
    while len(commands) < events:
        commands += workload.wave_commands()
    return commands


def entries_of(commands: list[c.Command], per_entry: int, first: int = 0) -> list[bytes]:
    payloads = []
    for n, start in enumerate(range(0, len(commands), per_entry), start=first):
        entry = Entry(
            events=c.CommandBatch(commands=commands[start : start + per_entry]).SerializeToString()
        )
        entry.header.timestamp_ns = T0_NS + n * 1_000_000
        entry.header.proposal_id = b"bench-%d" % n
        entry.header.schema_version = SCHEMA_VERSION
        payloads.append(entry.SerializeToString())
    return payloads


# -- stages --------------------------------------------------------------------------


def check_clean(payloads: list[bytes], commands: int) -> list[str]:
    """Fold once with eyes open: the workload must be valid, or the rates mean nothing."""
    state = State()
    problems: list[str] = []
    completed = 0
    for index, payload in enumerate(payloads, start=1):
        for event in fold.apply(state, decode_entry(payload), index):
            if isinstance(event, CommandRejected):
                problems.append(f"entry {index}: {event}")
            elif isinstance(event, TaskCompleted):
                completed += 1
    launched = sum(len(f.tasks) for f in state.frameworks.values()) + completed
    problems += invariants.check(state)
    if launched == 0 or state.counters.offers == 0:
        problems.append("no task was launched")
    log(f"clean fold: {commands} commands, {launched} tasks launched, {completed} completed")
    return problems[:5]


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float  # this process's CPU time: less sensitive to busy neighbours than wall time


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.timing = Timing(time.perf_counter() - self.wall, time.process_time() - self.cpu)


def decode_only(payloads: list[bytes]) -> Timing:
    with Stopwatch() as watch:
        for payload in payloads:
            entry = decode_entry(payload)
            for command in fold.decode(entry).commands:
                command.WhichOneof("body")
    return watch.timing


def fold_only(payloads: list[bytes]) -> Timing:
    state = State()
    apply = fold.apply
    with Stopwatch() as watch:
        for index, payload in enumerate(payloads, start=1):
            apply(state, decode_entry(payload), index)
    return watch.timing


def replay_from_store(data: Path) -> tuple[Timing, int]:
    with Stopwatch() as watch:
        result = replay.replay(replay.read_store(data))
    return watch.timing, result.entries


def best_of(runs: int, measure: Any, *args: Any) -> Timing:
    timings = [measure(*args) for _ in range(runs)]
    return Timing(min(t.wall_s for t in timings), min(t.cpu_s for t in timings))


def run(profile: Profile, workdir: Path) -> dict[str, Any]:
    log(f"building {profile.events:,} commands")
    commands = build_commands(profile.events)
    batched = entries_of(commands, BATCH)
    single_count = int(len(commands) * profile.single_share)
    singles = entries_of(commands[:single_count], 1)
    problems = check_clean(batched, len(commands))
    if problems:
        raise SystemExit(f"the workload does not fold cleanly: {problems}")

    runs = 1 if profile.name == "full" else 2
    log("baseline: decode only")
    decode_s = best_of(runs, decode_only, batched)
    log("pure fold, 64 commands per entry")
    fold_s = best_of(runs, fold_only, batched)
    log(f"pure fold, one command per entry ({single_count:,} commands)")
    single_s = best_of(runs, fold_only, singles)

    data = workdir / "replica"
    log(f"importing {len(batched):,} entries into an LMDB event store")
    replay.import_entries(data, batched)
    log("replay from LMDB: read, decode, fold")
    replays = [replay_from_store(data) for _ in range(runs)]
    assert all(replayed == len(batched) for _, replayed in replays)
    replay_s = Timing(min(t.wall_s for t, _ in replays), min(t.cpu_s for t, _ in replays))

    events = len(commands)
    return {
        "profile": profile.name,
        "events": events,
        "entries": len(batched),
        "commands_per_entry": BATCH,
        "decode_events_per_s": round(events / decode_s.wall_s),
        "fold_events_per_s": round(events / fold_s.wall_s),
        "fold_events_per_cpu_s": round(events / fold_s.cpu_s),
        "fold_entries_per_s": round(len(batched) / fold_s.wall_s),
        "fold_single_events_per_s": round(single_count / single_s.wall_s),
        "fold_single_events_per_cpu_s": round(single_count / single_s.cpu_s),
        "fold_overhead_ratio": round(fold_s.cpu_s / decode_s.cpu_s, 1),
        "replay_events": events,
        "replay_s": round(replay_s.wall_s, 2),
        "replay_cpu_s": round(replay_s.cpu_s, 2),
        "replay_events_per_s": round(events / replay_s.wall_s),
        "replay_events_per_cpu_s": round(events / replay_s.cpu_s),
        "replay_1m_s_projected": round(replay_s.wall_s * 1_000_000 / events, 1),
        "target_events_per_s": TARGET_EVENTS_PER_S,
        "meets_target": events / replay_s.wall_s >= TARGET_EVENTS_PER_S,
        "python": platform.python_version(),
        "gc_thresholds": list(gc.get_threshold()),
        "fold_compiled": fold.compiled(),
        "machine_sum_range_1e6_ms": round(machine_speed() * 1000, 1),
    }


def machine_speed() -> float:
    """Seconds for sum(range(1e6)): a yardstick for comparing machines (about 0.012 s on a
    2023 desktop core)."""
    return min(_timed_sum() for _ in range(5))


def _timed_sum() -> float:
    started = time.perf_counter()
    sum(range(1_000_000))
    return time.perf_counter() - started


def table(results: dict[str, Any]) -> str:
    rows = [
        ("baseline: decode only", f"{results['decode_events_per_s']:>12,} events/s"),
        (
            "fold, 64 per entry",
            f"{results['fold_events_per_s']:>12,} events/s"
            f" ({results['fold_events_per_cpu_s']:,} per CPU second)",
        ),
        ("", f"{results['fold_entries_per_s']:>12,} entries/s"),
        (
            "fold, 1 per entry",
            f"{results['fold_single_events_per_s']:>12,} events/s"
            f" ({results['fold_single_events_per_cpu_s']:,} per CPU second)",
        ),
        ("fold / decode CPU time", f"{results['fold_overhead_ratio']:>12}x"),
        (
            f"replay from LMDB ({results['replay_events']:,} events)",
            f"{results['replay_events_per_s']:>12,} events/s in {results['replay_s']} s"
            f" ({results['replay_events_per_cpu_s']:,} per CPU second)",
        ),
        ("replay of 1M events (projected)", f"{results['replay_1m_s_projected']:>12} s"),
        ("machine: sum(range(1e6))", f"{results['machine_sum_range_1e6_ms']:>12} ms"),
        ("fold", "compiled (mypyc)" if results["fold_compiled"] else "interpreted"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k events, under 60 s")
    parser.add_argument("--events", type=int, default=None, help="override the event count")
    parser.add_argument("--workdir", type=Path, default=None, help="where the LMDB store goes")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep CPython's collector thresholds instead of the master's (for comparison)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    profile = QUICK if options.quick else FULL
    if options.events is not None:
        profile = Profile(profile.name, options.events, profile.single_share)
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="fold_bench-"))
    if not options.default_gc:
        tune_collector()  # the collector settings of the master and `meseta replay`
    gc.collect()
    try:
        results = run(profile, workdir)
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(results))
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
