"""Extraction in worker processes: the same verdicts as in-process, workers started on demand,
a dead worker replaced, a thread when no worker can start, no workers left by a stopped or a
killed gateway."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.run import descendants
from mailfax.mail.extract import extract_documents
from mailfax.mail.model import ExtractionOptions
from mailfax.smtp.extraction import ExtractionFailed, ExtractionPool
from tests.chaos import GatewayProcess, free_port, send_one
from tests.conftest import eventually
from tests.gateway import gateway_env
from tests.pdfs import encrypted_pdf, fax_mail, large_pdf, pdf_with_pages

MAIL = fax_mail().as_bytes()
# max_pages=1: the two-page invoice is refused, so the workers must have got the options.
OPTIONS = ExtractionOptions(max_pages=1)


@pytest.fixture
async def pool() -> AsyncIterator[ExtractionPool]:
    running = ExtractionPool(OPTIONS, workers=2)
    yield running
    await running.close()


async def test_same_verdicts_as_in_process(pool: ExtractionPool) -> None:
    refused = fax_mail(attachments=[("locked.pdf", encrypted_pdf(), "application/pdf")]).as_bytes()
    for raw in (MAIL, refused):
        assert await pool.extract(raw) == extract_documents(raw, OPTIONS)


async def test_warmed_up_workers_have_loaded_the_pdf_library(pool: ExtractionPool) -> None:
    """Before their first mail, which would otherwise wait for the import (~0.1 s)."""
    await pool.warm_up()
    assert len(pool.worker_pids()) == 2
    for pid in pool.worker_pids():

        async def loaded(pid: int = pid) -> bool:
            return "pikepdf" in Path(f"/proc/{pid}/maps").read_text()

        await eventually(loaded, what=f"pikepdf in worker {pid}")


async def test_a_dead_worker_is_replaced_and_the_mail_extracted(pool: ExtractionPool) -> None:
    assert pool.worker_pids() == set()
    await pool.extract(MAIL)  # the workers are started on demand: now there is one
    [first] = pool.worker_pids()
    large = fax_mail(attachments=[("scan.pdf", large_pdf(20_000_000), "application/pdf")])
    extracting = pool.extract(large.as_bytes())
    os.kill(first, signal.SIGKILL)
    extraction = await extracting
    assert extraction.refusal is None and extraction.pages == 1
    assert first not in pool.worker_pids() and not _running(first)
    # The fresh worker serves the next mails.
    assert await pool.extract(MAIL) == extract_documents(MAIL, OPTIONS)


async def test_a_mail_that_kills_two_workers_is_not_run_in_the_gateway(
    pool: ExtractionPool,
) -> None:
    await pool.extract(MAIL)
    large = fax_mail(attachments=[("scan.pdf", large_pdf(20_000_000), "application/pdf")])
    killed: set[int] = set()

    async def kill_new_worker() -> bool:
        fresh = pool.worker_pids() - killed
        for pid in fresh:
            os.kill(pid, signal.SIGKILL)
        killed.update(fresh)
        return len(killed) >= 2

    extracting = asyncio.create_task(pool.extract(large.as_bytes()))
    await eventually(kill_new_worker, what="a worker of the second pool to kill")
    with pytest.raises(ExtractionFailed):
        await extracting


async def test_no_workers_means_a_thread(
    pool: ExtractionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_fork(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", no_fork)
    assert await pool.extract(MAIL) == extract_documents(MAIL, OPTIONS)
    assert pool.worker_pids() == set()


async def test_closed_pool_stops_its_workers_and_refuses(pool: ExtractionPool) -> None:
    await asyncio.gather(pool.extract(MAIL), pool.extract(MAIL))
    started = pool.worker_pids()
    assert len(started) == 2
    await pool.close()
    assert not any(_running(pid) for pid in started)
    with pytest.raises(RuntimeError):
        await pool.extract(MAIL)
    assert pool.worker_pids() == set()


async def test_workers_exit_when_the_gateway_is_killed(tmp_path: Path) -> None:
    port = free_port()
    gateway = GatewayProcess(
        gateway_env(tmp_path, smtp_listen=f"127.0.0.1:{port}"), tmp_path / "gateway.log", port
    )
    await gateway.start()
    try:
        assert await send_one(port, fax_mail(), ["+17185554567"]) == "accepted"
        assert gateway.process is not None
        below = descendants(gateway.process.pid)
        assert below  # the extraction workers
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


async def test_a_conversion_holds_a_worker_of_its_own_lane_not_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mail whose document LibreOffice is converting does not keep a PDF mail waiting."""
    started, release, made = tmp_path / "started", tmp_path / "release", tmp_path / "made.pdf"
    made.write_bytes(pdf_with_pages(1))
    soffice = tmp_path / "soffice"
    # A stand-in for soffice that converts once the test lets it.
    soffice.write_text(
        "#!/bin/sh\n"
        f"touch {started}\n"
        f"while [ ! -e {release} ]; do sleep 0.05; done\n"
        f'for last; do :; done\ncp {made} "${{last%.*}}.pdf"\n'
    )
    soffice.chmod(0o755)
    options = ExtractionOptions(soffice=str(soffice), convert_dir=str(tmp_path), convert_parallel=1)
    pool = ExtractionPool(options, workers=1)
    try:
        docx = fax_mail(attachments=[("terms.docx", b"PK\x03\x04 word", "application/zip")])
        converting = asyncio.create_task(pool.extract(docx.as_bytes()))

        async def conversion_started() -> bool:
            return started.exists()

        await eventually(conversion_started, what="LibreOffice started on terms.docx")
        # The only worker of the first lane is free: a PDF mail is extracted meanwhile.
        assert [d.name for d in (await pool.extract(MAIL)).documents] == ["invoice.pdf"]
        assert not converting.done()
        release.touch()
        assert [d.name for d in (await converting).documents] == ["terms.docx"]
    finally:
        await pool.close()
