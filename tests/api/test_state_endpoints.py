"""The legacy read endpoints (contract 6) against a populated master: keys, shapes, paging.

The cluster is driven through the real scheduler and agent APIs
(tests/support/read_cluster.py); every document is then checked for the keys
and shapes Mesos writes (master/readonly_handler.cpp, common/http.cpp) and
that tools such as the Mesos CLI read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy
from support.loop_turns import counting_turns
from support.master_harness import MasterHandle
from support.read_cluster import Populated

from meseta.api import read_cache, state_endpoints
from meseta.api.consistency import INDEX_HEADER
from meseta.projections import metrics
from meseta.projections.cluster import ClusterView
from meseta.projections.records import Record
from meseta.proto.mesos.v1 import mesos_pb2

Json = dict[str, Any]

STATE_KEYS = [
    "version", "build_date", "build_time", "build_user", "start_time", "id", "pid", "hostname",
    "capabilities", "activated_slaves", "deactivated_slaves", "unreachable_slaves", "flags",
    "slaves", "recovered_slaves", "frameworks", "completed_frameworks", "orphan_tasks",
    "unregistered_frameworks",
]  # fmt: skip
AGENT_KEYS = [
    "id", "hostname", "port", "attributes", "pid", "registered_time", "resources",
    "used_resources", "offered_resources", "reserved_resources", "unreserved_resources",
    "active", "deactivated", "version", "capabilities",
]  # fmt: skip
FRAMEWORK_KEYS = [
    "id", "name", "used_resources", "offered_resources", "capabilities", "hostname", "webui_url",
    "active", "connected", "recovered", "user", "failover_timeout", "checkpoint",
    "registered_time", "unregistered_time", "resources", "role", "tasks", "unreachable_tasks",
    "completed_tasks", "offers", "executors", "offer_constraints",
]  # fmt: skip
TASK_KEYS = [
    "id", "name", "framework_id", "executor_id", "slave_id", "state", "resources", "role",
    "statuses", "labels",
]  # fmt: skip
SUMMARY_STATES = [
    "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED",
    "TASK_KILLED", "TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_UNREACHABLE",
]  # fmt: skip


async def fetch(
    master: MasterHandle, path: str, method: str = "GET"
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, master.url + path, allow_redirects=False) as response,
    ):
        return response.status, response.headers, await response.read()


async def get(
    master: MasterHandle, path: str, status: int = 200
) -> tuple[Json, CIMultiDictProxy[str]]:
    code, headers, body = await fetch(master, path)
    assert code == status, (path, code, body)
    return (orjson.loads(body) if status == 200 else {}), headers


async def test_state_has_mesos_keys_and_shapes(cluster: tuple[MasterHandle, Populated]) -> None:
    master, populated = cluster
    state, headers = await get(master, "/state")
    assert headers["Content-Type"] == "application/json"
    assert 0 < int(headers[INDEX_HEADER]) <= master.context.cluster.applied_index
    assert [key for key in STATE_KEYS if key not in state] == []
    assert state["orphan_tasks"] == [] and state["unregistered_frameworks"] == []
    assert state["activated_slaves"] == 1 and state["unreachable_slaves"] == 0
    assert state["leader"] == state["pid"]
    assert state["flags"]["max_completed_tasks_per_framework"] == "1000"

    (agent,) = state["slaves"]
    assert [key for key in AGENT_KEYS if key not in agent] == []
    assert agent["id"] == populated.agent_id
    assert agent["resources"] == {
        "cpus": 4.0, "gpus": 0.0, "mem": 1024.0, "disk": 0.0, "ports": "[31000-32000]"
    }  # fmt: skip
    # t1 (cpus 1, mem 128, two ports) runs; t2 finished and gave its resources back.
    assert agent["used_resources"] == {
        "cpus": 1.0, "gpus": 0.0, "mem": 128.0, "disk": 0.0, "ports": "[31000-31001]"
    }  # fmt: skip
    # What is not used is offered (the allocator may split it over several offers).
    assert agent["offered_resources"]["cpus"] <= 3.0
    assert agent["active"] is True

    (framework,) = state["frameworks"]
    assert [key for key in FRAMEWORK_KEYS if key not in framework] == []
    assert framework["id"] == populated.framework_id and framework["name"] == "reader"
    assert framework["role"] == "*" and "roles" not in framework
    assert framework["resources"]["cpus"] == 1.0 + agent["offered_resources"]["cpus"]
    (running,) = framework["tasks"]
    assert [key for key in TASK_KEYS if key not in running] == []
    assert running["id"] == "t1" and running["state"] == "TASK_RUNNING"
    assert running["slave_id"] == populated.agent_id
    assert running["executor_id"] == ""
    assert running["labels"] == [{"key": "team", "value": "read-side"}]
    assert running["resources"]["ports"] == "[31000-31001]"
    assert running["role"] == "*"
    assert [s["state"] for s in running["statuses"]] == ["TASK_RUNNING"]
    assert isinstance(running["statuses"][0]["timestamp"], float)
    (completed,) = framework["completed_tasks"]
    assert completed["id"] == "t2" and completed["state"] == "TASK_FINISHED"
    assert framework["unreachable_tasks"] == []
    for offer in framework["offers"]:
        assert set(offer) == {"id", "framework_id", "allocation_info", "slave_id", "resources"}
    assert state["completed_frameworks"] == []


@pytest.mark.parametrize("path", ["/master/state", "/state.json", "/master/state.json"])
async def test_state_aliases(cluster: tuple[MasterHandle, Populated], path: str) -> None:
    master, _ = cluster
    state, _ = await get(master, path)
    assert state["frameworks"][0]["tasks"][0]["id"] == "t1"


async def test_state_is_assembled_from_cached_documents(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    master, populated = cluster
    first, _ = await get(master, "/state")
    task = master.context.cluster.frameworks[populated.framework_id].tasks["t1"]
    assert "legacy" in task.encodings
    cached = task.encodings["legacy"]
    await get(master, "/state")
    assert task.encodings["legacy"] is cached  # not re-encoded
    await populated.agent.update(populated.framework_id, "t1", "TASK_KILLING")
    view = master.context.cluster
    await master.wait_until(
        lambda: view.task_states.get(mesos_pb2.TASK_KILLING, 0) == 1, "t1 KILLING"
    )
    assert "legacy" not in task.encodings  # the change dropped the cache
    state, _ = await get(master, "/state")
    assert state["frameworks"][0]["tasks"][0]["state"] == "TASK_KILLING"
    assert first["frameworks"][0]["tasks"][0]["state"] == "TASK_RUNNING"


async def test_jsonp_wraps_the_document(cluster: tuple[MasterHandle, Populated]) -> None:
    master, _ = cluster
    _, headers, body = await fetch(master, "/master/state?jsonp=show")
    assert headers["Content-Type"].startswith("text/javascript")
    assert body.startswith(b"show(") and body.endswith(b");")
    assert "frameworks" in orjson.loads(body[5:-2])


async def test_state_summary_counts(cluster: tuple[MasterHandle, Populated]) -> None:
    master, populated = cluster
    summary, _ = await get(master, "/state-summary")
    assert summary["hostname"] == "127.0.0.1"
    assert "cluster" not in summary  # no --cluster given
    (agent,) = summary["slaves"]
    assert [state for state in SUMMARY_STATES if state not in agent] == []
    assert (agent["TASK_RUNNING"], agent["TASK_FINISHED"]) == (1, 1)
    assert agent["framework_ids"] == [populated.framework_id]
    (framework,) = summary["frameworks"]
    assert (framework["TASK_RUNNING"], framework["TASK_FINISHED"]) == (1, 1)
    assert framework["slave_ids"] == [populated.agent_id]
    assert "tasks" not in framework


async def test_frameworks_and_filter(cluster: tuple[MasterHandle, Populated]) -> None:
    master, populated = cluster
    body, _ = await get(master, "/master/frameworks/")
    assert set(body) == {"frameworks", "completed_frameworks", "unregistered_frameworks"}
    assert body["frameworks"][0]["id"] == populated.framework_id
    body, _ = await get(master, "/frameworks?framework_id=nope")
    assert body["frameworks"] == []


async def test_slaves_have_full_resources(cluster: tuple[MasterHandle, Populated]) -> None:
    master, populated = cluster
    body, _ = await get(master, "/slaves")
    assert set(body) == {"slaves", "recovered_slaves"}
    (agent,) = body["slaves"]
    for key in ("reserved_resources_full", "unreserved_resources_full", "used_resources_full"):
        assert key in agent
    names = [r["name"] for r in agent["unreserved_resources_full"]]
    assert names == ["cpus", "mem", "ports"]
    assert all(r["role"] == "*" for r in agent["unreserved_resources_full"])
    used = agent["used_resources_full"]
    assert {r["name"] for r in used} == {"cpus", "mem", "ports"}
    assert all(r["allocation_info"] == {"role": "*"} for r in used), used
    body, _ = await get(master, f"/master/slaves?slave_id={populated.agent_id}x")
    assert body["slaves"] == []


async def test_tasks_paging_and_order(cluster: tuple[MasterHandle, Populated]) -> None:
    master, _ = cluster
    body, _ = await get(master, "/tasks")
    # Descending by the first status's timestamp: t2 (FINISHED) was reported after t1.
    assert [t["id"] for t in body["tasks"]] == ["t2", "t1"]
    body, _ = await get(master, "/tasks?order=asc")
    assert [t["id"] for t in body["tasks"]] == ["t1", "t2"]
    body, _ = await get(master, "/master/tasks?order=asc&limit=1&offset=1")
    assert [t["id"] for t in body["tasks"]] == ["t2"]
    body, _ = await get(master, "/tasks?limit=junk&task_id=t1")
    assert [t["id"] for t in body["tasks"]] == ["t1"]
    body, _ = await get(master, "/tasks?offset=-1")
    assert body["tasks"] == []
    body, _ = await get(master, "/tasks.json?limit=-1")
    assert len(body["tasks"]) == 2


async def test_roles_and_flags(cluster: tuple[MasterHandle, Populated]) -> None:
    master, populated = cluster
    body, _ = await get(master, "/roles")
    (role,) = body["roles"]
    assert role["name"] == "*" and role["weight"] == 1.0
    assert role["frameworks"] == [populated.framework_id]
    # As Mesos's ResourceQuantities: ranges count their values (the task's two ports).
    assert role["allocated"] == {"cpus": 1.0, "mem": 128.0, "ports": 2.0}
    assert role["resources"]["cpus"] >= 1.0
    flags, _ = await get(master, "/master/flags")
    assert flags["flags"]["hostname"] == "127.0.0.1"
    assert all(isinstance(value, str) for value in flags["flags"].values())


async def test_metrics_snapshot_and_prometheus(cluster: tuple[MasterHandle, Populated]) -> None:
    master, _ = cluster
    metrics, _ = await get(master, "/metrics/snapshot")
    expected = {
        "master/elected": 1.0,
        "master/slaves_active": 1.0,
        "master/frameworks_active": 1.0,
        "master/tasks_running": 1.0,
        "master/tasks_finished": 1.0,
        "master/tasks_staging": 0.0,
        "master/cpus_total": 4.0,
        "master/cpus_used": 1.0,
        "master/cpus_percent": 0.25,
        "master/slave_registrations": 1.0,
        "master/messages_launch_tasks": 2.0,  # one launch per task sent to the agent
    }
    assert {name: metrics[name] for name in expected} == expected
    for name in ("master/uptime_secs", "master/event_queue_messages", "master/mem_revocable_total",
                 "master/valid_framework_to_executor_messages", "master/operations/total",
                 "system/cpus_total", "system/mem_free_bytes"):  # fmt: skip
        assert name in metrics
    # The populated cluster had offers made: the allocator ran, and its timer says how long.
    runs = metrics["allocator/mesos/allocation_runs"]
    assert runs >= 1 and metrics["allocator/mesos/allocation_run_ms/count"] == runs
    for timer in ("allocator/mesos/allocation_run_ms", "allocator/mesos/allocation_run_latency_ms"):
        assert metrics[f"{timer}/count"] == runs
        assert 0 <= metrics[f"{timer}/min"] <= metrics[f"{timer}/p50"] <= metrics[f"{timer}/max"]
    # The allocator's books, as Mesos's allocator reports them (mesos_exporter reads these).
    assert metrics["allocator/mesos/resources/cpus/total"] == 4.0
    assert metrics["allocator/mesos/resources/cpus/offered_or_allocated"] >= 1.0
    assert metrics["allocator/mesos/resources/disk/total"] == 0.0
    assert metrics["allocator/mesos/roles/*/shares/dominant"] > 0
    assert "allocator/mesos/offer_filters/roles/*/active" in metrics
    # The replicated log in the registrar's names (Mesos's registry lives in its log too).
    assert metrics["registrar/log/recovered"] == 1.0
    assert metrics["registrar/log/ensemble_size"] == 1.0  # this test's one-replica log
    assert metrics["registrar/queued_operations"] == 0.0
    # The registry's size: the bytes of the log that the populating calls wrote.
    assert metrics["registrar/registry_size_bytes"] > 0
    store = "registrar/state_store_ms"
    assert metrics[f"{store}/count"] >= 3  # the populating calls went through the log
    assert 0 <= metrics[f"{store}/min"] <= metrics[f"{store}/max"]
    # The registry's fetch time: how long this replica's log took to catch up at start.
    assert metrics["registrar/state_fetch_ms/count"] == 1.0
    assert metrics["registrar/state_fetch_ms"] == metrics["registrar/state_fetch_ms/max"] >= 0
    _, headers, raw = await fetch(master, "/metrics")
    text = raw.decode()
    assert headers["Content-Type"].startswith("text/plain")
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if not line.startswith("#")
    }
    assert values["master_tasks_running"] == 1.0
    assert values["master_cpus_used"] == 1.0
    assert len(values) == len(metrics)


async def test_per_framework_metrics(cluster: tuple[MasterHandle, Populated]) -> None:
    """Mesos's master/frameworks/<name>/<id>/* (--publish_per_framework_metrics, on by
    default), for what the populating scheduler did: subscribe, one accepted offer launching
    two tasks (one LAUNCH operation each, as Mesos counts them), t2 finished and acked."""
    master, populated = cluster
    await populated.scheduler.call("SUPPRESS", suppress={"roles": ["*"]})
    metrics, _ = await get(master, "/metrics/snapshot")
    prefix = f"master/frameworks/reader/{populated.framework_id}/"
    mine = {name.removeprefix(prefix): v for name, v in metrics.items() if name.startswith(prefix)}
    expected = {
        "subscribed": 1.0,
        "calls/subscribe": 1.0,
        "calls/accept": 1.0,
        "calls/acknowledge": 1.0,
        "calls/suppress": 1.0,
        "calls/decline": 0.0,
        "calls": 4.0,
        "events/subscribed": 1.0,
        "events/update": 2.0,  # t1 RUNNING, t2 FINISHED
        "events/error": 0.0,
        "offers/accepted": 1.0,
        "offers/declined": 0.0,
        "operations/launch": 2.0,
        "operations/launch_group": 0.0,
        "operations/reserve": 0.0,
        "operations": 2.0,
        "tasks/active/task_running": 1.0,
        "tasks/active/task_staging": 0.0,
        "tasks/terminal/task_finished": 1.0,
        "tasks/terminal/task_failed": 0.0,
        "roles/*/suppressed": 1.0,
    }
    assert {name: mine.get(name) for name in expected} == expected
    sent = mine["offers/sent"]
    assert sent >= 2 and mine["events/offers"] >= 2  # the first offer, then the rest again
    assert mine["offers/rescinded"] == sent - 1 - len(master.context.cluster.offers)
    assert mine["events/heartbeat"] >= 1  # one follows SUBSCRIBED
    assert mine["events"] == sum(v for k, v in mine.items() if k.startswith("events/"))
    # Off with --publish_per_framework_metrics=false (the flag as /flags shows it).
    master.context.flags["publish_per_framework_metrics"] = "false"
    try:
        metrics, _ = await get(master, "/metrics/snapshot")
    finally:
        del master.context.flags["publish_per_framework_metrics"]
    assert not any(name.startswith("master/frameworks/") for name in metrics)


def test_framework_metric_names_are_percent_encoded_as_libprocess_does() -> None:
    info = mesos_pb2.FrameworkInfo(name="My fw/2: ü~ok_(1)*!")
    info.id.value = "c-0001"
    assert metrics.framework_prefix(info) == (
        "master/frameworks/My%20fw%2F2%3A%20%C3%BC%7Eok_(1)*!/c-0001/"
    )


async def test_min_index_beyond_the_log_is_503(master: MasterHandle) -> None:
    index = master.context.cluster.applied_index
    _, headers = await get(master, f"/state?min_index={index + 1000}&wait=100ms", status=503)
    assert int(headers[INDEX_HEADER]) >= index
    body, _ = await get(master, f"/state?min_index={index}")
    assert body["frameworks"] == []


async def test_read_endpoints_take_any_method_as_libprocess_does(master: MasterHandle) -> None:
    """collectd's Mesos plugin POSTs an empty body to the read endpoints: Mesos answers."""
    for path in ("/state", "/master/frameworks", "/metrics/snapshot", "/version", "/health"):
        status, _, body = await fetch(master, path, "POST")
        assert status == 200, path
        if path != "/health":
            assert orjson.loads(body), path


