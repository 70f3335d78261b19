"""Persistent volumes on this host: their directories, and their links in sandboxes.

A volume lives in `<work_dir>/volumes/roles/<role>/<persistence id>`, or under a PATH disk's root
likewise, or is a MOUNT disk's whole root (Mesos's getPersistentVolumePath; which directories to
make or delete is decided in agent/core.py).
Executors run without a mount namespace, so a volume is shown in a sandbox as Mesos's
`filesystem/posix` isolator shows it: a symlink at its relative container path. Nothing here
follows a symlink out of the volumes tree or out of a sandbox: a task may have replaced a
folder of its sandbox with one, and the agent acts as root.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from meseta.agent.containerizer import ContainerError, owner
from meseta.agent.core import VOLUMES_ROOT, Volume, volume_link_error

log = logging.getLogger(__name__)


class VolumeError(Exception):
    """A volume directory that may not be touched (reached through a symlink)."""


def directory(work_dir: Path, volume: Volume) -> Path:
    """The volume's directory, refusing one whose path goes through a symlink: it would not
    be in its volumes tree. A MOUNT disk's volume is the mount point the operator named."""
    base = work_dir / volume.root if volume.root else work_dir  # an absolute root replaces it
    if volume.mount:
        return base
    tree = base.joinpath(*VOLUMES_ROOT)
    path = tree / volume.role_directory / volume.persistence_id
    expected = Path(os.path.realpath(tree)) / volume.role_directory / volume.persistence_id
    if Path(os.path.realpath(path)) != expected:
        raise VolumeError(f"'{path}' goes through a symlink")
    return path


def create(work_dir: Path, volume: Volume) -> Path:
    path = directory(work_dir, volume)
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    return path


def remove(work_dir: Path, volume: Volume) -> None:
    """Delete a destroyed volume's directory with its content (symlinks in it are removed,
    never followed); of a MOUNT disk's volume, the content only (the mount point stays, as
    Mesos leaves it)."""
    path = directory(work_dir, volume)
    if not path.is_dir():
        return
    if volume.mount:
        for entry in sorted(path.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    else:
        shutil.rmtree(path)
    log.info("deleted the content of destroyed persistent volume %s", path)


def link(work_dir: Path, sandbox: Path, volumes: list[Volume], user: str | None) -> None:
    """Make each volume's directory if missing, owned by the container's `user` (as Mesos
    chowns it, not what it holds), and link it at its container path in the sandbox.
    ContainerError says why one cannot be."""
    ids = owner(user) if os.geteuid() == 0 else None
    for volume in volumes:
        error = volume_link_error(volume)
        if error is not None:
            raise ContainerError(error)
        try:
            target = create(work_dir, volume)
            if ids is not None:
                os.chown(target, *ids)
            _link(sandbox, volume.container_path, target)
        except (OSError, VolumeError) as error:
            raise ContainerError(
                f"Failed to link persistent volume '{volume.persistence_id}'"
                f" at '{volume.container_path}': {error}"
            ) from error


def _link(sandbox: Path, container_path: str, target: Path) -> None:
    at = sandbox / container_path
    real_sandbox = os.path.realpath(sandbox)
    if os.path.commonpath([real_sandbox, os.path.realpath(at.parent)]) != real_sandbox:
        raise VolumeError(f"'{at.parent}' leaves the sandbox")
    if at.is_symlink() and os.readlink(at) == str(target):
        return  # linked already (another task of the executor uses it too)
    if at.is_symlink() or at.exists():
        raise VolumeError(f"'{at}' already exists")
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(target)
