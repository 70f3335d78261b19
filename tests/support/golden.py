"""Golden replay files (etcd style): commands in, expected domain events and digest out.

A file in tests/golden/ reads top to bottom:

    schema 2                     the schema version every entry is stamped with
    # comment lines, kept on rewrite (they describe the entry below them)
    @ +600s                      advance the clock before the next entry (default +1ms)
    > {"tick": {}}               a new entry: one `master.v1.Command` as JSON
    + {"tick": {}}               another command in the same entry
      TaskStatusUpdated ...      an expected event of that entry (two spaces in)
    digest 0123abcd...           the state digest after the last entry

Commands are `google.protobuf.json_format` JSON with proto field names; events
are `meseta.master.replay.render_event` lines. Entry N is stamped
T0 + its advances and carries proposal id `golden-N`. A file recorded under an
older schema keeps its version: it pins what that schema's entries mean forever.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import json_format

from meseta.log.v1.entries_pb2 import Entry
from meseta.master import fold
from meseta.master.decide import SCHEMA_VERSION
from meseta.master.digest import digest
from meseta.master.replay import render_event
from meseta.master.state import State
from meseta.master.v1 import commands_pb2 as c
from support.fold_cluster import STEP_NS, T0_NS

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"
ADVANCE = re.compile(r"^@ \+(\d+)(ns|ms|s)$")
UNIT_NS = {"ns": 1, "ms": 1_000_000, "s": 1_000_000_000}


@dataclass
class GoldenEntry:
    commands: list[c.Command]
    advance_ns: int = STEP_NS
    comments: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


@dataclass
class Golden:
    schema_version: int = SCHEMA_VERSION
    entries: list[GoldenEntry] = field(default_factory=list)
    digest: str = ""
    trailing_comments: list[str] = field(default_factory=list)


def command_json(command: c.Command) -> str:
    as_dict = json_format.MessageToDict(command, preserving_proto_field_name=True)
    return json.dumps(as_dict, separators=(",", ":"))


def parse_command(text: str, where: str) -> c.Command:
    try:
        return json_format.Parse(text, c.Command())
    except json_format.ParseError as error:
        raise ValueError(f"{where}: {error}") from error


def parse(text: str, name: str = "golden") -> Golden:
    golden = Golden()
    comments: list[str] = []
    advance_ns = STEP_NS
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{name}:{number}"
        if not line.strip():
            continue
        if line.startswith("#"):
            comments.append(line)
        elif line.startswith("schema "):
            if golden.entries:
                raise ValueError(f"{where}: 'schema' after the first entry")
            golden.schema_version = int(line.split(" ", 1)[1])
        elif line.startswith("@ "):
            match = ADVANCE.match(line)
            if match is None:
                raise ValueError(f"{where}: expected '@ +<n>(ns|ms|s)', got {line!r}")
            advance_ns = int(match.group(1)) * UNIT_NS[match.group(2)]
        elif line.startswith("> "):
            command = parse_command(line[2:], where)
            golden.entries.append(GoldenEntry([command], advance_ns, comments))
            comments, advance_ns = [], STEP_NS
        elif line.startswith("+ "):
            if not golden.entries:
                raise ValueError(f"{where}: '+' before any entry")
            golden.entries[-1].commands.append(parse_command(line[2:], where))
        elif line.startswith("  "):
            if not golden.entries:
                raise ValueError(f"{where}: an event before any entry")
            golden.entries[-1].events.append(line[2:])
        elif line.startswith("digest "):
            golden.digest = line.split(" ", 1)[1].strip()
        else:
            raise ValueError(f"{where}: cannot parse {line!r}")
    golden.trailing_comments = comments
    return golden


def advance_text(advance_ns: int) -> str:
    for unit in ("s", "ms"):
        if advance_ns % UNIT_NS[unit] == 0:
            return f"@ +{advance_ns // UNIT_NS[unit]}{unit}"
    return f"@ +{advance_ns}ns"


def format_golden(golden: Golden) -> str:
    lines = [f"schema {golden.schema_version}"]
    for entry in golden.entries:
        if entry.comments:
            lines.append("")
            lines += entry.comments
        if entry.advance_ns != STEP_NS:
            lines.append(advance_text(entry.advance_ns))
        lines.append(f"> {command_json(entry.commands[0])}")
        lines += [f"+ {command_json(command)}" for command in entry.commands[1:]]
        lines += [f"  {event}" for event in entry.events]
    if golden.trailing_comments:
        lines += ["", *golden.trailing_comments]
    lines += ["", f"digest {golden.digest}"]
    return "\n".join(lines) + "\n"


def entries_of(golden: Golden) -> list[Entry]:
    out = []
    now_ns = T0_NS
    for index, golden_entry in enumerate(golden.entries, start=1):
        now_ns += golden_entry.advance_ns
        batch = c.CommandBatch(commands=golden_entry.commands)
        entry = Entry(events=batch.SerializeToString())
        entry.header.timestamp_ns = now_ns
        entry.header.proposal_id = b"golden-%d" % index
        entry.header.schema_version = golden.schema_version
        out.append(entry)
    return out


def replayed(golden: Golden) -> Golden:
    """The same commands with the events and digest the fold produces now."""
    state = State()
    out = Golden(golden.schema_version, trailing_comments=golden.trailing_comments)
    for index, (golden_entry, entry) in enumerate(
        zip(golden.entries, entries_of(golden), strict=True), start=1
    ):
        events = [render_event(event) for event in fold.apply(state, entry, index)]
        out.entries.append(
            GoldenEntry(
                golden_entry.commands, golden_entry.advance_ns, golden_entry.comments, events
            )
        )
    out.digest = digest(state)
    return out
