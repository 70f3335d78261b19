"""Process trees of containers: the launcher program, and how the agent finds and kills a tree.

Every container's root process is this module run as a program
(`python -m meseta.agent.launcher <spec.json>`), started by the agent in a session of its own and
with no parent-death signal, so it outlives an agent killed with -9 (isolation.md, item 7). It:

- makes itself a child subreaper, so whatever the container's processes orphan stays in its tree;
- forks the executor with the spec's environment, working directory and user, then execs it;
- forwards SIGTERM/SIGINT/SIGHUP to every process of the tree;
- when the executor exits, SIGKILLs whatever is left of the tree and reaps it all (Mesos destroys a
  container when its executor ends), writes the executor's raw wait status to the termination
  file (write-tmp + rename) and exits with that same status (a signal is re-raised).

The agent side (`tree`, `signal_tree`, `kill_tree`, `stat`) reads /proc: a tree is the root's
descendants plus whatever is still in the root's session or process group (orphans of members
that died). Executors therefore start their tasks in new process groups, not new sessions: the
container's session keeps holding them even if someone kills the launcher and the executor.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import pwd
import signal
import sys
import termios
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

PROC = Path("/proc")
PR_SET_CHILD_SUBREAPER = 36
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# The PATH Mesos gives a container whose environment has none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TERMINATION_FILE = "termination"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/<pid>/stat the agent uses."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    utime: int  # clock ticks; cutime/cstime: of reaped children
    stime: int
    cutime: int
    cstime: int
    threads: int
    start_time: int  # field 22: clock ticks after boot, tells a reused pid apart
    rss_pages: int

    @property
    def dead(self) -> bool:
        return self.state in ("Z", "X")


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """What the launcher runs: written by the agent as JSON next to the termination file."""

    path: str  # executable, looked up in the spec's PATH
    argv: tuple[str, ...]
    environment: Mapping[str, str]
    working_dir: str
    user: str | None
    termination_file: str
    join_files: tuple[str, ...] = ()  # e.g. cgroup.procs files to write our pid to, before fork
    # stdin is a terminal (a nested container's): it becomes the session's controlling
    # terminal and the command its foreground process group.
    tty: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "path": self.path,
                "argv": list(self.argv),
                "environment": dict(self.environment),
                "working_dir": self.working_dir,
                "user": self.user,
                "termination_file": self.termination_file,
                "join_files": list(self.join_files),
                "tty": self.tty,
            }
        )

    @staticmethod
    def from_json(text: str) -> LaunchSpec:
        raw = json.loads(text)
        return LaunchSpec(
            path=raw["path"],
            argv=tuple(raw["argv"]),
            environment=dict(raw["environment"]),
            working_dir=raw["working_dir"],
            user=raw["user"],
            termination_file=raw["termination_file"],
            join_files=tuple(raw.get("join_files", ())),
            tty=bool(raw.get("tty", False)),
        )


# -- /proc --------------------------------------------------------------------------------------


def stat(pid: int) -> ProcStat | None:
    """The process's stat line, or None if there is no such process."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold blanks and parentheses: split after its last ')'.
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    # fields[0] is field 3 (state); field N is fields[N - 3].
    return ProcStat(
        pid=int(head.split("(", 1)[0]),
        state=fields[0],
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        cutime=int(fields[13]),
        cstime=int(fields[14]),
        threads=int(fields[17]),
        start_time=int(fields[19]),
        rss_pages=int(fields[21]),
    )


def start_time(pid: int) -> int | None:
    found = stat(pid)
    return None if found is None else found.start_time


def is_alive(pid: int, started: int) -> bool:
    """The process `pid` that started at `started` still runs (a zombie counts as gone)."""
    found = stat(pid)
    return found is not None and found.start_time == started and not found.dead


def all_processes() -> dict[int, ProcStat]:
    found: dict[int, ProcStat] = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            process = stat(int(entry.name))
            if process is not None:
                found[process.pid] = process
    return found


def tree(root: int, root_start: int, *, include_root: bool = True) -> list[ProcStat]:
    """The live processes of the tree rooted at `root` (started at `root_start`): its
    descendants, and the processes still in its session or process group, which holds the
    orphans of members that died (the launcher itself, say, killed by someone else)."""
    processes = all_processes()
    children: dict[int, list[int]] = {}
    for process in processes.values():
        children.setdefault(process.ppid, []).append(process.pid)
    members: dict[int, ProcStat] = {}
    root_stat = processes.get(root)
    if root_stat is not None and root_stat.start_time != root_start:
        # The pid names another process now. The kernel reuses no pid that is still a session
        # id, so our session was empty when it was reused: nothing of our tree is left.
        return []
    if root_stat is not None:
        pending = [root]
        while pending:
            pid = pending.pop()
            members[pid] = processes[pid]
            pending.extend(children.get(pid, ()))
    for process in processes.values():
        if root in (process.session, process.pgrp):
            members.setdefault(process.pid, process)
    if not include_root:
        members.pop(root, None)
    return [process for process in members.values() if not process.dead]