async def test_mesos_cli_finds_its_keys(cluster: tuple[MasterHandle, Populated]) -> None:
    """What the Mesos CLI (src/python/cli_new plugins) reads for `agent`, `task` and
    `framework list`, on the paths it requests."""
    master, _ = cluster
    slaves, _ = await get(master, "/master/slaves")
    assert [(type(a["id"]), type(a["hostname"]), a["active"]) for a in slaves["slaves"]] == [
        (str, str, True)
    ]
    tasks, _ = await get(master, "/master/tasks")
    assert {(t["id"], t["executor_id"]) for t in tasks["tasks"]} == {("t1", ""), ("t2", "")}
    assert all(t["framework_id"] for t in tasks["tasks"])
    frameworks, _ = await get(master, "/master/frameworks/")
    (framework,) = frameworks["frameworks"]
    assert (framework["active"], framework["name"], type(framework["hostname"])) == (
        True,
        "reader",
        str,
    )


async def test_cold_documents_are_encoded_a_slice_per_loop_turn(
    cluster: tuple[MasterHandle, Populated], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, _ = cluster
    assert master.replica.warmer is not None
    await master.replica.warmer.stop()  # this read alone encodes them here
    view = master.context.cluster
    records = [*view.registered_agents(), *view.all_frameworks(), *view.all_tasks()]
    for record in records:
        record.encodings.clear()
    for framework in view.all_frameworks():
        framework.task_runs.clear()
    monkeypatch.setattr(read_cache, "SLICE_S", 0.0)  # a record per slice
    encoded: list[int] = []
    encode = state_endpoints.legacy_encode

    def recording(record: Record) -> bytes:
        encoded.append(id(record))
        return encode(record)

    monkeypatch.setattr(state_endpoints, "legacy_encode", recording)
    async with counting_turns() as turns:
        await state_endpoints.warm_legacy(view)
    assert turns.count >= len(records) - 1  # other work ran between the records
    # Each was encoded (the fold may have changed some since, dropping their encoding).
    assert {id(record) for record in records} <= set(encoded)
    state, _ = await get(master, "/state")
    assert state["frameworks"][0]["tasks"][0]["id"] == "t1"


def drop_caches(view: ClusterView) -> None:
    for record in view.records():
        record.encodings.clear()
    for framework in view.all_frameworks():
        framework.task_runs.clear()


@pytest.mark.parametrize(
    "path", ["/state", "/state-summary", "/frameworks", "/slaves", "/tasks?limit=1"]
)
async def test_concurrent_identical_reads_share_one_build_per_index(
    cluster: tuple[MasterHandle, Populated], path: str
) -> None:
    master, _ = cluster
    cache = master.context.read_cache
    cache.kept.clear()
    before = cache.builds
    answers = await asyncio.gather(*(fetch(master, path) for _ in range(12)))
    bodies: dict[str, set[bytes]] = {}
    for status, headers, body in answers:
        assert status == 200
        bodies.setdefault(headers[INDEX_HEADER], set()).add(body)
    # One build per index served (the leader's ticks may move the index meanwhile), and
    # every response at one index is the same body. aiohttp asks for gzip: each index
    # takes the plain body's build and its compression's (api/compression.py).
    assert cache.builds - before == 2 * len(bodies) < 24
    assert all(len(same) == 1 for same in bodies.values())


async def test_a_body_built_in_slices_equals_one_built_at_once(
    cluster: tuple[MasterHandle, Populated], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, _ = cluster
    context = master.context
    view = context.cluster
    monkeypatch.setattr(read_cache, "SLICE_S", 0.0)  # yield after every entity
    monkeypatch.setattr(read_cache, "CHUNK", 100)  # and send the body in many chunks
    for _ in range(20):  # until no entry lands between the read and the check
        drop_caches(view)
        context.read_cache.kept.clear()
        _, headers, body = await fetch(master, "/state")
        if int(headers[INDEX_HEADER]) != view.applied_index:
            continue
        drop_caches(view)
        assert body == state_endpoints.state_body(context)
        return
    pytest.fail("the view kept moving")


async def test_min_index_is_honoured_by_shared_builds(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    master, _ = cluster
    target = master.context.cluster.applied_index + 2  # two ticks ahead
    answers = await asyncio.gather(
        fetch(master, "/state"),
        fetch(master, f"/state?min_index={target}"),
        fetch(master, "/state"),
    )
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert int(answers[1][1][INDEX_HEADER]) >= target
    waited = orjson.loads(answers[1][2])
    assert waited["frameworks"][0]["tasks"][0]["id"] == "t1"


async def test_head_of_state_has_the_length_and_no_body(
    cluster: tuple[MasterHandle, Populated], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, _ = cluster
    monkeypatch.setattr(read_cache, "CHUNK", 100)
    for _ in range(20):  # until both reads are at one index
        _, got, body = await fetch(master, "/state")
        status, headers, empty = await fetch(master, "/state", method="HEAD")
        assert (status, empty) == (200, b"")
        if headers[INDEX_HEADER] == got[INDEX_HEADER]:
            # As GET would answer: gzipped, as aiohttp accepts it (and decompresses).
            assert headers["Content-Encoding"] == got["Content-Encoding"] == "gzip"
            assert headers["Content-Length"] == got["Content-Length"]
            assert body
            return
    pytest.fail("the view kept moving")


async def test_the_cluster_name_is_the_cluster_flag(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    master, _ = cluster
    master.context.flags["cluster"] = "prod-east"  # as `--cluster=prod-east` sets it
    state, _ = await get(master, "/state")
    summary, _ = await get(master, "/state-summary")
    assert state["cluster"] == summary["cluster"] == "prod-east"
    assert state["flags"]["cluster"] == "prod-east"
