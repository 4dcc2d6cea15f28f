"""Ends a job: its final state and its receipt, queued together in one transaction."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from mailfax.jobs import Job, JobState
from mailfax.logs import log_event
from mailfax.receipts.compose import FaxOutcome, ReceiptComposer, wants_receipt
from mailfax.store.base import NewReceipt, Store
from mailfax.worker import Wakeup

log = logging.getLogger("mailfax.jobs")


class JobFinisher:
    """Moves a job to DELIVERED or FAILED and queues the sender's receipt atomically."""

    def __init__(self, store: Store, composer: ReceiptComposer, receipts_wakeup: Wakeup) -> None:
        self._store = store
        self._composer = composer
        self._receipts_wakeup = receipts_wakeup

    async def finish(
        self,
        job: Job,
        expected: JobState,
        outcome: FaxOutcome,
        now: float,
        values: Mapping[str, Any] | None = None,
        owner: str | None = None,
    ) -> bool:
        """False when the job was no longer in `expected` (someone else finished it)."""
        message = await self._store.message(job.message_id)
        receipt = None
        if message is not None and wants_receipt(message):
            content = self._composer.compose(job, message, outcome, now).as_bytes()
            receipt = NewReceipt(secrets.token_hex(10), message.mail_from, content)
        new = JobState.DELIVERED if outcome.delivered else JobState.FAILED
        fields = {"fax_status": outcome.status, "pages_sent": outcome.pages_sent}
        if outcome.detail:
            fields["error"] = outcome.detail
        fields.update(values or {})
        done = await self._store.transition(
            job.id,
            expected,
            new,
            now,
            fields,
            receipt,
            detail=outcome.detail or outcome.status,
            owner=owner,
        )
        if done:
            log_event(
                log,
                "job.final",
                job=job.id,
                state=new.value,
                status=outcome.status,
                fax_id=outcome.fax_id or "",
                receipt=receipt.id if receipt else "none",
            )
            self._receipts_wakeup.set()
        return done
