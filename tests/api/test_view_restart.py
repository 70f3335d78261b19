"""A master replica keeps its cluster view on disk and resumes it after a restart.

The replica is stopped (its view saved with the applied index) and a new one
is built over the same log and view directory: it starts from the stored view
(not from nothing), replays the log past it, and serves the same tasks.
"""

from __future__ import annotations

import time
from pathlib import Path

from support.fake_agent import FakeAgent
from support.fake_scheduler import FakeScheduler
from support.master_harness import replica_over, serving
from support.read_cluster import AGENT_RESOURCES, populate
from support.view_snapshot import describe

from meseta.log.memory import MemoryLog
from meseta.projections.rebuild import rebuild


async def test_restart_resumes_the_stored_view(tmp_path: Path) -> None:
    log = MemoryLog(clock_ns=time.time_ns)
    view_dir = tmp_path / "views"
    try:
        async with (
            serving(replica_over(log, view_dir)) as first,
            FakeAgent(first.url, resources=AGENT_RESOURCES) as agent,
            FakeScheduler(first.url) as scheduler,
        ):
            assert (await agent.subscribe())["type"] == "SUBSCRIBED"
            populated = await populate(first, agent, scheduler)
        saved = describe(first.context.cluster)
        saved_index = first.context.cluster.applied_index

        second = replica_over(log, view_dir)
        # Restored while building, before the fold replays a single entry.
        assert second.context.cluster.applied_index == saved_index
        assert describe(second.context.cluster) == saved
        async with serving(second):
            view = second.context.cluster
            await second.wait_until(
                lambda: view.applied_index == log.applied_index(), "the view to catch up"
            )
            # The scheduler left with the first replica (failover timeout 0): its framework
            # may be completed by now; either way the view is what the whole log says.
            assert describe(view) == describe(rebuild(log, up_to=view.applied_index))
            (framework,) = [f for f in view.all_frameworks() if f.id == populated.framework_id]
            assert "t2" in [t.proto.task_id.value for t in framework.completed_tasks]
    finally:
        await log.close()
