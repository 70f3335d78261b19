"""The fold is deterministic: the same entries give the same state and events in any process.

A seeded workload (`support.fold_workload`) builds a few thousand mixed entries
of 1-8 commands each; they are written to an entry file and replayed by
`python -m meseta.master.replay` in subprocesses under different
PYTHONHASHSEED values (set and str iteration orders differ between them).
Every run must print the same events and the same digest as the fold that
built the log in this process. One more replay runs the checkout's own sources,
interpreted: where meseta is a compiled wheel (setup.py), it must print exactly
what the compiled build prints.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from support.fold_cluster import Cluster
from support.fold_workload import Workload

from meseta.master import replay
from meseta.master.digest import digest

ENTRIES = 2500
HASH_SEEDS = ("0", "1", "2", "random")


def build_log(seed: int, entries: int) -> Cluster:
    rng = random.Random(seed)
    cluster = Cluster(check=False)
    workload = Workload(cluster.state, rng)
    while cluster.index < entries:
        commands = []
        advance = 0
        for _ in range(rng.choice((1, 1, 1, 2, 4, 8))):
            built, advance_ns = workload.next_command()
            commands.append(built)
            advance = max(advance, advance_ns)
        cluster.batch(commands, advance_ns=advance)
    return cluster


@pytest.fixture(scope="module")
def entry_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cluster = build_log(seed=20240611, entries=ENTRIES)
    path = tmp_path_factory.mktemp("determinism") / "entries.bin"
    count = replay.write_entry_file(path, (e.SerializeToString() for e in cluster.entries))
    assert count == ENTRIES
    return path, digest(cluster.state)


def test_replay_in_subprocesses_gives_one_digest_under_every_hash_seed(
    entry_file: tuple[Path, str],
) -> None:
    path, expected = entry_file
    runs = {}
    for hash_seed in HASH_SEEDS:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        command = [sys.executable, "-m", "meseta.master.replay", "--file", str(path), "--events"]
        runs[hash_seed] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    outputs = {}
    for hash_seed, process in runs.items():
        stdout, stderr = process.communicate(timeout=100)
        assert process.returncode == 0, stderr.decode()
        outputs[hash_seed] = stdout
    lines = outputs["0"].splitlines()
    summary = orjson.loads(lines[-1])
    assert summary == {"last_index": ENTRIES, "entries": ENTRIES, "digest": expected}
    assert len(lines) > ENTRIES  # the events came out too
    for hash_seed, stdout in outputs.items():
        assert stdout == outputs["0"], f"PYTHONHASHSEED={hash_seed} replayed differently"


# Replays with the checkout's own sources, never a compiled build: a folder holding only
# `meseta` -> the checkout goes first on the path (the checkout's root is the package).
INTERPRETED_REPLAY = (
    "import sys; from meseta.master import fold, replay; "
    "assert not fold.compiled(), fold.__file__; "
    "sys.exit(replay.main(sys.argv[1:]))"
)


def test_the_checkouts_interpreted_sources_fold_as_the_installed_build(
    entry_file: tuple[Path, str], tmp_path: Path
) -> None:
    """A wheel install runs the fold compiled (setup.py): compiled and interpreted replicas
    must fold one log to the same events and state. (Where meseta is installed editable,
    both runs are interpreted and this only repeats the test above.)"""
    path, expected = entry_file
    holder = tmp_path / "checkout"
    holder.mkdir()
    (holder / "meseta").symlink_to(Path(__file__).resolve().parents[2], target_is_directory=True)
    replay_args = ["--file", str(path), "--events"]
    runs = {
        "installed": ([sys.executable, "-P", "-m", "meseta.master.replay", *replay_args], {}),
        "interpreted": (
            [sys.executable, "-P", "-c", INTERPRETED_REPLAY, *replay_args],
            {"PYTHONPATH": str(holder)},
        ),
    }
    outputs = {}
    for name, (command, extra) in runs.items():
        env = {**os.environ, "PYTHONHASHSEED": "0", **extra}
        done = subprocess.run(command, env=env, capture_output=True, timeout=100, check=False)
        assert done.returncode == 0, f"{name}: {done.stderr.decode()}"
        outputs[name] = done.stdout
    assert orjson.loads(outputs["interpreted"].splitlines()[-1])["digest"] == expected
    assert outputs["interpreted"] == outputs["installed"]


def test_in_process_replay_matches_and_stops_at_until(entry_file: tuple[Path, str]) -> None:
    path, expected = entry_file
    full = replay.replay(replay.read_entry_file(path), check=True)
    assert digest(full.state) == expected
    partial = replay.replay(replay.read_entry_file(path), until=ENTRIES // 2)
    assert partial.entries == ENTRIES // 2
    assert partial.state.applied_index == ENTRIES // 2
    assert digest(partial.state) != expected


def test_two_builds_from_one_seed_are_identical() -> None:
    first, second = build_log(7, 300), build_log(7, 300)
    assert [e.SerializeToString() for e in first.entries] == [
        e.SerializeToString() for e in second.entries
    ]
    assert digest(first.state) == digest(second.state)


def test_cli_replays_a_replica_store(
    entry_file: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = entry_file
    payloads = [payload for _, payload in replay.read_entry_file(path)]
    assert replay.import_entries(tmp_path, payloads[:400], chunk=150) == 400
    from meseta import cli

    assert (
        cli.main(["replay", "--data", str(tmp_path), "--check", "--state", "--until", "300"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    summary = orjson.loads(lines[-1])
    assert summary["last_index"] == 300 and summary["entries"] == 300
    assert orjson.loads(lines[-2])["applied_index"] == 300
    partial = replay.replay(iter(list(enumerate(payloads, start=1))[:300]))
    assert summary["digest"] == digest(partial.state)
    assert cli.main(["replay", "--data", str(tmp_path / "nothing")]) == 2


def test_check_stops_at_the_first_broken_invariant(
    entry_file: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = entry_file
    monkeypatch.setattr(
        replay.invariants, "check", lambda state: ["boom"] if state.applied_index >= 5 else []
    )
    assert replay.main(["--file", str(path), "--check"]) == 1
    assert "invariants broken after entry 5: ['boom']" in capsys.readouterr().err
