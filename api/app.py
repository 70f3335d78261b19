"""The master replica's HTTP application (Starlette), built from explicit parts."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meseta.api import agent_link, operator, scheduler, sse, state_endpoints
from meseta.api.consistency import IndexHeaders
from meseta.api.context import MasterContext
from meseta.api.http import HttpError


async def version(request: Request) -> Response:
    return Response(orjson.dumps(state_endpoints.build_info()), media_type="application/json")


async def health(request: Request) -> Response:
    return Response(status_code=200)


async def redirect(request: Request) -> Response:
    """307 to the leader's address (no path), answered by every replica (contract 1.6)."""
    context: MasterContext = request.app.state.context
    info = context.state.master_info
    if info is None or not context.service.log.leader_address():
        return HttpError(503, "No leader elected").response()
    host = info.hostname or info.address.ip
    return Response(status_code=307, headers={"Location": f"//{host}:{info.port}"})


ANY = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def create_app(context: MasterContext) -> Starlette:
    routes = [
        Route("/version", version, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/master/health", health, methods=["GET"]),
        Route("/redirect", redirect, methods=["GET"]),
        Route("/master/redirect", redirect, methods=["GET"]),
    ]
    for prefix in ("", "/master"):
        routes.append(Route(f"{prefix}/api/v1/scheduler", scheduler.endpoint, methods=ANY))
        routes.append(Route(f"{prefix}/api/v1/agent", agent_link.endpoint, methods=ANY))
        routes.append(Route(f"{prefix}/api/v1/events", sse.endpoint, methods=ANY))
        routes.append(Route(f"{prefix}/api/v1", operator.endpoint, methods=ANY))
        # libprocess routes by longest prefix: pymesos's operator posts to /api/v1/operator.
        routes.append(Route(f"{prefix}/api/v1/{{rest:path}}", operator.endpoint, methods=ANY))
    routes += state_endpoints.routes()
    app = Starlette(routes=routes, middleware=[Middleware(IndexHeaders)])
    app.state.context = context
    return app
