"""Files as Mesos's `files` process serves them (`/files/browse|read|download|debug`, and the
LIST_FILES and READ_FILE calls): virtual paths attached to real directories or files. The agent
attaches its executors' sandboxes and `/slave/log`, the master `/master/log`.

A request path is resolved against the longest attached virtual prefix; the remainder is joined
to the attached directory and canonicalized (symlinks followed), and the result must still lie
inside that directory, so neither `..` nor a symlink nor an absolute path can reach anything
else. Errors carry the HTTP status Mesos answers: 400 (bad input, path breaks out of its
sandbox, directory where a file is needed), 404 (nothing attached there, no such file).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from meseta.api.http import ANY_METHOD, HttpError, jsonp_response
from meseta.proto.mesos.v1 import mesos_pb2

# Mesos caps one read at 16 pages.
MAX_READ = os.sysconf("SC_PAGESIZE") * 16


class FilesError(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Chunk:
    size: int  # the file's size when read
    data: bytes


def _clean(virtual: str) -> str:
    return virtual.rstrip("/") or "/"


def resolve(attached: Mapping[str, Path], virtual: str) -> Path:
    """The real path behind `virtual`, which must stay inside the directory it is attached to."""
    tokens = _clean(virtual).split("/")
    suffix: list[str] = []
    while tokens:
        prefix = "/".join(tokens) or "/"
        root = attached.get(prefix)
        if root is None:
            suffix.insert(0, tokens.pop())
            continue
        if not root.is_dir():
            if suffix:
                raise FilesError(404)  # a file asked for as a directory
            return root
        joined = root.joinpath(*suffix)
        try:
            real = joined.resolve(strict=True)
        except FileNotFoundError:
            raise FilesError(404) from None
        except (OSError, RuntimeError) as error:  # RuntimeError: symlink loop
            message = f"Failed to determine canonical path of '{joined}': {error}.\n"
            raise FilesError(400, message) from None
        if not real.is_relative_to(root):
            raise FilesError(400, f"'{joined}' is inaccessible.\n")
        return real
    raise FilesError(404)


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def file_info(virtual: str, status: os.stat_result) -> mesos_pb2.FileInfo:
    info = mesos_pb2.FileInfo(
        path=virtual,
        nlink=status.st_nlink,
        size=status.st_size,
        mode=status.st_mode,
        uid=_owner(status.st_uid),
        gid=_group(status.st_gid),
    )
    info.mtime.nanoseconds = status.st_mtime_ns
    return info


def browse(attached: Mapping[str, Path], virtual: str) -> list[mesos_pb2.FileInfo]:
    """The entries of a directory sorted by real path; a file lists nothing (as in Mesos)."""
    real = resolve(attached, virtual)
    if not real.is_dir():
        return []
    base = _clean(virtual)
    listing: list[tuple[str, mesos_pb2.FileInfo]] = []
    for name in os.listdir(real):
        try:
            status = os.stat(real / name)
        except OSError:
            continue  # vanished or a dangling symlink: Mesos skips it as well
        child = f"{base}/{name}" if base != "/" else f"/{name}"
        listing.append((str(real / name), file_info(child, status)))
    listing.sort(key=lambda pair: pair[0])
    return [info for _, info in listing]


def read(attached: Mapping[str, Path], virtual: str, offset: int, length: int | None) -> Chunk:
    """Up to `length` bytes (capped at 16 pages) from `offset`; length 0 only reports the size."""
    real = resolve(attached, virtual)
    if real.is_dir():
        raise FilesError(400, "Cannot read a directory.\n")
    try:
        with real.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if offset >= size or length == 0:
                return Chunk(size, b"")
            wanted = size - offset if length is None else length
            file.seek(offset)
            return Chunk(size, file.read(min(wanted, MAX_READ)))
    except OSError as error:
        raise FilesError(500, f"Failed to open file at '{real}': {error.strerror}.\n") from None


def downloadable(attached: Mapping[str, Path], virtual: str) -> Path:
    real = resolve(attached, virtual)
    if real.is_dir():
        raise FilesError(400, "Cannot download a directory.\n")
    return real


def mode_string(mode: int) -> str:
    return stat.filemode(mode)


# -- LIST_FILES and READ_FILE (v1 operator API, master and agent) ---------------------------


def list_files(attached: Mapping[str, Path], path: str) -> list[mesos_pb2.FileInfo]:
    """LIST_FILES; HttpError with Mesos's status when the path is wrong."""
    try:
        return browse(attached, path)
    except FilesError as error:
        raise HttpError(error.status, error.message) from None


