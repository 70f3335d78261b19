"""`meseta up` pieces that need no cluster: layout, ports, commands, the data lock, the sweep."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from meseta import local_cluster
from meseta.local_cluster import ClusterError, Layout


def test_layout_is_chosen_once_and_kept(tmp_path: Path) -> None:
    first = local_cluster.load_layout(tmp_path, "127.0.0.1")
    ports = [*first.master_ports, *first.raft_ports, first.agent_port]
    assert len(set(ports)) == 7
    assert local_cluster.load_layout(tmp_path, "127.0.0.1") == first


def test_busy_preferred_ports_are_replaced() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken_port = busy.getsockname()[1]
        taken: set[int] = set()
        chosen = local_cluster.choose_ports("127.0.0.1", (taken_port, taken_port + 1), taken)
    assert taken_port not in chosen and len(set(chosen)) == 2 and taken == set(chosen)


def test_corrupt_layout_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text("{")
    with pytest.raises(ClusterError, match="cannot read"):
        local_cluster.load_layout(tmp_path, "127.0.0.1")


def test_commands_name_peers_secret_and_masters(tmp_path: Path) -> None:
    layout = Layout("127.0.0.1", (1, 2, 3), (11, 12, 13), 4)
    masters = local_cluster.master_commands(tmp_path, layout, tmp_path / "secret", ["--x=1"])
    assert len(masters) == 3
    assert "--peers=127.0.0.1:11,127.0.0.1:12,127.0.0.1:13" in masters[1]
    assert "--raft_address=127.0.0.1:12" in masters[1] and "--port=2" in masters[1]
    assert masters[2][-1] == "--x=1"
    agent = local_cluster.agent_command(tmp_path, layout, ["--resources=cpus:1"])
    assert "--master=127.0.0.1:1,127.0.0.1:2,127.0.0.1:3" in agent
    assert f"--work_dir={tmp_path / 'agent'}" in agent and agent[-1] == "--resources=cpus:1"
    # Each daemon serves the file its output is captured in as its log (the web UI's Log).
    assert f"--external_log_file={tmp_path / 'logs' / 'master2.log'}" in masters[1]
    assert f"--external_log_file={tmp_path / 'logs' / 'agent.log'}" in agent


def test_secret_is_private_and_stable(tmp_path: Path) -> None:
    path = local_cluster.ensure_secret(tmp_path)
    assert path.stat().st_mode & 0o077 == 0
    assert local_cluster.ensure_secret(tmp_path).read_text() == path.read_text()


def test_one_up_per_data_folder(tmp_path: Path) -> None:
    with (
        local_cluster.data_lock(tmp_path),
        pytest.raises(ClusterError, match="another `meseta up`"),
        local_cluster.data_lock(tmp_path),
    ):
        pass


def test_busy_cluster_ports_are_reported(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        layout = Layout("127.0.0.1", (port,), (), 0)
        (tmp_path / "cluster.json").write_bytes(layout.to_json())
        with pytest.raises(ClusterError, match=f"ports {port}"):
            local_cluster.build(tmp_path, "127.0.0.1")


@pytest.mark.parametrize("variable", ["MESOS_DIRECTORY", "MESOS_SANDBOX"])
def test_the_sweep_finds_what_runs_in_the_agents_sandboxes(tmp_path: Path, variable: str) -> None:
    """An executor has MESOS_DIRECTORY; a nested container's command, which outlives the
    agent, only MESOS_SANDBOX: `meseta up` stops both."""
    work_dir = tmp_path / "agent"
    inside = {**os.environ, variable: str(work_dir / "slaves" / "s" / "containers" / "c")}
    elsewhere = {**os.environ, variable: str(tmp_path / "other")}
    ours = subprocess.Popen(["sleep", "60"], env=inside)
    theirs = subprocess.Popen(["sleep", "60"], env=elsewhere)
    try:
        found = local_cluster.cluster_processes(work_dir)
        assert ours.pid in found and theirs.pid not in found
        assert local_cluster.sweep_executors(work_dir, grace_s=2) >= 1
        assert ours.wait(timeout=5) == -signal.SIGTERM
        assert theirs.poll() is None
    finally:
        for process in (ours, theirs):
            process.kill()
            process.wait()
