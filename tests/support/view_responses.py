"""What the view's caches give, and dropping them: for tests that compare the responses
assembled from cached encodings and task blocks with those of a cache-free view."""

from __future__ import annotations

from meseta.api import encodings
from meseta.api import state_json as sj
from meseta.projections.assembly import PROTOBUF
from meseta.projections.cluster import ClusterView


def responses(view: ClusterView) -> tuple[object, ...]:
    """GetState (protobuf, JSON), GetTasks (JSON), the frameworks' /state documents and
    their task counts, each assembled from whatever the view has cached."""
    legacy: list[bytes] = []
    sj.frameworks_parts(view.all_frameworks(), legacy)
    return (
        view.state_message(PROTOBUF).join(),
        view.state_message(encodings.JSON_ENCODING).join(),
        view.tasks_message(encodings.JSON_ENCODING).join(),
        b"".join(legacy),
        [framework.counts_by_agent() for framework in view.all_frameworks()],
    )


def drop_caches(view: ClusterView) -> None:
    for record in view.records():
        record.encodings.clear()
    for framework in view.all_frameworks():
        framework.tasks_changed()