def read_file(attached: Mapping[str, Path], path: str, offset: int, length: int | None) -> Chunk:
    """READ_FILE; HttpError with Mesos's status when the path is wrong."""
    try:
        return read(attached, path, offset, length)
    except FilesError as error:
        raise HttpError(error.status, error.message) from None


# -- the /files endpoints ------------------------------------------------------------------

Attachments = Callable[[], Mapping[str, Path]]


def _query_int(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        message = f"Failed to parse {name}: Failed to convert '{text}' to number.\n"
        raise FilesError(400, message) from None


def _query_path(request: Request) -> str:
    path = request.query_params.get("path")
    if not path:
        raise FilesError(400, "Expecting 'path=value' in query.\n")
    return path


def file_info_json(info: mesos_pb2.FileInfo) -> dict[str, Any]:
    return {
        "path": info.path,
        "nlink": info.nlink,
        "size": info.size,
        "mtime": info.mtime.nanoseconds / 1e9,
        "mode": mode_string(info.mode),
        "uid": info.uid,
        "gid": info.gid,
    }


def _json(request: Request, body: object) -> Response:
    return jsonp_response(request, orjson.dumps(body))


def files_browse(attached: Mapping[str, Path], request: Request) -> Response:
    listing = browse(attached, _query_path(request))
    return _json(request, [file_info_json(info) for info in listing])


def files_read(attached: Mapping[str, Path], request: Request) -> Response:
    path = _query_path(request)
    offset = _query_int(request, "offset")
    length = _query_int(request, "length")
    offset = -1 if offset is None else offset
    if offset < -1:
        raise FilesError(400, f"Negative offset provided: {offset}.\n")
    if length is not None and length < -1:
        raise FilesError(400, f"Negative length provided: {length}.\n")
    if length == -1:
        length = None
    if offset == -1:  # the pailer's first call: only the size, as offset
        chunk = read(attached, path, 0, 0)
        return _json(request, {"data": "", "offset": chunk.size})
    chunk = read(attached, path, offset, length)
    return _json(request, {"data": chunk.data.decode("utf-8", "replace"), "offset": offset})


def files_download(attached: Mapping[str, Path], request: Request) -> Response:
    real = downloadable(attached, _query_path(request))
    return FileResponse(real, filename=real.name, media_type="application/octet-stream")


def files_debug(attached: Mapping[str, Path], request: Request) -> Response:
    return _json(request, {name: str(real) for name, real in attached.items()})


def routes(attachments: Attachments) -> list[Route]:
    """`/files/<name>` and `/files/<name>.json` (top-level only, as libprocess has them)."""
    out = []
    for name, handler in (("browse", files_browse), ("read", files_read),
                          ("download", files_download), ("debug", files_debug)):  # fmt: skip
        endpoint = _endpoint(attachments, handler)
        out.append(Route(f"/files/{name}", endpoint, methods=ANY_METHOD))
        out.append(Route(f"/files/{name}.json", endpoint, methods=ANY_METHOD))
    return out


def _endpoint(
    attachments: Attachments, handler: Callable[[Mapping[str, Path], Request], Response]
) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            return handler(attachments(), request)
        except FilesError as error:
            return Response(error.message, error.status, media_type="text/plain")

    return endpoint
