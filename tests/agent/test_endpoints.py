"""The agent's read endpoints over a hand-built Agent: /state shape, metrics, files, escapes."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support.agent_state import AGENT_ID, CONTAINER, EX, FW, build_agent
from support.served_app import Client, served

from meseta import cluster_cli
from meseta.agent import endpoints, server
from meseta.proto.mesos.v1 import mesos_pb2


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def client(work_dir: Path) -> Iterator[Client]:
    agent = build_agent(work_dir)
    try:
        with served(Starlette(routes=endpoints.routes(agent))) as test_client:
            yield test_client
    finally:
        agent.checkpoints.close()


@pytest.fixture
def sandbox(work_dir: Path) -> Path:
    path = (
        work_dir / "slaves" / AGENT_ID / "frameworks" / FW / "executors" / EX / "runs" / CONTAINER
    )
    (path / "stdout").write_bytes(b"hello\nworld\n")
    (path / "sub").mkdir()
    return path


SHORT = f"/frameworks/{FW}/executors/{EX}/runs/latest"


@pytest.mark.parametrize(
    "path", ["/state", "/state.json", "/slave(1)/state", "/slave(1)/state.json"]
)
def test_state_has_mesos_keys_and_shapes(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    state = response.json()
    assert list(state)[:1] == ["version"]
    for key in ("build_date", "build_time", "build_user", "start_time", "id", "pid", "hostname",
                "capabilities", "resources", "reserved_resources", "unreserved_resources",
                "reserved_resources_full", "unreserved_resources_full",
                "reserved_resources_allocated", "unreserved_resources_allocated",
                "resource_providers", "attributes", "flags", "frameworks",
                "completed_frameworks"):  # fmt: skip
        assert key in state, key
    assert state["id"] == AGENT_ID
    assert state["pid"] == "slave(1)@127.0.0.1:5051"
    assert state["resources"] == {
        "cpus": 5.0, "gpus": 0.0, "mem": 1024.0, "disk": 0.0, "ports": "[31000-32000]"
    }  # fmt: skip
    assert state["reserved_resources"]["web"]["cpus"] == 1.0
    assert state["unreserved_resources"]["cpus"] == 4.0
    assert state["unreserved_resources_allocated"]["cpus"] == 0.6
    assert state["attributes"] == {"rack": "r1"}
    assert state["flags"]["work_dir"].endswith("work")
    (framework,) = state["frameworks"]
    assert framework["id"] == FW and framework["roles"] == ["*"] and framework["checkpoint"]
    (executor,) = framework["executors"]
    assert executor["container"] == CONTAINER
    assert executor["directory"].endswith(f"runs/{CONTAINER}")
    # Its own 0.1 cpus and its task's 0.5 cpus and 64 MB (Executor::allocatedResources).
    assert (executor["resources"]["cpus"], executor["resources"]["mem"]) == (0.6, 64.0)
    (task,) = executor["tasks"]
    assert task["id"] == "t1" and task["state"] == "TASK_RUNNING" and task["slave_id"] == AGENT_ID
    container_status = {"container_id": {"value": CONTAINER}}  # no executor_pid, as Mesos
    assert task["statuses"] == [
        {"state": "TASK_RUNNING", "timestamp": 12.5, "container_status": container_status}
    ]
    assert executor["queued_tasks"] == [] and executor["completed_tasks"] == []


def test_jsonp_wraps_the_body(client: Client) -> None:
    response = client.get("/flags?jsonp=cb")
    assert response.text.startswith("cb({") and response.text.endswith("});")


def test_metrics_snapshot_has_slave_names(client: Client) -> None:
    snapshot = client.get("/metrics/snapshot").json()
    # Any method, as libprocess answers (collectd's Mesos plugin POSTs an empty body).
    assert client.post("/metrics/snapshot", b"", {}).json().keys() == snapshot.keys()
    assert snapshot["slave/registered"] == 0.0
    assert client.get("/metrics/snapshot?timeout=bogus").status_code == 400  # as libprocess
    assert snapshot["slave/tasks_running"] == 1.0
    assert snapshot["slave/cpus_total"] == 5.0
    assert snapshot["slave/cpus_used"] == pytest.approx(0.6)
    assert snapshot["slave/executors_registering"] == 1.0
    assert snapshot["containerizer/fetcher/cache_size_total_bytes"] == 2 * 1024**3
    # One week, less the 10% headroom, before the disk was ever looked at.
    assert snapshot["slave/executor_directory_max_allowed_age_secs"] == pytest.approx(
        7 * 86400 * 0.9
    )
    for name in ("slave/uptime_secs", "slave/mem_percent", "slave/disk_revocable_total",
                 "slave/tasks_finished", "slave/executors_terminated", "slave/recovery_errors",
                 "slave/recovery_time_secs", "slave/container_launch_errors",
                 "containerizer/mesos/provisioner/remove_container_errors",
                 "containerizer/fetcher/task_fetches_succeeded",
                 "containerizer/fetcher/task_fetches_failed",
                 "containerizer/fetcher/cache_size_used_bytes",
                 "containerizer/mesos/container_destroy_errors", "gc/path_removals_pending",
                 "system/load_1min"):  # fmt: skip
        assert isinstance(snapshot[name], float), name


def test_health_flags_version(client: Client) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/slave(1)/health").status_code == 200
    assert client.get("/flags").json()["flags"]["master"] == "127.0.0.1:5050"
    assert client.get("/version").json()["version"] == "1.11.0"


def test_browse_lists_the_sandbox_under_each_attached_name(client: Client, sandbox: Path) -> None:
    for base in (str(sandbox), str(sandbox.parent / "latest"), SHORT):
        listing = client.get("/files/browse", params={"path": base}).json()
        assert [entry["path"] for entry in listing] == [f"{base}/stdout", f"{base}/sub"]
        stdout = listing[0]
        assert stdout["size"] == 12 and stdout["mode"].startswith("-rw")
        assert isinstance(stdout["mtime"], float) and stdout["nlink"] == 1
    debug = client.get("/files/debug").json()
    assert debug[SHORT] == str(sandbox.resolve())


def test_read_offsets_and_lengths(client: Client, sandbox: Path) -> None:
    path = f"{SHORT}/stdout"
    assert client.get("/files/read", params={"path": path, "offset": 0}).json() == {
        "data": "hello\nworld\n", "offset": 0,
    }  # fmt: skip
    assert client.get("/files/read", params={"path": path, "offset": 6, "length": 3}).json() == {
        "data": "wor", "offset": 6,
    }  # fmt: skip
    assert client.get("/files/read", params={"path": path, "offset": -1}).json() == {
        "data": "", "offset": 12,
    }  # fmt: skip
    assert client.get("/files/read", params={"path": path}).json()["offset"] == 12
    assert client.get("/files/read", params={"path": path, "offset": 50}).json() == {
        "data": "", "offset": 50,
    }  # fmt: skip
    assert client.get("/files/read.json", params={"path": path, "offset": 0}).status_code == 200


async def test_meseta_cat_copies_exact_bytes_and_follows_appends_and_truncation(
    client: Client, sandbox: Path
) -> None:
    """`meseta cat [-f]` reads by byte offset through /files/download with a Range: binary
    bytes and a multi-byte character split across reads arrive unaltered."""
    data = "héllo wörld ✓\n".encode() + bytes(range(256))
    (sandbox / "stdout").write_bytes(data)
    box = cluster_cli.Sandbox(f"http://127.0.0.1:{client.port}", SHORT)
    async with aiohttp.ClientSession() as session:
        out = io.BytesIO()
        assert await cluster_cli.copy_from(session, box, "stdout", 0, out) == len(data)
        assert out.getvalue() == data
        out = io.BytesIO()  # from the middle of 'é': the bytes, not a replacement character
        assert await cluster_cli.copy_from(session, box, "stdout", 2, out) == len(data)
        assert out.getvalue() == data[2:]
        out = io.BytesIO()  # nothing new
        assert await cluster_cli.copy_from(session, box, "stdout", len(data), out) == len(data)
        assert out.getvalue() == b""
        with (sandbox / "stdout").open("ab") as file:
            file.write("más\n".encode())
        out = io.BytesIO()
        assert await cluster_cli.copy_from(session, box, "stdout", len(data), out) == len(data) + 5
        assert out.getvalue() == "más\n".encode()
        (sandbox / "stdout").write_bytes(b"new")
        assert await cluster_cli.copy_from(session, box, "stdout", len(data), io.BytesIO()) == -1
        with pytest.raises(cluster_cli.CliError, match="No file 'nope'"):
            await cluster_cli.copy_from(session, box, "nope", 0, io.BytesIO())


async def test_meseta_ls_lists_a_sandbox_folder_and_refuses_escapes(
    client: Client, sandbox: Path
) -> None:
    (sandbox / "stdout").write_bytes(b"12345")
    (sandbox / "data").mkdir()
    (sandbox / "data" / "a.txt").write_bytes(b"a")
    box = cluster_cli.Sandbox(f"http://127.0.0.1:{client.port}", SHORT)
    async with aiohttp.ClientSession() as session:
        rows = cluster_cli.listing_rows(await cluster_cli.list_dir(session, box, ""))
        names = [row["NAME"] for row in rows]
        assert names == sorted(names) and "data/" in names  # sorted, folders marked
        stdout = rows[names.index("stdout")]
        assert stdout["SIZE"] == "5" and stdout["MODE"].startswith("-rw")
        inner = await cluster_cli.list_dir(session, box, "/data/")
        assert [entry["path"] for entry in inner] == [f"{SHORT}/data/a.txt"]
        with pytest.raises(cluster_cli.CliError, match="No folder 'nope'"):
            await cluster_cli.list_dir(session, box, "nope")
        with pytest.raises(cluster_cli.CliError, match="400"):
            await cluster_cli.list_dir(session, box, "../..")


async def test_meseta_cat_skips_what_an_agent_without_ranges_sends_again() -> None:
    """Mesos's agent answers a Range with the whole file (200): the bytes before the offset
    are dropped, and a file shorter than the offset reads as truncated."""
    whole = b"0123456789" * 10_000

    async def download(request: Request) -> Response:
        return Response(whole, media_type="application/octet-stream")

    app = Starlette(routes=[Route("/files/download", download)])
    with served(app) as mesos_agent:
        box = cluster_cli.Sandbox(f"http://127.0.0.1:{mesos_agent.port}", "/sandbox")
        async with aiohttp.ClientSession() as session:
            out = io.BytesIO()
            assert await cluster_cli.copy_from(session, box, "stdout", 70_001, out) == len(whole)
            assert out.getvalue() == whole[70_001:]
            assert await cluster_cli.copy_from(session, box, "f", 200_000, io.BytesIO()) == -1


def test_read_caps_at_sixteen_pages(client: Client, sandbox: Path) -> None:
    (sandbox / "big").write_bytes(b"x" * (os.sysconf("SC_PAGESIZE") * 20))
    body = client.get("/files/read", params={"path": f"{SHORT}/big", "offset": 0}).json()
    assert len(body["data"]) == os.sysconf("SC_PAGESIZE") * 16


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 400, "Expecting 'path=value' in query.\n"),
        ({"path": f"{SHORT}/stdout", "offset": "x"}, 400, "Failed to parse offset"),
        ({"path": f"{SHORT}/stdout", "offset": "-2"}, 400, "Negative offset provided: -2.\n"),
        ({"path": f"{SHORT}/stdout", "offset": "0", "length": "-5"}, 400, "Negative length"),
        ({"path": SHORT, "offset": "0"}, 400, "Cannot read a directory.\n"),
        ({"path": f"{SHORT}/missing", "offset": "0"}, 404, ""),
        ({"path": "/etc/passwd", "offset": "0"}, 404, ""),
    ],
)
def test_read_errors(
    client: Client, sandbox: Path, params: dict[str, str], status: int, message: str
) -> None:
    response = client.get("/files/read", params=params)
    assert response.status_code == status
    assert response.text.startswith(message)


def test_no_path_escapes_a_sandbox(client: Client, sandbox: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (sandbox / "link").symlink_to(secret)
    (sandbox / "dirlink").symlink_to(tmp_path)
    escapes = [
        f"{SHORT}/../../../../../../secret.txt",
        f"{SHORT}/link",
        f"{SHORT}/dirlink/secret.txt",
        f"{sandbox}/../../../../../../../../secret.txt",
        f"{SHORT}/sub/../../{CONTAINER}/../../..",
    ]
    for path in escapes:
        for endpoint in ("read", "download", "browse"):
            response = client.get(f"/files/{endpoint}", params={"path": path, "offset": 0})
            assert response.status_code in (400, 404), (endpoint, path, response.status_code)
            assert "top secret" not in response.text
    response = client.get("/files/read", params={"path": f"{SHORT}/link", "offset": 0})
    assert response.status_code == 400 and "is inaccessible" in response.text
    for path in (str(secret), str(tmp_path), "/", "/etc"):
        assert client.get("/files/browse", params={"path": path}).status_code == 404


def test_download_returns_the_bytes(client: Client, sandbox: Path) -> None:
    response = client.get("/files/download", params={"path": f"{SHORT}/stdout"})
    assert response.status_code == 200
    assert response.content == b"hello\nworld\n"
    assert response.headers["content-type"] == "application/octet-stream"
    assert "attachment" in response.headers["content-disposition"]
    assert client.get("/files/download", params={"path": SHORT}).status_code == 400


def test_browsing_a_file_lists_nothing(client: Client, sandbox: Path) -> None:
    reply = client.get("/files/browse", params={"path": f"{SHORT}/stdout"})
    assert reply.status_code == 200 and reply.json() == []


def test_with_a_log_dir_the_agent_log_is_served_as_slave_log(work_dir: Path) -> None:
    agent = build_agent(work_dir)
    log_dir = work_dir / "logs"
    log_dir.mkdir()
    (log_dir / "meseta-agent.log").write_bytes(b"agent started\n")
    agent.flags_ = dataclasses.replace(agent.flags_, log_dir=str(log_dir))
    try:
        with served(Starlette(routes=endpoints.routes(agent))) as client:
            attached = client.get("/files/debug").json()
            assert attached["/slave/log"] == str(log_dir / "meseta-agent.log")
            read = client.get("/files/read", {"path": "/slave/log", "offset": 0}).json()
            assert read == {"data": "agent started\n", "offset": 0}
            state = client.get("/state").json()
            assert state["log_dir"] == str(log_dir) and state["flags"]["log_dir"] == str(log_dir)
    finally:
        agent.checkpoints.close()


def test_an_external_log_file_is_served_as_slave_log_before_log_dir(work_dir: Path) -> None:
    # As Mesos: a file someone else writes (a supervisor's capture) wins over --log_dir's.
    agent = build_agent(work_dir)
    external = work_dir / "captured.log"
    external.write_bytes(b"captured stderr\n")
    log_dir = work_dir / "logs"
    agent.flags_ = dataclasses.replace(
        agent.flags_, log_dir=str(log_dir), external_log_file=str(external)
    )
    try:
        with served(Starlette(routes=endpoints.routes(agent))) as client:
            assert client.get("/files/debug").json()["/slave/log"] == str(external)
            read = client.get("/files/read", {"path": "/slave/log", "offset": 0}).json()
            assert read == {"data": "captured stderr\n", "offset": 0}
            state = client.get("/state").json()
            assert state["external_log_file"] == str(external)
            assert state["flags"]["external_log_file"] == str(external)
            assert state["flags"]["quiet"] == "false"
    finally:
        agent.checkpoints.close()


def test_system_stats_as_libprocess_serves_them(client: Client) -> None:
    stats = client.get("/system/stats.json").json()
    assert set(stats) == {
        "avg_load_1min", "avg_load_5min", "avg_load_15min",
        "cpus_total", "mem_total_bytes", "mem_free_bytes",
    }  # fmt: skip
    assert stats["cpus_total"] == os.cpu_count() and isinstance(stats["mem_total_bytes"], int)
    assert 0 < stats["mem_free_bytes"] <= stats["mem_total_bytes"]
    wrapped = client.get("/system/stats.json", params={"jsonp": "cb"})
    assert wrapped.text.startswith("cb({") and wrapped.text.endswith("});")


@pytest.mark.parametrize("path", ["/containerizer/debug", "/slave(1)/containerizer/debug"])
def test_containerizer_debug_lists_what_is_under_way(client: Client, path: str) -> None:
    assert client.get(path).json() == {"pending": []}


def test_the_agent_gzips_its_answers_as_libprocess_does(work_dir: Path) -> None:
    agent = build_agent(work_dir)
    try:
        run = work_dir / "slaves" / AGENT_ID / "frameworks" / FW / "executors" / EX / "runs"
        (run / CONTAINER / "stdout").write_bytes(b"x" * 4096)
        with served(server.create_app(agent)) as client:
            zipped = client.request("GET", "/state", headers={"Accept-Encoding": "gzip"})
            plain = client.get("/state")
            assert zipped.headers["content-encoding"] == "gzip"
            assert "content-encoding" not in plain.headers
            assert gzip.decompress(zipped.content) == plain.content
            # Downloads go out as the bytes they are.
            path = f"/files/download?path={SHORT}/stdout"
            download = client.request("GET", path, headers={"Accept-Encoding": "gzip"})
            assert "content-encoding" not in download.headers
            assert download.content == b"x" * 4096
    finally:
        agent.checkpoints.close()


def test_resource_maps_coalesce_adjacent_ranges() -> None:
    ports = mesos_pb2.Resource(name="ports", type=mesos_pb2.Value.RANGES)
    for begin, end in ((31001, 31002), (31000, 31000), (31005, 31006)):
        ports.ranges.range.add(begin=begin, end=end)
    assert endpoints.resource_map([ports])["ports"] == "[31000-31002, 31005-31006]"
