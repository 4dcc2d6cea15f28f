"""The receipt queue worker: delivers pending receipts once each, retrying when delivery fails."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from mailfax.logs import log_event
from mailfax.metrics import RECEIPTS
from mailfax.receipts.deliver import DeliveryError, ReceiptSender
from mailfax.store import PendingReceipt, Store
from mailfax.worker import Heartbeat, isolated

log = logging.getLogger("mailfax.receipts")

Clock = Callable[[], float]

MAX_RECEIPT_BACKOFF = 3600.0
# Like a bounce, a receipt that cannot be delivered for five days is given up (and logged).
RECEIPT_LIFETIME = 5 * 24 * 3600.0
# Receipts delivered at once (a smarthost sees that many connections at most).
CONCURRENT_DELIVERIES = 8


class ReceiptWorker:
    """Delivers receipts from the store; a receipt is never answered by another receipt."""

    def __init__(self, store: Store, sender: ReceiptSender, clock: Clock, lease: float) -> None:
        self._store = store
        self._sender = sender
        self._clock = clock
        # The [queue] lease, as for jobs: after a crash, claimed receipts come due again this
        # soon. A delivery gets half of it, so a slow one gives up before its lease runs out
        # (it is retried; another worker never delivers it at the same time).
        self._lease = lease
        # Beats at each batch delivered: a step stays busy while receipts keep coming.
        self.heartbeat = Heartbeat()

    async def step(self) -> float | None:
        while True:
            now = self._clock()
            claimed: list[PendingReceipt] = []
            while len(claimed) < CONCURRENT_DELIVERIES:
                receipt = await self._store.claim_receipt(now, now + self._lease)
                if receipt is None:
                    break
                claimed.append(receipt)
            if not claimed:
                break
            # Each delivery waits on the disk (Maildir: two fsyncs) or on the smarthost: one at
            # a time, the receipts of a burst of results would queue for seconds.
            # A delivery that fails beyond DeliveryError (the store) leaves the others alone;
            # its receipt comes due again when its lease runs out.
            await asyncio.gather(
                *(
                    isolated(
                        "receipts", functools.partial(self._deliver, receipt), receipt=receipt.id
                    )
                    for receipt in claimed
                )
            )
            self.heartbeat.beat()
        due = await self._store.next_receipt_due(self._clock())
        return None if due is None else max(0.0, due - self._clock())

    async def _deliver(self, receipt: PendingReceipt) -> None:
        try:
            try:
                async with asyncio.timeout(self._lease / 2):
                    await self._sender.send(receipt.id, receipt.recipient, receipt.content)
            except TimeoutError:
                raise DeliveryError(
                    f"delivery took over {self._lease / 2:g} s", permanent=False
                ) from None
        except DeliveryError as exc:
            age = self._clock() - receipt.created_at
            if exc.permanent or age > RECEIPT_LIFETIME:
                await self._store.receipt_dropped(receipt.id, str(exc))
                outcome, level = "dropped", logging.ERROR
            else:
                delay = min(30.0 * 2 ** (receipt.attempts - 1), MAX_RECEIPT_BACKOFF)
                await self._store.receipt_later(receipt.id, self._clock() + delay, str(exc))
                outcome, level = "retry", logging.WARNING
            RECEIPTS.labels(outcome).inc()
            log_event(
                log,
                f"receipt.{outcome}",
                level,
                job=receipt.job_id or "-",
                kind=receipt.kind,
                error=str(exc),
            )
            return
        await self._store.receipt_sent(receipt.id, self._clock())
        RECEIPTS.labels("sent").inc()
        log_event(
            log, "receipt.sent", job=receipt.job_id or "-", kind=receipt.kind, receipt=receipt.id
        )
