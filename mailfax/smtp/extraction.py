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
import os
import pickle
import struct
import sys
from typing import BinaryIO

from mailfax.logs import log_event
from mailfax.mail.model import Extraction, ExtractionOptions

log = logging.getLogger("mailfax.smtp")

_LENGTH = struct.Struct("!Q")
# How long a stopping gateway gives idle workers to exit by themselves.
_EXIT_GRACE = 5.0
_PIPE_BYTES = 1 << 20


def extraction_workers() -> int:
    """One worker per core: extraction is all CPU."""
    return os.cpu_count() or 1


class ExtractionFailed(Exception):
    """The mail killed a fresh worker as well: it crashes the extractor."""


class _WorkerDied(Exception):
    pass


class _Worker:
    """One worker process and its two pipes; one mail at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def extract(self, raw: bytes) -> tuple[bool, Extraction | str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(_LENGTH.pack(len(raw)))
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


class ExtractionPool:
    """Runs `extract_documents` in up to `workers` worker processes, started by `warm_up` or
    on first use, and stopped by `close`."""

    def __init__(self, options: ExtractionOptions, workers: int) -> None:
        self._options = options
        self._workers = workers
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []
        self._running: set[_Worker] = set()
        self._closed = False

    def worker_pids(self) -> set[int]:
        return {worker.process.pid for worker in self._running}

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
        self._running.discard(worker)
        worker.kill()

    async def extract(self, raw: bytes) -> Extraction:
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
                    return await asyncio.to_thread(_extract, raw, self._options)
                try:
                    ok, result = await worker.extract(raw)
                except _WorkerDied:
                    # Killed, out of memory, or qpdf crashed: the mail is tried once more in a
                    # fresh worker.
                    log_event(log, "extraction.worker_died", logging.ERROR, attempt=attempt)
                    self._discard(worker)
                    continue
                except BaseException:
                    # Cancelled mid-mail: its pipes are mid-frame, so the worker cannot be reused.
                    self._discard(worker)
                    raise
                if self._closed:
                    self._running.discard(worker)
                    worker.stop()
                else:
                    self._idle.append(worker)
                if isinstance(result, Extraction) and ok:
                    return result
                raise RuntimeError(f"extraction failed in a worker: {result}")
        # Not in the gateway's own process: a mail that kills the extractor would kill it too.
        raise ExtractionFailed("the extraction workers died twice on this mail")

    async def close(self) -> None:
        """Stop the idle workers (the busy ones stop when their mail is done; a session still
        open afterwards gets an error, answered 451) and wait briefly for them to exit."""
        self._closed = True
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


def _extract(raw: bytes, options: ExtractionOptions) -> Extraction:
    # Imported here, not at the top: the PDF and image libraries extraction uses belong in the
    # workers; the gateway process loads them only if it has to extract without workers.
    from mailfax.mail.extract import extract_documents

    return extract_documents(raw, options)


def _read_frame(source: BinaryIO) -> bytes | None:
    header = source.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(header)
    return source.read(size)


def _serve(source: BinaryIO, replies: BinaryIO) -> None:
    """The worker: options first, then a mail per frame until the gateway ends the input."""
    options_frame = _read_frame(source)
    if options_frame is None:
        return
    options: ExtractionOptions = pickle.loads(options_frame)  # noqa: S301 (from the gateway)
    # The PDF and image libraries load now, while the worker waits for its first mail: on
    # first use they made that mail ~0.1 s late.
    importlib.import_module("mailfax.mail.extract")
    while (raw := _read_frame(source)) is not None:
        reply: tuple[bool, Extraction | str]
        try:
            reply = (True, _extract(raw, options))
        except Exception as exc:  # a bug, not a bad mail: the gateway answers 451
            reply = (False, exc.__class__.__name__)
        del raw
        data = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
        replies.write(_LENGTH.pack(len(data)))
        replies.write(data)
        replies.flush()


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
