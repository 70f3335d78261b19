"""Tasks on a real cluster: command tasks and a custom executor through pymesos, sandbox files
over HTTP, `meseta execute` exit codes and bad `--resources` strings."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support.e2e_cluster import (
    EXECUTOR_SCRIPT,
    Cluster,
    get_json,
    pymesos_framework,
    wait_until,
)

pytest.importorskip("pymesos", reason="pymesos is not installed (scripts/install_pymesos.py)")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SMALL = {"cpus": 0.1, "mem": 32}
IDLE_S = 6.0  # longer than uvicorn's default keep-alive (5 s), which dropped such connections


def test_command_tasks_finish_fail_and_get_killed(cluster: Cluster, tmp_path: Path) -> None:
    with pymesos_framework(cluster.masters[0], tmp_path, checkpoint=True) as framework:
        framework.launch(task_id="echo", command="echo hello-from-echo", **SMALL)
        framework.launch(task_id="exit3", command="exit 3", **SMALL)
        framework.launch(task_id="sleep", command="sleep 1000", **SMALL)

        framework.update("echo", "TASK_RUNNING")
        finished = framework.update("echo", "TASK_FINISHED")
        assert finished["source"] == "SOURCE_EXECUTOR"

        framework.update("exit3", "TASK_RUNNING")
        failed = framework.update("exit3", "TASK_FAILED")
        assert failed["source"] == "SOURCE_EXECUTOR"
        assert "3" in failed.get("message", "")

        framework.update("sleep", "TASK_RUNNING")
        framework.command("kill", task_id="sleep")
        killed = framework.update("sleep", "TASK_KILLED")
        assert killed["source"] == "SOURCE_EXECUTOR"

        for task_id, last in (("echo", "TASK_FINISHED"), ("exit3", "TASK_FAILED"),
                              ("sleep", "TASK_KILLED")):  # fmt: skip
            states = framework.updates_for(task_id)
            assert states[-1] == last and states.count(last) == 1, states
            assert states.index("TASK_RUNNING") < states.index(last), states

        state = get_json(f"{cluster.agent_url}/state")
        directories = [
            executor["directory"]
            for fw in [*state["frameworks"], *state["completed_frameworks"]]
            for executor in [*fw["executors"], *fw["completed_executors"]]
            if executor["id"] == "echo"
        ]
        assert directories, state
        query = urllib.parse.urlencode({"path": f"{directories[0]}/stdout", "offset": 0})
        stdout = get_json(f"{cluster.agent_url}/files/read?{query}")
        assert "hello-from-echo" in stdout["data"]


def test_custom_pymesos_executor(cluster: Cluster, tmp_path: Path) -> None:
    executor = f"{sys.executable} -P {EXECUTOR_SCRIPT}"
    with pymesos_framework(cluster.masters[1], tmp_path) as framework:
        framework.launch(task_id="custom-ok", executor=executor, data="echo custom", **SMALL)
        running = framework.update("custom-ok", "TASK_RUNNING")
        assert running["source"] == "SOURCE_EXECUTOR"
        assert running["message"] == "custom executor started the task"
        finished = framework.update("custom-ok", "TASK_FINISHED")
        assert finished["message"] == "custom executor: exit code 0"

        framework.launch(task_id="custom-bad", executor=executor, data="exit 4", **SMALL)
        failed = framework.update("custom-bad", "TASK_FAILED")
        assert failed["message"] == "custom executor: exit code 4"


def test_a_health_checked_task_reports_healthy_through_the_master(
    cluster: Cluster, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a free loopback port for the task's server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    health_check = {
        "type": "HTTP",
        "http": {"port": port, "path": "/"},
        "delay_seconds": 0,
        "interval_seconds": 0.5,
        "grace_period_seconds": 60,
        "consecutive_failures": 3,
    }
    server = f"{sys.executable} -m http.server {port} --bind 127.0.0.1"
    with pymesos_framework(cluster.masters[0], tmp_path) as framework:
        framework.launch(task_id="web", command=server, health_check=health_check, **SMALL)
        event = framework.expect(
            "update",
            lambda e: e["status"]["task_id"]["value"] == "web" and "healthy" in e["status"],
            60,
        )
        status = event["status"]
        assert status["healthy"] is True and status["state"] == "TASK_RUNNING"
        assert status["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"

        def web_task() -> dict[str, Any] | None:  # a standby may be an instant behind
            tasks = get_json(f"http://{cluster.masters[0]}/tasks")["tasks"]
            task = next(task for task in tasks if task["id"] == "web")
            return task if any(s.get("healthy") is True for s in task["statuses"]) else None

        wait_until(web_task, "/tasks to show the task healthy", 10)
        web = web_task()
        assert web is not None and web["health_check"]["http"]["port"] == port
        framework.command("kill", task_id="web")
        killed = framework.update("web", "TASK_KILLED")
        assert "healthy" not in killed


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_sandbox_files_refuse_escapes(cluster: Cluster) -> None:
    state = get_json(f"{cluster.agent_url}/state")
    executors = [
        (fw["id"], executor)
        for fw in [*state["frameworks"], *state["completed_frameworks"]]
        for executor in [*fw["executors"], *fw["completed_executors"]]
    ]
    assert executors, "the earlier tests left no sandbox"
    framework_id, executor = executors[0]
    short = f"/frameworks/{framework_id}/executors/{executor['id']}/runs/latest"
    secret = cluster.local.data / "secret"
    attempts = [
        f"{short}/../../../../../../../../secret",
        f"{executor['directory']}/../../../../../../../../secret",
        f"{executor['directory']}/" + "../" * 30 + "etc/passwd",
        str(secret),
        "/etc/passwd",
    ]
    for path in attempts:
        for endpoint in ("read", "download", "browse"):
            query = urllib.parse.urlencode({"path": path, "offset": 0})
            status = http_status(f"{cluster.agent_url}/files/{endpoint}?{query}")
            assert status in (400, 404), (endpoint, path, status)
    query = urllib.parse.urlencode({"path": f"{short}/stdout", "offset": 0})
    assert http_status(f"{cluster.agent_url}/files/read?{query}") == 200


def meseta(*args: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-m", "meseta.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_meseta_execute_exit_codes(cluster: Cluster) -> None:
    masters = ",".join(cluster.masters)
    ok = meseta("execute", f"--master={masters}", "--name=exec-ok", "--command=echo hi",
                "--resources=cpus:0.1;mem:32")  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Received status update TASK_FINISHED for task 'exec-ok'" in ok.stdout
    assert "Received status update TASK_RUNNING for task 'exec-ok'" in ok.stdout
    failed = meseta("execute", f"--master={masters}", "--name=exec-bad", "--command=exit 3",
                    "--resources=cpus:0.1;mem:32")  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "TASK_FAILED" in failed.stdout and "  source: SOURCE_EXECUTOR" in failed.stdout


def test_operator_commands_list_the_cluster_and_read_sandboxes(cluster: Cluster) -> None:
    masters = cluster.masters
    command = "--command=echo out-line; echo err-line >&2"
    done = meseta("execute", f"--master={masters[0]}", "--name=ops-echo", command,
                  "--resources=cpus:0.1;mem:32")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    def finished_rows() -> dict[str, dict[str, object]] | None:  # any replica reads, maybe behind
        listed = meseta("tasks", f"--master={masters[1]}", "--all", "--json")
        assert listed.returncode == 0, listed.stderr
        tasks = {task["id"]: task for task in json.loads(listed.stdout)}  # /state's tasks
        done = tasks.get("ops-echo", {}).get("state") == "TASK_FINISHED"
        return tasks if done else None

    wait_until(finished_rows, "the task to show finished", 20)
    running = meseta("tasks", f"--master={masters[1]}", "--json")
    assert "ops-echo" not in {task["id"] for task in json.loads(running.stdout)}
    agents = json.loads(meseta("agents", f"--master={masters[2]}", "--json").stdout)
    assert len(agents) == 1 and agents[0]["active"] is True
    assert agents[0]["resources"]["cpus"] > 0  # numbers, as /state has them
    frameworks = meseta("frameworks", f"--master={masters[0]}", "--all")
    assert frameworks.returncode == 0 and "meseta-execute" in frameworks.stdout
    out = meseta("cat", "ops-echo", f"--master={masters[0]}")
    assert (out.returncode, out.stdout) == (0, "out-line\n"), out.stderr
    err = meseta("cat", "ops-echo", "stderr", f"--master={masters[0]}")
    assert "err-line" in err.stdout
    files = json.loads(meseta("ls", "ops-echo", f"--master={masters[1]}", "--json").stdout)
    sizes = {entry["path"].rpartition("/")[2]: entry["size"] for entry in files}
    assert sizes["stdout"] == len("out-line\n"), files
    missing = meseta("cat", "no-such-task", f"--master={masters[0]}")
    assert missing.returncode == 1
    assert "No task with id 'no-such-task' is known to the master" in missing.stderr


def test_meseta_execute_takes_mesos_executes_task_flags(cluster: Cluster) -> None:
    master = f"--master={cluster.masters[0]}"
    task = {
        "name": "group-a", "task_id": {"value": "group-a"}, "agent_id": {"value": ""},
        "command": {"value": "echo a"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
    }  # fmt: skip
    other = json.loads(json.dumps(task).replace("group-a", "group-b"))
    group = meseta("execute", master, "--task_group=" + json.dumps({"tasks": [task, other]}))
    assert group.returncode == 0, group.stdout + group.stderr
    assert "Submitted task group 'group-a', 'group-b'" in group.stdout
    for name in ("group-a", "group-b"):
        assert f"Received status update TASK_FINISHED for task '{name}'" in group.stdout

    healthy = dict(task, name="checked", task_id={"value": "checked"})
    healthy["command"] = {"value": "sleep 30"}
    healthy["health_check"] = {"type": "COMMAND", "command": {"value": "true"},
                               "delay_seconds": 0, "interval_seconds": 0.5}  # fmt: skip
    killed = meseta("execute", master, "--task=" + json.dumps(healthy), "--kill_after=3secs",
                    "--content_type=protobuf")  # fmt: skip
    assert killed.returncode == 1, killed.stdout + killed.stderr
    assert "  healthy?: 1" in killed.stdout
    assert "Killing task 'checked' (--kill_after)" in killed.stdout
    assert "Received status update TASK_KILLED for task 'checked'" in killed.stdout


def test_bad_resources_get_a_clear_error(tmp_path: Path) -> None:
    execute = meseta("execute", "--master=127.0.0.1:1", "--name=x", "--command=true",
                     "--resources=cpus:lots;mem:32")  # fmt: skip
    assert execute.returncode == 2
    assert "Invalid resources 'cpus:lots;mem:32'" in execute.stderr
    agent = meseta("agent", "--master=127.0.0.1:1", f"--work_dir={tmp_path / 'w'}",
                   "--resources=cpus:4;mem:[oops")  # fmt: skip
    assert agent.returncode != 0
    assert "mem" in agent.stderr and "meseta agent:" in agent.stderr, agent.stderr


def operator_call(cluster: Cluster, body: dict[str, object], timeout_s: float = 30) -> Any:
    request = urllib.request.Request(
        f"{cluster.agent_url}/api/v1",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def test_operator_api_sees_kills_and_waits_for_a_container(
    cluster: Cluster, tmp_path: Path
) -> None:
    with pymesos_framework(cluster.masters[2], tmp_path) as framework:
        framework.launch(task_id="victim", command="sleep 1000", **SMALL)
        framework.update("victim", "TASK_RUNNING")
        containers = operator_call(cluster, {"type": "GET_CONTAINERS"})["get_containers"]
        (victim,) = [c for c in containers["containers"] if c["executor_id"]["value"] == "victim"]
        assert victim["resource_statistics"]["mem_rss_bytes"] > 0
        container = victim["container_id"]
        monitored = get_json(f"{cluster.agent_url}/monitor/statistics")
        (entry,) = [e for e in monitored if e["executor_id"] == "victim"]
        assert entry["statistics"]["mem_rss_bytes"] > 0 and entry["source"] == "victim"
        listed = get_json(f"{cluster.agent_url}/containers")
        assert container["value"] in [c["container_id"] for c in listed]
        # Mesos's answers; `mesos task attach` turns the 500 into "launched without a TTY".
        for container_id, status, message in [
            (container, 500, "I/O switchboard server was disabled for this container"),
            ({"value": "nope"}, 404, "Container nope cannot be found"),
        ]:
            attach = {"type": "ATTACH_CONTAINER_OUTPUT",
                      "attach_container_output": {"container_id": container_id}}  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as refused:
                operator_call(cluster, attach)
            assert (refused.value.code, refused.value.read().decode()) == (status, message)

        waited: list[Any] = []
        waiter = threading.Thread(
            target=lambda: waited.append(operator_call(
                cluster, {"type": "WAIT_CONTAINER",
                          "wait_container": {"container_id": container}}, timeout_s=60)),
            daemon=True,
        )  # fmt: skip
        waiter.start()
        time.sleep(0.5)  # let WAIT_CONTAINER block first
        kill = {"type": "KILL_CONTAINER", "kill_container": {"container_id": container}}
        assert operator_call(cluster, kill) is None
        waiter.join(60)
        (answer,) = waited
        assert answer["type"] == "WAIT_CONTAINER"
        assert answer["wait_container"]["exit_status"] == signal.SIGKILL  # raw wait status

        failed = framework.update("victim", "TASK_FAILED")
        assert failed["source"] == "SOURCE_AGENT"
        assert failed["reason"] == "REASON_EXECUTOR_TERMINATED"
        tasks = operator_call(cluster, {"type": "GET_TASKS"})["get_tasks"]
        assert any(t["task_id"]["value"] == "victim" for t in tasks["completed_tasks"])


def test_idle_connections_stay_open_as_mesos_keeps_them(cluster: Cluster, tmp_path: Path) -> None:
    """pymesos sends every call on one kept-alive connection, and Mesos never closes an idle
    one: a call after a quiet spell must not meet a closed socket (pymesos then loses the call
    and drops its stream). Executors reuse their connection to the agent the same way."""
    agent = urllib.parse.urlsplit(cluster.agent_url)
    to_agent = http.client.HTTPConnection(agent.hostname or "", agent.port, timeout=10)
    try:
        to_agent.request("GET", "/version")
        assert to_agent.getresponse().read()
        with pymesos_framework(cluster.masters[0], tmp_path) as framework:
            framework.launch(task_id="idle", command="sleep 1000", **SMALL)
            framework.update("idle", "TASK_RUNNING")
            time.sleep(IDLE_S)
            # `command` waits for "done": the call returned instead of raising (BrokenPipe).
            framework.command("kill", task_id="idle")
            for retry in range(3):  # a leader change on a loaded host may drop a call
                try:
                    framework.update("idle", "TASK_KILLED", timeout_s=20)
                    break
                except AssertionError:
                    if retry == 2:
                        raise
                    framework.command("kill", task_id="idle")
            kinds = [event["event"] for event in framework.seen]
            assert "failed" not in kinds, kinds
        to_agent.request("GET", "/version")  # the same connection, idle the while
        assert to_agent.getresponse().status == 200
    finally:
        to_agent.close()
