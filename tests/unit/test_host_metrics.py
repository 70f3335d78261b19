"""The system/* metrics and libprocess-style timers (api/host.py)."""

from __future__ import annotations

from meseta.api.host import system_metrics, timer_metrics


def test_a_timer_reports_its_last_sample_count_and_percentiles() -> None:
    samples = [float(n) for n in range(1, 101)]  # 1..100, the last one 100
    out = timer_metrics("t_ms", samples, count=250)
    assert out["t_ms"] == 100.0 and out["t_ms/count"] == 250.0
    assert (out["t_ms/min"], out["t_ms/max"]) == (1.0, 100.0)
    assert (out["t_ms/p50"], out["t_ms/p90"], out["t_ms/p99"]) == (51.0, 91.0, 100.0)
    assert timer_metrics("t_ms", [], count=0) == {"t_ms/count": 0.0}


def test_system_metrics_describe_this_host() -> None:
    out = system_metrics()
    assert out["system/cpus_total"] >= 1
    assert 0 < out["system/mem_free_bytes"] <= out["system/mem_total_bytes"]
