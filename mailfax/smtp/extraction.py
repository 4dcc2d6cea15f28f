"""Extraction for SMTP intake in worker processes.

Parsing a mail and opening its PDFs is CPU work: in a thread it holds the GIL the event loop
needs, and it uses one core however many the machine has. Worker processes use them all, and a
crash in qpdf takes down a worker, not the gateway.

Each worker is a child process that reads mails from its stdin and writes extractions to its
stdout, one length-prefixed frame each. The event loop writes and reads those pipes itself: a
concurrent.futures process pool hands every mail through two helper threads of the gateway,
which wait for the GIL behind the event loop (the round trip of a 3 ms extraction took 20 ms).
A worker exits at end of input, so a killed gateway leaves none behind."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import logging
import math
import os
import pickle
import resource
import signal
import struct
import sys
from dataclasses import replace
from typing import BinaryIO

from mailfax.logs import log_event
from mailfax.mail.model import Extraction, ExtractionOptions, NeedsConversion, NeedsLargeSlot

log = logging.getLogger("mailfax.smtp")

_LENGTH = struct.Struct("!Q")
# A mail's frame header: its length, and whether a large-mail slot is held for it.
_MAIL = struct.Struct("!Q?")
# What a worker answers instead of an extraction (with ok = False).
_OVER_BUDGET = "over-budget"
_NEEDS_LARGE_SLOT = "needs-large-slot"
_NEEDS_CONVERSION = "needs-conversion"
# How long a stopping gateway gives idle workers to exit by themselves.
_EXIT_GRACE = 5.0
_PIPE_BYTES = 1 << 20


def extraction_workers() -> int:
    """One worker per core: extraction is all CPU."""
    return os.cpu_count() or 1


class ExtractionFailed(Exception):
    """The mail killed a fresh worker as well: it crashes the extractor."""


class ExtractionTooComplex(Exception):
    """The mail took more CPU time or memory than [limits] allow for one extraction."""


class _WorkerDied(Exception):
    pass


class _Worker:
    """One worker process and its two pipes; one mail at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def extract(self, raw: bytes, large: bool) -> tuple[bool, Extraction | str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(_MAIL.pack(len(raw), large))
            self.process.stdin.write(raw)
            await self.process.stdin.drain()
            (size,) = _LENGTH.unpack(await self.process.stdout.readexactly(_LENGTH.size))
            # From our own child, which unpickles nothing from the mail: trusted data.
            reply: tuple[bool, Extraction | str] = pickle.loads(  # noqa: S301
                await self.process.stdout.readexactly(size)
            )
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _WorkerDied from exc
        return reply

    def stop(self) -> None:
        """End its input: it exits once done with its mail."""
        if self.process.stdin is not None:
            self.process.stdin.close()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    async def ran_out_of_cpu(self) -> bool:
        """Whether the worker (its pipes closed) was ended by its CPU limit (SIGXCPU)."""
        try:
            code = await asyncio.wait_for(self.process.wait(), _EXIT_GRACE)
        except TimeoutError:
            return False
        return code == -signal.SIGXCPU


class ExtractionPool:
    """Runs `extract_documents` in up to `workers` worker processes, started by `warm_up` or
    on first use, and stopped by `close`.

    With LibreOffice, a mail with a document to convert is extracted again in a second pool of
    [convert] max_parallel workers, started on first use: a conversion holds its worker for
    seconds, and the other mails keep the first pool's workers meanwhile."""

    def __init__(self, options: ExtractionOptions, workers: int, converting: bool = False) -> None:
        apart = options.soffice is not None and not converting
        self._options = replace(options, defer_conversion=True) if apart else options
        self._conversions = (
            ExtractionPool(options, max(1, options.convert_parallel), converting=True)
            if apart
            else None
        )
        self._workers = workers
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []
        self._running: set[_Worker] = set()
        self._closed = False
        self._refill: asyncio.Task[None] | None = None

    def worker_pids(self) -> set[int]:
        converting = self._conversions.worker_pids() if self._conversions else set()
        return {worker.process.pid for worker in self._running} | converting

    async def _start(self) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mailfax.smtp.extraction",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # The reader's buffer: below it, a 25 MB extraction pauses and resumes the pipe
            # every 128 KB.
            limit=_PIPE_BYTES * 4,
        )
        worker = _Worker(process)
        self._running.add(worker)
        assert process.stdin is not None
        options = pickle.dumps(self._options, pickle.HIGHEST_PROTOCOL)
        process.stdin.write(_LENGTH.pack(len(options)) + options)
        return worker

    async def warm_up(self) -> None:
        """Start the workers before the first mail needs one (a start takes ~0.2 s)."""
        while len(self._running) < self._workers and not self._closed:
            try:
                worker = await self._start()
            except OSError:
                return  # the first mail will say so (and be extracted in a thread)
            if self._closed:
                self._discard(worker)
                return
            self._idle.append(worker)

    def _discard(self, worker: _Worker) -> None:
        """Kill the worker, and start its replacement now rather than on the next mail's time."""
        self._running.discard(worker)
        worker.kill()
        if not self._closed and (self._refill is None or self._refill.done()):
            self._refill = asyncio.create_task(self.warm_up())

    async def extract(self, raw: bytes, large: bool = False) -> Extraction:
        """The mail's extraction (in the conversion lane when it has a document to convert);
        `large`: a large-mail slot is held for it. Raises NeedsLargeSlot (a small mail decoding
        large, without `large`), ExtractionTooComplex (over its CPU or memory budget),
        ExtractionFailed (it kills workers)."""
        try:
            return await self._extract_here(raw, large)
        except NeedsConversion:
            assert self._conversions is not None  # only a pool with a conversion lane defers
            return await self._conversions.extract(raw, large)

    async def _extract_here(self, raw: bytes, large: bool) -> Extraction:
        if self._closed:
            raise RuntimeError("extraction is closed: the gateway is stopping")
        async with self._slots:
            for attempt in (1, 2):
                try:
                    worker = self._idle.pop() if self._idle else await self._start()
                except OSError as exc:
                    # No worker could be started (process or memory limits): extract in a
                    # thread, as the gateway did before it had workers.
                    log_event(log, "extraction.no_workers", logging.WARNING, error=str(exc))
                    return await asyncio.to_thread(_extract, raw, self._options, large)
                try:
                    ok, result = await worker.extract(raw, large)
                except _WorkerDied:
                    self._discard(worker)
                    if await worker.ran_out_of_cpu():
                        log_event(log, "extraction.over_budget", logging.WARNING, limit="cpu")
                        raise ExtractionTooComplex from None
                    # Killed, out of memory, or qpdf crashed: the mail is tried once more in a
                    # fresh worker.
                    log_event(log, "extraction.worker_died", logging.ERROR, attempt=attempt)
                    continue
                except BaseException:
                    # Cancelled mid-mail: its pipes are mid-frame, so the worker cannot be reused.
                    self._discard(worker)
                    raise
                if result == _OVER_BUDGET:
                    # Out of memory mid-mail: its heap is no good for the next one.
                    self._discard(worker)
                    log_event(log, "extraction.over_budget", logging.WARNING, limit="memory")
                    raise ExtractionTooComplex
                if self._closed:
                    self._running.discard(worker)
                    worker.stop()
                else:
                    self._idle.append(worker)
                if isinstance(result, Extraction) and ok:
                    return result
                if result == _NEEDS_LARGE_SLOT:
                    raise NeedsLargeSlot
                if result == _NEEDS_CONVERSION:
                    raise NeedsConversion
                raise RuntimeError(f"extraction failed in a worker: {result}")
        # Not in the gateway's own process: a mail that kills the extractor would kill it too.
        raise ExtractionFailed("the extraction workers died twice on this mail")

    async def close(self) -> None:
        """Stop the idle workers (the busy ones stop when their mail is done; a session still
        open afterwards gets an error, answered 451) and wait briefly for them to exit."""
        self._closed = True
        if self._conversions is not None:
            await self._conversions.close()
        if self._refill is not None:
            await asyncio.gather(self._refill, return_exceptions=True)
        idle, self._idle = self._idle, []
        for worker in idle:
            self._running.discard(worker)
            worker.stop()
        waits = [asyncio.create_task(worker.process.wait()) for worker in idle]
        if waits:
            _, late = await asyncio.wait(waits, timeout=_EXIT_GRACE)
            for worker in idle:
                if worker.process.returncode is None:
                    worker.kill()
            if late:
                await asyncio.wait(late)


