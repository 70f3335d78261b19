"""Identifiers the master generates and the rules for ones clients supply.

Generated ids derive from the cluster id and counters kept in the fold state,
so a replay assigns the same ids (contract 5.8 formats).
"""

from __future__ import annotations

import re

NAME_MAX = 255


def framework_id(cluster_id: str, sequence: int) -> str:
    return f"{cluster_id}-{sequence:04d}"


def agent_id(cluster_id: str, sequence: int) -> str:
    return f"{cluster_id}-S{sequence}"


def offer_id(cluster_id: str, sequence: int) -> str:
    return f"{cluster_id}-O{sequence}"


def agent_pid(hostname: str, ip: str, port: int) -> str:
    """An agent's libprocess pid, which tools split to reach the agent (an IP, as Mesos's;
    an IPv6 one in brackets, as libprocess writes it)."""
    host = f"[{ip}]" if ":" in ip else ip or hostname
    return f"slave(1)@{host}:{port}"


# A slash, a backslash or a control character (Mesos's common id validation).
_FORBIDDEN_ID_CHARACTER = re.compile(r"[/\\\x00-\x1f\x7f]")


def id_error(value: str, what: str) -> str | None:
    """Why a client-supplied id is invalid (Mesos's common validation), or None."""
    if not value:
        return f"{what} must not be empty"
    if len(value) > NAME_MAX:
        return f"{what} '{value[:32]}...' is longer than {NAME_MAX} characters"
    if value in (".", ".."):
        return f"{what} '{value}' is disallowed"
    if _FORBIDDEN_ID_CHARACTER.search(value):
        return f"{what} '{value}' contains a slash, backslash or control character"
    return None


def role_error(role: str) -> str | None:
    """Why a role name is invalid (contract 5.5), or None."""
    if role == "*":
        return None
    if not role:
        return "Role name must not be empty"
    if role.startswith("/") or role.endswith("/") or "//" in role:
        return f"Role '{role}' cannot start or end with '/' or contain '//'"
    for part in role.split("/"):
        if part in (".", "..", "*"):
            return f"Role '{role}' cannot contain '.', '..' or '*' as a path component"
        if part.startswith("-"):
            return f"Role '{role}' cannot have a component starting with '-'"
    if any(ch.isspace() or ch == "\b" for ch in role):
        return f"Role '{role}' cannot contain whitespace or backspace characters"
    return None
