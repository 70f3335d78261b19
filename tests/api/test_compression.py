"""gzip responses as libprocess gives them (api/compression.py): who accepts it, which
responses are compressed, and that cached documents are compressed once per index."""

from __future__ import annotations

import asyncio
import gzip

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy
from starlette.datastructures import Headers
from support.master_harness import MasterHandle
from support.read_cluster import Populated

from meseta.api import compression
from meseta.api.consistency import INDEX_HEADER
from meseta.proto.mesos.v1.master import master_pb2


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("gzip", True),
        ("GZip", True),
        ("deflate, gzip", True),
        (" gzip ; q=1 ", True),
        ("gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("gzip;q=abc", False),
        ("gzip;q=0.1;q=0", True),  # two q-values: malformed, so acceptable
        ("*", True),
        ("*;q=0", False),
        ("br, *;q=0.2", True),
        ("gzip;q=0, *", False),  # gzip is named, and refused
        ("deflate", False),
    ],
)
def test_accept_encoding_is_read_as_libprocess_reads_it(header: str | None, accepted: bool) -> None:
    raw = [] if header is None else [(b"accept-encoding", header.encode())]
    assert compression.accepts_gzip(Headers(raw=raw)) is accepted


async def fetch(
    master: MasterHandle, path: str, encoding: str, method: str = "GET", data: bytes = b""
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    """The raw response (aiohttp would ask for gzip itself, and decompress)."""
    headers = {"Accept-Encoding": encoding}
    if data:
        headers |= {"Content-Type": "application/x-protobuf", "Accept": "application/json"}
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.request(method, master.url + path, headers=headers, data=data) as response,
    ):
        return response.status, response.headers, await response.read()


async def same_index_pair(
    master: MasterHandle, path: str, data: bytes = b""
) -> tuple[tuple[CIMultiDictProxy[str], bytes], tuple[CIMultiDictProxy[str], bytes]]:
    """A gzipped and a plain answer at one index (the leader's ticks move it)."""
    method = "POST" if data else "GET"
    for _ in range(20):
        _, zipped_headers, zipped = await fetch(master, path, "gzip", method, data)
        _, plain_headers, plain = await fetch(master, path, "identity", method, data)
        if zipped_headers[INDEX_HEADER] == plain_headers[INDEX_HEADER]:
            return (zipped_headers, zipped), (plain_headers, plain)
    pytest.fail("the view kept moving")


async def test_state_is_gzipped_for_clients_that_accept_it(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    master, _ = cluster
    (headers, zipped), (plain_headers, plain) = await same_index_pair(master, "/state")
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Vary"] == "Accept-Encoding"
    assert int(headers["Content-Length"]) == len(zipped) < len(plain)
    assert gzip.decompress(zipped) == plain
    assert "Content-Encoding" not in plain_headers
    assert orjson.loads(plain)["frameworks"][0]["tasks"][0]["id"] == "t1"


async def test_v1_get_state_is_gzipped_too(cluster: tuple[MasterHandle, Populated]) -> None:
    master, _ = cluster
    call = master_pb2.Call(type=master_pb2.Call.GET_STATE).SerializeToString()
    (headers, zipped), (_, plain) = await same_index_pair(master, "/api/v1", call)
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == plain
    assert orjson.loads(plain)["type"] == "GET_STATE"


async def test_readers_at_one_index_share_one_compression(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    master, _ = cluster
    cache = master.context.read_cache
    for _ in range(20):
        cache.kept.clear()
        before = cache.builds
        answers = await asyncio.gather(*(fetch(master, "/state", "gzip") for _ in range(8)))
        indexes = {headers[INDEX_HEADER] for _, headers, _ in answers}
        if len(indexes) == 1:
            assert len({body for _, _, body in answers}) == 1
            # One plain body and one gzipped body, for all eight readers.
            assert cache.builds - before == 2
            return
    pytest.fail("the view kept moving")


async def test_other_responses_are_gzipped_on_their_way_out(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    master, _ = cluster
    status, headers, zipped = await fetch(master, "/metrics/snapshot", "gzip")
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert int(headers["Content-Length"]) == len(zipped)
    assert "master/elected" in orjson.loads(gzip.decompress(zipped))
    # JSONP is wrapped per request, and compressed like any other response.
    status, headers, zipped = await fetch(master, "/state?jsonp=cb", "gzip")
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert gzip.decompress(zipped).startswith(b"cb({")


async def test_head_answers_the_headers_get_would(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    master, _ = cluster
    for path in ("/state", "/metrics/snapshot"):
        status, headers, body = await fetch(master, path, "gzip", method="HEAD")
        assert (status, body, headers["Content-Encoding"]) == (200, b"", "gzip")
        assert int(headers["Content-Length"]) > 0


async def test_small_bodies_and_refusals_stay_plain(
    cluster: tuple[MasterHandle, Populated],
) -> None:
    master, _ = cluster
    status, headers, body = await fetch(master, "/version", "gzip")
    assert status == 200 and len(body) < compression.MINIMUM_BYTES
    assert "Content-Encoding" not in headers
    status, headers, body = await fetch(master, "/metrics/snapshot", "gzip;q=0, identity")
    assert "Content-Encoding" not in headers
    assert "master/elected" in orjson.loads(body)


@pytest.mark.parametrize(
    ("headers", "compressible"),
    [
        ([(b"content-type", b"application/json"), (b"content-length", b"5000")], True),
        ([(b"content-type", b"application/json"), (b"content-length", b"1023")], False),
        ([(b"content-type", b"application/json")], False),  # a stream: no length
        ([(b"content-length", b"5000"), (b"content-encoding", b"gzip")], False),
        ([(b"content-type", b"application/octet-stream"), (b"content-length", b"5000")], False),
    ],
)
def test_which_responses_the_middleware_compresses(
    headers: list[tuple[bytes, bytes]], compressible: bool
) -> None:
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    assert compression.compressible(start) is compressible
