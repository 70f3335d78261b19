"""Sandbox files as Mesos's `files` process serves them: virtual paths attached to real directories.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
