"""Extraction for SMTP intake in worker processes.

Parsing a mail and opening its PDFs is CPU work: in a thread it holds the GIL the event loop
needs, and it uses one core however many the machine has. Worker processes use them all, and a
crash in qpdf takes down a worker, not the gateway."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import select
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from mailfax.logs import log_event
from mailfax.mail.extract import Extraction, ExtractionOptions, extract_documents

log = logging.getLogger("mailfax.smtp")


def extraction_workers() -> int:
    """One worker per core: extraction is all CPU."""
    return os.cpu_count() or 1


def _exit_with(gateway: int) -> None:
    """Worker initializer: exit when the gateway process does. A gateway that is killed shuts
    nothing down, and the workers' pipes alone do not end them."""
    try:
        gone = os.pidfd_open(gateway)
    except (AttributeError, OSError):
        return  # no pidfd (not Linux 5.3+): such workers outlive a killed gateway
    threading.Thread(target=_exit_when_readable, args=(gone,), daemon=True).start()


def _exit_when_readable(pidfd: int) -> None:
    select.select([pidfd], [], [])  # a pidfd turns readable when its process has exited
    os._exit(0)


class ExtractionFailed(Exception):
    """The mail broke a fresh pool of workers as well: it crashes the extractor."""


class ExtractionPool:
    """Runs `extract_documents` in worker processes, started on first use (an idle gateway has
    none) and stopped by `close`."""

    def __init__(self, options: ExtractionOptions, workers: int) -> None:
        self._options = options
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def _executor(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("extraction is closed: the gateway is stopping")
        if self._pool is None:
            # forkserver: a worker is forked from a server process that has imported extraction
            # once (a fast start, its pages shared), not from the gateway, whose threads and
            # event loop plain fork would copy mid-flight.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["mailfax.mail.extract"])
            self._pool = ProcessPoolExecutor(
                self._workers, context, initializer=_exit_with, initargs=(os.getpid(),)
            )
        return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Replace `pool` by a fresh one at the next use (unless another mail already did)."""
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    async def extract(self, raw: bytes) -> Extraction:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._executor()
            try:
                return await loop.run_in_executor(pool, extract_documents, raw, self._options)
            except BrokenProcessPool:
                # A worker died (killed, out of memory, or qpdf crashed): every mail it was
                # working on gets this, so each is tried once more in a fresh pool.
                log_event(log, "extraction.worker_died", logging.ERROR, attempt=attempt)
                self._discard(pool)
            except OSError as exc:
                # No worker could be started (process or memory limits): extract in a thread,
                # as the gateway did before it had workers.
                log_event(log, "extraction.no_workers", logging.WARNING, error=str(exc))
                self._discard(pool)
                return await asyncio.to_thread(extract_documents, raw, self._options)
        # Not in the gateway's own process: a mail that kills the extractor would kill it too.
        raise ExtractionFailed("the extraction workers died twice on this mail")

    def close(self) -> None:
        """Let the workers exit once done with the mails they are on, without waiting for them
        (stopping the gateway's other stages promptly matters more). A session still open
        afterwards gets an error (answered 451), not a pool that nothing would stop."""
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)
