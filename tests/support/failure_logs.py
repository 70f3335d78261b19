"""What a failed test that ran real agents and executors attaches to its report: the tails of
their logs. In CI the report is all there is to look at afterwards."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

TAIL_CHARS = 4000


def executor_stderr(work_dir: Path) -> list[Path]:
    """Every executor run's stderr under an agent's work_dir (not the `latest` links)."""
    runs = work_dir.glob("slaves/*/frameworks/*/executors/*/runs/*/stderr")
    return sorted(path for path in runs if path.parent.name != "latest")


def tails(paths: Iterable[Path], root: Path) -> str:
    """Each file's last TAIL_CHARS characters under a `== path` line, relative to `root`."""
    return "\n".join(
        f"== {path.relative_to(root)}\n{path.read_text(errors='replace')[-TAIL_CHARS:]}"
        for path in paths
    )
