"""Golden replay files: tests/golden/*.txt replayed through the fold (format: support.golden).

`pytest --rewrite-golden tests/unit/test_golden.py` regenerates the expected
events and digests from the commands in each file; review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.golden import GOLDEN_DIR, command_json, format_golden, parse, replayed

GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.txt"))


def test_there_are_golden_files() -> None:
    assert len(GOLDEN_FILES) >= 6


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda path: path.stem)
def test_golden_replay(path: Path, request: pytest.FixtureRequest) -> None:
    text = path.read_text()
    golden = parse(text, path.name)
    actual = replayed(golden)
    if request.config.getoption("--rewrite-golden"):
        path.write_text(format_golden(actual))
        return
    assert format_golden(golden) == text, f"{path.name} is not in canonical form"
    for number, (want, got) in enumerate(zip(golden.entries, actual.entries, strict=True), 1):
        commands = "; ".join(command_json(command) for command in want.commands)
        assert got.events == want.events, f"{path.name}: entry {number}: {commands}"
    assert actual.digest == golden.digest, f"{path.name}: final digest"
