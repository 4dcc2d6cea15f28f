"""Parked fax_sent webhooks in SQL: each hint waits until the fax it names can be confirmed."""

from __future__ import annotations

from sqlalchemy import func, insert, select, update

from mailfax.store import rows
from mailfax.store.base import FaxEvent
from mailfax.store.db import CHANNEL_FAX_EVENTS, Database
from mailfax.store.schema import fax_events


class FaxEvents:
    """The Store's webhook-hint methods (a part of SqlStore)."""

    _db: Database

    async def park_fax_event(self, fax_id: str, hook_id: str, status: str, now: float) -> bool:
        parked = insert(fax_events).values(
            fax_id=fax_id,
            hook_id=hook_id,
            status=status,
            received_at=now,
            next_at=now,
            attempts=0,
        )
        return await self._db.insert_once(parked, CHANNEL_FAX_EVENTS)

    async def due_fax_events(self, now: float, limit: int) -> list[FaxEvent]:
        async with self._db.read() as conn:
            due = (
                await conn.execute(
                    select(fax_events)
                    .where(fax_events.c.next_at <= now)
                    .order_by(fax_events.c.next_at)
                    .limit(limit)
                )
            ).all()
        return [rows.fax_event(row) for row in due]

    async def fax_event_done(self, event_id: int) -> None:
        async with self._db.tx() as conn:
            await conn.execute(fax_events.delete().where(fax_events.c.id == event_id))

    async def fax_event_later(self, event_id: int, next_at: float) -> None:
        async with self._db.tx() as conn:
            await conn.execute(
                update(fax_events)
                .where(fax_events.c.id == event_id)
                .values(next_at=next_at, attempts=fax_events.c.attempts + 1)
            )

    async def wake_fax_events(self, fax_id: str, now: float) -> None:
        async with self._db.tx() as conn:
            await conn.execute(
                update(fax_events).where(fax_events.c.fax_id == fax_id).values(next_at=now)
            )

    async def next_fax_event(self) -> float | None:
        async with self._db.read() as conn:
            due: float | None = (
                await conn.execute(select(func.min(fax_events.c.next_at)))
            ).scalar()
        return due
