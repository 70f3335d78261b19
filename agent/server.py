"""The agent's HTTP server: one Starlette app under uvicorn on --ip:--port.

Routes: the v1 executor API (agent/executor_api.py) and the agent's endpoints
(agent/endpoints.py: /state, /metrics/snapshot, /files/..., ...) and the v1
agent operator API (agent/operator_api.py).
"""

from __future__ import annotations

import asyncio

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from meseta.agent import endpoints, executor_api, operator_api
from meseta.agent.daemon import Agent
from meseta.api.compression import Gzip
from meseta.api.http import KEEP_ALIVE_S


def create_app(agent: Agent) -> Starlette:
    routes: list[BaseRoute] = [
        *executor_api.routes(agent),
        *endpoints.routes(agent),
        *operator_api.routes(agent),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Gzip)])  # as libprocess, gzip


class AgentServer:
    def __init__(self, agent: Agent) -> None:
        config = uvicorn.Config(
            create_app(agent),
            host=agent.flags_.ip,
            port=agent.flags_.port,
            log_level="warning",
            lifespan="off",
            # Mesos reads no X-Forwarded-* headers: a peer is the connection's address.
            proxy_headers=False,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve in the background; return once the socket listens (OSError if it can't)."""
        self.task = asyncio.get_running_loop().create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise OSError(
                    f"the agent's HTTP server did not start on port {self.server.config.port}"
                )
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
