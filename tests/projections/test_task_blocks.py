"""Frameworks' task lists kept in blocks (projections/assembly.py `Blocks`).

`Blocks` is checked against a plain list under random appends, removals and
changes; then frameworks of more tasks than one block are driven through the
view with synthetic task events (adds, status updates, moves to and from the
unreachable list, completions evicting the oldest completed task), and every
response assembled from the blocks must equal one assembled with no cache, a
change must re-join only its block, and joining must take a step per block.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest
from support.view_responses import drop_caches, responses

from meseta.api import encodings
from meseta.api import state_json as sj
from meseta.api.state_endpoints import legacy_work
from meseta.master import events as ev
from meseta.master.resources import parse
from meseta.master.state import Task
from meseta.projections import assembly
from meseta.projections.assembly import PROTOBUF, Blocks
from meseta.projections.cluster import ClusterView
from meseta.projections.records import TASK_LISTS, FrameworkRecord
from meseta.proto.mesos.v1 import mesos_pb2 as m

Reason = m.TaskStatus.Reason
RESOURCES = parse("cpus:0.1;mem:32")
AGENTS = 4


class Item:
    """A list element whose runs say what they joined."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.version = 0

    def text(self) -> str:
        return f"{self.number}.{self.version}"


def joined(items: list[Item]) -> bytes:
    return ",".join(item.text() for item in items).encode()


def check_blocks(blocks: Blocks[Item], reference: list[Item], size: int) -> None:
    assert list(blocks.items()) == reference
    assert len(blocks) == len(reference)
    sizes = [len(block.items) for block in blocks.blocks]
    assert all(0 < n <= size for n in sizes)
    # Neighbours never fit in one block, so blocks are more than half full on average.
    assert all(a + b > size for a, b in itertools.pairwise(sizes))
    for block in blocks.blocks:
        assert all(blocks.where[item] is block for item in block.items)
    assert b",".join(blocks.runs("k", joined)) == joined(reference)


@pytest.mark.parametrize("size", [1, 2, 5, 16])
def test_blocks_follow_a_plain_list(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assembly, "BLOCK_ITEMS", size)
    rng = random.Random(size)
    reference = [Item(n) for n in range(3 * size + 1)]
    blocks = Blocks(reference)
    check_blocks(blocks, reference, size)
    serial = len(reference)
    for _ in range(600):
        roll = rng.random()
        if roll < 0.4 or not reference:
            serial += 1
            reference.append(Item(serial))
            blocks.append(reference[-1])
        elif roll < 0.8:
            # Anywhere, but often at the front (a bounded list evicting its oldest).
            item = reference.pop(0 if rng.random() < 0.3 else rng.randrange(len(reference)))
            blocks.remove(item)
        else:
            item = rng.choice(reference)
            item.version += 1
            blocks.changed(item)
        if rng.random() < 0.5:
            check_blocks(blocks, reference, size)
    check_blocks(blocks, reference, size)


def test_a_change_rejoins_only_its_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assembly, "BLOCK_ITEMS", 10)
    items = [Item(n) for n in range(35)]
    blocks = Blocks(items)
    blocks.runs("k", joined)
    seen: list[int] = []

    def counting(block: list[Item]) -> bytes:
        seen.append(len(block))
        return joined(block)

    items[14].version += 1
    blocks.changed(items[14])
    assert list(blocks.unjoined("k")) == items[10:20]
    blocks.runs("k", counting)
    assert seen == [10]
    blocks.append(Item(99))  # into the last block (5 items, now 6)
    blocks.remove(items[0])  # out of the first
    seen.clear()
    assert b",".join(blocks.runs("k", counting)) == joined([*items[1:], Item(99)])
    assert seen == [9, 6]


# -- frameworks of many tasks, through the view -------------------------------------------


def framework_event(number: int) -> ev.FrameworkSubscribed:
    info = m.FrameworkInfo(user="u", name=f"fw-{number}", roles=["*"])
    info.capabilities.add().type = m.FrameworkInfo.Capability.PARTITION_AWARE
    info.id.value = f"fw-{number}"
    return ev.FrameworkSubscribed(info.id.value, "s", info, False)


def agent_event(number: int) -> ev.AgentRegistered:
    info = m.AgentInfo(hostname=f"h{number}", port=5051)
    info.id.value = f"agent-{number}"
    return ev.AgentRegistered(info.id.value, "s", info, False)


