"""The receipt queue in SQL: queued with the change they report, claimed, sent or retried."""

from __future__ import annotations

import secrets

from sqlalchemy import insert, select, update

from mailfax.jobs import TERMINAL
from mailfax.store import rows
from mailfax.store.base import GroupSummary, NewReceipt, PendingReceipt, SummaryOutdated
from mailfax.store.db import CHANNEL_RECEIPTS, Conn, Database
from mailfax.store.schema import jobs, receipts


async def insert_receipt(
    conn: Conn, message_id: str, job_id: str | None, receipt: NewReceipt, now: float
) -> None:
    await conn.execute(
        insert(receipts).values(**rows.receipt_row(message_id, job_id, receipt, now))
    )


async def grouped_receipt(
    conn: Conn, job_id: str, message_id: str, group: GroupSummary, receipt: NewReceipt | None
) -> NewReceipt | None:
    """What a grouped mail's job queues as it becomes final: the summary once every job of
    the mail is final; its own receipt only if the summary went before (a retried job)."""
    summarised = (
        await conn.execute(
            select(receipts.c.id).where(
                receipts.c.message_id == message_id,
                receipts.c.job_id.is_(None),
                receipts.c.kind == "group",
            )
        )
    ).first()
    if summarised is not None:
        return receipt
    found = (
        await conn.execute(select(jobs).where(jobs.c.message_id == message_id).order_by(jobs.c.id))
    ).all()
    others = tuple(rows.job(row) for row in found if row.id != job_id)
    if any(job.state not in TERMINAL for job in others):
        return None
    if others != group.others:
        # The summary was composed from jobs as they were: another one finished meanwhile.
        raise SummaryOutdated(f"the other jobs of mail {message_id} changed")
    return group.summary


class ReceiptQueue:
    """The Store's receipt methods (a part of SqlStore)."""

    _db: Database

    async def claim_receipt(self, now: float, lease_until: float) -> PendingReceipt | None:
        due = rows.oldest_due(receipts, "pending", now)
        async with self._db.tx() as conn:
            row = (
                await conn.execute(
                    update(receipts)
                    .where(receipts.c.id == due)
                    # The lease is a later run_at: a crashed sender's receipt comes due again.
                    .values(run_at=lease_until, attempts=receipts.c.attempts + 1)
                    .returning(*receipts.c)
                )
            ).first()
        return None if row is None else rows.pending_receipt(row)

    async def next_receipt_due(self, now: float) -> float | None:
        async with self._db.read() as conn:
            due: float | None = (
                await conn.execute(rows.next_run_at(receipts, "pending", now))
            ).scalar()
        return due

    async def receipt_sent(self, receipt_id: str, now: float) -> None:
        await self._update(receipt_id, state="sent", sent_at=now, error=None)

    async def receipt_later(self, receipt_id: str, run_at: float, error: str) -> None:
        await self._update(receipt_id, run_at=run_at, error=error[:2000])

    async def receipt_dropped(self, receipt_id: str, error: str) -> None:
        await self._update(receipt_id, state="dropped", error=error[:2000])

    async def _update(self, receipt_id: str, **values: object) -> None:
        async with self._db.tx() as conn:
            await conn.execute(update(receipts).where(receipts.c.id == receipt_id).values(values))

    async def queue_receipt(
        self, message_id: str, job_id: str | None, receipt: NewReceipt, now: float
    ) -> bool:
        row = rows.receipt_row(message_id, job_id, receipt, now)
        return await self._db.insert_once(insert(receipts).values(row), CHANNEL_RECEIPTS)

    async def skip_receipt(
        self, message_id: str, job_id: str | None, kind: str, reason: str, now: float
    ) -> bool:
        skipped = insert(receipts).values(
            id=secrets.token_hex(10),
            message_id=message_id,
            job_id=job_id,
            kind=kind,
            state="skipped",
            recipient="",
            content=b"",
            attempts=0,
            created_at=now,
            run_at=now,
            error=reason[:2000],
        )
        return await self._db.insert_once(skipped)
