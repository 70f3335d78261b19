"""gzip for response bodies, as libprocess gives them (contract 1.2).

A Mesos master compresses a response when the request accepts gzip
(`Accept-Encoding`, with libprocess's reading of it: `accepts_gzip`), the
body is at least 1 KB and nothing encoded it already; streams are never
compressed. Operators' tools ask for it without being told to (Go's and
Python requests' HTTP clients do), and JSON shrinks many times over (the
state benchmark's very repetitive 60 MB /state to 0.9 MB).

Two paths, one format:

* Bodies from the read cache (/state and the other cached documents, v1
  GET_STATE, ...) are compressed once per body and index and shared by every
  reader that accepts gzip, like the plain body (`cached`).
* Any other eligible response is compressed on its way out by the `Gzip`
  middleware.

Both compress in slices of the event loop (`read_cache.cooperate`), so a large
body never stalls the fold or writes.
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Iterator, Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meseta.api.read_cache import Build, Built, ReadCache, cooperate

# libprocess's GZIP_MINIMUM_BODY_LENGTH: smaller bodies go out as they are.
MINIMUM_BYTES = 1024
# zlib's fastest level: on a 75 MB list of Mesos task JSON it took 40% of the default
# level's CPU, for 54x against 64x (a replica's CPU is what its reads and the fold share).
LEVEL = 1
# gzip framing for zlib (a header and a CRC32 trailer around the deflate stream).
GZIP_WBITS = 31
# Input compressed per step of `cooperate` (about a millisecond at level 1).
STEP_BYTES = 256 * 1024
# Media types never compressed here: file downloads stream from disk, unbuffered.
UNCOMPRESSED_TYPES = (b"application/octet-stream",)


def accepts_gzip(headers: Headers) -> bool:
    """Whether `Accept-Encoding` accepts gzip, read as libprocess reads it: `gzip`, else
    `*`, is acceptable unless its q-value is a number no greater than 0; no header (or an
    empty one) accepts only the identity."""
    accept = "".join(headers.get("accept-encoding", "").split())
    if not accept:
        return False
    for candidate in ("gzip", "*"):
        for coding in accept.split(","):
            name, *params = coding.split(";")
            if name.lower() != candidate:
                continue
            q_values = [p.split("=", 1)[1] for p in params if p.lower().startswith("q=")]
            if len(q_values) != 1:
                return True  # no q-value, or a malformed one
            try:
                return float(q_values[0]) > 0
            except ValueError:
                return False
    return False


def compress_steps(chunks: Sequence[bytes], out: list[bytes]) -> Iterator[None]:
    """`chunks` as one gzip member appended to `out`, a step per STEP_BYTES of input."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, GZIP_WBITS)
    for chunk in chunks:
        view = memoryview(chunk)
        for start in range(0, len(view), STEP_BYTES):
            piece = compressor.compress(view[start : start + STEP_BYTES])
            if piece:
                out.append(piece)
            yield
    out.append(compressor.flush())


async def compressed(chunks: Sequence[bytes]) -> list[bytes]:
    """`chunks` gzipped, in slices of the event loop."""
    out: list[bytes] = []
    await cooperate(compress_steps(chunks, out))
    return out


def eligible(built: Built) -> bool:
    return sum(len(chunk) for chunk in built.chunks) >= MINIMUM_BYTES


async def cached(cache: ReadCache, key: Hashable, arrival: int, build: Build, gzip: bool) -> Built:
    """The body for `key` from `cache` (see `ReadCache.get`); with `gzip`, its gzipped form,
    itself cached: compressed once per body for all who accept it."""
    if not gzip:
        return await cache.get(key, arrival, build)

    async def build_gzipped() -> Built:
        plain = await cache.get(key, arrival, build)
        if not eligible(plain):
            return plain
        chunks = await compressed(plain.chunks)
        return Built(plain.index, tuple(chunks), plain.media_type, content_encoding="gzip")

    return await cache.get(("gzip", key), arrival, build_gzipped)


class Gzip:
    """ASGI middleware: eligible responses gzipped for requests that accept it. A response
    is eligible when it names its length (streams do not), has at least MINIMUM_BYTES and
    no Content-Encoding, and is not a file download."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not accepts_gzip(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body: list[bytes] = []

        async def gzip_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if compressible(message):
                    start = message
                    return
            elif start is not None and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await send_gzipped(send, start, body)
                return
            await send(message)

        await self.app(scope, receive, gzip_send)


def compressible(start: Message) -> bool:
    headers = Headers(raw=start.get("headers", []))
    length = headers.get("content-length")
    if length is None or not length.isdigit() or int(length) < MINIMUM_BYTES:
        return False
    if "content-encoding" in headers:
        return False
    media_type = headers.get("content-type", "").encode()
    return not media_type.startswith(UNCOMPRESSED_TYPES)


async def send_gzipped(send: Send, start: Message, body: list[bytes]) -> None:
    data = b"".join(await compressed(body))
    raw: list[tuple[bytes, bytes]] = []
    vary = b"Accept-Encoding"
    for name, value in start.get("headers", []):
        if name.lower() == b"vary":
            vary = value + b", " + vary
        elif name.lower() != b"content-length":
            raw.append((name, value))
    raw += [
        (b"content-length", str(len(data)).encode()),
        (b"content-encoding", b"gzip"),
        (b"vary", vary),
    ]
    await send({**start, "headers": raw})
    await send({"type": "http.response.body", "body": data, "more_body": False})
