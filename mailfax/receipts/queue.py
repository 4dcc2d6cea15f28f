"""The receipt queue worker: delivers pending receipts once each, retrying when delivery fails."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mailfax.logs import log_event
from mailfax.metrics import RECEIPTS
from mailfax.receipts.deliver import DeliveryError, ReceiptSender
from mailfax.store.base import Store

log = logging.getLogger("mailfax.receipts")

Clock = Callable[[], float]

RECEIPT_LEASE = 300.0
MAX_RECEIPT_BACKOFF = 3600.0
# Like a bounce, a receipt that cannot be delivered for five days is given up (and logged).
RECEIPT_LIFETIME = 5 * 24 * 3600.0


class ReceiptWorker:
    """Delivers receipts from the store; a receipt is never answered by another receipt."""

    def __init__(self, store: Store, sender: ReceiptSender, clock: Clock) -> None:
        self._store = store
        self._sender = sender
        self._clock = clock

    async def step(self) -> float | None:
        while True:
            now = self._clock()
            receipt = await self._store.claim_receipt(now, now + RECEIPT_LEASE)
            if receipt is None:
                break
            try:
                await self._sender.send(receipt.id, receipt.recipient, receipt.content)
            except DeliveryError as exc:
                age = self._clock() - receipt.created_at
                if exc.permanent or age > RECEIPT_LIFETIME:
                    await self._store.receipt_dropped(receipt.id, str(exc))
                    RECEIPTS.labels("dropped").inc()
                    log_event(
                        log,
                        "receipt.dropped",
                        logging.ERROR,
                        job=receipt.job_id or "-",
                        kind=receipt.kind,
                        error=str(exc),
                    )
                else:
                    delay = min(30.0 * 2 ** (receipt.attempts - 1), MAX_RECEIPT_BACKOFF)
                    await self._store.receipt_later(receipt.id, self._clock() + delay, str(exc))
                    RECEIPTS.labels("retry").inc()
                    log_event(
                        log,
                        "receipt.retry",
                        logging.WARNING,
                        job=receipt.job_id or "-",
                        kind=receipt.kind,
                        error=str(exc),
                    )
                continue
            await self._store.receipt_sent(receipt.id, self._clock())
            RECEIPTS.labels("sent").inc()
            log_event(
                log,
                "receipt.sent",
                job=receipt.job_id or "-",
                kind=receipt.kind,
                receipt=receipt.id,
            )
        due = await self._store.next_due(self._clock())
        return None if due is None else max(0.0, due - self._clock())
