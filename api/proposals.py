"""Proposing a command from an HTTP call and waiting for its outcome."""

from __future__ import annotations

import time

from meseta.api.context import MasterContext
from meseta.api.http import HttpError
from meseta.log.errors import EntryTooLarge, LogClosed, NotLeaderError, ProposalTimeout
from meseta.master import decide
from meseta.master.events import DomainEvent
from meseta.master.v1 import commands_pb2

WAIT_APPLIED_S = 10.0


async def propose_and_wait(
    context: MasterContext, *commands: commands_pb2.Command | bytes
) -> list[DomainEvent]:
    """Commit `commands` (messages, or already encoded) as one entry; return the domain
    events the fold made of it."""
    writes = context.writes
    writes.in_flight += 1
    started = time.perf_counter()
    try:
        index = await context.service.log.propose(decide.entry(*commands))
        writes.stored += 1
        writes.store_ms.append((time.perf_counter() - started) * 1000)
    except NotLeaderError:
        raise HttpError(503, "No leader elected") from None
    except (ProposalTimeout, LogClosed):
        raise HttpError(503, "The replicated log did not commit the call in time") from None
    except EntryTooLarge as error:
        raise HttpError(413, str(error)) from None
    finally:
        writes.in_flight -= 1
    if not await context.service.wait_applied(index, WAIT_APPLIED_S):
        raise HttpError(503, "The master did not apply the call in time")
    return context.service.outcome(index)
