"""The Store on SQLAlchemy: SQLite (WAL, synchronous=FULL) by default, or PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Row,
    ScalarSelect,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import Executable

from mailfax.config import private_dir, private_file
from mailfax.jobs import TERMINAL, Job, JobState, check_transition
from mailfax.logs import log_event
from mailfax.mail.model import Document, PartReport
from mailfax.quotas import KEEP_COUNTERS, QuotaCharge, QuotaExceeded
from mailfax.store.base import (
    MINIMAL_RECEIPT_PREFIX,
    AcceptedMessage,
    FaxEvent,
    GroupSummary,
    JobStats,
    JobSummary,
    MessageRecord,
    NewReceipt,
    PendingReceipt,
    ReceiptRecord,
    StoreUnavailable,
)
from mailfax.store.migrations import Migration, check_version, current_version, upgrade
from mailfax.store.schema import (
    blob_chunks,
    blobs_in_progress,
    documents,
    fax_events,
    faxplus_facts,
    job_events,
    jobs,
    messages,
    quota_counters,
    receipts,
)
from mailfax.worker import Wakeup

log = logging.getLogger("mailfax.store")

_READ_ONLY = "mailfax_read_only"
_T = TypeVar("_T")
ACCEPT_BATCH = 64

# NOTIFY channels: a hint to every instance that work of this kind may be due.
CHANNEL_JOBS = "mailfax_jobs"
CHANNEL_FAX_EVENTS = "mailfax_fax_events"
CHANNEL_RECEIPTS = "mailfax_receipts"


# SQLite's default: a checkpoint in the COMMIT that takes the WAL past 1000 pages (4 MB).
_WAL_AUTOCHECKPOINT = 1000
# A mail storing more than this (raw text and documents) is written in pieces of PIECE_BYTES
# before its own commit (SqlStore.accept).
_LARGE_MAIL_BYTES = 4 * 1024 * 1024
PIECE_BYTES = 1024 * 1024
# A large mail still unfinished after this was left by a crash: writing one takes seconds.
_ABANDONED_AFTER = 3600.0


def _restore_autocheckpoint(conn: Connection, driver: DBAPIConnection) -> None:
    try:
        driver.cursor().execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT}")
    except sqlite3.Error:
        # Nothing may raise here: the batch is committed and its senders are about to get
        # their 250s. The connection is discarded instead of pooled without the setting.
        conn.invalidate()


def _log_checkpoint_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:
        # Nothing is lost: the WAL keeps every commit until a checkpoint has copied it.
        log_event(log, "store.checkpoint_failed", logging.WARNING, error=str(done.exception()))


def _sqlite_durability(engine: Engine) -> None:
    """WAL + synchronous=FULL, and BEGIN IMMEDIATE so writers serialise instead of deadlocking."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Readers use a deferred BEGIN: in WAL mode they neither take nor wait for the lock.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _is_large(message: AcceptedMessage) -> bool:
    return len(message.raw) + sum(len(d.data) for d in message.documents) > _LARGE_MAIL_BYTES


def _pieces(message: AcceptedMessage) -> Iterator[dict[str, Any]]:
    """blob_chunks rows of a large mail: part -1 is the raw mail, then each document."""
    blobs = [message.raw, *(doc.data for doc in message.documents)]
    for part, blob in enumerate(blobs, start=-1):
        for seq, start in enumerate(range(0, len(blob), PIECE_BYTES)):
            data = blob[start : start + PIECE_BYTES]
            yield {"message_id": message.id, "part": part, "seq": seq, "data": data}


def _forget_pieces(message_ids: Sequence[str]) -> tuple[Executable, ...]:
    return (
        blob_chunks.delete().where(blob_chunks.c.message_id.in_(message_ids)),
        blobs_in_progress.delete().where(blobs_in_progress.c.message_id.in_(message_ids)),
    )


async def _joined_pieces(conn: Conn, message_id: str, raw: bool) -> dict[int, bytes]:
    """A large mail's raw text (part -1) or its documents, each joined from its pieces."""
    part = blob_chunks.c.part
    rows = await conn.execute(
        select(part, blob_chunks.c.data)
        .where(blob_chunks.c.message_id == message_id, part == -1 if raw else part >= 0)
        .order_by(part, blob_chunks.c.seq)
    )
    pieces: dict[int, list[bytes]] = {}
    for row in rows:
        pieces.setdefault(row.part, []).append(row.data)
    return {part: b"".join(data) for part, data in pieces.items()}


def _report_to_json(report: Sequence[PartReport]) -> str:
    return json.dumps([dataclasses.asdict(part) for part in report])


