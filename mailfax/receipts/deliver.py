"""Receipt delivery: to a smarthost over SMTP (null envelope sender) or into a Maildir."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiosmtplib


class DeliveryError(Exception):
    """A receipt was not delivered; `permanent` says whether trying again can help."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class ReceiptSender(Protocol):
    async def send(self, receipt_id: str, recipient: str, content: bytes) -> None:
        """Deliver once; raise DeliveryError on failure."""


class MaildirSender:
    """Writes receipts to <dir>/new the Maildir way: tmp file, fsync, rename, fsync dir."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        for sub in ("tmp", "new", "cur"):
            (directory / sub).mkdir(parents=True, exist_ok=True)

    async def send(self, receipt_id: str, recipient: str, content: bytes) -> None:
        await asyncio.to_thread(self._write, receipt_id, content)

    def _write(self, receipt_id: str, content: bytes) -> None:
        # Named after the receipt id: a retry after a crash rewrites the same file.
        name = f"{receipt_id}.{socket.gethostname().replace('/', '_')}.eml"
        tmp = self.directory / "tmp" / name
        with open(tmp, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / "new" / name)
        fd = os.open(self.directory / "new", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SmtpSender:
    """Relays receipts through a smarthost with MAIL FROM:<> (RFC 3834 §3.3)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 25
        self._timeout = timeout

    async def send(self, receipt_id: str, recipient: str, content: bytes) -> None:
        try:
            await aiosmtplib.send(
                content,
                sender="",
                recipients=[recipient],
                hostname=self._host,
                port=self._port,
                timeout=self._timeout,
                start_tls=False,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [err.code for err in exc.recipients]
            raise DeliveryError(
                f"smarthost refused {recipient}: {codes}", all(c >= 500 for c in codes)
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"smarthost answered {exc.code}", exc.code >= 500) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"smarthost unreachable: {exc.__class__.__name__}", False) from exc


def receipt_sender(smarthost: str, state_dir: Path) -> ReceiptSender:
    """The configured delivery: smarthost when set, else the Maildir in state_dir."""
    if smarthost:
        return SmtpSender(smarthost)
    return MaildirSender(state_dir / "receipts")
