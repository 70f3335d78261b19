"""The line-driven pymesos scheduler of tests/api/pymesos_scheduler.py, plus custom executors.

    python pymesos_framework.py HOST:PORT [FRAMEWORK_INFO_JSON]

A launch spec may carry `"executor": "<command>"`: the task then runs under a custom executor
(ExecutorInfo with that shell command and the executor id `<task_id>-executor`) instead of the
command executor, `"data": "<text>"` for TaskInfo.data, and `"health_check"` / `"check"`
(JSON) for the task's health check and check. Everything else is the base
script's protocol, reused, not copied.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

import pymesos_scheduler as base

command_task_info = base.task_info


def task_info(offer: Any, spec: dict[str, Any]) -> dict[str, Any]:
    task = command_task_info(offer, spec)
    for name in ("health_check", "check"):  # TaskInfo JSON, as the scheduler wrote it
        if name in spec:
            task[name] = spec[name]
    if "data" in spec:
        task["data"] = base64.b64encode(spec["data"].encode()).decode()
    if "executor" in spec:
        del task["command"]
        task["executor"] = {
            "executor_id": {"value": f"{spec['task_id']}-executor"},
            "name": f"custom executor for {spec['task_id']}",
            "command": {"value": spec["executor"]},
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
            ],
        }
    return task


base.task_info = task_info

if __name__ == "__main__":
    base.main()
