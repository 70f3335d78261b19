"""The operator commands' views of a /state document (cluster_cli.py)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson
import pytest

from meseta import cluster_cli
from meseta.cluster_cli import CliError

STATE: dict[str, Any] = {
    "slaves": [
        {
            "id": "S0",
            "hostname": "node-1",
            "port": 5051,
            "pid": "slave(1)@10.0.0.7:5051",
            "active": True,
            "version": "1.11.0",
            "resources": {"cpus": 4, "mem": 2048, "disk": 100, "gpus": 0},
            "used_resources": {"cpus": 1.5, "mem": 512, "disk": 0, "gpus": 0},
        }
    ],
    "frameworks": [
        {
            "id": "F1",
            "name": "web",
            "active": True,
            "used_resources": {"cpus": 1.5, "mem": 512, "disk": 0},
            "tasks": [
                {
                    "id": "t1",
                    "name": "web-1",
                    "framework_id": "F1",
                    "slave_id": "S0",
                    "state": "TASK_RUNNING",
                    "statuses": [{"state": "TASK_RUNNING", "healthy": True}],
                }
            ],
            "unreachable_tasks": [],
            "completed_tasks": [
                {
                    "id": "t0",
                    "name": "web-0",
                    "framework_id": "F1",
                    "slave_id": "S9",
                    "state": "TASK_FAILED",
                    "statuses": [],
                }
            ],
        }
    ],
    "completed_frameworks": [
        {
            "id": "F0",
            "name": "batch",
            "active": False,
            "used_resources": {},
            "tasks": [],
            "completed_tasks": [{"id": "t1", "framework_id": "F0", "state": "TASK_FINISHED"}],
        }
    ],
}


def test_agent_rows_show_use_against_totals() -> None:
    (row,) = cluster_cli.agent_rows(STATE)
    assert row["CPUS"] == "1.5/4" and row["MEM (MB)"] == "512/2048" and row["ACTIVE"] == "yes"
    assert cluster_cli.agent_url(STATE["slaves"][0]) == "http://10.0.0.7:5051"


def test_agents_deactivated_or_drained_by_an_operator_say_so() -> None:
    agent = STATE["slaves"][0]
    assert cluster_cli.agent_activity({**agent, "active": False}) == "no"
    assert cluster_cli.agent_activity({**agent, "active": False, "deactivated": True}) == (
        "no (deactivated)"
    )
    drained = {**agent, "active": False, "deactivated": True, "drain_info": {"state": "DRAINED"}}
    assert cluster_cli.agent_activity(drained) == "no (drained)"


def test_task_rows_running_by_default_everything_with_all() -> None:
    (running,) = cluster_cli.task_rows(STATE, False, None)
    assert running == {
        "ID": "t1",
        "NAME": "web-1",
        "STATE": "TASK_RUNNING",
        "HEALTHY": "yes",
        "FRAMEWORK": "F1",
        "AGENT": "node-1",
    }
    everything = cluster_cli.task_rows(STATE, True, None)
    assert [(r["ID"], r["STATE"]) for r in everything] == [
        ("t1", "TASK_RUNNING"),
        ("t0", "TASK_FAILED"),
        ("t1", "TASK_FINISHED"),
    ]
    assert everything[1]["AGENT"] == "S9"  # an agent gone since: its id
    assert [r["ID"] for r in cluster_cli.task_rows(STATE, True, "F0")] == ["t1"]


def test_framework_rows_and_completed_ones_with_all() -> None:
    assert [r["ID"] for r in cluster_cli.framework_rows(STATE, False)] == ["F1"]
    rows = cluster_cli.framework_rows(STATE, True)
    assert [(r["ID"], r["ACTIVE"], r["TASKS"]) for r in rows] == [
        ("F1", "yes", "1"),
        ("F0", "no", "0"),
    ]


def test_json_prints_the_listed_objects_not_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    agents = STATE["slaves"]
    cluster_cli.print_rows(cluster_cli.agent_rows(STATE), agents, True, "No agents.")
    assert orjson.loads(capsys.readouterr().out) == agents
    cluster_cli.print_rows(cluster_cli.agent_rows(STATE), agents, False, "No agents.")
    assert "1.5/4" in capsys.readouterr().out


def test_a_task_id_must_name_one_task() -> None:
    assert cluster_cli.find_task(STATE, "t0")["state"] == "TASK_FAILED"
    with pytest.raises(CliError, match="several frameworks: F0, F1"):
        cluster_cli.find_task(STATE, "t1")
    with pytest.raises(CliError, match="No task with id 'zz'"):
        cluster_cli.find_task(STATE, "zz")


def test_executors_are_found_by_launched_queued_or_completed_tasks() -> None:
    agent_state = {
        "frameworks": [
            {
                "id": "F1",
                "executors": [
                    {
                        "directory": "/a",
                        "tasks": [{"id": "x"}],
                        "queued_tasks": [],
                        "completed_tasks": [],
                    },
                    {"directory": "/b", "tasks": [], "queued_tasks": [{"task_id": {"value": "q"}}]},
                ],
                "completed_executors": [],
            },
        ],
        "completed_frameworks": [
            {
                "id": "F1",
                "executors": [],
                "completed_executors": [
                    {"directory": "/c", "completed_tasks": [{"id": "done"}]},
                ],
            },
        ],
    }
    for task_id, directory in (("x", "/a"), ("q", "/b"), ("done", "/c")):
        found = list(cluster_cli.executors_with(agent_state, "F1", task_id))
        assert [e["directory"] for e in found] == [directory]
    assert list(cluster_cli.executors_with(agent_state, "F2", "x")) == []


def test_a_reader_that_goes_away_ends_a_command_quietly() -> None:
    """`meseta tasks | head -0`: no traceback, the exit status a shell shows for SIGPIPE."""
    program = (
        "import sys\n"
        "from meseta.cluster_cli import run_command\n"
        "async def main() -> None:\n"
        "    raise BrokenPipeError\n"
        "sys.exit(run_command('tasks', main()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (cluster_cli.EXIT_BROKEN_PIPE, "")
