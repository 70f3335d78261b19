"""A custom executor on pymesos's MesosExecutorDriver (the v1 executor HTTP API).

Each launched task runs its `data` (base64 of a shell command; default `true`) and reports
TASK_RUNNING, then TASK_FINISHED or TASK_FAILED by exit code, with a message naming this
executor. A kill sends TASK_KILLED.
"""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

from pymesos import Executor, MesosExecutorDriver, decode_data


class ShellExecutor(Executor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def launchTask(self, driver: Any, task: Any) -> None:
        threading.Thread(target=self.run, args=(driver, task), daemon=True).start()

    def run(self, driver: Any, task: Any) -> None:
        command = decode_data(task["data"]).decode() if task.get("data") else "true"
        child = subprocess.Popen(["/bin/sh", "-c", command])
        self.children[task["task_id"]["value"]] = child
        self.update(driver, task, "TASK_RUNNING", "custom executor started the task")
        code = child.wait()
        state = "TASK_FINISHED" if code == 0 else "TASK_FAILED"
        if code < 0:
            state = "TASK_KILLED"
        self.update(driver, task, state, f"custom executor: exit code {code}")

    def killTask(self, driver: Any, task_id: Any) -> None:
        child = self.children.get(task_id["value"])
        if child is not None:
            child.terminate()

    @staticmethod
    def update(driver: Any, task: Any, state: str, message: str) -> None:
        driver.sendStatusUpdate(
            {"task_id": task["task_id"], "state": state, "message": message,
             "timestamp": time.time()}
        )  # fmt: skip


if __name__ == "__main__":
    driver = MesosExecutorDriver(ShellExecutor(), use_addict=True)
    driver.run()
