"""benchmarks/state_bench.py at toy size, so the benchmark cannot rot unnoticed.

It runs the real script (`--tiny`: every stage, a few dozen agents) in its own session, so
that on a timeout the script and the master replicas it started are killed together.
Speed is not judged here (benchmarks judge it); only that every stage ran and reported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "state_bench.py"
KEYS = (
    "state_p50_s", "getstate_p50_s", "pollers_mean_s", "failover_state_s",
    "stream_p99_lag_ms", "reregister_agents_per_s",
)  # fmt: skip
RUN_TIMEOUT_S = 200


@pytest.mark.integration
@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--tiny", "--workdir", str(tmp_path / "work")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the script and the replicas it started
        process.communicate()
        pytest.fail(f"state_bench --tiny did not finish within {RUN_TIMEOUT_S}s")
    stderr = err.decode(errors="replace")
    lines = out.decode().strip().splitlines()
    assert lines, f"no output; stderr: {stderr[-3000:]}"
    results = json.loads(lines[-1])
    assert results["problems"] == [], stderr[-3000:]
    assert process.returncode == 0, stderr[-3000:]
    for key in KEYS:
        assert isinstance(results[key], (int, float)), (key, results[key])
        assert results[key] >= 0, (key, results[key])
    # Every stage measured something real.
    assert results["state_p50_s"] > 0 and results["state_big_p50_s"] > 0
    assert results["state_tasks"] >= 300 and results["state_big_completed_tasks"] >= 600
    assert results["failover_served_index"] >= results["failover_acked_index"] > 0
    assert results["reregister_agents_per_s"] > 0
    assert results["stream_events_per_s"] > 0 and results["stream_missing_deliveries"] == 0
    assert results["pollers_reads"] >= results["pollers"]
    assert results["pollers_leader_reads"] >= results["pollers"]
    assert not (tmp_path / "work").exists(), "the script must remove its work directory"
