"""Checkpointed resources and persistent volumes on the agent (Mesos's
CheckpointResourcesMessage and filesystem/posix isolator): the volume directories follow the
master's total, the total survives a restart and shows in /state, and a task sees its volume
as a symlink in its sandbox."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from starlette.applications import Starlette
from support.agent_state import build_agent
from support.daemon_harness import command_task, options, running_agent, states_until, until
from support.fake_scheduler import FakeScheduler, framework_info
from support.master_harness import MasterHandle, running_master
from support.served_app import served

from meseta.agent import core, endpoints, volumes
from meseta.agent.containerizer import ContainerError, Containerizer
from meseta.agent.core import ExecutorKind, ExecutorRecord, Volume
from meseta.agent.daemon import Agent
from meseta.agent.main import agent_info
from meseta.log.testing import free_port
from meseta.master import resources as res
from meseta.proto.agent_link.v1 import agent_link_pb2
from meseta.proto.mesos.v1 import mesos_pb2

pytestmark = pytest.mark.timeout(60)
DYNAMIC = mesos_pb2.Resource.ReservationInfo.DYNAMIC
Reason = mesos_pb2.TaskStatus.Reason


def volume(
    persistence_id: str, container_path: str, role: str = "ops", principal: str = "dba"
) -> mesos_pb2.Resource:
    """A persistent volume of 64 MB on disk dynamically reserved for `role`."""
    resource = mesos_pb2.Resource(name="disk", type=mesos_pb2.Value.SCALAR)
    resource.scalar.value = 64
    resource.reservations.add(type=DYNAMIC, role=role, principal=principal)
    resource.disk.persistence.id = persistence_id
    resource.disk.persistence.principal = principal
    resource.disk.volume.container_path = container_path
    resource.disk.volume.mode = mesos_pb2.Volume.RW
    return resource


def reserved_cpus(role: str = "ops", principal: str = "dba") -> mesos_pb2.Resource:
    resource = mesos_pb2.Resource(name="cpus", type=mesos_pb2.Value.SCALAR)
    resource.scalar.value = 1
    resource.reservations.add(type=DYNAMIC, role=role, principal=principal)
    return resource


def checkpoint_event(*resources: mesos_pb2.Resource) -> agent_link_pb2.Event:
    event = agent_link_pb2.Event(type=agent_link_pb2.Event.CHECKPOINT_RESOURCES)
    event.checkpoint_resources.resources.extend(resources)
    return event


def executor_using(agent: Agent, *resources: mesos_pb2.Resource) -> ExecutorRecord:
    """A (never launched) executor of framework "fw" holding `resources`."""
    framework = mesos_pb2.FrameworkInfo(user="", name="fw")
    framework.id.value = "fw"
    agent.core.add_framework(framework)
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = "ex"
    info.resources.extend(resources)
    sandbox = agent.flags_.work_dir / "sandbox"
    executor = ExecutorRecord(info, "fw", ExecutorKind.CUSTOM, "c1", str(sandbox))
    agent.core.add_executor("fw", executor)
    return executor


@contextlib.asynccontextmanager
async def idle_agent(work_dir: Path) -> AsyncIterator[Agent]:
    """An agent recovered from `work_dir`'s checkpoint, with no master and no executors."""
    flags = options(work_dir, [f"127.0.0.1:{free_port()}"], free_port())
    agent = Agent(flags, agent_info(flags), Containerizer(work_dir))
    try:
        assert await agent.recover()
        yield agent
    finally:
        await agent.stop()


# -- the pure part -------------------------------------------------------------------------


