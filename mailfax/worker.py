"""The one background-loop mechanism: do due work, then sleep until woken or the next due time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("mailfax.worker")

# How long an idle loop sleeps when it knows of nothing due: a safety net for
# wake-ups that cannot reach it (another process wrote the store, a lease expired).
IDLE_POLL = 5.0


class Wakeup:
    """An in-memory hint that new work may be due; the store stays the truth."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # arrives as the event is set, and the loop's task then never stops.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
        self._event.clear()


async def run_loop(name: str, step: Callable[[], Awaitable[float | None]], wakeup: Wakeup) -> None:
    """Call `step` forever; it returns seconds until it next has work (None: idle)."""
    while True:
        try:
            delay = await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A worker never dies of one bad job: log, back off, go on.
            log.exception("worker.error", extra={"worker": name})
            delay = IDLE_POLL
        if delay is None or delay > IDLE_POLL:
            delay = IDLE_POLL
        if delay > 0:
            await wakeup.wait(delay)


__all__ = ["IDLE_POLL", "Wakeup", "run_loop"]
