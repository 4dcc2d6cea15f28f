"""Receipt delivery: to a smarthost over SMTP (null envelope sender, TLS, AUTH) or a Maildir."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from mailfax.config import ReceiptsSettings, private_dir


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
            private_dir(directory / sub)

    async def send(self, receipt_id: str, recipient: str, content: bytes) -> None:
        await asyncio.to_thread(self._write, receipt_id, content)

    def _write(self, receipt_id: str, content: bytes) -> None:
        # Named after the receipt id: a retry after a crash rewrites the same file.
        name = f"{receipt_id}.{socket.gethostname().replace('/', '_')}.eml"
        tmp = self.directory / "tmp" / name
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / "new" / name)
        fd = os.open(self.directory / "new", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_UNVERIFIED = ssl.create_default_context()
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE


class SmtpSender:
    """Relays receipts through a smarthost with MAIL FROM:<> (RFC 3834 §3.3): over TLS
    (STARTTLS, or from the first byte for smtps://) and with AUTH when the URL names a user.

    A password is never sent in clear unless `starttls` is "never" (the operator's choice), nor
    to a server whose certificate does not verify."""

    def __init__(
        self,
        url: str,
        starttls: str = "auto",
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._implicit_tls = parts.scheme == "smtps"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (465 if self._implicit_tls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password or "")
        self._starttls = starttls
        self._timeout = timeout
        # The system's CAs unless a context is given.
        self._tls_context = tls_context or ssl.create_default_context()

    async def send(self, receipt_id: str, recipient: str, content: bytes) -> None:
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            timeout=self._timeout,
            use_tls=self._implicit_tls,
            start_tls=False,
            tls_context=self._tls_context,
        )
        try:
            await client.connect()
            await self._secure_and_login(client)
            # An internationalised address (its receipt has UTF-8 headers) needs SMTPUTF8.
            options = [] if recipient.isascii() else ["SMTPUTF8"]
            await client.sendmail("", [recipient], content, mail_options=options)
            await client.quit()
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [err.code for err in exc.recipients]
            raise DeliveryError(
                f"smarthost refused {recipient}: {codes}", all(c >= 500 for c in codes)
            ) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            # The operator can fix the password: keep the receipt until then.
            raise DeliveryError(
                f"smarthost refused the login ({exc.code}): check the user and password "
                "in [receipts] smarthost",
                False,
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"smarthost answered {exc.code}", exc.code >= 500) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"smarthost unreachable: {exc.__class__.__name__}", False) from exc
        finally:
            client.close()

    def _starttls_context(self) -> ssl.SSLContext:
        """Verified when a password goes out or TLS is demanded; otherwise opportunistic, as
        MTAs relay (Postfix's "may"): a local relay's certificate is rarely issued for the
        address mailfax knows it by, and encrypting unverified still beats plain text."""
        if self._username is not None or self._starttls == "always":
            return self._tls_context
        return _UNVERIFIED

    async def _secure_and_login(self, client: aiosmtplib.SMTP) -> None:
        encrypted = self._implicit_tls
        if not encrypted and self._starttls != "never":
            await client.ehlo()
            if client.supports_extension("starttls"):
                await client.starttls(tls_context=self._starttls_context())
                encrypted = True
            elif self._starttls == "always":
                raise DeliveryError(
                    'smarthost offers no STARTTLS ([receipts] smarthost_starttls = "always")',
                    False,
                )
        if self._username is None:
            return
        if not encrypted and self._starttls != "never":
            raise DeliveryError(
                "smarthost offers no STARTTLS: the password is not sent in clear "
                '(set [receipts] smarthost_starttls = "never" to allow it)',
                False,
            )
        await client.ehlo()  # again: what a server offers may change once TLS is on
        if not client.supports_extension("auth"):
            raise DeliveryError(
                "smarthost offers no AUTH, but [receipts] smarthost has a user", False
            )
        await client.login(self._username, self._password)


def receipt_sender(settings: ReceiptsSettings, state_dir: Path) -> ReceiptSender:
    """The configured delivery: smarthost when set, else the Maildir in state_dir."""
    if settings.smarthost:
        return SmtpSender(settings.smarthost, settings.smarthost_starttls)
    return MaildirSender(state_dir / "receipts")