def test_volume_directories_and_what_a_new_total_changes() -> None:
    hierarchical = core.persistent_volumes([volume("v1", "data", role="eng/db")])
    assert hierarchical == [Volume("eng/db", "v1", "data")]
    assert hierarchical[0].directory == ("volumes", "roles", "eng db", "v1")  # Mesos's space
    old = [volume("keep", "k"), volume("drop", "d"), volume("busy", "b"), reserved_cpus()]
    new = [volume("keep", "k"), volume("new", "n"), reserved_cpus()]
    using = ExecutorRecord(mesos_pb2.ExecutorInfo(), "fw", ExecutorKind.CUSTOM, "c1", "/s")
    task = mesos_pb2.TaskInfo(name="t")
    task.task_id.value = "t"
    task.resources.append(volume("busy", "b"))
    using.queued["t"] = core.TaskRecord(task, "fw", "")
    changes = core.volume_changes(old, new, [using])
    assert [v.directory for v in changes.create] == [
        ("volumes", "roles", "ops", "keep"),
        ("volumes", "roles", "ops", "new"),
    ]
    assert [v.directory for v in changes.remove] == [("volumes", "roles", "ops", "drop")]
    assert [v.directory for v in changes.busy] == [("volumes", "roles", "ops", "busy")]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("data", ""),
        ("a/./b", ""),
        ("/data", "Absolute container path '/data' is not supported without filesystem isolation"),
        ("a/../../x", "Container path 'a/../../x' of persistent volume 'v' is not a path inside"),
        ("./", "Container path './' of persistent volume 'v' is not a path inside"),
    ],
    ids=["relative", "nested", "absolute", "escaping", "empty"],
)
def test_where_a_volume_may_be_linked(path: str, error: str) -> None:
    found = core.volume_link_error(Volume("r", "v", path)) or ""
    assert found.startswith(error) and bool(found) == bool(error)


# -- the directories -----------------------------------------------------------------------


async def test_checkpointed_resources_make_and_delete_volume_directories_and_persist(
    tmp_path: Path,
) -> None:
    roles = tmp_path / "volumes" / "roles"
    keep, drop, busy = volume("keep", "k"), volume("drop", "d"), volume("busy", "b", "eng/db")
    async with idle_agent(tmp_path) as agent:
        assert agent.checkpointed_resources is None
        await agent._on_event(checkpoint_event(reserved_cpus(), keep, drop, busy))
        made = sorted(str(p.relative_to(roles)) for p in roles.glob("*/*"))
        assert made == ["eng db/busy", "ops/drop", "ops/keep"]
        assert (roles / "ops" / "keep").stat().st_mode & 0o777 == 0o755
        (roles / "ops" / "drop" / "left.txt").write_text("data")
        (roles / "ops" / "drop" / "out").symlink_to(tmp_path / "outside")
        (tmp_path / "outside").mkdir()
        (tmp_path / "outside" / "precious").write_text("x")
        executor_using(agent, busy)
        # DESTROY of `drop` and `busy`: the first goes, the second is in use and stays.
        await agent._on_event(checkpoint_event(reserved_cpus(), keep))
        assert not (roles / "ops" / "drop").exists()
        assert (tmp_path / "outside" / "precious").exists()  # a link in it is not followed
        assert (roles / "eng db" / "busy").is_dir() and (roles / "ops" / "keep").is_dir()
        expected = res.from_protos([reserved_cpus(), keep])
        assert agent.checkpointed_resources == expected
    async with idle_agent(tmp_path) as again:  # a restart reads the total back
        assert again.checkpointed_resources == expected
        state = endpoints.state_json(again)
        (disk,) = [r for r in state["reserved_resources_full"]["ops"] if r["name"] == "disk"]
        assert disk["disk"]["persistence"] == {"id": "keep", "principal": "dba"}
        assert disk["reservations"] == [{"type": "DYNAMIC", "role": "ops", "principal": "dba"}]


def test_volume_directories_reached_through_a_symlink_are_left_alone(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "v").mkdir(parents=True)
    roles = tmp_path / "work" / "volumes" / "roles"
    roles.mkdir(parents=True)
    (roles / "evil").symlink_to(outside)
    with pytest.raises(volumes.VolumeError, match="goes through a symlink"):
        volumes.remove(tmp_path / "work", Volume("evil", "v", "data"))
    with pytest.raises(volumes.VolumeError, match="goes through a symlink"):
        volumes.create(tmp_path / "work", Volume("evil", "w", "data"))
    assert (outside / "v").is_dir() and not (outside / "w").exists()


