"""The one background-loop mechanism: do due work, then sleep until woken or the next due time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("mailfax.worker")

# How long an idle loop sleeps when it knows of nothing due: a safety net for
# wake-ups that cannot reach it (another process wrote the store, a lease expired).
IDLE_POLL = 5.0
# A loop that has been busy or failing this long without progress is reported stalled
# (/readyz): a healthy one finishes a step, or a busy one moves an item on, far sooner.
STALL_AFTER = 60.0


class Heartbeat:
    """When a worker loop last made progress, and whether it is idle (waiting for work after a
    step that went through) rather than busy or failing."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()
        self._idle = False

    def beat(self) -> None:
        """Progress: a step went through, or a busy step moved an item on."""
        self._last = self._clock()

    def busy(self) -> None:
        self._idle = False

    def idle(self) -> None:
        self._idle = True

    def stalled(self) -> bool:
        return not self._idle and self._clock() - self._last > STALL_AFTER


async def isolated(
    worker: str,
    item: Callable[[], Awaitable[None]],
    event: str = "worker.item_failed",
    **fields: Any,
) -> bool:
    """Handle one item of a batch (a job, a confirmation, a receipt): its failure is logged
    (as `event`) and counted, and never cancels or delays the others. True if it went
    through. (`item` is called here, so an item cancelled before it starts leaves no
    coroutine behind.)"""
    try:
        await item()
    except asyncio.CancelledError:
        raise
    except Exception:
        # Imported here: the metrics read the store, whose module uses this one's Wakeup.
        from mailfax.metrics import ITEMS_FAILED

        log.exception(event, extra={"worker": worker, **fields})
        ITEMS_FAILED.labels(worker).inc()
        return False
    return True


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


async def run_loop(
    name: str,
    step: Callable[[], Awaitable[float | None]],
    wakeup: Wakeup,
    heartbeat: Heartbeat | None = None,
) -> None:
    """Call `step` forever; it returns seconds until it next has work (None: idle). The
    heartbeat beats after every step that goes through."""
    heartbeat = heartbeat or Heartbeat()
    while True:
        heartbeat.busy()
        try:
            delay = await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A worker never dies of one bad job: log, back off, go on.
            log.exception("worker.error", extra={"worker": name})
            delay = IDLE_POLL
        else:
            heartbeat.beat()
            heartbeat.idle()
        if delay is None or delay > IDLE_POLL:
            delay = IDLE_POLL
        if delay > 0:
            await wakeup.wait(delay)


__all__ = ["IDLE_POLL", "STALL_AFTER", "Heartbeat", "Wakeup", "isolated", "run_loop"]
