"""Shared fixtures: a store on a temporary SQLite file, waiting on conditions with deadlines, and
the real-mail corpus's tests skipped (and counted) in a checkout that has no corpus beside it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
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
from mailfax.store import SqlStore, Store, open_store

T = TypeVar("T")

# The shared real-mail corpus lives beside the checkout on the development machines and in CI
# (where `.ci/run` insists on it); a plain clone has none, and its own generated mails
# (tests/test_quirks.py) cover the same quirks.
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real-mail"
CORPUS_PRESENT = CORPUS.is_dir()
CORPUS_SKIP_REASON = f"needs the real-mail corpus {CORPUS}, which is not beside this checkout"
_corpus_skipped: list[str] = []
# CI installs LibreOffice (.ci/run); a machine without it skips the real conversions.
SOFFICE_PRESENT = shutil.which("soffice") is not None
_soffice_skipped: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "corpus: reads ../shared/corpus/real-mail/ (skipped where it does not exist)"
    )
    config.addinivalue_line(
        "markers", "soffice: converts with LibreOffice (skipped where soffice is not installed)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, present, reason, skipped in (
        ("corpus", CORPUS_PRESENT, CORPUS_SKIP_REASON, _corpus_skipped),
        ("soffice", SOFFICE_PRESENT, "needs LibreOffice (soffice)", _soffice_skipped),
    ):
        if present:
            continue
        for item in items:
            if item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
                skipped.append(item.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line, so a newcomer's clean run says what it did not run, and why."""
    if _corpus_skipped:
        terminalreporter.write_line(
            f"{len(_corpus_skipped)} tests skipped: they read the real-mail corpus, and "
            f"{CORPUS} does not exist (CI has it; tests/test_quirks.py covers its quirks "
            "with generated mails)",
            yellow=True,
        )
    if _soffice_skipped:
        terminalreporter.write_line(
            f"{len(_soffice_skipped)} tests skipped: they convert documents with LibreOffice, "
            "and soffice is not installed (CI installs it: .ci/run)",
            yellow=True,
        )


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


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """`eventually` for threads and processes: re-check `check` until it is true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


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
