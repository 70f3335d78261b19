"""`meseta up` as a user runs it: starts, prints the URLs, stops everything on Ctrl-C (SIGINT)
or SIGTERM, and a second start resumes from the same data (same agent id)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.e2e_cluster import HOST, free_ports, get_json

from meseta.local_cluster import Layout

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


@contextlib.contextmanager
def meseta_up(data: Path) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "meseta.cli", "up", f"--data={data}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for pid in processes_mentioning(str(data)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if process.stdout is not None:
            process.stdout.close()


def read_until(lines: queue.Queue[str], needle: str, timeout_s: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"no {needle!r} within {timeout_s}s; output so far: {seen}")


def test_up_runs_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "meseta-data"
    data.mkdir()
    ports = free_ports(7)
    layout = Layout(HOST, tuple(ports[0:3]), tuple(ports[3:6]), ports[6])
    (data / "cluster.json").write_bytes(layout.to_json())
    agent_url = f"http://{HOST}:{layout.agent_port}"

    agent_ids = []
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        with meseta_up(data) as (process, lines):
            output = read_until(lines, "leader", 120)
            text = "".join(output)
            for port in layout.master_ports:
                assert f"http://{HOST}:{port}" in text
            assert agent_url in text

            def registered() -> bool:
                with contextlib.suppress(OSError):
                    return bool(get_json(f"{agent_url}/metrics/snapshot")["slave/registered"])
                return False

            deadline = time.monotonic() + 60
            while not registered():
                assert time.monotonic() < deadline, "the agent did not register"
                time.sleep(0.2)
            agent_ids.append(get_json(f"{agent_url}/state")["id"])

            process.send_signal(stop_signal)
            assert process.wait(60) == 0
            read_until(lines, "meseta up: stopped", 5)
            assert processes_mentioning(str(data)) == [], "children outlived `meseta up`"
    assert agent_ids[0] == agent_ids[1], "the restarted cluster did not resume the agent"
    assert (data / "secret").stat().st_mode & 0o077 == 0
