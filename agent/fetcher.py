"""The fetcher: puts CommandInfo.uris into a sandbox before the container starts (Mesos fetcher).

Each URI is an absolute local path, a `file://` URL or an `http(s)://` URL. The file lands in the
sandbox under `output_file` or the URI's basename; `executable` makes it mode 755 (and is never
extracted); otherwise, with `extract` (default true), a tar (.tar, .tar.gz/.tgz, .tar.bz2/.tbz2,
.tar.xz/.txz) or .zip archive is also unpacked into the sandbox, refusing members that would land
outside it. With `cache`, the download is kept under the cache directory keyed by (user, URI) and
copied from there next time; the cache is trimmed to its size bound, oldest use first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import shutil
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from meseta.proto.mesos.v1 import mesos_pb2

DEFAULT_CACHE_BYTES = 2 * 1024**3  # Mesos --fetcher_cache_size
STALL_TIMEOUT_S = 60.0  # Mesos --fetcher_stall_timeout
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CHUNK = 1 << 16


class FetchError(Exception):
    """One URI could not be fetched; the message names it and says why."""

    def __init__(self, uri: str, why: str) -> None:
        super().__init__(f"Failed to fetch '{uri}': {why}")
        self.uri = uri
        self.why = why


class Fetcher:
    def __init__(
        self,
        cache_dir: Path,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        frameworks_home: Path | None = None,
        stall_timeout_s: float = STALL_TIMEOUT_S,
    ) -> None:
        self.cache_dir = cache_dir
        self.cache_bytes = cache_bytes
        self.frameworks_home = frameworks_home
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=30, sock_read=stall_timeout_s
        )
        self._locks: dict[str, asyncio.Lock] = {}
        # containerizer/fetcher/task_fetches_{succeeded,failed}: one per container with URIs.
        self.fetches_succeeded = 0
        self.fetches_failed = 0

    def cache_used_bytes(self) -> int:
        """What the cache holds now (downloads under way not counted)."""
        try:
            entries = list(self.cache_dir.iterdir())
        except OSError:
            return 0
        used = 0
        for path in entries:
            if not path.name.endswith(".partial"):
                with contextlib.suppress(OSError):
                    used += path.stat().st_size
        return used

    async def fetch(
        self, uris: Sequence[mesos_pb2.CommandInfo.URI], sandbox: Path, user: str | None = None
    ) -> None:
        """Fetch every URI into `sandbox`, in order; raise FetchError at the first failure."""
        if not uris:
            return
        try:
            for uri in uris:
                await self._fetch_uri(uri, sandbox, user)
        except FetchError:
            self.fetches_failed += 1
            raise
        self.fetches_succeeded += 1

    async def _fetch_uri(
        self, uri: mesos_pb2.CommandInfo.URI, sandbox: Path, user: str | None
    ) -> None:
        try:
            await self._fetch_one(uri, sandbox, user)
        except FetchError:
            raise
        except (OSError, aiohttp.ClientError, TimeoutError, tarfile.TarError,
                zipfile.BadZipFile) as error:  # fmt: skip
            raise FetchError(uri.value, _reason(error)) from error

    async def _fetch_one(
        self, uri: mesos_pb2.CommandInfo.URI, sandbox: Path, user: str | None
    ) -> None:
        target = self._target(uri, sandbox)
        target.parent.mkdir(parents=True, exist_ok=True)
        if uri.cache:
            await self._fetch_cached(uri.value, target, user)
        else:
            await self._download(uri.value, target, user)
        if uri.executable:
            target.chmod(0o755)
        elif uri.extract and _archive_kind(target.name) is not None:
            await asyncio.to_thread(_extract, target, sandbox)

    def _target(self, uri: mesos_pb2.CommandInfo.URI, sandbox: Path) -> Path:
        name = uri.output_file if uri.HasField("output_file") else _basename(uri.value)
        relative = PurePosixPath(name)
        if not name or relative.is_absolute() or ".." in relative.parts:
            raise FetchError(uri.value, f"output file '{name}' must be a path inside the sandbox")
        return sandbox / relative

    async def _fetch_cached(self, value: str, target: Path, user: str | None) -> None:
        key = hashlib.sha256(f"{user or ''}\0{value}".encode()).hexdigest()
        entry = self.cache_dir / key
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if not entry.exists():
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                await self._download(value, entry, user)
                await asyncio.to_thread(self._trim, entry)
            os.utime(entry)  # recency for trimming
            await asyncio.to_thread(shutil.copyfile, entry, target)

    def _trim(self, keep: Path) -> None:
        entries = [
            path
            for path in self.cache_dir.iterdir()
            if path.is_file() and not path.name.endswith(".partial")  # others' downloads
        ]
        entries.sort(key=lambda path: path.stat().st_mtime)
        total = sum(path.stat().st_size for path in entries)
        for path in entries:
            if total <= self.cache_bytes:
                return
            if path != keep:
                total -= path.stat().st_size
                path.unlink(missing_ok=True)

    async def _download(self, value: str, target: Path, user: str | None) -> None:
        """Fetch into a temporary name first: a failure leaves no truncated file behind (a
        truncated cache entry would be served again and again)."""
        partial = target.with_name(target.name + ".partial")
        try:
            await self._download_to(value, partial, user)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)

    async def _download_to(self, value: str, target: Path, user: str | None) -> None:
        parts = urlsplit(value)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            await self._download_http(value, target)
        elif scheme == "file" or (not scheme and value.startswith("/")):
            await _copy_local(unquote(parts.path) if scheme else value, target, user)
        elif not scheme:
            if self.frameworks_home is None:
                raise FetchError(
                    value,
                    "A relative path was passed for the resource but the Mesos framework home "
                    "was not specified. Please either provide this config option or avoid "
                    "using a relative path",
                )
            await _copy_local(str(self.frameworks_home / value), target, user)
        else:
            raise FetchError(value, f"Unsupported URI scheme '{parts.scheme}'")

    async def _download_http(self, value: str, target: Path) -> None:
        async with (
            aiohttp.ClientSession(timeout=self._timeout) as session,
            session.get(value) as response,
        ):
            if response.status != 200:
                raise FetchError(
                    value,
                    f"Error downloading resource, received HTTP return code {response.status}",
                )
            with target.open("wb") as file:
                async for chunk in response.content.iter_chunked(_CHUNK):
                    file.write(chunk)


def _basename(value: str) -> str:
    parts = urlsplit(value)
    path = unquote(parts.path) if parts.scheme else value
    return PurePosixPath(path).name


def _archive_kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(_TAR_SUFFIXES):
        return "tar"
    if lower.endswith(".zip"):
        return "zip"
    return None


async def _copy_local(source: str, target: Path, user: str | None) -> None:
    """Copy a file of this host, reading it as `user` (as Mesos runs its fetcher as the task's
    user), so that a task cannot fetch what its user may not read."""
    switch = _user_arguments(user)
    if not switch:
        await asyncio.to_thread(shutil.copyfile, source, target)  # errors name the file
        return
    with target.open("wb") as output:
        reader = await asyncio.create_subprocess_exec(
            "cat", "--", source, stdout=output, stderr=asyncio.subprocess.PIPE, **switch
        )
        try:
            _, error = await reader.communicate()
        except BaseException:  # cancelled: the reader is killed and reaped, not left running
            if reader.returncode is None:
                reader.kill()
            await reader.wait()
            raise
    if reader.returncode != 0:
        why = error.decode(errors="replace").strip().removeprefix("cat: ")
        raise FetchError(source, f"cannot read it as user '{user}': {why}")


def _user_arguments(user: str | None) -> dict[str, Any]:
    """Subprocess arguments that run a reader as `user`; none when that changes nothing."""
    if user is None or os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise FetchError(user, "no such user") from None
    if entry.pw_uid == 0:
        return {}
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}


def _extract(archive: Path, destination: Path) -> None:
    if _archive_kind(archive.name) == "tar":
        with tarfile.open(archive) as bundle:
            bundle.extractall(destination, filter="data")  # refuses paths and links leaving it
        return
    root = destination.resolve()
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            landing = (root / member.filename).resolve()
            if landing != root and root not in landing.parents:
                raise FetchError(
                    str(archive), f"archive member '{member.filename}' leaves the sandbox"
                )
        bundle.extractall(destination)
        for member in bundle.infolist():  # keep the owner-execute bits zip stored (unix modes)
            mode = (member.external_attr >> 16) & 0o777
            if mode and not member.is_dir():
                with contextlib.suppress(OSError):
                    (destination / member.filename).chmod(mode)


def _reason(error: BaseException) -> str:
    if isinstance(error, aiohttp.ClientError):  # some are OSErrors, with a poorer strerror
        return str(error) or type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        where = f": '{error.filename}'" if error.filename else ""
        return f"{error.strerror}{where}"
    return str(error) or type(error).__name__
