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


def fresh_cluster(tmp_path: Path) -> tuple[Path, Layout]:
    """A data folder whose cluster.json names free ports (not Mesos's, which may be taken)."""
    data = tmp_path / "meseta-data"
    data.mkdir()
    ports = free_ports(7)
    layout = Layout(HOST, tuple(ports[0:3]), tuple(ports[3:6]), ports[6])
    (data / "cluster.json").write_bytes(layout.to_json())
    return data, layout


def test_up_runs_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    data, layout = fresh_cluster(tmp_path)
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


def child_pid(data: Path, argument: str) -> int:
    """The pid of `meseta up`'s child on `data` with `argument` (`agent`, `master`,
    `--port=5050`) among its arguments."""
    for pid in processes_mentioning(str(data)):
        with contextlib.suppress(OSError):
            argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
            if b"meseta.cli" in argv and argument.encode() in argv:
                return pid
    raise AssertionError(f"no `meseta ... {argument}` running on {data}")


def test_up_starts_again_what_exits(tmp_path: Path) -> None:
    """A killed agent or master is started again, as a service manager would; the agent comes
    back with its id and the masters with their leader."""
    data, layout = fresh_cluster(tmp_path)
    agent_url = f"http://{HOST}:{layout.agent_port}"

    def agent_id() -> str | None:
        with contextlib.suppress(OSError, KeyError):
            if get_json(f"{agent_url}/metrics/snapshot")["slave/registered"]:
                return str(get_json(f"{agent_url}/state")["id"])
        return None

    def wait_for_agent() -> str:
        deadline = time.monotonic() + 60
        while (found := agent_id()) is None:
            assert time.monotonic() < deadline, "the agent did not register"
            time.sleep(0.2)
        return found

    with meseta_up(data) as (process, lines):
        leader = read_until(lines, "  leader ", 120)[-1].split("http://")[1].strip()
        first = wait_for_agent()
        os.kill(child_pid(data, "agent"), signal.SIGKILL)
        read_until(lines, "agent exited with code -9; restarting it in 1s", 30)
        assert wait_for_agent() == first
        os.kill(child_pid(data, f"--port={leader.rsplit(':', 1)[1]}"), signal.SIGKILL)
        read_until(lines, "exited with code -9; restarting it in 1s", 30)
        # It says where the new leader is (a master it did not just kill).
        now = read_until(lines, "the leader is now", 30)[-1].split("http://")[1].strip()
        assert now != leader
        deadline = time.monotonic() + 60
        while len(processes_mentioning(str(data))) < 4:  # three masters and the agent
            assert time.monotonic() < deadline, "the master was not started again"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        assert processes_mentioning(str(data)) == [], "children outlived `meseta up`"
