"""`meseta master` flags: parsing errors and what /flags lists."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from meseta.api import main
from meseta.cli import build_parser


def master_options(tmp_path: Path, *extra: str) -> argparse.Namespace:
    secret = tmp_path / "secret"
    secret.write_text("s\n")
    return build_parser().parse_args(
        [
            "master",
            f"--work_dir={tmp_path / 'm1'}",
            "--raft_address=127.0.0.1:7101",
            "--peers=127.0.0.1:7101",
            f"--secret_file={secret}",
            *extra,
        ]
    )


def test_given_flags_are_listed_as_strings(tmp_path: Path) -> None:
    flags = main.given_flags(master_options(tmp_path, "--offer_timeout=30secs"))
    assert flags["work_dir"] == str(tmp_path / "m1")
    assert flags["offer_timeout"] == "30secs"
    assert flags["raft_election_timeout"] == "500ms"
    assert flags["read_replica"] == "false"
    assert flags["max_agent_ping_timeouts"] == "5"
    assert "run" not in flags and "command" not in flags


def test_election_timeout_sets_the_raft_timeouts(tmp_path: Path) -> None:
    config = main.raft_config(master_options(tmp_path, "--raft_election_timeout=1secs"))
    assert config.election_timeout_s == (1.0, 2.0)
    assert config.connection_timeout_s >= 2.0
    assert config.leader_step_down_s > 2.0


@pytest.mark.parametrize(
    ("value", "message"),
    [("soon", "invalid duration 'soon'"), ("10ms", "election timeout must exceed 3 heartbeats")],
)
def test_bad_election_timeout_is_refused(tmp_path: Path, value: str, message: str) -> None:
    options = master_options(tmp_path, f"--raft_election_timeout={value}")
    with pytest.raises(SystemExit, match=message):
        main.run(options)


@pytest.mark.parametrize(
    ("value", "forms"),
    [
        ("legacy,protobuf", ("legacy", "pb")),
        ("json, legacy,json", ("json", "legacy")),
        ("", ()),
    ],
)
def test_warm_encodings_name_the_warmer_forms(value: str, forms: tuple[str, ...]) -> None:
    assert main.warm_forms(value) == forms


def test_warm_encodings_default_and_bad_names(tmp_path: Path) -> None:
    assert main.warm_forms(master_options(tmp_path).warm_encodings) == ("legacy", "pb")
    options = master_options(tmp_path, "--warm_encodings=legacy,xml")
    with pytest.raises(SystemExit, match=r"--warm_encodings: unknown xml \(choose from legacy"):
        main.run(options)


def test_master_info_advertises_an_ip_like_libprocess(tmp_path: Path) -> None:
    # The pid's address is an IP (tools such as mesos-dns resolve it): --ip by default, and
    # the host name, when not given, is that IP rather than a fixed 127.0.0.1.
    info = main.leader_config(master_options(tmp_path, "--ip=127.0.0.2")).master_info
    assert (info.hostname, info.address.ip, info.ip) == ("127.0.0.2", "127.0.0.2", 0x0200007F)
    named = main.leader_config(
        master_options(tmp_path, "--ip=0.0.0.0", "--advertise_ip=10.1.2.3", "--hostname=m1")
    ).master_info
    assert (named.hostname, named.address.ip) == ("m1", "10.1.2.3")
    # MasterInfo.pid, as Mesos fills it (v0 drivers and tools read it): master@<ip>:<port>.
    assert (info.pid, named.pid) == ("master@127.0.0.2:5050", "master@10.1.2.3:5050")
    with pytest.raises(ValueError, match="'advertise_ip': 'm1' is not an IP address"):
        main.leader_config(master_options(tmp_path, "--advertise_ip=m1"))
