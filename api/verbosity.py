"""glog-style verbosity, as libprocess's `/logging/toggle` and the SET/GET_LOGGING_LEVEL calls
change and report it on the master and the agent: level 0 is what `--logging_level` set; any
higher level turns DEBUG logging on until `duration` has passed."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from meseta.api.http import HttpError
from meseta.master.durations import parse_duration_ns


@dataclass(slots=True)
class Verbosity:
    level: int = 0
    revert: asyncio.TimerHandle | None = field(default=None)
    base: int | None = None  # the logger's own level, restored at level 0

    def set(self, level: int, duration_s: float) -> None:
        if self.revert is not None:
            self.revert.cancel()
            self.revert = None
        self._apply(level)
        if level != 0:
            self.revert = asyncio.get_running_loop().call_later(duration_s, self._apply, 0)

    def _apply(self, level: int) -> None:
        logger = logging.getLogger("meseta")
        if self.base is None:
            self.base = logger.level
        self.level = level
        logger.setLevel(logging.DEBUG if level > 0 else self.base)


# Logging is the process's: one verbosity per daemon.
VERBOSITY = Verbosity()


async def toggle(request: Request) -> Response:
    """`/logging/toggle?level=N&duration=D` (libprocess's words); no query: the level."""
    level_text = request.query_params.get("level")
    duration_text = request.query_params.get("duration")
    if level_text is None and duration_text is None:
        return Response(f"{VERBOSITY.level}\n", 200, media_type="text/plain")
    if level_text is None or duration_text is None:
        missing = "duration" if duration_text is None else "level"
        return HttpError(400, f"Expecting '{missing}=value' in query.\n").response()
    try:
        level = int(level_text)
    except ValueError:
        return HttpError(400, f"Failed to convert '{level_text}' to number.\n").response()
    if level < 0:
        return HttpError(400, f"Invalid level '{level}'.\n").response()
    try:
        duration_s = parse_duration_ns(duration_text) / 1e9
    except ValueError as error:
        return HttpError(400, f"{error}.\n").response()
    VERBOSITY.set(level, duration_s)
    return Response(status_code=200)