def fold_task(framework_id: str, task_id: str, agent_id: str) -> Task:
    info = m.TaskInfo(name=f"name-{task_id}")
    info.task_id.value = task_id
    info.agent_id.value = agent_id
    return Task(task_id, framework_id, agent_id, "", info, "*", RESOURCES, m.TASK_STAGING, 0)


class Driver:
    """Random task events for the frameworks of one view, as the fold would send them."""

    def __init__(self, seed: int, frameworks: int, completed_kept: int) -> None:
        self.rng = random.Random(seed)
        self.view = ClusterView(max_completed_tasks_per_framework=completed_kept)
        self.serial = 0
        self.apply([agent_event(n) for n in range(AGENTS)])
        self.apply([framework_event(n) for n in range(frameworks)])

    def apply(self, events: list[object]) -> None:
        index = self.view.applied_index + 1
        self.view.apply(index, events, index * 1_000_000_000)  # type: ignore[arg-type]

    def add(self, framework: FrameworkRecord) -> ev.TaskAdded:
        self.serial += 1
        # Now and then a task id launched again after its task completed.
        task_id = f"t{self.serial}"
        if framework.completed_tasks and self.rng.random() < 0.05:
            task_id = framework.completed_tasks[-1].proto.task_id.value
        agent_id = f"agent-{self.serial % AGENTS}"
        return ev.TaskAdded(fold_task(framework.id, task_id, agent_id))

    def update(self, framework: FrameworkRecord) -> ev.TaskStatusUpdated | ev.TaskCompleted:
        lists = [framework.tasks, framework.unreachable_tasks]
        tasks = self.rng.choice([tasks for tasks in lists if tasks])
        task = self.rng.choice(list(tasks.values()))
        task_id, agent_id = task.proto.task_id.value, task.proto.agent_id.value
        roll = self.rng.random()
        if roll < 0.25:
            return ev.TaskCompleted(fold_task(framework.id, task_id, agent_id))
        status = m.TaskStatus(state=m.TASK_RUNNING, uuid=self.serial.to_bytes(4, "big"))
        status.task_id.value, status.agent_id.value = task_id, agent_id
        if roll < 0.4 and not task.unreachable:
            status.state = m.TASK_UNREACHABLE
            status.unreachable_time.nanoseconds = 1
        elif roll < 0.6 and task.unreachable:
            status.reason = Reason.REASON_AGENT_REREGISTERED
        elif roll < 0.7:
            status.state = m.TASK_FAILED
        self.serial += 1
        return ev.TaskStatusUpdated(framework.id, task_id, agent_id, status.state, status)

    def entry(self, size: int) -> None:
        events: list[object] = []
        for _ in range(size):
            framework = self.rng.choice(list(self.view.frameworks.values()))
            busy = framework.tasks or framework.unreachable_tasks
            if busy and self.rng.random() < 0.6:
                events.append(self.update(framework))
            else:
                events.append(self.add(framework))
        self.apply(events)


