"""The master's web UI, served at `/` by every replica (as Mesos serves its UI on the master's
port): a page and its script and style under `/static/`, which read this replica's `/state`
and the agents' sandboxes (`api/webui/app.js`)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

ASSETS = Path(__file__).with_name("webui")
# Path -> (file, media type): only these are served, so no path can reach anything else.
FILES = {
    "/": ("index.html", "text/html"),
    "/static/app.js": ("app.js", "text/javascript"),
    "/static/style.css": ("style.css", "text/css"),
}


async def asset(request: Request) -> Response:
    name, media_type = FILES[request.url.path]
    return FileResponse(ASSETS / name, media_type=media_type)


def routes() -> list[Route]:
    return [Route(path, asset, methods=["GET"]) for path in FILES]
