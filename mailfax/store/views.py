"""Read models in SQL for operators: job counts, job lists, a job's history and receipt."""

from __future__ import annotations

from sqlalchemy import func, select

from mailfax.jobs import TERMINAL, JobState
from mailfax.store import rows
from mailfax.store.base import MINIMAL_RECEIPT_PREFIX, JobStats, JobSummary, ReceiptRecord
from mailfax.store.db import Database
from mailfax.store.schema import documents, job_events, jobs, messages, receipts


class Views:
    """The Store's read models (a part of SqlStore)."""

    _db: Database

    async def job_events(self, job_id: str) -> list[tuple[float, str | None, str, str]]:
        """The job's transition history, oldest first (for operators and tests)."""
        events = job_events.c
        async with self._db.read() as conn:
            found = (
                await conn.execute(
                    select(events.at, events.from_state, events.to_state, events.detail)
                    .where(events.job_id == job_id)
                    .order_by(events.id)
                )
            ).all()
        return [(r.at, r.from_state, r.to_state, r.detail) for r in found]

    async def job_stats(self) -> JobStats:
        unfinished = [state.value for state in JobState if state not in TERMINAL]
        async with self._db.read() as conn:
            counted = (
                await conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
            ).all()
            oldest = (
                await conn.execute(
                    select(func.min(jobs.c.created_at)).where(jobs.c.state.in_(unfinished))
                )
            ).scalar()
            unknown_since = (
                await conn.execute(
                    select(func.min(jobs.c.updated_at)).where(
                        jobs.c.state == JobState.UNKNOWN.value
                    )
                )
            ).scalar()
        counts = {JobState(state): int(count) for state, count in counted}
        return JobStats(counts, oldest, unknown_since)

    async def list_jobs(
        self, state: JobState | None, since: float | None, sender: str, limit: int
    ) -> list[JobSummary]:
        pages = (
            select(func.coalesce(func.sum(documents.c.pages), 0))
            .where(documents.c.message_id == jobs.c.message_id)
            .scalar_subquery()
        )
        query = select(jobs, messages.c.mail_from, messages.c.subject, pages.label("pages")).join(
            messages, messages.c.id == jobs.c.message_id
        )
        if state is not None:
            query = query.where(jobs.c.state == state.value)
        if since is not None:
            query = query.where(jobs.c.created_at >= since)
        if sender:
            query = query.where(
                func.lower(messages.c.mail_from).contains(sender.lower(), autoescape=True)
            )
        # Job ids begin with their creation time (jobs.new_id): the primary key is the
        # creation order, so the newest come first without another index.
        query = query.order_by(jobs.c.id.desc()).limit(limit)
        async with self._db.read() as conn:
            found = (await conn.execute(query)).all()
        return [JobSummary(rows.job(r), r.mail_from, r.subject, int(r.pages)) for r in found]

    async def receipt_of(self, job_id: str) -> ReceiptRecord | None:
        """The receipt telling the job's result: its own, or its mail's group summary."""
        own = (receipts.c.job_id == job_id) & (receipts.c.kind == "final")
        summary = (
            receipts.c.job_id.is_(None)
            & (receipts.c.kind == "group")
            & (receipts.c.message_id == rows.message_of(job_id))
        )
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    # Its own ("final" sorts before "group"): a job retried after the summary.
                    select(receipts).where(own | summary).order_by(receipts.c.kind)
                )
            ).first()
        return None if row is None else rows.receipt_record(row)

    async def minimal_receipts(self, since: float) -> int:
        async with self._db.read() as conn:
            count = (
                await conn.execute(
                    select(func.count())
                    .select_from(receipts)
                    .where(
                        receipts.c.id.startswith(MINIMAL_RECEIPT_PREFIX, autoescape=True),
                        receipts.c.created_at >= since,
                    )
                )
            ).scalar_one()
        return int(count)