@pytest.mark.parametrize(
    ("seed", "block_items", "completed_kept", "comparisons"),
    [(1, 7, 17, 20), (2, 16, 35, 20), (3, 500, 80, 4)],
)
def test_frameworks_larger_than_a_block_give_what_a_cold_view_gives(
    seed: int,
    block_items: int,
    completed_kept: int,
    comparisons: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(assembly, "BLOCK_ITEMS", block_items)
    driver = Driver(seed, frameworks=2, completed_kept=completed_kept)
    view = driver.view
    for _ in range(block_items):  # each framework starts with three blocks of tasks
        driver.apply([driver.add(f) for f in view.frameworks.values() for _ in range(3)])
    responses(view)  # blocks made: from here on they follow the lists
    compared = unreachable = 0
    steps = 120
    for step in range(steps):
        driver.entry(driver.rng.choice((1, 2, 8, 40)))
        unreachable = max(
            unreachable, *(len(f.unreachable_tasks) for f in view.frameworks.values())
        )
        if step % (steps // comparisons) == 0:
            cached = responses(view)
            drop_caches(view)
            assert cached == responses(view), f"stale block at index {view.applied_index}"
            compared += 1
    assert compared == comparisons
    assert all(len(f.blocks("tasks").blocks) >= 2 for f in view.frameworks.values())
    assert unreachable > 1
    # Completed tasks were evicted from the bounded list.
    assert all(len(f.completed_tasks) == completed_kept for f in view.frameworks.values())


def runs_missing(framework: FrameworkRecord, kind: str) -> list[int]:
    """Per task list, how many of its blocks lack a `kind` run."""
    return [
        sum(1 for block in framework.blocks(name).blocks if kind not in block.runs)
        for name in TASK_LISTS
    ]


def test_a_task_update_drops_only_its_blocks_runs() -> None:
    driver = Driver(4, frameworks=1, completed_kept=1000)
    view = driver.view
    framework = next(iter(view.frameworks.values()))
    driver.apply([driver.add(framework) for _ in range(1200)])  # 3 blocks: 500, 500, 200
    responses(view)
    kinds = (PROTOBUF.kind, encodings.JSON_ENCODING.kind, "legacy")
    assert all(runs_missing(framework, kind) == [0, 0, 0] for kind in kinds)
    task = framework.tasks["t700"]
    status = m.TaskStatus(state=m.TASK_RUNNING, uuid=b"u")
    status.task_id.value, status.agent_id.value = "t700", task.proto.agent_id.value
    driver.apply([ev.TaskStatusUpdated(framework.id, "t700", status.agent_id.value, 1, status)])
    missing = framework.task_runs["tasks"].where[task]
    assert [b is missing for b in framework.blocks("tasks").blocks] == [False, True, False]
    assert all(runs_missing(framework, kind) == [1, 0, 0] for kind in kinds)
    # Completing it: out of its block, into the completed tasks' only block.
    driver.apply([ev.TaskCompleted(fold_task(framework.id, "t700", status.agent_id.value))])
    assert all(runs_missing(framework, kind) == [1, 0, 1] for kind in kinds)
    cached = responses(view)
    drop_caches(view)
    assert cached == responses(view)


def test_task_counts_follow_changes_and_a_taken_copy_stays_as_taken() -> None:
    """/state-summary's counts are kept in step, not recounted; a read holds its copy
    across event-loop turns, so the copy it took must not move under it."""
    driver = Driver(5, frameworks=1, completed_kept=2)
    framework = next(iter(driver.view.frameworks.values()))
    driver.apply([driver.add(framework) for _ in range(6)])
    taken = framework.counts_by_agent()
    before = {agent: dict(states) for agent, states in taken.items()}
    assert sum(sum(states.values()) for states in taken.values()) == 6
    for _ in range(30):
        driver.entry(3)
    assert taken == before
    counted = framework.counts_by_agent()
    assert counted is framework.counts_by_agent()  # one copy until the next change
    framework.tasks_changed()
    assert counted == framework.counts_by_agent()  # the same as counting afresh


def steps_with_changes(work: Iterator[None], driver: Driver) -> int:
    """Run `work` with an entry of task events folded between any two of its steps."""
    steps = 0
    for _ in work:
        steps += 1
        driver.entry(2)
    return steps


@pytest.mark.parametrize("form", ["legacy", "pb", "json"])
def test_joining_takes_a_step_per_block_and_tolerates_changes_between_steps(
    form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assembly, "BLOCK_ITEMS", 10)
    driver = Driver(5, frameworks=2, completed_kept=30)
    view = driver.view
    driver.apply([driver.add(f) for f in view.frameworks.values() for _ in range(95)])
    for _ in range(10):
        driver.entry(10)
    for framework in view.frameworks.values():  # encoded, not joined: joins alone remain
        for task in [t for tasks in framework.task_lists().values() for t in tasks]:
            sj.task_json(task)
            encodings.JSON_ENCODING.entity(task, task.message)
            PROTOBUF.entity(task, task.message)
    blocks = sum(
        len(f.blocks(name).blocks) for f in view.frameworks.values() for name in TASK_LISTS
    )
    if form == "legacy":
        work = legacy_work(view, True)
    else:
        enc = PROTOBUF if form == "pb" else encodings.JSON_ENCODING
        work = encodings.work(encodings.Call.GET_STATE, view, enc)
    assert steps_with_changes(work, driver) >= blocks
    cached = responses(view)
    drop_caches(view)
    assert cached == responses(view)
