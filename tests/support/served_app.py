"""Serve an ASGI app with uvicorn on a free loopback port (in a thread) and call it synchronously.

Starlette's TestClient needs httpx, which the project does not depend on; this runs the real
server instead, so what the tests see is what a client on the wire sees.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import orjson
import uvicorn
from starlette.types import ASGIApp

from meseta.api.http import KEEP_ALIVE_S
from meseta.log.testing import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    status_code: int
    content: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


@dataclass(frozen=True)
class Client:
    port: int

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        if params:
            path = f"{path}?{urlencode({k: str(v) for k, v in params.items()})}"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            content = response.read()
            found = {name.lower(): value for name, value in response.getheaders()}
            return Reply(response.status, content, found)
        finally:
            connection.close()

    def get(self, path: str, params: Mapping[str, object] | None = None) -> Reply:
        return self.request("GET", path, params)

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        return self.request("POST", path, body=body, headers=headers)


@contextlib.contextmanager
def served(
    app: ASGIApp, timeout_s: float = 10.0, http: Literal["auto", "h11", "httptools"] = "auto"
) -> Iterator[Client]:
    """`app` under uvicorn; `http` picks its protocol ("auto": httptools, as the master)."""
    port = free_port()
    config = uvicorn.Config(
        app, host=HOST, port=port, log_level="warning", lifespan="off", http=http,
        timeout_keep_alive=KEEP_ALIVE_S,  # as the master serves: pymesos reuses its connection
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="served-app", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the app did not start serving")
            time.sleep(0.01)
        yield Client(port)
    finally:
        server.should_exit = True
        thread.join(timeout_s)
