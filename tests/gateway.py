"""A real gateway on loopback for tests: ephemeral ports, temporary state, real SMTP client."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib

from mailfax.app import Endpoints, Gateway
from mailfax.config import load_settings


def gateway_env(state_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment overrides for a gateway that only uses loopback ephemeral ports."""
    env = {
        "MAILFAX_STATE_DIR": str(state_dir),
        "MAILFAX_SMTP_LISTEN": "127.0.0.1:0",
        "MAILFAX_HTTP_LISTEN": "127.0.0.1:0",
        "MAILFAX_HTTP_PUBLIC_URL": "",
        "MAILFAX_SANDBOX_LISTEN": "127.0.0.1:0",
        "MAILFAX_SANDBOX_DELAY": "0",
        "MAILFAX_QUEUE_MIN_BACKOFF": "0.2",
        "MAILFAX_QUEUE_SHUTDOWN_GRACE": "2",
    }
    env.update({f"MAILFAX_{k.upper()}": v for k, v in overrides.items()})
    return env


async def start_gateway(state_dir: Path, env: Mapping[str, str] | None = None) -> Gateway:
    gateway = Gateway(load_settings(environ=env or gateway_env(state_dir)))
    await gateway.start()
    return gateway


@dataclass
class SmtpOutcome:
    """Every reply of one SMTP transaction, as (code, text)."""

    mail: tuple[int, str]
    rcpts: list[tuple[int, str]]
    data: tuple[int, str] | None

    @property
    def final(self) -> tuple[int, str]:
        if self.data is not None:
            return self.data
        refused = [r for r in self.rcpts if r[0] >= 400]
        return refused[-1] if refused else self.mail


async def smtp_transaction(
    endpoints: Endpoints,
    message: EmailMessage | bytes,
    recipients: list[str],
    sender: str = "alice@example.com",
) -> SmtpOutcome:
    """Run MAIL, RCPT..., DATA with a real SMTP client, recording each reply without raising."""
    assert endpoints.smtp is not None, "this gateway runs no SMTP role"
    host, port = endpoints.smtp
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=30)
    await client.connect()
    try:
        await client.ehlo()
        return await transaction(client, message, recipients, sender)
    finally:
        try:
            await client.quit()
        except aiosmtplib.SMTPException:
            client.close()


async def transaction(
    client: aiosmtplib.SMTP,
    message: EmailMessage | bytes,
    recipients: list[str],
    sender: str = "alice@example.com",
) -> SmtpOutcome:
    """MAIL, RCPT..., DATA on a connected (and greeted) client, recording each reply."""
    try:
        mail = await client.mail(sender)
    except aiosmtplib.SMTPResponseException as exc:
        return SmtpOutcome((exc.code, exc.message), [], None)
    rcpts: list[tuple[int, str]] = []
    for rcpt in recipients:
        try:
            response = await client.rcpt(rcpt)
            rcpts.append((response.code, response.message))
        except aiosmtplib.SMTPResponseException as exc:
            rcpts.append((exc.code, exc.message))
    data: tuple[int, str] | None = None
    if any(code < 400 for code, _ in rcpts):
        payload = message if isinstance(message, bytes) else message.as_bytes()
        try:
            response = await client.data(payload)
            data = (response.code, response.message)
        except aiosmtplib.SMTPResponseException as exc:
            data = (exc.code, exc.message)
    else:
        await client.rset()
    return SmtpOutcome((mail.code, mail.message), rcpts, data)


def receipts_in(state_dir: Path) -> list[EmailMessage]:
    """The receipts the Maildir holds, oldest first."""
    new = state_dir / "receipts" / "new"
    files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime) if new.exists() else []
    parsed = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    return [m for m in parsed if isinstance(m, EmailMessage)]


def text_part(receipt: EmailMessage) -> str:
    """The plain-text part a person reads (inside the report's multipart/alternative)."""
    body = receipt.get_body(preferencelist=("plain",))
    assert body is not None, "the receipt has no text/plain part"
    return str(body.get_content())


def banner(receipt: EmailMessage) -> str:
    """The HTML part's banner: the receipt's news in one sentence, as a person sees it."""
    html = receipt.get_body(preferencelist=("html",))
    assert html is not None, "the receipt has no text/html part"
    found = re.search(r'font-weight:bold;">([^<]*)</td>', str(html.get_content()))
    assert found is not None, "the HTML part has no banner"
    return found.group(1).replace("&#39;", "'")


def subject(receipt: EmailMessage) -> str:
    """The Subject as a mail program shows it (a folded one unfolded)."""
    return " ".join(str(receipt["Subject"]).split())


def faxed_comment(fax: Mapping[str, Any]) -> str:
    """The mail's text in a ledger fax's comment, under the job marker that must end it."""
    text, _, marker = str(fax["comment"]).rpartition("mailfax-job:")
    assert marker and "\n" not in marker.strip(), f"no job marker ends {fax['comment']!r}"
    return text.rstrip("\n")


UPLOADED = re.compile(r"mailfax-job-[0-9A-Za-z]+-[0-9]+-(.*)\.pdf", re.S | re.I)
CONVERTED = re.compile(r"\.(png|jpe?g|gif|tiff?|bmp|docx?|xlsx?|odt|ods|rtf|pptx?|txt)$", re.I)


def faxed_documents(fax: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(document name, pages) of a ledger fax's files, each uploaded under its job's name and
    as a PDF."""
    found = []
    for upload in fax["files"]:
        match = UPLOADED.fullmatch(upload["name"])
        assert match, f"not uploaded under a job's name, as a PDF: {upload['name']!r}"
        # A converted document (scan.png) is uploaded as scan.png.pdf, a PDF as itself.
        name = match.group(1) if CONVERTED.search(match.group(1)) else f"{match.group(1)}.pdf"
        found.append((name, int(upload["pages"])))
    return found
