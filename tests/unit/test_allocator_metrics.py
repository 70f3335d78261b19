"""The allocator's gauges in Mesos's names: totals, what is held, DRF shares, filters."""

from __future__ import annotations

import pytest
from support.fold_cluster import Cluster

from meseta.master.allocator.metrics import allocator_metrics


def test_gauges_follow_the_books() -> None:
    cluster = Cluster()  # agents offer cpus:4;mem:1024 each
    agent = cluster.add_agent()
    cluster.add_agent("h2")
    web = cluster.add_framework(roles=("web",))
    cluster.add_framework("b", roles=("batch",))
    cluster.state.weights["web"] = 2000  # weight 2
    cluster.start_task(web, agent, "t1", "cpus:2;mem:256", role="web")
    offer = cluster.add_offer(web, agent, role="web")
    cluster.decline(web, [offer], refuse_seconds=60)
    figures = allocator_metrics(cluster.state)
    assert figures["allocator/mesos/resources/cpus/total"] == 8.0
    assert figures["allocator/mesos/resources/mem/total"] == 2048.0
    assert figures["allocator/mesos/resources/cpus/offered_or_allocated"] == 2.0
    # web holds 2 of 8 cpus and 256 of 2048 mem: a dominant share of 1/4, halved by weight 2.
    assert figures["allocator/mesos/roles/web/shares/dominant"] == pytest.approx(0.125)
    assert figures["allocator/mesos/roles/batch/shares/dominant"] == 0.0
    assert figures["allocator/mesos/offer_filters/roles/web/active"] == 1.0
    assert figures["allocator/mesos/offer_filters/roles/batch/active"] == 0.0