def test_links_stay_inside_the_sandbox_and_volumes_go_to_the_user(tmp_path: Path) -> None:
    work, sandbox = tmp_path / "work", tmp_path / "sandbox"
    (sandbox / "escape").mkdir(parents=True)
    volumes.link(work, sandbox, [Volume("ops", "v1", "deep/data")], None)
    target = work / "volumes" / "roles" / "ops" / "v1"
    assert os.readlink(sandbox / "deep" / "data") == str(target)
    volumes.link(work, sandbox, [Volume("ops", "v1", "deep/data")], None)  # linked already
    (sandbox / "escape").rmdir()
    (sandbox / "escape").symlink_to(tmp_path)  # what a task could do to its sandbox
    with pytest.raises(ContainerError, match="leaves the sandbox"):
        volumes.link(work, sandbox, [Volume("ops", "v2", "escape/data")], None)
    assert not (tmp_path / "data").exists()
    (sandbox / "taken").write_text("")
    with pytest.raises(ContainerError, match="already exists"):
        volumes.link(work, sandbox, [Volume("ops", "v1", "taken")], None)
    if os.geteuid() == 0:  # as Mesos: the volume itself goes to the container's user
        volumes.link(work, sandbox, [Volume("ops", "v3", "mine")], "nobody")
        assert (work / "volumes" / "roles" / "ops" / "v3").stat().st_uid == 65534


async def test_tasks_joining_an_executor_get_their_volumes_or_fail(tmp_path: Path) -> None:
    async with idle_agent(tmp_path) as agent:
        executor = executor_using(agent)
        framework = agent.core.frameworks["fw"].info
        good, bad = mesos_pb2.TaskInfo(name="good"), mesos_pb2.TaskInfo(name="bad")
        good.task_id.value, bad.task_id.value = "good", "bad"
        good.resources.append(volume("v1", "data"))
        bad.resources.append(volume("v2", "/abs"))
        await agent.run_tasks(framework, executor.info, [good], group=False)
        link = Path(executor.directory) / "data"
        assert link.resolve() == tmp_path / "volumes" / "roles" / "ops" / "v1"
        assert list(executor.queued) == ["good"]
        await agent.run_tasks(framework, executor.info, [bad], group=False)
        assert list(executor.queued) == ["good"]
        (failed,) = agent.updates.unacknowledged("fw", "bad")
        assert (failed.state, failed.reason) == (
            mesos_pb2.TASK_FAILED, Reason.REASON_CONTAINER_UPDATE_FAILED
        )  # fmt: skip
        assert "Absolute container path '/abs' is not supported" in failed.message


def test_state_shows_the_checkpointed_total(tmp_path: Path) -> None:
    """/state reports the total the master checkpointed (Mesos's totalResources), dynamic
    reservations grouped by their role in the endpoint format; before one, the declared."""
    agent = build_agent(tmp_path / "work")  # cpus:4;mem:1024;cpus(web):1;ports:[31000-32000]
    declared = res.from_protos(agent.info.resources)
    try:
        with served(Starlette(routes=endpoints.routes(agent))) as client:
            before = client.get("/slave(1)/state").json()
            assert before["reserved_resources_full"] == {
                "web": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}, "role": "web",
                         "reservations": [{"type": "STATIC", "role": "web"}]}]
            }  # fmt: skip
            one_cpu = res.parse("cpus:1")
            agent.checkpointed_resources = declared - one_cpu + res.from_protos([reserved_cpus()])
            state = client.get("/slave(1)/state").json()
    finally:
        agent.checkpoints.close()
    assert state["resources"]["cpus"] == 5.0
    assert state["unreserved_resources"]["cpus"] == 3.0
    assert state["reserved_resources"]["ops"] == {"cpus": 1.0, "gpus": 0.0, "mem": 0.0,
                                                  "disk": 0.0}  # fmt: skip
    assert state["reserved_resources_full"]["ops"] == [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}, "role": "ops",
         "reservation": {"principal": "dba"},
         "reservations": [{"type": "DYNAMIC", "role": "ops", "principal": "dba"}]}
    ]  # fmt: skip
    assert state["reserved_resources_full"]["web"] == before["reserved_resources_full"]["web"]


# -- through the master ----------------------------------------------------------------------


@pytest.fixture
async def master() -> AsyncIterator[MasterHandle]:
    async with running_master() as handle:
        yield handle