def _report_from_json(text: str) -> tuple[PartReport, ...]:
    return tuple(PartReport(**item) for item in json.loads(text))


def _oldest_due(table: Table, state: str, now: float) -> ScalarSelect[Any]:
    """The id of the oldest due row in `state`; concurrent claimers skip it (PostgreSQL)."""
    return (
        select(table.c.id)
        .where(table.c.state == state, table.c.run_at <= now)
        .order_by(table.c.run_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )


def _job(row: Row[Any]) -> Job:
    return Job(
        id=row.id,
        message_id=row.message_id,
        number=row.number,
        state=JobState(row.state),
        attempts=row.attempts,
        created_at=row.created_at,
        run_at=row.run_at,
        uploaded=tuple(json.loads(row.uploaded)),
        fax_id=row.fax_id,
        fax_status=row.fax_status,
        pages_sent=row.pages_sent,
        error=row.error,
        submitted_at=row.submitted_at,
        recoveries=row.recoveries,
        redials=row.redials,
        updated_at=row.updated_at,
        lease_owner=row.lease_owner,
        fax_start_time=row.fax_start_time,
        fax_duration=row.fax_duration,
        fax_cost=row.fax_cost,
    )


def _message_of(job_id: str) -> ScalarSelect[Any]:
    return select(jobs.c.message_id).where(jobs.c.id == job_id).scalar_subquery()


def _new_job_row(job_id: str, message_id: str, number: str, now: float) -> dict[str, Any]:
    """A job queued now, with nothing tried yet."""
    return {
        "id": job_id,
        "message_id": message_id,
        "number": number,
        "state": JobState.QUEUED.value,
        "attempts": 0,
        "recoveries": 0,
        "redials": 0,
        "created_at": now,
        "updated_at": now,
        "run_at": now,
        "uploaded": "[]",
    }


def _event_row(
    job_id: str, old: JobState | None, new: JobState, now: float, detail: str
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "at": now,
        "from_state": old.value if old else None,
        "to_state": new.value,
        "detail": detail[:2000],
    }


def _receipt_row(
    message_id: str, job_id: str | None, receipt: NewReceipt, now: float
) -> dict[str, Any]:
    return {
        "id": receipt.id,
        "message_id": message_id,
        "job_id": job_id,
        "kind": receipt.kind,
        "state": "pending",
        "recipient": receipt.recipient,
        "content": receipt.content,
        "attempts": 0,
        "created_at": now,
        "run_at": now,
    }


async def _insert_receipt(
    conn: Conn,
    message_id: str,
    job_id: str | None,
    receipt: NewReceipt,
    now: float,
) -> None:
    await conn.execute(insert(receipts).values(**_receipt_row(message_id, job_id, receipt, now)))


async def _grouped_receipt(
    conn: Conn, message_id: str, group: GroupSummary, receipt: NewReceipt | None
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
    rows = (
        await conn.execute(select(jobs).where(jobs.c.message_id == message_id).order_by(jobs.c.id))
    ).all()
    siblings = [_job(row) for row in rows]
    if any(job.state not in TERMINAL for job in siblings):
        return None
    return group(siblings)


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


AcceptedRows = tuple[AcceptedMessage, Sequence[tuple[str, str]]]


def _insert_accepted(conn: Connection, batch: Sequence[AcceptedRows]) -> list[QuotaExceeded | None]:
    """Charge each mail's quotas, then store the mails that fit, one statement per table for
    the whole batch (a statement per mail and table cost more than the commit itself).
    Synchronous: on SQLite the whole transaction runs in one trip to the writer thread."""
    outcomes: list[QuotaExceeded | None] = []
    stored: list[AcceptedRows] = []
    refused_large: list[str] = []
    for message, job_rows in batch:
        over = None
        if message.quota_charges:
            # A savepoint: counters charged before the one that is full are given back.
            savepoint = conn.begin_nested()
            over = _charge_quotas(conn, message.quota_charges, message.received_at)
            if over is not None:
                savepoint.rollback()
            else:
                savepoint.commit()
        outcomes.append(None if over is None else QuotaExceeded(over))
        if over is None:
            stored.append((message, job_rows))
        elif _is_large(message):
            refused_large.append(message.id)
    if refused_large:
        for statement in _forget_pieces(refused_large):
            conn.execute(statement)
    if not stored:
        return outcomes
    # A large mail's blobs are in its pieces, written before this transaction.
    large = {message.id for message, _ in stored if _is_large(message)}
    conn.execute(
        insert(messages),
        [
            {
                "id": message.id,
                "received_at": message.received_at,
                "mail_from": message.mail_from,
                "peer": message.peer,
                "header_message_id": message.header_message_id,
                "subject": message.subject,
                "sender_name": message.sender_name,
                "auto_submitted": message.auto_submitted,
                "comment": message.comment,
                "report": _report_to_json(message.report),
                "raw": b"" if message.id in large else message.raw,
                "admitted_by": message.admitted_by,
            }
            for message, _ in stored
        ],
    )
    document_rows = [
        {
            "message_id": message.id,
            "position": position,
            "name": doc.name,
            "pages": doc.pages,
            "data": b"" if message.id in large else doc.data,
        }
        for message, _ in stored
        for position, doc in enumerate(message.documents)
    ]
    if document_rows:
        conn.execute(insert(documents), document_rows)
    conn.execute(
        insert(jobs),
        [
            _new_job_row(job_id, message.id, number, message.received_at)
            for message, job_rows in stored
            for job_id, number in job_rows
        ],
    )
    conn.execute(
        insert(job_events),
        [
            _event_row(job_id, None, JobState.QUEUED, message.received_at, "")
            for message, job_rows in stored
            for job_id, _ in job_rows
        ],
    )
    receipt_rows = [
        _receipt_row(message.id, None, message.receipt, message.received_at)
        for message, _ in stored
        if message.receipt is not None
    ]
    if receipt_rows:
        conn.execute(insert(receipts), receipt_rows)
    if large:
        conn.execute(blobs_in_progress.delete().where(blobs_in_progress.c.message_id.in_(large)))
    return outcomes


class _InlineSqlite:
    """A SQLite connection whose statements run on the calling thread (the event loop's).

    A statement on SQLite takes microseconds: the trip to aiosqlite's thread and back, and the
    wait for the busy event loop's next turn, cost far more (a third of the gateway's CPU while
    draining). What can wait (BEGIN IMMEDIATE, for another process's write) or is slow (COMMIT,
    which fsyncs) still runs on the writer thread; see SqlStore._sqlite_tx."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return self._conn.execute(statement, parameters)


# What a transaction's statements are executed on.
Conn = AsyncConnection | _InlineSqlite


class SqlStore:
    """Store implementation over one SQLAlchemy async engine (and on SQLite a synchronous one
    on the same file, whose statements run inline: _InlineSqlite)."""

    def __init__(self, engine: AsyncEngine, sqlite: Engine | None = None) -> None:
        self._engine = engine
        self._sqlite = sqlite
        # One thread runs SQLite's BEGIN IMMEDIATE, COMMIT, connection close and whole
        # accepted-mail batches, in the order they were asked for.
        self._sqlite_thread = ThreadPoolExecutor(1, "mailfax-sqlite") if sqlite else None
        # Checkpoints while large mails are written, beside the writer (see _sqlite_write).
        self._checkpoint_thread = (
            ThreadPoolExecutor(1, "mailfax-sqlite-checkpoint") if sqlite else None
        )
        self._checkpoint_queued = False
        self._large_mails = 0  # being written now
        self._accepting: list[
            tuple[AcceptedMessage, Sequence[tuple[str, str]], asyncio.Future[None]]
        ] = []
        self._accept_writer: asyncio.Task[None] | None = None
        # SQLite has one writer. Writers of this process queue here, in order, instead of in
        # SQLite's busy handler, which sleeps up to 100 ms between tries and lets a burst of
        # dispatcher tasks starve each other. (Other processes still meet the busy handler.)
        self._sqlite_writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """One transaction on this store's database (for whole-store tools such as db copy)."""
        return self._engine_tx()

    def _tx(self) -> AbstractAsyncContextManager[Conn]:
        """A transaction that writes."""
        return self._engine_tx() if self._sqlite is None else self._sqlite_tx()

    def _read(self) -> AbstractAsyncContextManager[Conn]:
        """A transaction that only reads (on SQLite it does not serialise with writers)."""
        return self._engine_read() if self._sqlite is None else self._sqlite_read()

    @asynccontextmanager
    async def _engine_tx(self) -> AsyncIterator[AsyncConnection]:
        async with self._sqlite_writer or contextlib.nullcontext():
            try:
                async with self._engine.begin() as conn:
                    yield conn
            except SQLAlchemyError as exc:
                raise StoreUnavailable(str(exc.__class__.__name__)) from exc

    @asynccontextmanager
    async def _engine_read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.connect() as conn:
                await conn.execution_options(**{_READ_ONLY: True})
                async with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc.__class__.__name__)) from exc

    async def _on_sqlite_thread(self, work: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._sqlite_thread, work)

    @asynccontextmanager
    async def _sqlite_tx(self) -> AsyncIterator[_InlineSqlite]:
        assert self._sqlite is not None and self._sqlite_writer is not None
        async with self._sqlite_writer:
            try:
                conn = await self._on_sqlite_thread(self._sqlite.connect)
                try:
                    await self._on_sqlite_thread(conn.begin)
                    yield _InlineSqlite(conn)
                    await self._on_sqlite_thread(conn.commit)
                finally:
                    # Queued behind a COMMIT still running if we were cancelled; an unfinished
                    # transaction is rolled back as the connection returns to the pool.
                    self._sqlite_thread.submit(conn.close)  # type: ignore[union-attr]
            except SQLAlchemyError as exc:
                raise StoreUnavailable(str(exc.__class__.__name__)) from exc

    @asynccontextmanager
    async def _sqlite_read(self) -> AsyncIterator[_InlineSqlite]:
        # A deferred BEGIN in WAL mode neither takes nor waits for a lock: all of it inline.
        assert self._sqlite is not None
        try:
            with self._sqlite.connect() as plain:
                conn = plain.execution_options(**{_READ_ONLY: True})
                with conn.begin():
                    yield _InlineSqlite(conn)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc.__class__.__name__)) from exc

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def upgrade(self) -> list[Migration]:
        """Bring the schema to the latest version (`mailfax db upgrade`)."""
        async with self._engine_tx() as conn:
            return await upgrade(conn)

    async def schema_version(self) -> int:
        async with self._engine_read() as conn:
            return await current_version(conn)

    async def db_now(self) -> float:
        """The database's clock (epoch seconds): the one clock all instances share."""
        if self.dialect != "postgresql":
            return time.time()
        async with self._tx() as conn:
            now = (
                await conn.execute(text("SELECT extract(epoch FROM clock_timestamp())"))
            ).scalar_one()
        return float(now)

    async def _notify(self, conn: Conn, channel: str) -> None:
        # Delivered at commit, to every instance LISTENing (PostgreSQL only; SQLite
        # instances share a machine and poll as the fallback).
        if self.dialect == "postgresql":
            await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})

    async def listen(self, wakeups: Mapping[str, Wakeup]) -> AsyncExitStack:
        """Set each channel's Wakeup on every NOTIFY; close the returned stack to stop."""
        stack = AsyncExitStack()
        if self.dialect != "postgresql":
            return stack
        conn = await stack.enter_async_context(self._engine.connect())
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        for channel, wakeup in wakeups.items():
            await raw.add_listener(channel, lambda *_args, w=wakeup: w.set())
        return stack

    async def accept(self, message: AcceptedMessage, job_rows: Sequence[tuple[str, str]]) -> None:
        """Group commit: mails arriving together share one transaction and one fsync, and each
        caller returns only once the commit holding its own mail is durable.

        A large mail first writes its raw text and documents in pieces, a transaction each,
        and then joins a group commit with its rows alone: the writer takes the other mails'
        commits between the pieces, so a small mail waits for a piece (milliseconds), never for
        one 43 MB commit (~300 ms). The pieces count only with that last commit; what a crash
        leaves of them is removed later (recover_expired)."""
        large = _is_large(message)
        self._large_mails += large
        try:
            if large:
                started = {"message_id": message.id, "started_at": message.received_at}
                for number, piece in enumerate(_pieces(message)):
                    first = (insert(blobs_in_progress).values(started),) if number == 0 else ()
                    await self._write_statements(*first, insert(blob_chunks).values(piece))
            done = asyncio.get_running_loop().create_future()
            self._accepting.append((message, job_rows, done))
            if self._accept_writer is None:
                self._accept_writer = asyncio.create_task(self._write_accepted())
            await asyncio.shield(done)
        finally:
            self._large_mails -= large

    async def _write_accepted(self) -> None:
        batch: list[tuple[AcceptedMessage, Sequence[tuple[str, str]], asyncio.Future[None]]] = []
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
            self._accept_writer = None
            # Cancelled mid-batch (the gateway is stopping): its sessions get an answer (451).
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(StoreUnavailable("the store is closing"))

    async def _write_batch(self, batch: Sequence[AcceptedRows]) -> list[QuotaExceeded | None]:
        """One transaction storing `batch`."""
        if self._sqlite is None:
            async with self._engine_tx() as conn:
                outcomes = await conn.run_sync(_insert_accepted, batch)
                await self._notify(conn, CHANNEL_JOBS)
            return outcomes
        return await self._sqlite_write(lambda conn: _insert_accepted(conn, batch))

    async def _write_statements(self, *statements: Executable) -> None:
        """One transaction executing `statements` (a piece of a large mail: on SQLite its
        megabyte is copied on the writer thread, not on the event loop)."""
        if self._sqlite is None:
            async with self._engine_tx() as conn:
                for statement in statements:
                    await conn.execute(statement)
            return
        await self._sqlite_write(lambda conn: [conn.execute(s) for s in statements])

    async def _sqlite_write(self, work: Callable[[Connection], _T]) -> _T:
        """`work` in one transaction, all of it on the writer thread.

        SQLite copies its WAL into the database file inside the COMMIT that passes 4 MB: with
        a large mail being written, that COMMIT would be a small mail's, copying megabytes of
        pieces while the mail waits. While large mails are written every commit goes without
        it, and the checkpoint runs on a thread of its own beside the writer (after them, a
        later commit finishes any rest)."""
        assert self._sqlite_writer is not None
        deferred = self._large_mails > 0
        async with self._sqlite_writer:
            result = await self._on_sqlite_thread(lambda: self._sqlite_write_now(work, deferred))
        if deferred and not self._checkpoint_queued:
            assert self._checkpoint_thread is not None
            self._checkpoint_queued = True
            loop = asyncio.get_running_loop()
            checkpoint = loop.run_in_executor(self._checkpoint_thread, self._checkpoint_now)
            checkpoint.add_done_callback(_log_checkpoint_failure)
        return result

    def _sqlite_write_now(self, work: Callable[[Connection], _T], defer_checkpoint: bool) -> _T:
        assert self._sqlite is not None
        try:
            with self._sqlite.connect() as conn:
                # On the driver's connection: through SQLAlchemy it would begin a transaction.
                driver = conn.connection.dbapi_connection
                assert driver is not None
                if defer_checkpoint:
                    driver.cursor().execute("PRAGMA wal_autocheckpoint=0")
                try:
                    with conn.begin():
                        return work(conn)
                finally:
                    if defer_checkpoint:
                        _restore_autocheckpoint(conn, driver)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(str(exc.__class__.__name__)) from exc

    def _checkpoint_now(self) -> None:
        assert self._sqlite is not None
        # Commits from here on ask for another run; the ones before are covered by this one.
        self._checkpoint_queued = False
        # A plain connection (autocommit: a checkpoint runs outside any transaction).
        # PASSIVE: it never waits for the writer or for readers, and copies what it can.
        connection = self._sqlite.raw_connection()
        try:
            connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()

    async def claim_jobs(self, owners: Sequence[str], now: float, lease_until: float) -> list[Job]:
        claimed: list[Job] = []
        async with self._tx() as conn:
            for owner in owners:
                due = _oldest_due(jobs, JobState.QUEUED.value, now)
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
                await self._event(conn, row.id, JobState.QUEUED, JobState.UPLOADING, now, owner)
                claimed.append(_job(row))
        return claimed

    async def recover_expired(self, now: float) -> list[tuple[Job, JobState]]:
        # An upload interrupted by a crash is simply redone; an interrupted send
        # may have reached FAX.PLUS, so it must be reconciled, never resent blindly.
        moves = ((JobState.UPLOADING, JobState.QUEUED), (JobState.SUBMITTING, JobState.UNKNOWN))
        recovered: list[tuple[Job, JobState]] = []
        async with self._tx() as conn:
            for old, new in moves:
                rows = (
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
                for row in rows:
                    await self._event(conn, row.id, old, new, now, "lease expired")
                    recovered.append((_job(row), old))
            # Large mails a crash interrupted while their pieces were written (never accepted).
            unfinished = blobs_in_progress.c.started_at < now - _ABANDONED_AFTER
            abandoned_query = select(blobs_in_progress.c.message_id).where(unfinished)
            abandoned = (await conn.execute(abandoned_query)).scalars().all()
            if abandoned:
                for statement in _forget_pieces(abandoned):
                    await conn.execute(statement)
                log_event(log, "store.abandoned_pieces", logging.WARNING, mails=len(abandoned))
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
        async with self._tx() as conn:
            if group is not None:
                # The mail's jobs finish one at a time: with the mail locked, the last one to
                # finish sees every other one final, so exactly one of them queues the summary.
                await conn.execute(
                    select(messages.c.id)
                    .where(messages.c.id == _message_of(job_id))
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
            await self._event(conn, job_id, expected, new, now, detail)
            if new is JobState.QUEUED:
                await self._notify(conn, CHANNEL_JOBS)
            if group is not None and new in TERMINAL:
                receipt = await _grouped_receipt(conn, moved.message_id, group, receipt)
            if receipt is not None:
                await self._notify(conn, CHANNEL_RECEIPTS)
                about_job = None if receipt.kind == "group" else job_id
                await _insert_receipt(conn, moved.message_id, about_job, receipt, now)
            return True

    async def note_job(
        self, job_id: str, state: JobState, now: float, detail: str, values: Mapping[str, Any]
    ) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == state.value)
                .values(**values)
            )
            if result.rowcount != 1:
                return False
            await self._event(conn, job_id, state, state, now, detail)
        return True

    async def renew_lease(self, job_id: str, owner: str, until: float) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
                .values(lease_until=until)
            )
        return bool(result.rowcount == 1)

    async def release_uploads(self, owner_prefix: str, now: float) -> int:
        async with self._tx() as conn:
            rows = (
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
            for row in rows:
                detail = "released by a stopping gateway"
                await self._event(conn, row.id, JobState.UPLOADING, JobState.QUEUED, now, detail)
        return len(rows)

    @staticmethod
    async def _event(
        conn: Conn,
        job_id: str,
        old: JobState | None,
        new: JobState,
        now: float,
        detail: str,
    ) -> None:
        await conn.execute(insert(job_events).values(**_event_row(job_id, old, new, now, detail)))

    async def get_job(self, job_id: str) -> Job | None:
        async with self._read() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
        return _job(row) if row else None

    async def job_by_fax_id(self, fax_id: str) -> Job | None:
        async with self._read() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.fax_id == fax_id))).first()
        return _job(row) if row else None

    async def jobs_in_state(self, state: JobState, before: float, limit: int) -> list[Job]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(jobs)
                    .where(jobs.c.state == state.value, jobs.c.updated_at < before)
                    .order_by(jobs.c.updated_at)
                    .limit(limit)
                )
            ).all()
        return [_job(row) for row in rows]

    async def jobs_created_before(
        self, states: Sequence[JobState], before: float, limit: int
    ) -> list[Job]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(jobs)
                    .where(jobs.c.state.in_([s.value for s in states]), jobs.c.created_at < before)
                    .order_by(jobs.c.created_at)
                    .limit(limit)
                )
            ).all()
        return [_job(row) for row in rows]

    async def fax_ids_in_use(self, fax_ids: Sequence[str]) -> set[str]:
        async with self._read() as conn:
            rows = (
                await conn.execute(select(jobs.c.fax_id).where(jobs.c.fax_id.in_(fax_ids)))
            ).all()
        return {row.fax_id for row in rows}

    async def job_events(self, job_id: str) -> list[tuple[float, str | None, str, str]]:
        """The job's transition history, oldest first (for operators and tests)."""
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(
                        job_events.c.at,
                        job_events.c.from_state,
                        job_events.c.to_state,
                        job_events.c.detail,
                    )
                    .where(job_events.c.job_id == job_id)
                    .order_by(job_events.c.id)
                )
            ).all()
        return [(r.at, r.from_state, r.to_state, r.detail) for r in rows]

    async def documents(self, message_id: str) -> list[Document]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(documents)
                    .where(documents.c.message_id == message_id)
                    .order_by(documents.c.position)
                )
            ).all()
            large = rows and not rows[0].data
            pieces = await _joined_pieces(conn, message_id, raw=False) if large else {}
        return [Document(r.name, pieces.get(r.position, r.data), r.pages) for r in rows]

    async def message(self, message_id: str) -> MessageRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(select(messages).where(messages.c.id == message_id))).first()
            if row is None:
                return None
            raw = row.raw or (await _joined_pieces(conn, row.id, raw=True))[-1]
        return MessageRecord(
            id=row.id,
            received_at=row.received_at,
            mail_from=row.mail_from,
            header_message_id=row.header_message_id,
            subject=row.subject,
            auto_submitted=row.auto_submitted,
            comment=row.comment,
            report=_report_from_json(row.report),
            raw=raw,
            sender_name=row.sender_name,
            admitted_by=row.admitted_by,
        )

    async def park_fax_event(self, fax_id: str, hook_id: str, status: str, now: float) -> bool:
        try:
            async with self._tx() as conn:
                await conn.execute(
                    insert(fax_events).values(
                        fax_id=fax_id,
                        hook_id=hook_id,
                        status=status,
                        received_at=now,
                        next_at=now,
                        attempts=0,
                    )
                )
                await self._notify(conn, CHANNEL_FAX_EVENTS)
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True

    async def due_fax_events(self, now: float, limit: int) -> list[FaxEvent]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(fax_events)
                    .where(fax_events.c.next_at <= now)
                    .order_by(fax_events.c.next_at)
                    .limit(limit)
                )
            ).all()
        return [
            FaxEvent(r.id, r.fax_id, r.hook_id, r.status, r.received_at, r.attempts) for r in rows
        ]

    async def fax_event_done(self, event_id: int) -> None:
        async with self._tx() as conn:
            await conn.execute(fax_events.delete().where(fax_events.c.id == event_id))

    async def fax_event_later(self, event_id: int, next_at: float) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(fax_events)
                .where(fax_events.c.id == event_id)
                .values(next_at=next_at, attempts=fax_events.c.attempts + 1)
            )

    async def wake_fax_events(self, fax_id: str, now: float) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(fax_events).where(fax_events.c.fax_id == fax_id).values(next_at=now)
            )

    async def next_fax_event(self) -> float | None:
        async with self._read() as conn:
            due: float | None = (
                await conn.execute(select(func.min(fax_events.c.next_at)))
            ).scalar()
        return due

    async def claim_receipt(self, now: float, lease_until: float) -> PendingReceipt | None:
        due = _oldest_due(receipts, "pending", now)
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    update(receipts)
                    .where(receipts.c.id == due)
                    # The lease is a later run_at: a crashed sender's receipt comes due again.
                    .values(run_at=lease_until, attempts=receipts.c.attempts + 1)
                    .returning(*receipts.c)
                )
            ).first()
        if row is None:
            return None
        return PendingReceipt(
            row.id, row.job_id, row.recipient, row.content, row.attempts, row.created_at, row.kind
        )

    async def receipt_sent(self, receipt_id: str, now: float) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(receipts)
                .where(receipts.c.id == receipt_id)
                .values(state="sent", sent_at=now, error=None)
            )

    async def receipt_later(self, receipt_id: str, run_at: float, error: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(receipts)
                .where(receipts.c.id == receipt_id)
                .values(run_at=run_at, error=error[:2000])
            )

    async def receipt_dropped(self, receipt_id: str, error: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(receipts)
                .where(receipts.c.id == receipt_id)
                .values(state="dropped", error=error[:2000])
            )

    async def next_due(self, now: float) -> float | None:
        async with self._read() as conn:
            job_due = (
                await conn.execute(
                    select(func.min(jobs.c.run_at)).where(
                        jobs.c.state == JobState.QUEUED.value, jobs.c.run_at > now
                    )
                )
            ).scalar()
            receipt_due = (
                await conn.execute(
                    select(func.min(receipts.c.run_at)).where(
                        receipts.c.state == "pending", receipts.c.run_at > now
                    )
                )
            ).scalar()
        times = [t for t in (job_due, receipt_due) if t is not None]
        return min(times) if times else None

    async def faxplus_facts(self) -> dict[str, Any]:
        async with self._read() as conn:
            rows = (await conn.execute(select(faxplus_facts.c.key, faxplus_facts.c.value))).all()
        return {row.key: json.loads(row.value) for row in rows}

    async def learn_faxplus_facts(self, facts: Mapping[str, Any], now: float) -> None:
        async with self._tx() as conn:
            await conn.execute(faxplus_facts.delete().where(faxplus_facts.c.key.in_(list(facts))))
            await conn.execute(
                insert(faxplus_facts),
                [
                    {"key": key, "value": json.dumps(value), "learnt_at": now}
                    for key, value in facts.items()
                ],
            )

    async def ping(self) -> None:
        async with self._read() as conn:
            await conn.execute(select(1))

    async def close(self) -> None:
        await self._engine.dispose()
        if self._checkpoint_thread is not None:
            # A checkpoint under way finishes before the engine it uses is disposed.
            await asyncio.to_thread(self._checkpoint_thread.shutdown)
        if self._sqlite_thread is not None:
            # After what is queued on it (a COMMIT, connections to close), not before.
            assert self._sqlite is not None
            await self._on_sqlite_thread(self._sqlite.dispose)
            self._sqlite_thread.shutdown(wait=False)

    async def job_stats(self) -> JobStats:
        unfinished = [state.value for state in JobState if state not in TERMINAL]
        async with self._read() as conn:
            rows = (
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
        counts = {JobState(state): int(count) for state, count in rows}
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
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [JobSummary(_job(row), row.mail_from, row.subject, int(row.pages)) for row in rows]

    async def receipt_of(self, job_id: str) -> ReceiptRecord | None:
        """The receipt telling the job's result: its own, or its mail's group summary."""
        own = (receipts.c.job_id == job_id) & (receipts.c.kind == "final")
        summary = (
            receipts.c.job_id.is_(None)
            & (receipts.c.kind == "group")
            & (receipts.c.message_id == _message_of(job_id))
        )
        async with self._read() as conn:
            row = (
                await conn.execute(
                    # Its own ("final" sorts before "group"): a job retried after the summary.
                    select(receipts).where(own | summary).order_by(receipts.c.kind)
                )
            ).first()
        if row is None:
            return None
        return ReceiptRecord(
            row.id,
            row.state,
            row.recipient,
            row.attempts,
            row.created_at,
            row.sent_at,
            row.error,
            row.kind,
        )

    async def minimal_receipts(self, since: float) -> int:
        async with self._read() as conn:
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

    async def expedite_job(self, job_id: str, now: float, detail: str) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value)
                .values(run_at=now, updated_at=now)
            )
            if result.rowcount != 1:
                return False
            await self._event(conn, job_id, JobState.QUEUED, JobState.QUEUED, now, detail)
            await self._notify(conn, CHANNEL_JOBS)
        return True

    async def requeue_as_new_job(
        self, job_id: str, new_job_id: str, now: float, detail: str
    ) -> Job | None:
        async with self._tx() as conn:
            old = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
            if old is None or JobState(old.state) not in TERMINAL:
                return None
            row = (
                await conn.execute(
                    insert(jobs)
                    .values(**_new_job_row(new_job_id, old.message_id, old.number, now))
                    .returning(*jobs.c)
                )
            ).one()
            note = f"retry of job {job_id}: {detail}"
            await self._event(conn, new_job_id, None, JobState.QUEUED, now, note)
            # A note in the old job's history, not a move: its final state stays final.
            state = JobState(old.state)
            note = f"retried as job {new_job_id}: {detail}"
            await self._event(conn, job_id, state, state, now, note)
            await self._notify(conn, CHANNEL_JOBS)
        return _job(row)

    async def jobs_of_message(self, message_id: str) -> list[Job]:
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(jobs).where(jobs.c.message_id == message_id).order_by(jobs.c.id)
                )
            ).all()
        return [_job(row) for row in rows]

    async def jobs_awaiting_delay_notice(self, created_before: float, limit: int) -> list[Job]:
        unfinished = [state.value for state in JobState if state not in TERMINAL]
        decided = (
            select(receipts.c.id)
            .where(receipts.c.job_id == jobs.c.id, receipts.c.kind == "delayed")
            .exists()
        )
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(jobs)
                    .where(
                        jobs.c.state.in_(unfinished), jobs.c.created_at < created_before, ~decided
                    )
                    .order_by(jobs.c.created_at)
                    .limit(limit)
                )
            ).all()
        return [_job(row) for row in rows]

    async def queue_receipt(
        self, message_id: str, job_id: str | None, receipt: NewReceipt, now: float
    ) -> bool:
        try:
            async with self._tx() as conn:
                await _insert_receipt(conn, message_id, job_id, receipt, now)
                await self._notify(conn, CHANNEL_RECEIPTS)
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True

    async def skip_receipt(
        self, message_id: str, job_id: str | None, kind: str, reason: str, now: float
    ) -> bool:
        try:
            async with self._tx() as conn:
                await conn.execute(
                    insert(receipts).values(
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
                )
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True


SQLITE_FILE = "mailfax.sqlite3"


def engine_url(url: str, state_dir: Path) -> str:
    """The SQLAlchemy async URL for `[store] url` ("" = SQLite in state_dir)."""
    if not url:
        return f"sqlite+aiosqlite:///{state_dir / SQLITE_FILE}"
    for plain, driver in (("sqlite:", "sqlite+aiosqlite:"), ("postgresql:", "postgresql+asyncpg:")):
        if url.startswith(plain):
            return driver + url.removeprefix(plain)
    return url


async def open_store(url: str, state_dir: Path, *, check_schema: bool = True) -> SqlStore:
    """Open the store. SQLite upgrades its own schema; PostgreSQL, shared by instances that
    may run different versions, must already be at this version (`mailfax db upgrade`)."""
    if not url:
        private_file(private_dir(state_dir) / SQLITE_FILE)
    full_url = engine_url(url, state_dir)
    # A server connection can drop while pooled; a file cannot: pinging SQLite would only add a
    # round trip through aiosqlite's thread to every transaction.
    engine = create_async_engine(full_url, pool_pre_ping=not full_url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        inline = create_engine(
            make_url(full_url).set(drivername="sqlite+pysqlite"),
            # Used from the event loop and from the store's SQLite thread, never at once.
            connect_args={"check_same_thread": False},
        )
        for each in (engine.sync_engine, inline):
            _sqlite_durability(each)
        store = SqlStore(engine, inline)
        await store.upgrade()
    else:
        store = SqlStore(engine)
    if store.dialect != "sqlite" and check_schema:
        try:
            check_version(await store.schema_version())
        except BaseException:
            await store.close()
            raise
    return store
