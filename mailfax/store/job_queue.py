"""The job queue in SQL: claims under leases, conditional moves, recovery and lookups."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, update

from mailfax.jobs import TERMINAL, Job, JobState, check_transition
from mailfax.store import rows
from mailfax.store.base import GroupSummary, NewReceipt
from mailfax.store.db import CHANNEL_JOBS, CHANNEL_RECEIPTS, Conn, Database
from mailfax.store.pieces import forget_abandoned
from mailfax.store.receipt_queue import grouped_receipt, insert_receipt
from mailfax.store.schema import job_events, jobs, messages, receipts


async def add_event(
    conn: Conn, job_id: str, old: JobState | None, new: JobState, now: float, detail: str
) -> None:
    await conn.execute(insert(job_events).values(**rows.event_row(job_id, old, new, now, detail)))


class JobQueue:
    """The Store's job methods (a part of SqlStore)."""

    _db: Database

    async def claim_jobs(self, owners: Sequence[str], now: float, lease_until: float) -> list[Job]:
        claimed: list[Job] = []
        async with self._db.tx() as conn:
            for owner in owners:
                due = rows.oldest_due(jobs, JobState.QUEUED.value, now)
                row = (
                    await conn.execute(
                        update(jobs)
                        .where(jobs.c.id == due, jobs.c.state == JobState.QUEUED.value)
                        .values(
                            state=JobState.UPLOADING.value,
                            lease_owner=owner,
                            lease_until=lease_until,
                            attempts=jobs.c.attempts + 1,
                            updated_at=now,
                        )
                        .returning(*jobs.c)
                    )
                ).first()
                if row is None:
                    break
                await add_event(conn, row.id, JobState.QUEUED, JobState.UPLOADING, now, owner)
                claimed.append(rows.job(row))
        return claimed

    async def next_job_due(self, now: float) -> float | None:
        async with self._db.read() as conn:
            due: float | None = (
                await conn.execute(rows.next_run_at(jobs, JobState.QUEUED.value, now))
            ).scalar()
        return due

    async def recover_expired(self, now: float) -> list[tuple[Job, JobState]]:
        # An upload interrupted by a crash is simply redone; an interrupted send
        # may have reached FAX.PLUS, so it must be reconciled, never resent blindly.
        moves = ((JobState.UPLOADING, JobState.QUEUED), (JobState.SUBMITTING, JobState.UNKNOWN))
        recovered: list[tuple[Job, JobState]] = []
        async with self._db.tx() as conn:
            for old, new in moves:
                moved = (
                    await conn.execute(
                        update(jobs)
                        .where(jobs.c.state == old.value, jobs.c.lease_until < now)
                        .values(
                            state=new.value,
                            lease_owner=None,
                            lease_until=None,
                            updated_at=now,
                            recoveries=jobs.c.recoveries + 1,
                        )
                        .returning(*jobs.c)
                    )
                ).all()
                for row in moved:
                    await add_event(conn, row.id, old, new, now, "lease expired")
                    recovered.append((rows.job(row), old))
            await forget_abandoned(conn, now)
        return recovered

    async def transition(
        self,
        job_id: str,
        expected: JobState,
        new: JobState,
        now: float,
        values: Mapping[str, Any] | None = None,
        receipt: NewReceipt | None = None,
        detail: str = "",
        owner: str | None = None,
        group: GroupSummary | None = None,
    ) -> bool:
        check_transition(expected, new)
        fields = dict(values or {})
        if "uploaded" in fields:
            fields["uploaded"] = json.dumps(list(fields["uploaded"]))
        if new not in (JobState.UPLOADING, JobState.SUBMITTING):
            fields.setdefault("lease_owner", None)
            fields.setdefault("lease_until", None)
        async with self._db.tx() as conn:
            if group is not None:
                # The mail's jobs finish one at a time: with the mail locked, the last one to
                # finish sees every other one final, so exactly one of them queues the summary.
                await conn.execute(
                    select(messages.c.id)
                    .where(messages.c.id == rows.message_of(job_id))
                    .with_for_update()
                )
            condition = [jobs.c.id == job_id, jobs.c.state == expected.value]
            if owner is not None:
                # A worker whose lease expired and was taken over must not act on the job.
                condition.append(jobs.c.lease_owner == owner)
            moved = (
                await conn.execute(
                    update(jobs)
                    .where(*condition)
                    .values(state=new.value, updated_at=now, **fields)
                    .returning(jobs.c.message_id)
                )
            ).first()
            if moved is None:
                return False
            await add_event(conn, job_id, expected, new, now, detail)
            if new is JobState.QUEUED:
                await self._db.notify(conn, CHANNEL_JOBS)
            if group is not None and new in TERMINAL:
                receipt = await grouped_receipt(conn, job_id, moved.message_id, group, receipt)
            if receipt is not None:
                await self._db.notify(conn, CHANNEL_RECEIPTS)
                about_job = None if receipt.kind == "group" else job_id
                await insert_receipt(conn, moved.message_id, about_job, receipt, now)
            return True

    async def note_job(
        self, job_id: str, state: JobState, now: float, detail: str, values: Mapping[str, Any]
    ) -> bool:
        async with self._db.tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == state.value)
                .values(**values)
            )
            if result.rowcount != 1:
                return False
            await add_event(conn, job_id, state, state, now, detail)
        return True

    async def renew_lease(self, job_id: str, owner: str, until: float) -> bool:
        async with self._db.tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
                .values(lease_until=until)
            )
        return bool(result.rowcount == 1)

    async def release_uploads(self, owner_prefix: str, now: float) -> int:
        async with self._db.tx() as conn:
            released = (
                await conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.state == JobState.UPLOADING.value,
                        jobs.c.lease_owner.startswith(f"{owner_prefix}:", autoescape=True),
                    )
                    .values(
                        state=JobState.QUEUED.value,
                        lease_owner=None,
                        lease_until=None,
                        run_at=now,
                        updated_at=now,
                    )
                    .returning(jobs.c.id)
                )
            ).all()
            for row in released:
                detail = "released by a stopping gateway"
                await add_event(conn, row.id, JobState.UPLOADING, JobState.QUEUED, now, detail)
        return len(released)

    async def expedite_job(self, job_id: str, now: float, detail: str) -> bool:
        async with self._db.tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value)
                .values(run_at=now, updated_at=now)
            )
            if result.rowcount != 1:
                return False
            await add_event(conn, job_id, JobState.QUEUED, JobState.QUEUED, now, detail)
            await self._db.notify(conn, CHANNEL_JOBS)
        return True

    async def requeue_as_new_job(
        self, job_id: str, new_job_id: str, now: float, detail: str
    ) -> Job | None:
        async with self._db.tx() as conn:
            old = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
            if old is None or JobState(old.state) not in TERMINAL:
                return None
            row = (
                await conn.execute(
                    insert(jobs)
                    .values(**rows.new_job_row(new_job_id, old.message_id, old.number, now))
                    .returning(*jobs.c)
                )
            ).one()
            note = f"retry of job {job_id}: {detail}"
            await add_event(conn, new_job_id, None, JobState.QUEUED, now, note)
            # A note in the old job's history, not a move: its final state stays final.
            state = JobState(old.state)
            note = f"retried as job {new_job_id}: {detail}"
            await add_event(conn, job_id, state, state, now, note)
            await self._db.notify(conn, CHANNEL_JOBS)
        return rows.job(row)

    async def get_job(self, job_id: str) -> Job | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
        return rows.job(row) if row else None

    async def job_by_fax_id(self, fax_id: str) -> Job | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.fax_id == fax_id))).first()
        return rows.job(row) if row else None

    async def _jobs(self, *where: Any, order: Any, limit: int | None = None) -> list[Job]:
        """The jobs matching `where`, in `order`."""
        async with self._db.read() as conn:
            found = (
                await conn.execute(select(jobs).where(*where).order_by(order).limit(limit))
            ).all()
        return [rows.job(row) for row in found]

    async def jobs_in_state(self, state: JobState, before: float, limit: int) -> list[Job]:
        where = (jobs.c.state == state.value, jobs.c.updated_at < before)
        return await self._jobs(*where, order=jobs.c.updated_at, limit=limit)

    async def jobs_created_before(
        self, states: Sequence[JobState], before: float, limit: int
    ) -> list[Job]:
        where = (jobs.c.state.in_([s.value for s in states]), jobs.c.created_at < before)
        return await self._jobs(*where, order=jobs.c.created_at, limit=limit)

    async def jobs_of_message(self, message_id: str) -> list[Job]:
        return await self._jobs(jobs.c.message_id == message_id, order=jobs.c.id)

    async def jobs_awaiting_delay_notice(self, created_before: float, limit: int) -> list[Job]:
        unfinished = [state.value for state in JobState if state not in TERMINAL]
        decided = (
            select(receipts.c.id)
            .where(receipts.c.job_id == jobs.c.id, receipts.c.kind == "delayed")
            .exists()
        )
        where = (jobs.c.state.in_(unfinished), jobs.c.created_at < created_before, ~decided)
        return await self._jobs(*where, order=jobs.c.created_at, limit=limit)

    async def fax_ids_in_use(self, fax_ids: Sequence[str]) -> set[str]:
        async with self._db.read() as conn:
            found = (
                await conn.execute(select(jobs.c.fax_id).where(jobs.c.fax_id.in_(fax_ids)))
            ).all()
        return {row.fax_id for row in found}
