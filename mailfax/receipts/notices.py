"""Receipts that come before a fax's result ([receipts] notify = "all"): the "accepted,
queued" notice, queued with the mail, and the delay notice for faxes still not final after
[receipts] delay_warning, queued by the reconciler's periodic pass."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence

from mailfax.finish import receipt_or_minimal
from mailfax.logs import log_event
from mailfax.receipts.compose import ReceiptComposer
from mailfax.receipts.policy import why_no_receipt
from mailfax.store import AcceptedMessage, Store
from mailfax.worker import Wakeup

log = logging.getLogger("mailfax.receipts")

BATCH = 50


def with_acceptance_receipt(
    composer: ReceiptComposer, accepted: AcceptedMessage, jobs: Sequence[tuple[str, str]]
) -> AcceptedMessage:
    """The mail with its "accepted" notice attached, when the settings want one, so that
    Store.accept queues it in the same transaction as the mail."""
    message = accepted.as_record()
    if not composer.policy.wants_accepted(message):
        return accepted
    now = accepted.received_at
    receipt = receipt_or_minimal(
        composer,
        "accepted",
        message,
        lambda: composer.compose_accepted(message, jobs, now),
        [(job_id, number, "queued") for job_id, number in jobs],
        now,
    )
    return dataclasses.replace(accepted, receipt=receipt)


class DelayNotices:
    """One notice per job still not final after delay_warning; each pass is idempotent (a job's
    notice is queued, or skipped with the reason, once: the store keeps it unique)."""

    def __init__(self, store: Store, composer: ReceiptComposer, receipts_wakeup: Wakeup) -> None:
        self._store = store
        self._composer = composer
        self._receipts_wakeup = receipts_wakeup

    async def step(self, now: float) -> None:
        policy = self._composer.policy
        if policy.notify != "all":
            return
        late = await self._store.jobs_awaiting_delay_notice(now - policy.delay_warning, BATCH)
        for job in late:
            message = await self._store.message(job.message_id)
            if message is None:
                continue
            if not policy.wants_delay_notice(message):
                why = why_no_receipt(message) or "no delay notices wanted"
                await self._store.skip_receipt(message.id, job.id, "delayed", why, now)
                continue
            notice = receipt_or_minimal(
                self._composer,
                "delayed",
                message,
                functools.partial(self._composer.compose_delayed, job, message, now),
                [(job.id, job.number, "not sent yet; mailfax is still trying")],
                now,
            )
            if notice is None:
                continue
            if await self._store.queue_receipt(message.id, job.id, notice, now):
                log_event(log, "receipt.delay_notice", job=job.id, receipt=notice.id)
                self._receipts_wakeup.set()
