"""What the HTTP edge of a master replica shares: the fold, leadership, live streams."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from meseta.api.http import HttpError, delegate_path
from meseta.api.streams import Stream
from meseta.master.leader import Leadership
from meseta.master.service import MasterService
from meseta.master.state import State

VERSION = "1.11.0"


@dataclass(slots=True)
class MasterContext:
    service: MasterService
    leadership: Leadership
    # Streams waiting for the fold to accept their subscription, by stream id.
    pending: dict[str, Stream] = field(default_factory=dict)
    # Live subscriptions by framework id and by agent id.
    frameworks: dict[str, Stream] = field(default_factory=dict)
    agents: dict[str, Stream] = field(default_factory=dict)

    @property
    def state(self) -> State:
        return self.service.state

    def check_leader(self, request: Request) -> None:
        """307 to the leader, or 503 while none is known or it is still taking office."""
        if self.leadership.leading:
            return
        log = self.service.log
        if log.is_leader():
            raise HttpError(503, "Master has not finished recovery")
        info = self.state.master_info
        if info is None or self.state.leader_term != log.term() or not log.leader_address():
            raise HttpError(503, "No leader elected")
        host = info.hostname or info.address.ip
        query = f"?{request.url.query}" if request.url.query else ""
        location = f"//{host}:{info.port}{delegate_path(request.url.path)}{query}"
        raise HttpError(307, "", {"Location": location})

    def close_all(self) -> None:
        """Leadership ended: every subscriber must find the new leader."""
        for stream in [*self.pending.values(), *self.frameworks.values(), *self.agents.values()]:
            stream.close()
        self.pending.clear()
        self.frameworks.clear()
        self.agents.clear()
