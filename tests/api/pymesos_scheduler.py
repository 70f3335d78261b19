"""A real pymesos scheduler, driven line by line: run as a child process by the tests.

    python pymesos_scheduler.py HOST:PORT [FRAMEWORK_INFO_JSON]

Commands arrive on stdin as JSON lines; what the driver reports leaves on
stdout as JSON lines (`{"event": ...}`). pymesos is imported here, in the main
thread of its own process, because it installs a SIGINT handler and re-raises
IO-thread failures in the main thread through `interrupt_main()`.

Commands:
  {"op": "launch", "tasks": [{"task_id": ..., "command": ..., "cpus": ..., "mem": ...}]}
      launch on the oldest held offer (remaining resources are not filtered)
  {"op": "decline"}                      decline every held offer
  {"op": "reconcile", "task_ids": [...]} driver.reconcileTasks (empty: implicit)
  {"op": "kill", "task_id": ...}         driver.killTask
  {"op": "stop", "failover": false}      driver.stop(failover); driver.join(); exit
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from pymesos import MesosSchedulerDriver, Scheduler

out_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    with out_lock:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()


class Recorder(Scheduler):  # type: ignore[misc]
    def __init__(self) -> None:
        self.offers: list[Any] = []
        self.lock = threading.Lock()

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        emit("registered", framework_id=framework_id["value"], master=dict(master_info))

    def reregistered(self, driver: Any, master_info: Any) -> None:
        emit("reregistered", master=dict(master_info))

    def disconnected(self, driver: Any) -> None:
        emit("disconnected")

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        with self.lock:
            self.offers.extend(offers)
        emit("offers", offers=[plain(offer) for offer in offers])

    def offerRescinded(self, driver: Any, offer_id: Any) -> None:
        with self.lock:
            self.offers = [o for o in self.offers if o["id"] != offer_id]
        emit("rescind", offer_id=offer_id["value"])

    def statusUpdate(self, driver: Any, update: Any) -> None:
        emit("update", status=plain(update))

    def frameworkMessage(self, driver: Any, executor_id: Any, agent_id: Any, data: Any) -> None:
        emit("message", executor_id=executor_id["value"], data=data)

    def slaveLost(self, driver: Any, agent_id: Any) -> None:
        emit("agent_lost", agent_id=agent_id["value"])

    def executorLost(self, driver: Any, executor_id: Any, agent_id: Any, status: Any) -> None:
        emit("executor_lost", executor_id=executor_id["value"], status=status)

    def error(self, driver: Any, message: str) -> None:
        emit("error", message=message)

    def take_offer(self) -> Any:
        with self.lock:
            return self.offers.pop(0) if self.offers else None

    def take_all(self) -> list[Any]:
        with self.lock:
            offers, self.offers = self.offers, []
        return offers


def plain(value: Any) -> Any:
    """addict.Dict -> plain JSON-able values."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def task_info(offer: Any, spec: dict[str, Any]) -> dict[str, Any]:
    resources = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": spec.get("cpus", 1)}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": spec.get("mem", 128)}},
    ]
    return {
        "name": spec["task_id"],
        "task_id": {"value": spec["task_id"]},
        "agent_id": plain(offer["agent_id"]),
        "resources": resources,
        "command": {"value": spec.get("command", "sleep 1000")},
    }


def run(driver: Any, recorder: Recorder, command: dict[str, Any]) -> bool:
    """Carry out one command; False once the driver has stopped."""
    op = command["op"]
    if op == "launch":
        offer = recorder.take_offer()
        if offer is None:
            emit("failed", op=op, error="no offer held")
            return True
        tasks = [task_info(offer, spec) for spec in command["tasks"]]
        driver.launchTasks(offer["id"], tasks, filters={"refuse_seconds": 0})
    elif op == "decline":
        for offer in recorder.take_all():
            driver.declineOffer(offer["id"], filters={"refuse_seconds": 0})
    elif op == "reconcile":
        driver.reconcileTasks([{"task_id": {"value": tid}} for tid in command["task_ids"]])
    elif op == "kill":
        driver.killTask({"value": command["task_id"]})
    elif op == "stop":
        driver.stop(failover=command.get("failover", False))
        driver.join()
        emit("stopped")
        return False
    else:
        emit("failed", op=op, error="unknown op")
        return True
    emit("done", op=op)
    return True


def main() -> None:
    master = sys.argv[1]
    framework = {"user": "", "name": "pymesos-test"}
    if len(sys.argv) > 2:
        framework.update(json.loads(sys.argv[2]))
    recorder = Recorder()
    driver = MesosSchedulerDriver(recorder, framework, master, use_addict=True)
    driver.start()
    emit("started")
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                if not run(driver, recorder, json.loads(line)):
                    return
            except Exception as error:  # reported to the test, which decides
                emit("failed", op=line.strip(), error=repr(error))
    finally:
        if not driver.aborted:
            driver.stop(failover=True)
        driver.join()


if __name__ == "__main__":
    main()
