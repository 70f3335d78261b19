"""The master replica's HTTP application (Starlette), built from explicit parts."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from meseta.api import (
    agent_link,
    consistency,
    files,
    host,
    operator,
    operator_forms,
    scheduler,
    sse,
    state_endpoints,
    verbosity,
    webui,
)
from meseta.api.compression import Gzip
from meseta.api.consistency import IndexHeaders
from meseta.api.context import MasterContext
from meseta.api.http import ANY_METHOD, HttpError
from meseta.api.streams import RAW_SEND, Stream

WriteEndpoint = Callable[[Request], Awaitable[Response | Stream]]


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


class WritePaths:
    """The calls agents and schedulers make at high rates (status updates, acknowledgements,
    subscriptions) go straight to their endpoint, past Starlette's router and middleware
    chain: that chain cost about 0.1 ms a request here (a trivial endpoint took 0.23 ms
    through it, 0.14 ms as plain ASGI), and every message a stream writes went through its
    four wrappers. The answer is the same: the endpoint's response or stream with the
    consistency headers `IndexHeaders` adds to every other response, and a 500 when the
    endpoint fails."""

    def __init__(self, app: Starlette, endpoints: dict[str, WriteEndpoint]) -> None:
        self.app = app
        self.endpoints = endpoints
        self.context: MasterContext = app.state.context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoints.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            scope[RAW_SEND] = send  # for the body writes of operator streams
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what the endpoints find as `request.app`
        try:
            response = await endpoint(Request(scope, receive))
            for name, value in consistency.headers(self.context).items():
                response.headers.setdefault(name, value)
            await response(scope, receive, send)
        except Exception:
            # As Starlette's ServerErrorMiddleware: a 500 unless the response has started
            # (the server refuses a second start), then the server logs the error.
            with contextlib.suppress(RuntimeError):
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
            raise


def create_app(context: MasterContext) -> WritePaths:
    routes = [
        Route("/version", version, methods=ANY_METHOD),
        Route("/health", health, methods=ANY_METHOD),
        Route("/master/health", health, methods=ANY_METHOD),
        Route("/redirect", redirect, methods=ANY_METHOD),
        Route("/master/redirect", redirect, methods=ANY_METHOD),
    ]
    for prefix in ("", "/master"):
        routes.append(Route(f"{prefix}/api/v1/scheduler", scheduler.endpoint, methods=ANY_METHOD))
        routes.append(Route(f"{prefix}/api/v1/agent", agent_link.endpoint, methods=ANY_METHOD))
        routes.append(Route(f"{prefix}/api/v1/events", sse.endpoint, methods=ANY_METHOD))
        routes.append(Route(f"{prefix}/api/v1", operator.endpoint, methods=ANY_METHOD))
        # libprocess routes by longest prefix: pymesos's operator posts to /api/v1/operator.
        catch_all = f"{prefix}/api/v1/{{rest:path}}"
        routes.append(Route(catch_all, operator.endpoint, methods=ANY_METHOD))
        routes.append(Route(f"{prefix}/teardown", operator_forms.teardown, methods=ANY_METHOD))
        routes.append(Route(f"{prefix}/weights", operator_forms.weights, methods=["GET", "PUT"]))
        routes.append(Route(f"{prefix}/quota", operator_forms.quota, methods=ANY_METHOD))
        routes.append(Route(f"{prefix}/quota/{{role}}", operator_forms.quota, methods=ANY_METHOD))
        for path in operator_forms.RESOURCE_FORMS:
            routes.append(Route(prefix + path, operator_forms.resource_form, methods=ANY_METHOD))
        schedule = operator_forms.maintenance_schedule
        routes.append(Route(f"{prefix}/maintenance/schedule", schedule, methods=ANY_METHOD))
        status = operator_forms.maintenance_status
        routes.append(Route(f"{prefix}/maintenance/status", status, methods=ANY_METHOD))
        for path in operator_forms.MACHINE_FORMS:
            routes.append(Route(prefix + path, operator_forms.machines, methods=ANY_METHOD))
    routes += state_endpoints.routes()
    routes += files.routes(lambda: state_endpoints.attachments(context))
    routes.append(Route("/logging/toggle", verbosity.toggle, methods=["GET", "POST"]))
    routes += host.system_routes()
    routes += webui.routes()
    # Gzip is outermost: it compresses what IndexHeaders completed.
    app = Starlette(routes=routes, middleware=[Middleware(Gzip), Middleware(IndexHeaders)])
    app.state.context = context
    writes: dict[str, WriteEndpoint] = {}
    for prefix in ("", "/master"):
        writes[f"{prefix}/api/v1/scheduler"] = scheduler.endpoint
        writes[f"{prefix}/api/v1/agent"] = agent_link.endpoint
    return WritePaths(app, writes)
