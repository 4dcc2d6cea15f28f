"""SMTP intake: answers RCPT and DATA, and stores accepted mail durably before the 250."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailfax.config import SmtpSettings
from mailfax.jobs import new_id
from mailfax.logs import log_event
from mailfax.mail.extract import Extraction, ExtractionOptions, extract_documents
from mailfax.policy import Refusal, parse_fax_recipient
from mailfax.store.base import AcceptedMessage, Store
from mailfax.worker import Wakeup

log = logging.getLogger("mailfax.smtp")

Clock = Callable[[], float]

TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, try again later"

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}\b")


class FaxSMTP(SMTP):
    """aiosmtpd's SMTP with an enhanced status code on every reply a sender acts on."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        limit = kwargs.get("data_size_limit") or 0
        # aiosmtpd's own replies carry no enhanced codes (RFC 3463); rewrite them here,
        # the one place every reply passes through.
        self._rewrites = {
            "552 Error: message size exceeds fixed maximum message size": (
                f"552 5.3.4 Message too big: this gateway accepts at most {limit} bytes"
            ),
            "552 Error: Too much mail data": (
                f"552 5.3.4 Message too big: this gateway accepts at most {limit} bytes"
            ),
            "503 Error: need MAIL command": "503 5.5.1 Send MAIL FROM first",
            "503 Error: need RCPT command": "503 5.5.1 Send RCPT TO first",
            "503 Error: nested MAIL command": "503 5.5.1 MAIL FROM already given",
        }

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            await super().push(self._with_enhanced_code(status))
        else:
            await super().push(status)

    def _with_enhanced_code(self, status: str) -> str:
        if status in self._rewrites:
            return self._rewrites[status]
        code, _, text = status.partition(" ")
        if not (code.isdigit() and code[0] in "45") or _ENHANCED.match(text):
            return status
        generic = {"4": "4.0.0", "5": "5.5.0"}[code[0]]
        return f"{code} {generic} {text.removeprefix('Error: ')}"


class FaxIntakeHandler:
    """aiosmtpd handler: recipient policy at RCPT, extraction and durable acceptance at DATA."""

    def __init__(
        self,
        store: Store,
        settings: SmtpSettings,
        wakeup: Wakeup,
        clock: Clock,
        extraction: ExtractionOptions | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._extraction = extraction or ExtractionOptions()
        self._wakeup = wakeup
        self._clock = clock
        self._hostname = socket.getfqdn()

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        limit = self._settings.max_recipients
        if len(envelope.rcpt_tos) >= limit:
            return f"452 4.5.3 Too many recipients: at most {limit} per message"
        verdict = parse_fax_recipient(address, self._settings.domain, self._settings.default_region)
        if isinstance(verdict, Refusal):
            log_event(
                log,
                "smtp.rcpt_refused",
                peer=_peer(session),
                rcpt=address,
                reply=verdict.smtp_reply,
            )
            return verdict.smtp_reply
        envelope.rcpt_tos.append(address)
        return f"250 2.1.5 Recipient ok: fax to {verdict}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw: bytes = envelope.original_content or b""
        # pikepdf parsing is CPU work: keep the event loop free for other sessions.
        extraction = await asyncio.to_thread(extract_documents, raw, self._extraction)
        if extraction.refusal is not None:
            log_event(log, "smtp.refused", peer=_peer(session), reply=extraction.refusal.smtp_reply)
            return extraction.refusal.smtp_reply
        numbers: list[str] = []
        for address in envelope.rcpt_tos:
            number = parse_fax_recipient(
                address, self._settings.domain, self._settings.default_region
            )
            if isinstance(number, str) and number not in numbers:
                numbers.append(number)
        now = self._clock()
        message_id = new_id(now)
        jobs = [(new_id(now), number) for number in numbers]
        accepted = self._accepted(message_id, now, session, envelope, extraction, raw)
        try:
            await self._store.accept(accepted, jobs)
        except Exception:
            log.exception("smtp.store_failed", extra={"queue_id": message_id})
            return TEMPORARY_FAILURE
        for job_id, number in jobs:
            log_event(
                log,
                "job.queued",
                job=job_id,
                queue_id=message_id,
                number=number,
                pages=extraction.pages,
            )
        self._wakeup.set()
        return f"250 2.0.0 Ok: queued as {message_id}"

    def _accepted(
        self,
        message_id: str,
        now: float,
        session: Session,
        envelope: Envelope,
        extraction: Extraction,
        raw: bytes,
    ) -> AcceptedMessage:
        received = (
            f"Received: from {session.host_name or 'unknown'} ({_peer(session)})\r\n"
            f"\tby {self._hostname} (mailfax) with ESMTP id {message_id};\r\n"
            f"\t{format_datetime(datetime.fromtimestamp(now, UTC))}\r\n"
        ).encode("utf-8", errors="replace")
        return AcceptedMessage(
            id=message_id,
            received_at=now,
            # aiosmtpd records the null reverse-path as "<>"; it must stay truthy
            # there (RCPT requires a MAIL), so it is normalised only here.
            mail_from="" if envelope.mail_from in (None, "<>") else envelope.mail_from,
            peer=_peer(session),
            header_message_id=extraction.message_id,
            subject=extraction.subject,
            sender_name=extraction.sender_name,
            auto_submitted=extraction.auto_submitted,
            comment=extraction.comment,
            report=extraction.parts,
            documents=extraction.documents,
            raw=received + raw,
        )

    async def handle_exception(self, error: Exception) -> str:
        # Never a 5xx and never the exception's text: the client retries, nothing leaks.
        log.error("smtp.internal_error", exc_info=error)
        return TEMPORARY_FAILURE


def _peer(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "unknown")


async def start_smtp_server(
    handler: FaxIntakeHandler, settings: SmtpSettings, sock: socket.socket
) -> asyncio.Server:
    """Serve SMTP on an already-bound socket in the running loop."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: FaxSMTP(
            handler,
            data_size_limit=settings.max_message_bytes,
            enable_SMTPUTF8=True,
            ident="mailfax ESMTP",
            hostname=socket.getfqdn(),
            timeout=300,
            loop=loop,
        ),
        sock=sock,
    )
