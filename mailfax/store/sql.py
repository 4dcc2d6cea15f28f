"""The Store on SQLAlchemy (SQLite by default, or PostgreSQL), assembled from its parts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailfax.mail.model import Document
from mailfax.store import rows
from mailfax.store.accept import GroupCommit
from mailfax.store.base import AcceptedMessage, MessageRecord
from mailfax.store.db import Database, connect
from mailfax.store.fax_events import FaxEvents
from mailfax.store.job_queue import JobQueue
from mailfax.store.migrations import Migration, check_version, current_version, upgrade
from mailfax.store.pieces import joined_pieces
from mailfax.store.receipt_queue import ReceiptQueue
from mailfax.store.schema import documents, faxplus_facts, messages
from mailfax.store.views import Views
from mailfax.worker import Wakeup


class SqlStore(JobQueue, ReceiptQueue, FaxEvents, Views):
    """Store implementation over one Database: the job and receipt queues, the webhook hints
    and the read models each in a module of their own, accepting mail in GroupCommit."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._commits = GroupCommit(db)

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """One transaction on this store's database (for whole-store tools such as db copy)."""
        return self._db.engine_tx()

    @property
    def dialect(self) -> str:
        return self._db.dialect

    async def upgrade(self) -> list[Migration]:
        """Bring the schema to the latest version (`mailfax db upgrade`)."""
        async with self._db.engine_tx() as conn:
            return await upgrade(conn)

    async def schema_version(self) -> int:
        async with self._db.engine_read() as conn:
            return await current_version(conn)

    async def db_now(self) -> float:
        """The database's clock (epoch seconds): the one clock all instances share."""
        return await self._db.now()

    async def listen(self, wakeups: Mapping[str, Wakeup]) -> AsyncExitStack:
        """Set each channel's Wakeup on every NOTIFY; close the returned stack to stop."""
        return await self._db.listen(wakeups)

    async def accept(self, message: AcceptedMessage, job_rows: Sequence[tuple[str, str]]) -> None:
        """Group commit: see GroupCommit.accept."""
        await self._commits.accept(message, job_rows)

    async def documents(self, message_id: str) -> list[Document]:
        async with self._db.read() as conn:
            found = (
                await conn.execute(
                    select(documents)
                    .where(documents.c.message_id == message_id)
                    .order_by(documents.c.position)
                )
            ).all()
            large = found and not found[0].data
            pieces = await joined_pieces(conn, message_id, raw=False) if large else {}
        return [Document(r.name, pieces.get(r.position, r.data), r.pages) for r in found]

    async def message(self, message_id: str) -> MessageRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(messages).where(messages.c.id == message_id))).first()
            if row is None:
                return None
            raw = row.raw or (await joined_pieces(conn, row.id, raw=True))[-1]
        return rows.message_record(row, raw)

    async def faxplus_facts(self) -> dict[str, Any]:
        async with self._db.read() as conn:
            found = (await conn.execute(select(faxplus_facts.c.key, faxplus_facts.c.value))).all()
        return {row.key: json.loads(row.value) for row in found}

    async def learn_faxplus_facts(self, facts: Mapping[str, Any], now: float) -> None:
        async with self._db.tx() as conn:
            await conn.execute(faxplus_facts.delete().where(faxplus_facts.c.key.in_(list(facts))))
            await conn.execute(
                insert(faxplus_facts),
                [
                    {"key": key, "value": json.dumps(value), "learnt_at": now}
                    for key, value in facts.items()
                ],
            )

    async def ping(self) -> None:
        async with self._db.read() as conn:
            await conn.execute(select(1))

    async def close(self) -> None:
        await self._db.close()


async def open_store(url: str, state_dir: Path, *, check_schema: bool = True) -> SqlStore:
    """Open the store. SQLite upgrades its own schema; PostgreSQL, shared by instances that
    may run different versions, must already be at this version (`mailfax db upgrade`)."""
    store = SqlStore(connect(url, state_dir))
    if store.dialect == "sqlite":
        await store.upgrade()
    elif check_schema:
        try:
            check_version(await store.schema_version())
        except BaseException:
            await store.close()
            raise
    return store