def _extract(raw: bytes, options: ExtractionOptions, large: bool) -> Extraction:
    # Imported here, not at the top: the PDF and image libraries extraction uses belong in the
    # workers; the gateway process loads them only if it has to extract without workers.
    from mailfax.mail.extract import extract_documents

    return extract_documents(raw, replace(options, large_decoded_bytes=0) if large else options)


def _read_mail(source: BinaryIO) -> tuple[bytes, bool] | None:
    header = source.read(_MAIL.size)
    if len(header) < _MAIL.size:
        return None
    size, large = _MAIL.unpack(header)
    return source.read(size), large


def _serve(source: BinaryIO, replies: BinaryIO) -> None:
    """The worker: options first, then a mail per frame until the gateway ends the input (or
    a mail runs it out of memory: then it replies so and exits, and is replaced)."""
    header = source.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return
    (size,) = _LENGTH.unpack(header)
    options: ExtractionOptions = pickle.loads(source.read(size))  # noqa: S301 (the gateway's)
    # The PDF and image libraries load now, while the worker waits for its first mail: on
    # first use they made that mail ~0.1 s late.
    importlib.import_module("mailfax.mail.extract")
    _limit_memory(options.memory_bytes)
    while (frame := _read_mail(source)) is not None:
        raw, large = frame
        reply: tuple[bool, Extraction | str]
        _limit_cpu(options.cpu_seconds)
        try:
            reply = (True, _extract(raw, options, large))
        except NeedsLargeSlot:
            reply = (False, _NEEDS_LARGE_SLOT)
        except NeedsConversion:
            reply = (False, _NEEDS_CONVERSION)
        except MemoryError:
            reply = (False, _OVER_BUDGET)
        except Exception as exc:  # a bug, not a bad mail: the gateway answers 451
            reply = (False, exc.__class__.__name__)
        del raw, frame
        data = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
        replies.write(_LENGTH.pack(len(data)))
        replies.write(data)
        replies.flush()
        if reply[1] == _OVER_BUDGET:
            return


def _limit_memory(budget: int) -> None:
    """The worker's data memory (heap and anonymous mappings: the decoded streams and images)
    is capped: past it, allocations fail (MemoryError) instead of the machine swapping. No
    core files either: a worker the CPU limit ends would write one."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if budget:
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (min(budget, hard) if hard > 0 else budget, hard))


def _limit_cpu(seconds: float) -> None:
    """The next mail may use `seconds` of CPU: past them the kernel ends the worker (SIGXCPU),
    and the gateway refuses the mail. The limit counts the process's whole life, so it is
    moved on before each mail."""
    if not seconds:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard < 0 else min(soft, hard), hard))


def _widen(fd: int) -> None:
    """A mail (or extraction) of up to 1 MB crosses a pipe in one write, not in 64 KB pieces
    that each wait for a turn of the gateway's busy event loop."""
    with contextlib.suppress(OSError, AttributeError):  # Linux only; capped by pipe-max-size
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


if __name__ == "__main__":
    # The replies get the real stdout; anything a library prints goes to stderr instead.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    for fd in (0, channel.fileno()):
        _widen(fd)
    _serve(sys.stdin.buffer, channel)
