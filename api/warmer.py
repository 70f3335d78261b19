"""Every replica keeps its /state documents warm, not only the one that is read.

Reads encode what they find cold (api/state_endpoints.py), so a standby nobody
reads would meet its first large read, typically right after it became leader,
with every task to encode: seconds at 100k tasks. The warmer encodes what
changed about once a second, in 1 ms slices of the event loop (as a read
warms), so a record changed many times in that second is encoded once, and a
new leader or a standby serves /state from cached pieces at once. Only the
legacy documents are kept warm: /state, /frameworks, /slaves and /tasks join
them; the v1 JSON encodings cost about three times as much per task and are
encoded by the reads that ask for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from meseta.api.state_endpoints import warm_legacy
from meseta.projections.cluster import ClusterView

log = logging.getLogger(__name__)

WARM_EVERY_S = 1.0


class Warmer:
    """A replica's background warming; `start` and `stop` on its event loop."""

    def __init__(self, view: ClusterView, every_s: float = WARM_EVERY_S) -> None:
        self.view = view
        self.every_s = every_s
        self.warmed_index = -1  # the view's applied index at the last pass
        self.passes = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name="warmer")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.warm()

    async def warm(self) -> None:
        """One pass, when the view moved since the last one."""
        index = self.view.applied_index
        if index == self.warmed_index:
            return
        self.warmed_index = index
        self.passes += 1
        try:
            await warm_legacy(self.view)
        except Exception:
            # A read hitting the same record reports the error to its client; the
            # replica itself is fine (encodings are caches), so keep warming.
            log.exception("warming the cluster view's documents failed")
