"""Shared fixtures: a store on a temporary SQLite file, and waiting on conditions with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from mailfax.jobs import Job
from mailfax.store import SqlStore, open_store
from mailfax.store.base import Store

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 15.0, what: str = "condition"
) -> T:
    """Re-check `probe` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


# CI's PostgreSQL (trust authentication on loopback); each test gets its own database.
PG_ADMIN_URL = os.environ.get("MAILFAX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards; yields its URL."""
    name = f"mailfax_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """The store on both supported databases."""
    async with contextlib.AsyncExitStack() as stack:
        url = ""
        if request.param == "postgresql":
            url = await stack.enter_async_context(fresh_pg_database())
        opened = await open_store(url, tmp_path, check_schema=False)
        stack.push_async_callback(opened.close)
        await opened.upgrade()
        yield opened


def _dump_tasks(signum: int, frame: object) -> None:
    """kill -USR1 <pytest pid> prints every asyncio task's stack (to debug a hung test)."""
    for task in list(asyncio.tasks._all_tasks):  # type: ignore[attr-defined]
        task.print_stack(file=sys.stderr)


signal.signal(signal.SIGUSR1, _dump_tasks)


async def claim_one(store: Store, owner: str, now: float, lease_until: float) -> Job | None:
    """One claim, as a dispatcher with one free slot makes it."""
    claimed = await store.claim_jobs([owner], now, lease_until)
    return claimed[0] if claimed else None
