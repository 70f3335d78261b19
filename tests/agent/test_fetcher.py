"""The fetcher: local paths, file:// and http URLs (served on 127.0.0.1), executable bit,
extraction, output_file, the cache, and failures that name the URI."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from meseta.agent.fetcher import Fetcher, FetchError
from meseta.proto.mesos.v1 import mesos_pb2

URI = mesos_pb2.CommandInfo.URI


class Files:
    """A tiny HTTP file server that counts requests per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        body = self.files.get(request.path)
        return web.Response(status=404) if body is None else web.Response(body=body)


@pytest.fixture
async def server() -> AsyncIterator[Files]:
    files = Files()
    app = web.Application()
    app.router.add_get("/{tail:.*}", files.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    files.url = f"http://127.0.0.1:{port}"
    try:
        yield files
    finally:
        await runner.cleanup()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def fetcher(tmp_path: Path) -> Fetcher:
    return Fetcher(tmp_path / "cache")


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    path = tmp_path / "sandbox"
    path.mkdir()
    return path


async def test_local_path_and_file_url(fetcher: Fetcher, sandbox: Path, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "b.sh").write_text("echo B")
    uris = [
        URI(value=str(tmp_path / "a.txt")),
        URI(value=f"file://{tmp_path / 'b.sh'}", executable=True),
    ]
    await fetcher.fetch(uris, sandbox)
    assert (sandbox / "a.txt").read_text() == "A"
    assert (sandbox / "a.txt").stat().st_mode & 0o111 == 0
    assert (sandbox / "b.sh").stat().st_mode & 0o777 == 0o755


async def test_http_with_extraction_and_output_file(
    fetcher: Fetcher, sandbox: Path, server: Files
) -> None:
    server.files["/pkg.tar.gz"] = tar_gz({"app/run.sh": b"#!/bin/sh\n", "app/data": b"x"})
    server.files["/bundle.zip"] = zipped({"z/one.txt": b"1"})
    server.files["/plain"] = b"hello"
    uris = [
        URI(value=f"{server.url}/pkg.tar.gz"),
        URI(value=f"{server.url}/bundle.zip"),
        URI(value=f"{server.url}/plain", output_file="conf/settings"),
        URI(value=f"{server.url}/pkg.tar.gz", extract=False, output_file="kept.tgz"),
    ]
    await fetcher.fetch(uris, sandbox)
    assert (sandbox / "app" / "data").read_bytes() == b"x"
    assert (sandbox / "app" / "run.sh").stat().st_mode & 0o100
    assert (sandbox / "pkg.tar.gz").exists()  # Mesos keeps the archive too
    assert (sandbox / "z" / "one.txt").read_text() == "1"
    assert (sandbox / "conf" / "settings").read_text() == "hello"
    assert (sandbox / "kept.tgz").exists()
    assert not (sandbox / "kept").exists()


async def test_the_cache_downloads_once(fetcher: Fetcher, tmp_path: Path, server: Files) -> None:
    server.files["/tool"] = b"v1"
    for run in ("one", "two"):
        sandbox = tmp_path / run
        sandbox.mkdir()
        await fetcher.fetch([URI(value=f"{server.url}/tool", cache=True)], sandbox)
        assert (sandbox / "tool").read_bytes() == b"v1"
    assert server.hits["/tool"] == 1
    await fetcher.fetch([URI(value=f"{server.url}/tool")], tmp_path / "one")  # not cached
    assert server.hits["/tool"] == 2


async def test_the_cache_is_trimmed_to_its_size(tmp_path: Path, server: Files) -> None:
    fetcher = Fetcher(tmp_path / "cache", cache_bytes=10)
    server.files["/a"] = b"a" * 8
    server.files["/b"] = b"b" * 8
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    await fetcher.fetch([URI(value=f"{server.url}/a", cache=True)], sandbox)
    await fetcher.fetch([URI(value=f"{server.url}/b", cache=True)], sandbox)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert fetcher.cache_used_bytes() == 8
    await fetcher.fetch([URI(value=f"{server.url}/a", cache=True)], sandbox)
    assert server.hits["/a"] == 2  # evicted, downloaded again
    assert (fetcher.fetches_succeeded, fetcher.fetches_failed) == (3, 0)


async def test_failures_name_the_uri_and_say_why(
    fetcher: Fetcher, sandbox: Path, server: Files, tmp_path: Path
) -> None:
    cases = {
        f"{server.url}/missing": "received HTTP return code 404",
        str(tmp_path / "nope"): "No such file or directory",
        "relative/path": "A relative path was passed for the resource",
        "hdfs://namenode/x": "Unsupported URI scheme 'hdfs'",
        "http://127.0.0.1:1/x": "Cannot connect",
    }
    for value, why in cases.items():
        with pytest.raises(FetchError) as failure:
            await fetcher.fetch([URI(value=value)], sandbox)
        assert str(failure.value).startswith(f"Failed to fetch '{value}': ")
        assert why in str(failure.value)
    assert (fetcher.fetches_succeeded, fetcher.fetches_failed) == (0, len(cases))
    await fetcher.fetch([], sandbox)  # no URIs: not a fetch (as Mesos counts them)
    assert fetcher.fetches_succeeded == 0


async def test_output_file_and_archives_cannot_leave_the_sandbox(
    fetcher: Fetcher, sandbox: Path, server: Files, tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("f")
    with pytest.raises(FetchError, match="must be a path inside the sandbox"):
        await fetcher.fetch([URI(value=str(tmp_path / "f"), output_file="../escape")], sandbox)
    server.files["/evil.tar.gz"] = tar_gz({"../../outside": b"x"})
    with pytest.raises(FetchError):
        await fetcher.fetch([URI(value=f"{server.url}/evil.tar.gz")], sandbox)
    server.files["/evil.zip"] = zipped({"../outside.txt": b"x"})
    with pytest.raises(FetchError, match="leaves the sandbox"):
        await fetcher.fetch([URI(value=f"{server.url}/evil.zip")], sandbox)
    assert not (tmp_path / "outside").exists() and not (tmp_path / "outside.txt").exists()


async def test_frameworks_home_resolves_relative_paths(tmp_path: Path, sandbox: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thing").write_text("t")
    await Fetcher(tmp_path / "cache", frameworks_home=home).fetch([URI(value="thing")], sandbox)
    assert (sandbox / "thing").read_text() == "t"


@pytest.mark.skipif(os.geteuid() != 0, reason="reading as another user needs root")
async def test_local_files_are_read_as_the_task_user(fetcher: Fetcher, sandbox: Path) -> None:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as shared:
        Path(shared).chmod(0o755)
        public, private = Path(shared) / "public", Path(shared) / "private"
        public.write_text("for all")
        public.chmod(0o644)
        private.write_text("root only")
        private.chmod(0o600)
        await fetcher.fetch([URI(value=str(public))], sandbox, user="nobody")
        assert (sandbox / "public").read_text() == "for all"
        with pytest.raises(
            FetchError, match=r"cannot read it as user 'nobody': .*Permission denied"
        ):
            await fetcher.fetch([URI(value=str(private))], sandbox, user="nobody")
        assert not (sandbox / "private").exists()
        await fetcher.fetch([URI(value=str(private))], sandbox)  # the agent's own user may