async def operator_call(master: MasterHandle, body: dict[str, Any]) -> None:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{master.url}/api/v1", data=orjson.dumps(body), headers=headers) as response,
    ):
        assert response.status == 202, await response.text()


async def agent_state(agent: Agent) -> Any:
    url = f"http://127.0.0.1:{agent.flags_.port}/slave(1)/state"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return orjson.loads(await response.read())


async def reserve_and_create(
    master: MasterHandle, agent_id: dict[str, str], disk_info: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An operator reserves 64 MB of disk (with `disk_info`, e.g. a source) for role ops and
    makes volume v1 of it; the CREATE_VOLUMES body and the volume's disk info."""
    disk: dict[str, Any] = {"name": "disk", "type": "SCALAR", "scalar": {"value": 64},
                            "reservations": [{"type": "DYNAMIC", "role": "ops",
                                              "principal": "dba"}]}  # fmt: skip
    if disk_info:
        disk["disk"] = disk_info
    reserve = {"agent_id": agent_id, "resources": [disk]}
    await operator_call(master, {"type": "RESERVE_RESOURCES", "reserve_resources": reserve})
    persistence = {"persistence": {"id": "v1", "principal": "dba"},
                   "volume": {"container_path": "data", "mode": "RW"}, **disk_info}  # fmt: skip
    create = {"agent_id": agent_id, "volumes": [disk | {"disk": persistence}]}
    await operator_call(master, {"type": "CREATE_VOLUMES", "create_volumes": create})
    return create, persistence


async def test_a_task_writes_into_its_persistent_volume_which_outlives_it(
    master: MasterHandle, tmp_path: Path
) -> None:
    """The operator reserves disk and makes a volume of it; the agent makes its directory;
    a task of the role sees it at its container path, writes into it, and what it wrote
    stays after the task ends, until the volume is destroyed."""
    async with running_agent(tmp_path, [master.address]) as agent:
        await until(lambda: agent.counters.registered, "registration")
        agent_id = {"value": agent.agent_id}
        create, persistence = await reserve_and_create(master, agent_id, {})
        directory = tmp_path / "volumes" / "roles" / "ops" / "v1"
        await until(directory.is_dir, "the volume's directory")
        state = await agent_state(agent)
        (full,) = state["reserved_resources_full"]["ops"]
        assert full["reservations"] == [{"type": "DYNAMIC", "role": "ops", "principal": "dba"}]
        assert full["reservation"] == {"principal": "dba"} and full["disk"] == persistence
        assert state["reserved_resources"]["ops"]["disk"] == 64.0
        assert state["unreserved_resources"]["disk"] == 1024.0 - 64
        async with FakeScheduler(master.url) as scheduler:
            stream, _ = await scheduler.subscribe(framework_info(role="ops"))
            offer = (await stream.expect("OFFERS", timeout_s=10))["offers"]["offers"][0]
            (held,) = [r for r in offer["resources"] if "disk" in r]
            task = command_task(offer, "writer", "test -L data && echo kept > data/out")
            task["resources"].append(held)
            launch = {"type": "LAUNCH", "launch": {"task_infos": [task]}}
            accept = {"offer_ids": [offer["id"]], "operations": [launch]}
            assert (await scheduler.call("ACCEPT", accept=accept)).status == 202
            statuses = await states_until(scheduler, stream, "TASK_FINISHED")
            assert statuses[-1]["state"] == "TASK_FINISHED", statuses
            await until(lambda: not agent.core.frameworks, "the executor to end")
        (executor,) = agent.core.completed_frameworks[0].completed_executors
        assert os.readlink(Path(executor.directory) / "data") == str(directory)
        assert (directory / "out").read_text() == "kept\n"
        destroy = {"agent_id": agent_id, "volumes": create["volumes"]}
        await operator_call(master, {"type": "DESTROY_VOLUMES", "destroy_volumes": destroy})
        await until(lambda: not directory.exists(), "the destroyed volume's directory to go")


async def test_an_absolute_container_path_fails_the_launch(tmp_path: Path) -> None:
    async with idle_agent(tmp_path) as agent:
        framework = mesos_pb2.FrameworkInfo(user="", name="fw")
        framework.id.value = "fw"
        task = mesos_pb2.TaskInfo(name="abs")
        task.task_id.value = "abs"
        task.command.value = f"touch {tmp_path / 'ran'}"
        task.resources.append(volume("v1", "/data"))
        await agent.run_tasks(framework, None, [task], group=False)
        await until(lambda: agent.updates.unacknowledged("fw", "abs"), "the task to fail")
        (failed,) = agent.updates.unacknowledged("fw", "abs")
        assert (failed.state, failed.reason) == (
            mesos_pb2.TASK_FAILED, Reason.REASON_CONTAINER_LAUNCH_FAILED
        )  # fmt: skip
        assert failed.message == (
            "Absolute container path '/data' is not supported without filesystem isolation"
        )
        assert agent.counters.container_launch_errors == 1
        assert not agent.containerizer.containers() and not (tmp_path / "ran").exists()


def test_volumes_on_path_and_mount_disks(tmp_path: Path) -> None:
    """A PATH disk's volumes are under its root as the work dir's are; a MOUNT disk's volume
    is the mount itself, and destroying it empties the mount but leaves it."""
    work, disks = tmp_path / "work", tmp_path / "disks"
    on_path = volume("p1", "data")
    on_path.disk.source.type = mesos_pb2.Resource.DiskInfo.Source.PATH
    on_path.disk.source.path.root = str(disks / "b")
    on_mount = volume("m1", "db")
    on_mount.disk.source.type = mesos_pb2.Resource.DiskInfo.Source.MOUNT
    on_mount.disk.source.mount.root = str(disks / "a")
    path_volume, mount_volume = core.persistent_volumes([on_path, on_mount])
    assert volumes.create(work, path_volume) == disks / "b" / "volumes" / "roles" / "ops" / "p1"
    (disks / "a" / "old").mkdir(parents=True)
    (disks / "a" / "old" / "f").write_text("x")
    (disks / "a" / "g").write_text("y")
    assert volumes.create(work, mount_volume) == disks / "a"
    changes = core.volume_changes([on_path, on_mount], [], [])
    assert changes.remove == [path_volume, mount_volume]
    for gone in changes.remove:
        volumes.remove(work, gone)
    assert not (disks / "b" / "volumes" / "roles" / "ops" / "p1").exists()
    assert (disks / "a").is_dir() and list((disks / "a").iterdir()) == []


async def test_a_volume_on_a_path_disk_lives_under_its_root(
    master: MasterHandle, tmp_path: Path
) -> None:
    """An agent declares a PATH disk; the operator reserves part of it and makes a volume of
    that: the volume's directory is under the disk's root, and goes when it is destroyed."""
    root = tmp_path / "disks" / "b"
    source = {"type": "PATH", "path": {"root": str(root)}}
    declared = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024}},
        {"name": "disk", "type": "SCALAR", "scalar": {"value": 1024}},
        {"name": "disk", "type": "SCALAR", "scalar": {"value": 4096}, "disk": {"source": source}},
    ]
    flag = f"--resources={orjson.dumps(declared).decode()}"
    async with running_agent(tmp_path / "work", [master.address], flag) as agent:
        await until(lambda: agent.counters.registered, "registration")
        assert root.is_dir()  # made at start, as Mesos's agent makes a PATH disk's root
        agent_id = {"value": agent.agent_id}
        create, _ = await reserve_and_create(master, agent_id, {"source": source})
        directory = root / "volumes" / "roles" / "ops" / "v1"
        await until(directory.is_dir, "the volume's directory")
        state = await agent_state(agent)
        (full,) = state["reserved_resources_full"]["ops"]
        assert full["disk"]["source"] == source and full["disk"]["persistence"]["id"] == "v1"
        unreserved = [r for r in state["unreserved_resources_full"] if r["name"] == "disk"]
        assert sorted(r["scalar"]["value"] for r in unreserved) == [1024.0, 4096.0 - 64]
        destroy = {"agent_id": agent_id, "volumes": create["volumes"]}
        await operator_call(master, {"type": "DESTROY_VOLUMES", "destroy_volumes": destroy})
        await until(lambda: not directory.exists(), "the destroyed volume's directory to go")
