"""Extraction in worker processes: the same verdicts as in-process, workers started on demand,
a dead worker replaced, a thread when no worker can start, no workers left by a killed gateway."""

from __future__ import annotations

import asyncio
import errno
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from benchmarks.run import descendants
from mailfax.mail.extract import ExtractionOptions, extract_documents
from mailfax.smtp.extraction import ExtractionFailed, ExtractionPool
from tests.chaos import GatewayProcess, free_port, send_one
from tests.conftest import eventually
from tests.gateway import gateway_env
from tests.pdfs import encrypted_pdf, fax_mail, large_pdf

MAIL = fax_mail().as_bytes()
# max_pages=1: the two-page invoice is refused, so the workers must have got the options.
OPTIONS = ExtractionOptions(max_pages=1)


@pytest.fixture
async def pool() -> AsyncIterator[ExtractionPool]:
    running = ExtractionPool(OPTIONS, workers=2)
    yield running
    running.close()


def workers() -> set[int]:
    """The pids of this process's live extraction workers (forked by the forkserver)."""
    return {child.pid for child in multiprocessing.active_children() if child.pid is not None}


async def test_same_verdicts_as_in_process(pool: ExtractionPool) -> None:
    refused = fax_mail(attachments=[("locked.pdf", encrypted_pdf(), "application/pdf")]).as_bytes()
    for raw in (MAIL, refused):
        assert await pool.extract(raw) == extract_documents(raw, OPTIONS)


async def test_a_dead_worker_is_replaced_and_the_mail_extracted(pool: ExtractionPool) -> None:
    before = workers()
    await pool.extract(MAIL)  # the workers are started on demand: now there is one
    [first] = workers() - before
    large = fax_mail(attachments=[("scan.pdf", large_pdf(20_000_000), "application/pdf")])
    extracting = pool.extract(large.as_bytes())
    os.kill(first, signal.SIGKILL)
    extraction = await extracting
    assert extraction.refusal is None and extraction.pages == 1
    assert first not in workers()
    # The fresh pool serves the next mails.
    assert await pool.extract(MAIL) == extract_documents(MAIL, OPTIONS)


async def test_a_mail_that_kills_two_pools_is_not_run_in_the_gateway(
    pool: ExtractionPool,
) -> None:
    killed = workers()  # (other tests' workers, if any: left alone)
    await pool.extract(MAIL)
    large = fax_mail(attachments=[("scan.pdf", large_pdf(20_000_000), "application/pdf")])
    spared = len(killed)

    async def kill_new_worker() -> bool:
        fresh = workers() - killed
        for pid in fresh:
            os.kill(pid, signal.SIGKILL)
        killed.update(fresh)
        return len(killed) >= spared + 2

    extracting = asyncio.create_task(pool.extract(large.as_bytes()))
    await eventually(kill_new_worker, what="a worker of the second pool to kill")
    with pytest.raises(ExtractionFailed):
        await extracting


async def test_no_workers_means_a_thread(
    pool: ExtractionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork(self: ProcessPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    before = workers()
    monkeypatch.setattr(ProcessPoolExecutor, "submit", no_fork)
    assert await pool.extract(MAIL) == extract_documents(MAIL, OPTIONS)
    assert workers() == before


async def test_closed_pool_refuses_and_starts_nothing(pool: ExtractionPool) -> None:
    before = workers()
    pool.close()
    with pytest.raises(RuntimeError):
        await pool.extract(MAIL)
    assert workers() == before


async def test_workers_exit_when_the_gateway_is_killed(tmp_path: Path) -> None:
    port = free_port()
    gateway = GatewayProcess(
        gateway_env(tmp_path, smtp_listen=f"127.0.0.1:{port}"), tmp_path / "gateway.log", port
    )
    await gateway.start()
    try:
        assert await send_one(port, fax_mail(), ["+15551234567"]) == "accepted"
        assert gateway.process is not None
        below = descendants(gateway.process.pid)
        assert below  # the extraction workers (and their forkserver)
    finally:
        await gateway.kill()

    async def all_exited() -> bool:
        return not any(_running(pid) for pid in below)

    await eventually(all_exited, what="the workers of the killed gateway to exit")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited (its new parent has yet to reap it)
