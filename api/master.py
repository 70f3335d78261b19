"""A master replica: the replicated log, the fold, leader duties and HTTP, wired together."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from meseta.api.app import create_app
from meseta.api.context import VERSION, MasterContext
from meseta.api.event_router import EventRouter
from meseta.api.flags import UNSPECIFIED_ADDRESSES
from meseta.api.http import KEEP_ALIVE_S
from meseta.api.warmer import DEFAULT_FORMS, Warmer
from meseta.log.interface import ReplicatedLog
from meseta.master.leader import LeaderConfig, Leadership
from meseta.master.service import MasterService
from meseta.projections.cluster import ClusterView
from meseta.projections.operator_stream import DEFAULT_MAX_SUBSCRIBERS, OperatorEventBroker
from meseta.projections.store import ViewKeeper, ViewStore
from meseta.proto.mesos.v1 import mesos_pb2


def master_info(
    hostname: str | None, ip: str, port: int, advertise_ip: str | None = None
) -> mesos_pb2.MasterInfo:
    """As libprocess advertises a master: --advertise_ip, else --ip, else (listening
    everywhere) the address the host name resolves to; the host name defaults to that IP
    (Mesos's --hostname_lookup=false: no reverse lookup)."""
    address = advertise_ip or (ip if ip and ip not in UNSPECIFIED_ADDRESSES else resolve(hostname))
    info = mesos_pb2.MasterInfo(id="", port=port, hostname=hostname or address, version=VERSION)
    hostname = info.hostname
    try:
        info.ip = int.from_bytes(socket.inet_aton(address), "little")
    except OSError:  # an IPv6 address: MasterInfo.ip holds IPv4 only
        info.ip = 0
    info.address.hostname = hostname
    info.address.ip = address
    info.address.port = port
    # libprocess's pid of the master process, which Mesos puts in MasterInfo too.
    info.pid = f"master@{f'[{address}]' if ':' in address else address}:{port}"
    # What tools check before DRAIN_AGENT (Mesos's AGENT_UPDATE and QUOTA_V2 are not built).
    info.capabilities.add(type=mesos_pb2.MasterInfo.Capability.AGENT_DRAINING)
    return info


def resolve(hostname: str | None) -> str:
    try:
        return socket.gethostbyname(hostname or socket.gethostname())
    except OSError:
        return "127.0.0.1"


@dataclass(slots=True)
class MasterReplica:
    """Everything a running replica owns; `start` and `stop` in that order."""

    context: MasterContext
    server: uvicorn.Server
    serving: asyncio.Task[None] | None = None
    # Keeps the cluster view on disk (resumed after a restart), when given a directory.
    view_keeper: ViewKeeper | None = None
    warmer: Warmer | None = None

    @classmethod
    def build(
        cls,
        log: ReplicatedLog,
        config: LeaderConfig,
        host: str,
        port: int,
        uds: str | None = None,
        view_dir: Path | None = None,
        max_operator_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
        flags: dict[str, str] | None = None,
        warm_forms: Sequence[str] = DEFAULT_FORMS,
    ) -> MasterReplica:
        service = MasterService(log)
        leadership = Leadership(service, config)
        context = MasterContext(service, leadership, flags=dict(flags or {}))
        context.cluster = ClusterView(
            max_completed_tasks_per_framework=config.master_config.max_completed_tasks_per_framework
        )
        keeper = None
        if view_dir is not None:
            keeper = ViewKeeper(ViewStore(view_dir), context.cluster)
            keeper.restore(max_index=log.applied_index())
        # Events up to the restored index went out before the restart: not resumable here.
        context.operator_events = OperatorEventBroker(
            context.cluster.applied_index, max_subscribers=max_operator_subscribers
        )
        service.listeners.append(context.fold_read_models)
        service.listeners.append(EventRouter(context))
        leadership.listeners.append(lambda leading, term: context.close_all())
        server_config = uvicorn.Config(
            create_app(context),
            host=host,
            port=port,
            uds=uds,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=KEEP_ALIVE_S,
            lifespan="off",
            # Mesos reads no X-Forwarded-* headers: a peer is the connection's address.
            proxy_headers=False,
        )
        return cls(
            context,
            uvicorn.Server(server_config),
            view_keeper=keeper,
            warmer=Warmer(context.cluster, forms=warm_forms) if warm_forms else None,
        )

    async def start(self) -> None:
        self.context.service.start()
        if self.view_keeper is not None:
            self.view_keeper.start()
        if self.warmer is not None:
            self.warmer.start()
        self.context.leadership.start()
        self.serving = asyncio.get_running_loop().create_task(self.server.serve())
        while not self.server.started:
            if self.serving.done():
                self.serving.result()  # raises why the server could not start
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.warmer is not None:
            await self.warmer.stop()
        self.context.close_all()
        self.context.operator_events.close()
        await self.context.leadership.stop()
        self.server.should_exit = True
        if self.serving is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.serving
        await self.context.service.stop()
        if self.view_keeper is not None:
            await self.view_keeper.stop()
