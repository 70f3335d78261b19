"""A master replica: the replicated log, the fold, leader duties and HTTP, wired together."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

import uvicorn

from meseta.api.app import create_app
from meseta.api.context import VERSION, MasterContext
from meseta.api.event_router import EventRouter
from meseta.log.interface import ReplicatedLog
from meseta.master.leader import LeaderConfig, Leadership
from meseta.master.service import MasterService
from meseta.proto.mesos.v1 import mesos_pb2


def master_info(hostname: str, port: int) -> mesos_pb2.MasterInfo:
    info = mesos_pb2.MasterInfo(id="", port=port, hostname=hostname, version=VERSION)
    try:
        address = socket.gethostbyname(hostname)
    except OSError:
        address = "127.0.0.1"
    info.ip = int.from_bytes(socket.inet_aton(address), "little")
    info.address.hostname = hostname
    info.address.ip = address
    info.address.port = port
    return info


@dataclass(slots=True)
class MasterReplica:
    """Everything a running replica owns; `start` and `stop` in that order."""

    context: MasterContext
    server: uvicorn.Server
    serving: asyncio.Task[None] | None = None

    @classmethod
    def build(
        cls,
        log: ReplicatedLog,
        config: LeaderConfig,
        host: str,
        port: int,
        uds: str | None = None,
    ) -> MasterReplica:
        service = MasterService(log)
        leadership = Leadership(service, config)
        context = MasterContext(service, leadership)
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
            lifespan="off",
        )
        return cls(context, uvicorn.Server(server_config))

    async def start(self) -> None:
        self.context.service.start()
        self.context.leadership.start()
        self.serving = asyncio.get_running_loop().create_task(self.server.serve())
        while not self.server.started:
            if self.serving.done():
                self.serving.result()  # raises why the server could not start
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.context.close_all()
        await self.context.leadership.stop()
        self.server.should_exit = True
        if self.serving is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.serving
        await self.context.service.stop()
