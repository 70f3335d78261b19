"""The agent's checkpoints in one LMDB environment under `<work_dir>/meta/checkpoint`.

What a restarted agent needs to recover (contract 7.8): its AgentInfo (and so
its id) and boot id; its total as the master last checkpointed it here
(reservations and persistent volumes included); the drain it was told to do and
has not finished; the frameworks that
checkpoint, their executors (with container id, sandbox and root pid), tasks
with their statuses, and each task's status update stream (pending updates
and acked uuids). Every write is one fsynced transaction, done before the
agent acknowledges what it records.

| database | key | value |
|---|---|---|
| `agent` | `info`, `boot_id` | AgentInfo bytes, text |
| `agent` | `resources`, `drain` | CheckpointResources bytes, DrainConfig bytes |
| `frameworks` | framework id | FrameworkInfo bytes |
| `executors` | framework id NUL executor id | JSON record |
| `tasks` | framework id NUL task id | JSON record (TaskInfo, executor id, statuses) |
| `updates` | framework id NUL task id | JSON record (pending statuses, acked uuids) |
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import orjson

from meseta.agent.core import ExecutorKind, ExecutorRecord, TaskRecord
from meseta.agent.status_updates import UpdateStream
from meseta.proto.agent_link.v1 import agent_link_pb2
from meseta.proto.mesos.v1 import mesos_pb2

CheckpointedResources = agent_link_pb2.Event.CheckpointResources

MAP_SIZE = 1 << 30
_DATABASES = (b"agent", b"frameworks", b"executors", b"tasks", b"updates")


def _key(*parts: str) -> bytes:
    return "\0".join(parts).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


@dataclass
class Recovered:
    """Everything read back from the checkpoints, in write order."""

    info: mesos_pb2.AgentInfo | None = None
    boot_id: str | None = None
    resources: list[mesos_pb2.Resource] | None = None  # None: the master never sent any
    drain: mesos_pb2.DrainConfig | None = None  # an unfinished drain
    frameworks: dict[str, mesos_pb2.FrameworkInfo] = field(default_factory=dict)
    executors: list[ExecutorRecord] = field(default_factory=list)
    tasks: list[tuple[TaskRecord, bool]] = field(default_factory=list)  # (task, still queued)
    streams: list[UpdateStream] = field(default_factory=list)


class Checkpoints:
    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / "meta" / "checkpoint"
        self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(self.path), map_size=MAP_SIZE, max_dbs=len(_DATABASES))
        self.dbs = {name.decode(): self.env.open_db(name) for name in _DATABASES}

    def close(self) -> None:
        self.env.close()

    def _put(self, db: str, key: bytes, value: bytes) -> None:
        with self.env.begin(write=True, db=self.dbs[db]) as txn:
            txn.put(key, value)

    def _delete_prefix(self, txn: lmdb.Transaction, db: str, prefix: bytes) -> None:
        cursor = txn.cursor(db=self.dbs[db])
        if cursor.set_range(prefix):
            while bytes(cursor.key()).startswith(prefix):
                if not cursor.delete():
                    break

    # -- writes -----------------------------------------------------------------------

    def write_agent_info(self, info: mesos_pb2.AgentInfo, boot_id: str) -> None:
        with self.env.begin(write=True, db=self.dbs["agent"]) as txn:
            txn.put(b"info", info.SerializeToString())
            txn.put(b"boot_id", boot_id.encode())

    def write_resources(self, resources: list[mesos_pb2.Resource]) -> None:
        """The agent's total as its master checkpointed it (Mesos's resources.info)."""
        message = CheckpointedResources(resources=resources)
        self._put("agent", b"resources", message.SerializeToString())

    def write_drain(self, config: mesos_pb2.DrainConfig | None) -> None:
        """The drain being done (Mesos's drain.config), or None once it is over."""
        with self.env.begin(write=True, db=self.dbs["agent"]) as txn:
            if config is None:
                txn.delete(b"drain")
            else:
                txn.put(b"drain", config.SerializeToString())

    def write_framework(self, info: mesos_pb2.FrameworkInfo) -> None:
        self._put("frameworks", info.id.value.encode(), info.SerializeToString())

    def write_executor(self, executor: ExecutorRecord) -> None:
        record = {
            "info": _b64(executor.info.SerializeToString()),
            "kind": executor.kind.value,
            "container_id": executor.container_id,
            "directory": executor.directory,
            "pid": executor.pid,
            "start_time": executor.start_time,
            "launched_ns": executor.launched_ns,
        }
        key = _key(executor.framework_id, executor.executor_id)
        self._put("executors", key, orjson.dumps(record))

    def write_task(self, task: TaskRecord, queued: bool) -> None:
        record = {
            "info": _b64(task.info.SerializeToString()),
            "executor_id": task.executor_id,
            "queued": queued,
            "statuses": [_b64(status.SerializeToString()) for status in task.statuses],
        }
        self._put("tasks", _key(task.framework_id, task.task_id), orjson.dumps(record))

    def write_stream(self, stream: UpdateStream) -> None:
        record = {
            "pending": [_b64(status.SerializeToString()) for status in stream.pending],
            "acked": [_b64(status_uuid) for status_uuid in stream.acked],
            "terminal": stream.terminal_received,
        }
        self._put("updates", _key(*stream.key), orjson.dumps(record))

    def remove_stream(self, framework_id: str, task_id: str) -> None:
        with self.env.begin(write=True, db=self.dbs["updates"]) as txn:
            txn.delete(_key(framework_id, task_id))

    def remove_executor(self, executor: ExecutorRecord) -> None:
        """The executor and its tasks; their update streams stay until acknowledged."""
        with self.env.begin(write=True) as txn:
            txn.delete(_key(executor.framework_id, executor.executor_id), db=self.dbs["executors"])
            for task in [*executor.live_tasks(), *executor.completed]:
                txn.delete(_key(executor.framework_id, task.task_id), db=self.dbs["tasks"])

    def remove_framework_info(self, framework_id: str) -> None:
        with self.env.begin(write=True, db=self.dbs["frameworks"]) as txn:
            txn.delete(framework_id.encode())

    def remove_framework(self, framework_id: str) -> None:
        """The framework was shut down: everything of it, update streams included."""
        prefix = _key(framework_id, "")
        with self.env.begin(write=True) as txn:
            txn.delete(framework_id.encode(), db=self.dbs["frameworks"])
            for db in ("executors", "tasks", "updates"):
                self._delete_prefix(txn, db, prefix)

    def wipe(self) -> None:
        """Forget everything (a new agent id is coming)."""
        with self.env.begin(write=True) as txn:
            for db in self.dbs.values():
                txn.drop(db, delete=False)

    # -- recovery ---------------------------------------------------------------------

    def load(self) -> Recovered:
        out = Recovered()
        with self.env.begin() as txn:
            raw_info = txn.get(b"info", db=self.dbs["agent"])
            if raw_info is not None:
                out.info = mesos_pb2.AgentInfo.FromString(raw_info)
            raw_boot = txn.get(b"boot_id", db=self.dbs["agent"])
            out.boot_id = raw_boot.decode() if raw_boot is not None else None
            raw_resources = txn.get(b"resources", db=self.dbs["agent"])
            if raw_resources is not None:
                out.resources = list(CheckpointedResources.FromString(raw_resources).resources)
            raw_drain = txn.get(b"drain", db=self.dbs["agent"])
            if raw_drain is not None:
                out.drain = mesos_pb2.DrainConfig.FromString(raw_drain)
            for key, value in txn.cursor(db=self.dbs["frameworks"]):
                out.frameworks[key.decode()] = mesos_pb2.FrameworkInfo.FromString(value)
            for key, value in txn.cursor(db=self.dbs["executors"]):
                out.executors.append(_executor(key, orjson.loads(value)))
            for key, value in txn.cursor(db=self.dbs["tasks"]):
                out.tasks.append(_task(key, orjson.loads(value)))
            for key, value in txn.cursor(db=self.dbs["updates"]):
                out.streams.append(_stream(key, orjson.loads(value)))
        return out


def _split(key: bytes) -> tuple[str, str]:
    first, _, second = key.decode().partition("\0")
    return first, second


def _executor(key: bytes, record: dict[str, Any]) -> ExecutorRecord:
    framework_id, _ = _split(key)
    return ExecutorRecord(
        info=mesos_pb2.ExecutorInfo.FromString(_unb64(record["info"])),
        framework_id=framework_id,
        kind=ExecutorKind(record["kind"]),
        container_id=record["container_id"],
        directory=record["directory"],
        pid=record["pid"],
        start_time=record["start_time"],
        launched_ns=record["launched_ns"],
    )


def _task(key: bytes, record: dict[str, Any]) -> tuple[TaskRecord, bool]:
    framework_id, _ = _split(key)
    statuses = [mesos_pb2.TaskStatus.FromString(_unb64(s)) for s in record["statuses"]]
    task = TaskRecord(
        info=mesos_pb2.TaskInfo.FromString(_unb64(record["info"])),
        framework_id=framework_id,
        executor_id=record["executor_id"],
        statuses=statuses,
    )
    if statuses:
        task.state = statuses[-1].state
    return task, bool(record["queued"])


def _stream(key: bytes, record: dict[str, Any]) -> UpdateStream:
    framework_id, task_id = _split(key)
    return UpdateStream(
        framework_id=framework_id,
        task_id=task_id,
        pending=[mesos_pb2.TaskStatus.FromString(_unb64(s)) for s in record["pending"]],
        acked=[_unb64(u) for u in record["acked"]],
        terminal_received=bool(record["terminal"]),
    )
