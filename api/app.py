"""The master replica's HTTP application (Starlette), built from explicit parts."""

from __future__ import annotations

import time

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meseta import __version__
from meseta.api import agent_link, scheduler
from meseta.api.context import VERSION, MasterContext
from meseta.api.http import HttpError

STARTED_S = time.time()


async def version(request: Request) -> Response:
    body = {
        "version": VERSION,  # pymesos parses it as dotted integers
        "build_date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(STARTED_S)),
        "build_time": STARTED_S,
        "build_user": "meseta",
        "git_tag": f"meseta-{__version__}",
    }
    return Response(orjson.dumps(body), media_type="application/json")


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
    app = Starlette(routes=routes)
    app.state.context = context
    return app
