"""HTTP rules shared by the v1 endpoints: media types, errors, leader redirects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response

from meseta.api import mesos_json
from meseta.api.streams import JSON, PROTOBUF
from meseta.master.durations import parse_duration_ns

M = TypeVar("M", bound=Message)
# Our servers keep idle connections open, in effect for good, as Mesos's libprocess does:
# pymesos sends every call on one kept-alive connection, and a server that closes it first
# races the next call (uvicorn's default 5 s cost pymesos its calls and its stream, and an
# executor its update). Our aiohttp clients drop their own idle connections after 15 s.
KEEP_ALIVE_S = 365 * 24 * 3600
# libprocess's handlers of Mesos's read endpoints do not look at the method (collectd's
# Mesos plugin, for one, POSTs an empty body to /metrics/snapshot); HEAD comes with GET.
ANY_METHOD = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


class HttpError(Exception):
    """An error answered with `status` and a short plain-text body (as Mesos does)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> Response:
        return Response(self.message, self.status, self.headers, media_type="text/plain")


def request_media_type(request: Request) -> str:
    header = request.headers.get("content-type")
    if header is None:
        raise HttpError(400, "Expecting 'Content-Type' to be present")
    # Mesos compares the whole header; we also accept parameters such as charset.
    media_type = header.split(";", 1)[0].strip().lower()
    if media_type not in (JSON, PROTOBUF):
        raise HttpError(415, f"Expecting 'Content-Type' of {JSON} or {PROTOBUF}")
    return media_type


def accepts(accept_header: str, media_type: str) -> bool:
    for part in accept_header.split(","):
        offered = part.split(";", 1)[0].strip().lower()
        quality = 1.0
        for param in part.split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        major, _, _minor = media_type.partition("/")
        if offered in (media_type, "*/*", f"{major}/*"):
            return True
    return False


def response_media_type(request: Request) -> str:
    """JSON when acceptable (or no Accept), else protobuf, else 406."""
    accept = request.headers.get("accept")
    if accept is None or accepts(accept, JSON):
        return JSON
    if accepts(accept, PROTOBUF):
        return PROTOBUF
    raise HttpError(406, f"Expecting 'Accept' to allow '{PROTOBUF}' or '{JSON}'")


@dataclass(frozen=True, slots=True)
class ParseErrors:
    """How Mesos words a body that is JSON but not the message, or not the protobuf."""

    not_converted: str  # the prefix to the conversion's error
    not_protobuf: str


# The scheduler, master operator and executor handlers parse their Call themselves...
CALL_ERRORS = ParseErrors("Failed to convert JSON into Call protobuf: ",
                          "Failed to parse body into Call protobuf")  # fmt: skip
# ...the agent's operator API (and its streamed records) through `deserialize`.
DESERIALIZE_ERRORS = ParseErrors("", "Failed to parse body into a protobuf object")


def parse_body(
    body: bytes, media_type: str, message_type: type[M], errors: ParseErrors = CALL_ERRORS
) -> M:
    """The body as a `message_type`, or Mesos's 400."""
    try:
        if media_type == JSON:
            return mesos_json.from_json(body, message_type)
        return mesos_json.from_protobuf(body, message_type)
    except mesos_json.JsonSyntaxError as error:
        raise HttpError(400, f"Failed to parse body into JSON: {error}") from None
    except mesos_json.MesosJsonError as error:
        if media_type == JSON:
            raise HttpError(400, f"{errors.not_converted}{error}") from None
        raise HttpError(400, errors.not_protobuf) from None


def validate_call(call: Message, scope: str, required_body: Mapping[Any, str]) -> None:
    """Mesos's first checks of an operator API Call (`scope`: "master" or "agent"): it has a
    `type`, and the sub-message `required_body` names for that type."""
    if not call.HasField("type"):
        raise HttpError(400, f"Failed to validate {scope}::Call: Expecting 'type' to be present")
    body = required_body.get(call.type)  # type: ignore[attr-defined]
    if body is not None and not call.HasField(body):
        raise HttpError(400, f"Failed to validate {scope}::Call: Expecting '{body}' to be present")


def encode_body(message: Message, media_type: str) -> Response:
    if media_type == JSON:
        return Response(mesos_json.to_json(message), 200, media_type=JSON)
    return Response(message.SerializeToString(), 200, media_type=PROTOBUF)


def method_not_allowed(request: Request, *allowed: str) -> HttpError:
    """libprocess's 405, with its Allow header."""
    expected = "', '".join(allowed)
    message = f"405 Method Not Allowed. Expecting one of {{ '{expected}' }}, but received"
    return HttpError(405, f"{message} '{request.method}'.", {"Allow": ", ".join(allowed)})


def require_post(request: Request) -> None:
    if request.method != "POST":
        raise method_not_allowed(request, "POST")


def delegate_path(path: str) -> str:
    """The path as Mesos's `master` process sees it (`/api/v1` -> `/master/api/v1`)."""
    return path if path.startswith("/master/") else "/master" + path


def jsonp_response(request: Request, body: bytes, status: int = 200) -> Response:
    """JSON, or JSONP when `?jsonp=<callback>` asks for it (as libprocess's OK does)."""
    callback = request.query_params.get("jsonp")
    if callback:
        wrapped = callback.encode() + b"(" + body + b");"
        return Response(wrapped, status, media_type="text/javascript")
    return Response(body, status, media_type=JSON)


def snapshot_refusal(request: Request) -> Response | None:
    """libprocess's /metrics/snapshot answers 400 to a `timeout` that is not a duration
    (a valid one bounds a wait for slow metrics; ours are all at hand)."""
    text = request.query_params.get("timeout")
    if text is None:
        return None
    try:
        parse_duration_ns(text)
    except ValueError as error:
        return Response(f"Invalid timeout '{text}': {error}.\n", 400, media_type="text/plain")
    return None
