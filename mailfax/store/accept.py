"""Accepting mail: a group commit of the mails arriving together, their quotas charged in it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable

from mailfax.jobs import JobState
from mailfax.quotas import KEEP_COUNTERS, QuotaCharge, QuotaExceeded
from mailfax.store import rows
from mailfax.store.base import AcceptedMessage, StoreUnavailable
from mailfax.store.db import CHANNEL_JOBS, Database
from mailfax.store.pieces import forget_pieces, is_large, write_pieces
from mailfax.store.schema import (
    blobs_in_progress,
    documents,
    job_events,
    jobs,
    messages,
    quota_counters,
    receipts,
)

ACCEPT_BATCH = 64

AcceptedRows = tuple[AcceptedMessage, Sequence[tuple[str, str]]]
_Waiting = tuple[AcceptedMessage, Sequence[tuple[str, str]], asyncio.Future[None]]


def _settle(done: asyncio.Future[None], over_quota: QuotaExceeded | None) -> None:
    if over_quota is None:
        done.set_result(None)
    else:
        done.set_exception(over_quota)


def _charge_quotas(
    conn: Connection, charges: Sequence[QuotaCharge], now: float
) -> QuotaCharge | None:
    """Add each charge to its counter with one conditional upsert; the first that would go
    over its limit is returned (the caller rolls the others back)."""
    upsert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    for charge in charges:
        statement = upsert(quota_counters).values(
            counter=charge.counter,
            key=charge.key,
            window_start=charge.window_start,
            used=charge.amount,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[
                quota_counters.c.counter,
                quota_counters.c.key,
                quota_counters.c.window_start,
            ],
            set_={"used": quota_counters.c.used + charge.amount},
            where=quota_counters.c.used + charge.amount <= charge.limit,
        )
        if conn.execute(statement.returning(quota_counters.c.used)).first() is None:
            return charge
    conn.execute(quota_counters.delete().where(quota_counters.c.window_start < now - KEEP_COUNTERS))
    return None


def _charge(conn: Connection, message: AcceptedMessage) -> QuotaExceeded | None:
    """Charge a mail's quotas; over a limit, nothing of it is charged."""
    if not message.quota_charges:
        return None
    # A savepoint: counters charged before the one that is full are given back.
    savepoint = conn.begin_nested()
    over = _charge_quotas(conn, message.quota_charges, message.received_at)
    if over is not None:
        savepoint.rollback()
        return QuotaExceeded(over)
    savepoint.commit()
    return None


def _insert_stored(conn: Connection, stored: Sequence[AcceptedRows]) -> None:
    """The rows of mails that fit their quotas, one statement per table for the whole batch."""
    # A large mail's blobs are in its pieces, written before this transaction.
    large = {message.id for message, _ in stored if is_large(message)}
    conn.execute(insert(messages), [rows.message_row(m, m.id in large) for m, _ in stored])
    document_rows = [row for m, _ in stored for row in rows.document_rows(m, m.id in large)]
    if document_rows:
        conn.execute(insert(documents), document_rows)
    conn.execute(
        insert(jobs),
        [
            rows.new_job_row(job_id, message.id, number, message.received_at)
            for message, job_rows in stored
            for job_id, number in job_rows
        ],
    )
    conn.execute(
        insert(job_events),
        [
            rows.event_row(job_id, None, JobState.QUEUED, message.received_at, "")
            for message, job_rows in stored
            for job_id, _ in job_rows
        ],
    )
    receipt_rows = [
        rows.receipt_row(message.id, None, message.receipt, message.received_at)
        for message, _ in stored
        if message.receipt is not None
    ]
    if receipt_rows:
        conn.execute(insert(receipts), receipt_rows)
    if large:
        conn.execute(blobs_in_progress.delete().where(blobs_in_progress.c.message_id.in_(large)))


def insert_accepted(conn: Connection, batch: Sequence[AcceptedRows]) -> list[QuotaExceeded | None]:
    """Charge each mail's quotas, then store the mails that fit, one statement per table for
    the whole batch (a statement per mail and table cost more than the commit itself).
    Synchronous: on SQLite the whole transaction runs in one trip to the writer thread."""
    outcomes = [_charge(conn, message) for message, _ in batch]
    refused_large = [
        message.id
        for (message, _), over in zip(batch, outcomes, strict=True)
        if over is not None and is_large(message)
    ]
    if refused_large:
        for statement in forget_pieces(refused_large):
            conn.execute(statement)
    stored = [mail for mail, over in zip(batch, outcomes, strict=True) if over is None]
    if stored:
        _insert_stored(conn, stored)
    return outcomes


class GroupCommit:
    """Mails arriving together share one transaction and one fsync."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._large_mails = 0  # being written now
        self._accepting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def accept(self, message: AcceptedMessage, job_rows: Sequence[tuple[str, str]]) -> None:
        """Store the mail and its jobs; return only once the commit holding them is durable.

        A large mail first writes its raw text and documents in pieces, a transaction each,
        and then joins a group commit with its rows alone: the writer takes the other mails'
        commits between the pieces, so a small mail waits for a piece (milliseconds), never for
        one 43 MB commit (~300 ms). The pieces count only with that last commit; what a crash
        leaves of them is removed later (recover_expired)."""
        large = is_large(message)
        self._large_mails += large
        try:
            if large:
                await write_pieces(self._write_piece, message)
            done = asyncio.get_running_loop().create_future()
            self._accepting.append((message, job_rows, done))
            if self._writer is None:
                self._writer = asyncio.create_task(self._write_accepted())
            await asyncio.shield(done)
        finally:
            self._large_mails -= large

    async def _write_accepted(self) -> None:
        batch: list[_Waiting] = []
        try:
            while self._accepting:
                batch, self._accepting = (
                    self._accepting[:ACCEPT_BATCH],
                    self._accepting[ACCEPT_BATCH:],
                )
                try:
                    outcomes = await self._write_batch([(m, j) for m, j, _ in batch])
                except Exception:
                    # One bad mail must not fail the others: commit each on its own.
                    for message, job_rows, done in batch:
                        try:
                            (over_quota,) = await self._write_batch([(message, job_rows)])
                        except Exception as exc:
                            done.set_exception(exc)
                        else:
                            _settle(done, over_quota)
                    continue
                for (_, _, done), over_quota in zip(batch, outcomes, strict=True):
                    _settle(done, over_quota)
        finally:
            self._writer = None
            # Cancelled mid-batch (the gateway is stopping): its sessions get an answer (451).
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(StoreUnavailable("the store is closing"))

    async def _write_batch(self, batch: Sequence[AcceptedRows]) -> list[QuotaExceeded | None]:
        """One transaction storing `batch`."""
        return await self._db.write(
            lambda conn: insert_accepted(conn, batch),
            defer_checkpoint=self._large_mails > 0,
            channel=CHANNEL_JOBS,
        )

    async def _write_piece(self, *statements: Executable) -> None:
        """One transaction executing `statements` (a piece of a large mail: on SQLite its
        megabyte is copied on the writer thread, not on the event loop)."""

        def execute(conn: Connection) -> None:
            for statement in statements:
                conn.execute(statement)

        await self._db.write(execute, defer_checkpoint=self._large_mails > 0)
