"""Counting turns of the event loop: evidence that a long job let other work run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class LoopTurns:
    count: int = 0


@contextlib.asynccontextmanager
async def counting_turns() -> AsyncIterator[LoopTurns]:
    """A task that counts one for each turn of the loop while the block runs."""
    turns = LoopTurns()

    async def count() -> None:
        while True:
            turns.count += 1
            await asyncio.sleep(0)

    counter = asyncio.ensure_future(count())
    try:
        await asyncio.sleep(0)  # the counter starts before the block does
        yield turns
    finally:
        counter.cancel()
