"""kill -9 on a real cluster: the agent (tasks keep running, no update lost) and the leading
master (no update lost). The scheduler is a real pymesos driver throughout."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.e2e_cluster import Cluster, pymesos_framework, wait_until

from meseta.local_cluster import Child, cluster_processes

pytest.importorskip("pymesos", reason="pymesos is not installed (scripts/install_pymesos.py)")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SMALL = {"cpus": 0.1, "mem": 32}
CHECKPOINTING = {"checkpoint": True, "failover_timeout": 600.0}


def test_agent_kill9_keeps_tasks_and_loses_no_update(cluster: Cluster, tmp_path: Path) -> None:
    with pymesos_framework(cluster.masters[0], tmp_path, **CHECKPOINTING) as framework:
        # One task ends while the agent is dead, one outlives the agent's restart.
        framework.launch(task_id="short", command="sleep 4", **SMALL)
        framework.launch(task_id="long", command="sleep 1000", **SMALL)
        framework.update("short", "TASK_RUNNING")
        framework.update("long", "TASK_RUNNING")
        before = set(cluster_processes(cluster.work_dir))
        assert before, "no executor process found under the agent's work dir"

        cluster.kill9(cluster.local.agent)
        assert set(cluster_processes(cluster.work_dir)) >= before, "executors died with the agent"
        time.sleep(6)  # `short` ends meanwhile; its executor waits for the agent to come back
        cluster.restart(cluster.local.agent)
        wait_until(cluster.agent_registered, "the agent to re-register", 60)

        finished = framework.update("short", "TASK_FINISHED", timeout_s=60)
        assert finished["source"] == "SOURCE_EXECUTOR"
        framework.command("reconcile", task_ids=["long"])
        # Updates are at-least-once: a RUNNING whose ack the dead agent missed may come again,
        # so look for the reconciliation answer itself.
        reconciled = framework.expect(
            "update",
            lambda e: (
                e["status"]["task_id"]["value"] == "long"
                and e["status"].get("reason") == "REASON_RECONCILIATION"
            ),
        )
        assert reconciled["status"]["state"] == "TASK_RUNNING"
        framework.command("kill", task_id="long")
        framework.update("long", "TASK_KILLED", timeout_s=60)

        for task_id in ("short", "long"):
            states = framework.updates_for(task_id)
            assert not {"TASK_LOST", "TASK_FAILED", "TASK_GONE", "TASK_DROPPED"} & set(states)


def test_leader_kill9_loses_no_update(cluster: Cluster, tmp_path: Path) -> None:
    leader = cluster.leader()
    follower = next(address for address in cluster.masters if address != leader)
    # pymesos follows the follower's 307 to the leader and keeps talking to that address.
    with pymesos_framework(follower, tmp_path, **CHECKPOINTING) as framework:
        framework.launch(task_id="through-failover", command="sleep 4", **SMALL)
        framework.update("through-failover", "TASK_RUNNING")

        old_leader = cluster.child_for(leader)
        cluster.kill9(old_leader)
        new_leader = cluster.leader(timeout_s=60)
        assert new_leader != leader
        # The task ends during the failover; the agent keeps retrying its update.
        time.sleep(5)
        cluster.restart(old_leader)  # pymesos retries its last address, which now redirects

        finished = framework.update("through-failover", "TASK_FINISHED", timeout_s=90)
        assert finished["source"] == "SOURCE_EXECUTOR"
        states = framework.updates_for("through-failover")
        assert "TASK_LOST" not in states and states[-1] == "TASK_FINISHED", states


def test_meseta_execute_rides_out_a_leader_kill9(cluster: Cluster) -> None:
    masters = ",".join(cluster.masters)
    command = [sys.executable, "-P", "-m", "meseta.cli", "execute", f"--master={masters}",
               "--name=execute-failover", "--command=sleep 5", "--resources=cpus:0.1;mem:32",
               "--checkpoint"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    old_leader: Child | None = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "TASK_RUNNING" in line:
                break
        else:
            raise AssertionError("meseta execute ended before the task ran")
        old_leader = cluster.child_for(cluster.leader())
        cluster.kill9(old_leader)
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output
        assert "Received status update TASK_FINISHED for task 'execute-failover'" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        if old_leader is not None and not old_leader.running():
            cluster.restart(old_leader)
