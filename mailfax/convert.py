"""Edge: Office and text documents to PDF with LibreOffice, bounded in time, memory and number."""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mailfax.documents import ConversionError
from mailfax.mail.model import ExtractionOptions


class Converter(Protocol):
    """Turns one document into PDF, or raises ConversionError saying why in the sender's words
    (the message completes "terms.docx could not be converted: ...")."""

    def to_pdf(self, data: bytes, name: str) -> bytes: ...


@dataclass(frozen=True)
class LibreOffice:
    """`soffice --headless --convert-to pdf`, one process group per document, for one mail:
    its conversions together (slot waits included) may take `timeout` seconds from `started`,
    so that a mail of many documents is still answered within an MTA's DATA timeout.

    `workdir` holds the slot locks (at most `max_parallel` conversions at once, across every
    extraction worker of the gateway) and a profile template: LibreOffice takes 5-10 s to set up
    a new profile and ~1 s to convert with a ready one, so each conversion gets its own copy of
    a profile a first conversion made."""

    soffice: str
    timeout: float
    memory_bytes: int  # the address space each conversion may map (0 = no limit)
    max_parallel: int
    workdir: Path
    started: float = field(default_factory=time.monotonic)

    def _left(self) -> float:
        """Seconds this mail's conversions may still take; ConversionError when none."""
        left = self.started + self.timeout - time.monotonic()
        if left <= 0:
            raise self._time_up()
        return left

    def _time_up(self) -> ConversionError:
        return ConversionError(
            f"the mail's documents took longer than {self.timeout:g} seconds to convert"
        )

    def to_pdf(self, data: bytes, name: str) -> bytes:
        suffix = Path(name).suffix.lower() or ".bin"
        _private_dir(self.workdir)
        with (
            _slot(self.workdir, self.max_parallel, self._left),
            tempfile.TemporaryDirectory(prefix="convert-", dir=self.workdir) as work,
        ):
            source = Path(work) / f"document{suffix}"
            source.write_bytes(data)
            profile = Path(work) / "profile"
            template = self.workdir / "profile-template"
            if template.is_dir():
                shutil.copytree(template, profile, symlinks=True)
            self._run(source, profile)
            result = source.with_suffix(".pdf")
            if not result.is_file():
                raise ConversionError("it is damaged, or not a format LibreOffice can read")
            if not template.is_dir() and profile.is_dir():
                # This conversion's profile, now set up, is the template for the next ones
                # (renamed whole: a concurrent conversion sees all of it or none).
                with contextlib.suppress(OSError):
                    profile.rename(template)
            return result.read_bytes()

    def _run(self, source: Path, profile: Path) -> None:
        command = [
            self.soffice,
            "--headless",
            "--norestore",
            "--nolockcheck",
            # A private profile: concurrent conversions must not share LibreOffice's lock.
            f"-env:UserInstallation={profile.as_uri()}",
            "--convert-to",
            "pdf",
            "--outdir",
            str(source.parent),
            str(source),
        ]
        try:
            # The command is fixed; only the file path (ours) varies. Its own session: soffice
            # starts soffice.bin as a child, and a timeout must end both.
            process = subprocess.Popen(  # noqa: S603
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                # Runs between fork and exec: safe in the single-threaded extraction workers
                # (the gateway's fallback when no worker can start, a thread, takes the small
                # risk Python documents for preexec_fn with threads).
                preexec_fn=self._limits,
            )
        except OSError as exc:
            raise ConversionError("the converter (LibreOffice) did not start") from exc
        try:
            process.wait(timeout=self._left())
        except subprocess.TimeoutExpired as exc:
            raise self._time_up() from exc
        finally:
            # Whatever soffice left running in its group goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _limits(self) -> None:
        """In the child: its memory capped; the extraction worker's own data and CPU limits
        (inherited) lifted, since the conversion has its own time limit."""
        for limit in (resource.RLIMIT_DATA, resource.RLIMIT_CPU):
            _, hard = resource.getrlimit(limit)
            resource.setrlimit(limit, (hard, hard))
        if self.memory_bytes:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            cap = self.memory_bytes if hard < 0 else min(self.memory_bytes, hard)
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _private_dir(path: Path) -> None:
    """The work directory, created mode 0700; one someone else owns is not used."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConversionError("the converter's work directory is not private")


# How often a conversion waiting for a slot looks again (conversions take seconds).
_SLOT_POLL = 0.05


@contextlib.contextmanager
def _slot(workdir: Path, count: int, left: Callable[[], float]) -> Iterator[None]:
    """Holds one of `count` lock files for the conversion, waiting until one is free or
    `left` raises. A lock belongs to its open file: the kernel frees a dead worker's slot."""
    files = [(workdir / f"slot-{number}.lock").open("ab") for number in range(max(count, 1))]
    try:
        while True:
            for handle in files:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                yield
                return
            # flock cannot wait for any one of several files: look again shortly.
            time.sleep(min(_SLOT_POLL, left()))
    finally:
        for handle in files:
            handle.close()


def converter_for(options: ExtractionOptions) -> Converter | None:
    """The converter `options` configure; None when LibreOffice is off or not installed."""
    if options.soffice is None:
        return None
    workdir = options.convert_dir
    where = Path(workdir) if workdir else Path(tempfile.gettempdir()) / f"mailfax-{os.getuid()}"
    return LibreOffice(
        options.soffice,
        options.convert_timeout,
        options.convert_memory_bytes,
        options.convert_parallel,
        # Absolute: the profile is given to LibreOffice as a file:// URI.
        where.resolve() / "convert",
    )
