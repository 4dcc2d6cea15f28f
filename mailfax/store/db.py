"""Database connections: engines, SQLite's writer thread and checkpoints, NOTIFY/LISTEN."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import Executable

from mailfax.config import private_dir, private_file
from mailfax.logs import log_event
from mailfax.store.base import StoreUnavailable
from mailfax.worker import Wakeup

log = logging.getLogger("mailfax.store")

_READ_ONLY = "mailfax_read_only"
_T = TypeVar("_T")

# NOTIFY channels: a hint to every instance that work of this kind may be due.
CHANNEL_JOBS = "mailfax_jobs"
CHANNEL_FAX_EVENTS = "mailfax_fax_events"
CHANNEL_RECEIPTS = "mailfax_receipts"

SQLITE_FILE = "mailfax.sqlite3"

# SQLite's default: a checkpoint in the COMMIT that takes the WAL past 1000 pages (4 MB).
_WAL_AUTOCHECKPOINT = 1000


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


class _InlineSqlite:
    """A SQLite connection whose statements run on the calling thread (the event loop's).

    A statement on SQLite takes microseconds: the trip to aiosqlite's thread and back, and the
    wait for the busy event loop's next turn, cost far more (a third of the gateway's CPU while
    draining). What can wait (BEGIN IMMEDIATE, for another process's write) or is slow (COMMIT,
    which fsyncs) still runs on the writer thread; see Database._sqlite_tx."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return self._conn.execute(statement, parameters)


# What a transaction's statements are executed on.
Conn = AsyncConnection | _InlineSqlite


class Database:
    """One SQLAlchemy async engine (and on SQLite a synchronous one on the same file, whose
    statements run inline: _InlineSqlite), and the transactions the queries run in."""

    def __init__(self, engine: AsyncEngine, sqlite: Engine | None = None) -> None:
        self._engine = engine
        self._sqlite = sqlite
        # One thread runs SQLite's BEGIN IMMEDIATE, COMMIT, connection close and whole
        # accepted-mail batches, in the order they were asked for.
        self._sqlite_thread = ThreadPoolExecutor(1, "mailfax-sqlite") if sqlite else None
        # Checkpoints while large mails are written, beside the writer (see _sqlite_write).
        self.checkpoint_thread = (
            ThreadPoolExecutor(1, "mailfax-sqlite-checkpoint") if sqlite else None
        )
        self._checkpoint_queued = False
        # SQLite has one writer. Writers of this process queue here, in order, instead of in
        # SQLite's busy handler, which sleeps up to 100 ms between tries and lets a burst of
        # dispatcher tasks starve each other. (Other processes still meet the busy handler.)
        self._sqlite_writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def tx(self) -> AbstractAsyncContextManager[Conn]:
        """A transaction that writes."""
        return self.engine_tx() if self._sqlite is None else self._sqlite_tx()

    def read(self) -> AbstractAsyncContextManager[Conn]:
        """A transaction that only reads (on SQLite it does not serialise with writers)."""
        return self.engine_read() if self._sqlite is None else self._sqlite_read()

    @asynccontextmanager
    async def engine_tx(self) -> AsyncIterator[AsyncConnection]:
        """A writing transaction on the async engine (whole-store tools, schema upgrades)."""
        async with self._sqlite_writer or contextlib.nullcontext():
            try:
                async with self._engine.begin() as conn:
                    yield conn
            except SQLAlchemyError as exc:
                raise StoreUnavailable(str(exc.__class__.__name__)) from exc

    @asynccontextmanager
    async def engine_read(self) -> AsyncIterator[AsyncConnection]:
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

    async def write(
        self,
        work: Callable[[Connection], _T],
        *,
        defer_checkpoint: bool = False,
        channel: str | None = None,
    ) -> _T:
        """`work` (synchronous) in one transaction, notifying `channel` with its commit: on
        SQLite the whole of it runs in one trip to the writer thread."""
        if self._sqlite is None:
            async with self.engine_tx() as conn:
                result = await conn.run_sync(work)
                if channel is not None:
                    await self.notify(conn, channel)
            return result
        return await self._sqlite_write(work, defer_checkpoint)

    async def _sqlite_write(self, work: Callable[[Connection], _T], deferred: bool) -> _T:
        """`work` in one transaction, all of it on the writer thread.

        SQLite copies its WAL into the database file inside the COMMIT that passes 4 MB: with
        a large mail being written, that COMMIT would be a small mail's, copying megabytes of
        pieces while the mail waits. While large mails are written (`deferred`) every commit
        goes without it, and the checkpoint runs on a thread of its own beside the writer
        (after them, a later commit finishes any rest)."""
        assert self._sqlite_writer is not None
        async with self._sqlite_writer:
            result = await self._on_sqlite_thread(lambda: self._sqlite_write_now(work, deferred))
        if deferred and not self._checkpoint_queued:
            assert self.checkpoint_thread is not None
            self._checkpoint_queued = True
            loop = asyncio.get_running_loop()
            checkpoint = loop.run_in_executor(self.checkpoint_thread, self._checkpoint_now)
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

    async def insert_once(self, statement: Executable, channel: str | None = None) -> bool:
        """Run an insert in a transaction of its own (notifying `channel`); False, with
        nothing written, when a row with its unique key was there already."""
        try:
            async with self.tx() as conn:
                await conn.execute(statement)
                if channel is not None:
                    await self.notify(conn, channel)
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True

    async def notify(self, conn: Conn, channel: str) -> None:
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

    async def now(self) -> float:
        """The database's clock (epoch seconds): the one clock all instances share."""
        if self.dialect != "postgresql":
            return time.time()
        async with self.tx() as conn:
            now = (
                await conn.execute(text("SELECT extract(epoch FROM clock_timestamp())"))
            ).scalar_one()
        return float(now)

    async def close(self) -> None:
        await self._engine.dispose()
        if self.checkpoint_thread is not None:
            # A checkpoint under way finishes before the engine it uses is disposed.
            await asyncio.to_thread(self.checkpoint_thread.shutdown)
        if self._sqlite_thread is not None:
            # After what is queued on it (a COMMIT, connections to close), not before.
            assert self._sqlite is not None
            await self._on_sqlite_thread(self._sqlite.dispose)
            self._sqlite_thread.shutdown(wait=False)


def engine_url(url: str, state_dir: Path) -> str:
    """The SQLAlchemy async URL for `[store] url` ("" = SQLite in state_dir)."""
    if not url:
        return f"sqlite+aiosqlite:///{state_dir / SQLITE_FILE}"
    for plain, driver in (("sqlite:", "sqlite+aiosqlite:"), ("postgresql:", "postgresql+asyncpg:")):
        if url.startswith(plain):
            return driver + url.removeprefix(plain)
    return url


def connect(url: str, state_dir: Path) -> Database:
    """The engines for `[store] url` ("" = SQLite in state_dir, made private to the gateway)."""
    if not url:
        private_file(private_dir(state_dir) / SQLITE_FILE)
    full_url = engine_url(url, state_dir)
    # A server connection can drop while pooled; a file cannot: pinging SQLite would only add a
    # round trip through aiosqlite's thread to every transaction.
    engine = create_async_engine(full_url, pool_pre_ping=not full_url.startswith("sqlite"))
    if engine.dialect.name != "sqlite":
        return Database(engine)
    inline = create_engine(
        make_url(full_url).set(drivername="sqlite+pysqlite"),
        # Used from the event loop and from the store's SQLite thread, never at once.
        connect_args={"check_same_thread": False},
    )
    for each in (engine.sync_engine, inline):
        _sqlite_durability(each)
    return Database(engine, inline)