def signal_tree(root: int, root_start: int, signum: int, *, include_root: bool = True) -> int:
    """Send `signum` to every live process of the tree; return how many were signalled."""
    sent = 0
    for process in tree(root, root_start, include_root=include_root):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process.pid, signum)
            sent += 1
    return sent


def kill_tree(root: int, root_start: int, *, include_root: bool = True, attempts: int = 50) -> bool:
    """SIGKILL the tree until nothing of it is left alive; True once it is gone. Each round stops
    the members first, so a forking process cannot add members behind our back."""
    for _ in range(attempts):
        members = tree(root, root_start, include_root=include_root)
        if not members:
            return True
        for signum in (signal.SIGSTOP, signal.SIGKILL):
            for process in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(process.pid, signum)
        time.sleep(0.005)
    return not tree(root, root_start, include_root=include_root)


def describe_status(status: int | None) -> str:
    """A wait status as Mesos words it (WSTRINGIFY): 'exited with status 3',
    'terminated with signal Killed'."""
    if status is None:
        return "exited with unknown status"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)}"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.strsignal(number) or f"signal {number}"
        return f"terminated with signal {name}"
    return f"wait status {status}"


def read_termination(path: Path) -> int | None:
    """The raw wait status the launcher recorded, or None if it recorded none."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    status = raw.get("status") if isinstance(raw, dict) else None
    return status if isinstance(status, int) else None


def container_environment(
    base: Mapping[str, str], overrides: Iterable[tuple[str, str]]
) -> dict[str, str]:
    environment = dict(base)
    environment.update(overrides)
    environment.setdefault("PATH", DEFAULT_PATH)
    return environment


# -- the launcher program -----------------------------------------------------------------------


def _exec_child(spec: LaunchSpec) -> NoReturn:
    try:
        if spec.tty:
            # Its own process group in the terminal's foreground: ^C reaches the command,
            # not the launcher (which would forward it a second time).
            os.setpgid(0, 0)
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may not
            os.tcsetpgrp(0, os.getpid())
            signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        for signum in (signal.SIGPIPE, signal.SIGXFSZ, *FORWARDED):
            signal.signal(signum, signal.SIG_DFL)  # Python ignores SIGPIPE; exec keeps ignores
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.chdir(spec.working_dir)
        if spec.user is not None:
            entry = pwd.getpwnam(spec.user)
            if entry.pw_uid != os.getuid():
                os.initgroups(entry.pw_name, entry.pw_gid)
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)
        os.execvpe(spec.path, list(spec.argv), dict(spec.environment))
    except BaseException as error:  # never return into the launcher's code in the child
        with contextlib.suppress(BaseException):
            sys.stderr.write(f"Failed to execute command '{spec.path}': {error}\n")
            sys.stderr.flush()
        os._exit(1)


def write_termination(path: str, status: int) -> None:
    temporary = f"{path}.tmp"
    with contextlib.suppress(OSError), open(temporary, "w") as file:
        json.dump({"status": status, "message": describe_status(status)}, file)
        file.flush()
        os.fsync(file.fileno())
        os.replace(temporary, path)  # best effort: the agent falls back to our exit status


def _reap_all() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _exit_like(status: int) -> NoReturn:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
        os.kill(os.getpid(), number)
        os._exit(128 + number)  # only if the signal did not end us
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def run(spec: LaunchSpec) -> NoReturn:
    me = os.getpid()
    started = start_time(me) or 0
    for path in spec.join_files:
        with open(path, "w") as file:
            file.write(str(me))
    if spec.tty:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the session's controlling terminal
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}\n")
    # Blocked until the handlers exist, so an early SIGTERM is forwarded, not lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    child = os.fork()
    if child == 0:
        _exec_child(spec)

    def forward(signum: int, _frame: object) -> None:
        signal_tree(me, started, signum, include_root=False)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # cannot happen before the child is reaped; be safe
            status = 0
            break
        if pid == child:
            break
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    kill_tree(me, started, include_root=False)
    _reap_all()
    write_termination(spec.termination_file, status)
    _exit_like(status)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m meseta.agent.launcher <launch-spec.json>\n")
        os._exit(2)
    run(LaunchSpec.from_json(Path(args[0]).read_text()))


if __name__ == "__main__":
    main()
