"""Every replica keeps its read documents warm, not only the one that is read.

Reads encode what they find cold (api/state_endpoints.py, api/encodings.py), so
a standby nobody reads would meet its first large read, typically right after
it became leader, with every task to encode: seconds at 100k tasks. The warmer
encodes what changed about once a second, in 1 ms slices of the event loop (as
a read warms), so a record changed many times in that second is encoded once,
and a new leader or a standby serves /state and GET_STATE from cached pieces
at once.

Which wire forms it keeps warm is a choice of CPU (`FORMS`, by encoding kind).
Measured per 10k changed tasks (CPU time of a pass's encoding and block joins,
one framework): the legacy documents 0.16-0.21 s, v1 protobuf 0.04-0.06 s (a
quarter of that), v1 JSON 0.53-0.73 s (three and a half times). So by default
a pass warms the legacy documents (/state, /frameworks, /slaves, /tasks) and
the v1 protobuf encodings (GET_STATE, GET_TASKS, ... and operator SUBSCRIBED
in protobuf), about 1.25 times the legacy cost alone; v1 JSON, which would make
a pass nearly five times as dear, is warmed only when asked for, else encoded
by the reads that ask for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from meseta.api import encodings
from meseta.api.state_endpoints import warm_legacy
from meseta.projections.assembly import PROTOBUF, Encoding
from meseta.projections.cluster import ClusterView

log = logging.getLogger(__name__)

WARM_EVERY_S = 1.0


def warm_v1(enc: Encoding) -> Callable[[ClusterView], Awaitable[None]]:
    """Warm what GET_STATE embeds (every assembled v1 read's entities) in `enc`."""

    async def warm(view: ClusterView) -> None:
        await encodings.warm(encodings.Call.GET_STATE, view, enc)

    return warm


# What a pass can keep warm, by encoding kind, cheapest per task first.
FORMS: dict[str, Callable[[ClusterView], Awaitable[None]]] = {
    PROTOBUF.kind: warm_v1(PROTOBUF),
    "legacy": warm_legacy,
    encodings.JSON_ENCODING.kind: warm_v1(encodings.JSON_ENCODING),
}
DEFAULT_FORMS = ("legacy", PROTOBUF.kind)


class Warmer:
    """A replica's background warming; `start` and `stop` on its event loop."""

    def __init__(
        self,
        view: ClusterView,
        every_s: float = WARM_EVERY_S,
        forms: Sequence[str] = DEFAULT_FORMS,
    ) -> None:
        unknown = [form for form in forms if form not in FORMS]
        if unknown:
            raise ValueError(f"Unknown encodings to warm: {', '.join(unknown)}")
        self.view = view
        self.every_s = every_s
        self.forms = tuple(forms)
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
        for form in self.forms:
            try:
                await FORMS[form](self.view)
            except Exception:
                # A read hitting the same record reports the error to its client; the
                # replica itself is fine (encodings are caches), so keep warming.
                log.exception("warming the cluster view's %s encodings failed", form)
