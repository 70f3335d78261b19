"""Flags given the way Mesos takes them: MESOS_* environment variables, bare and negated
booleans, `file://` values (api/flags.py `mesos_argv`, used by `meseta master|agent`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from meseta import cli
from meseta.agent import flags as agent_flags
from meseta.api import main as master_main
from meseta.api.flags import FlagLoadError, mesos_argv


def agent_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    agent_flags.add_arguments(parser)
    return parser


def parse_agent(argv: list[str], environ: dict[str, str]) -> agent_flags.AgentFlags:
    parser = agent_parser()
    return agent_flags.from_options(parser.parse_args(mesos_argv(argv, environ, parser)))


def test_flags_come_from_the_environment_and_the_command_line_wins(tmp_path: Path) -> None:
    environ = {
        "MESOS_MASTER": "10.0.0.1:5050",
        "MESOS_WORK_DIR": str(tmp_path),
        "MESOS_PORT": "5151",
        "MESOS_UNRELATED": "ignored",
        "PORT": "1",
    }
    flags = parse_agent(["--port=6000"], environ)
    assert flags.masters == ("10.0.0.1:5050",) and flags.work_dir == tmp_path.resolve()
    assert flags.port == 6000
    assert parse_agent([], environ).port == 5151


def test_booleans_may_be_bare_negated_or_valued(tmp_path: Path) -> None:
    base = ["--master=m:5050", f"--work_dir={tmp_path}"]
    assert parse_agent([*base, "--no-strict"], {}).strict is False
    assert parse_agent([*base, "--strict"], {"MESOS_STRICT": "false"}).strict is True
    assert parse_agent([*base, "--strict=0"], {}).strict is False
    assert parse_agent(base, {"MESOS_STRICT": "false"}).strict is False
    assert parse_agent([*base, "--http_command_executor=false"], {}).http_command_executor is False
    with pytest.raises(FlagLoadError, match="'strict': expected true or false, got 'maybe'"):
        parse_agent([*base, "--strict=maybe"], {})


def test_store_true_flags_follow_the_same_rules() -> None:
    parser = argparse.ArgumentParser()
    master_main.add_arguments(parser)
    required = ["--work_dir=/tmp/x", "--peers=a:1", "--secret_file=/tmp/s"]
    environ = {"MESOS_READ_REPLICA": "true"}
    assert parser.parse_args(mesos_argv(required, environ, parser)).read_replica is True
    argv = [*required, "--no-read_replica"]
    assert parser.parse_args(mesos_argv(argv, environ, parser)).read_replica is False
    assert parser.parse_args(mesos_argv(required, {}, parser)).read_replica is False


def test_values_are_read_from_file_urls_and_separate_words_work(tmp_path: Path) -> None:
    resources = tmp_path / "resources"
    resources.write_text("cpus:2;mem:1024\n")
    argv = ["--master", "m:5050", f"--work_dir={tmp_path}", f"--resources=file://{resources}"]
    assert parse_agent(argv, {}).resources == "cpus:2;mem:1024"
    environ = {"MESOS_ATTRIBUTES": f"file://{resources}"}
    assert parse_agent(argv, environ).attributes == "cpus:2;mem:1024"
    missing = tmp_path / "missing"
    with pytest.raises(FlagLoadError, match=f"'resources': cannot read '{missing}'"):
        parse_agent([*argv, f"--resources=file://{missing}"], {})


def test_unknown_flags_and_positionals_are_left_to_argparse(tmp_path: Path) -> None:
    parser = agent_parser()
    argv = ["--master=m:5050", "--bogus=1", "word", "--", "--no-strict"]
    assert mesos_argv(argv, {}, parser) == argv


def test_the_command_line_reports_an_unreadable_flag_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["agent", "--master=m:5050", f"--work_dir={tmp_path}", "--resources=file:///nope"]
    assert cli.main(argv) == 1
    error = capsys.readouterr().err
    assert "meseta agent: Failed to load flag 'resources': cannot read '/nope'" in error


def run_logging(call: str, logs: Path) -> subprocess.CompletedProcess[str]:
    """`configure_logging(<call>)` in a fresh interpreter (logging is configured once per
    process), which then logs 'kept' at WARNING and 'dropped' at INFO and prints `call`'s
    result; `sys.argv[1]` is `logs`."""
    program = (
        "import logging, sys\n"
        "from meseta.api.flags import configure_logging\n"
        f"path = configure_logging({call})\n"
        "logging.getLogger('meseta').warning('kept')\n"
        "logging.getLogger('meseta').info('dropped')\n"
        "print(path)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(logs)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done


def test_logging_flags_pick_the_level_and_add_a_log_file(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    done = run_logging("'WARNING', sys.argv[1], 'agent'", logs)
    assert done.stdout.strip() == str(logs / "meseta-agent.log")
    written = (logs / "meseta-agent.log").read_text()
    assert "kept" in written and "dropped" not in written
    assert "kept" in done.stderr  # and still to stderr


def test_quiet_logs_nothing_to_stderr(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    done = run_logging("'WARNING', sys.argv[1], 'master', quiet=True", logs)
    assert "kept" in (logs / "meseta-master.log").read_text()
    assert done.stderr == ""  # not even logging's last-resort handler


def test_a_bad_logging_level_is_a_flag_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["agent", "--master=m:5050", f"--work_dir={tmp_path}", "--logging_level=DEBUG"]
    assert cli.main(argv) == 1
    error = capsys.readouterr().err
    assert "Failed to load flag 'logging_level': 'DEBUG' is not INFO | WARNING | ERROR" in error
