"""SMTP intake: answers MAIL, RCPT and DATA, and stores accepted mail durably before the 250."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailfax.config import Settings
from mailfax.jobs import new_id
from mailfax.logs import log_event
from mailfax.mail.headers import header_safe, original_headers
from mailfax.mail.model import Extraction, NeedsLargeSlot
from mailfax.metrics import MAILS_ACCEPTED
from mailfax.policy import FaxRecipient, Refusal, recipient_ok
from mailfax.quotas import QuotaCharge, QuotaExceeded, never_fits, quota_charges
from mailfax.receipts.notices import with_acceptance_receipt
from mailfax.receipts.setup import receipt_composer
from mailfax.smtp.admission import Admission, AdmissionPolicy
from mailfax.smtp.extraction import ExtractionPool, ExtractionTooComplex
from mailfax.smtp.protocol import FaxEnvelope, peer_address
from mailfax.smtp.verify import SenderVerifier
from mailfax.store import AcceptedMessage, Store
from mailfax.users import User
from mailfax.worker import Wakeup

log = logging.getLogger("mailfax.smtp")

Clock = Callable[[], float]

TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, try again later"
TOO_COMPLEX = (
    "552 5.3.4 The mail is too complex to fax: reading its documents takes more time or memory "
    "than this gateway allows; send simpler PDFs, or fewer pages per mail"
)


class FaxIntakeHandler:
    """aiosmtpd handler: sender policy at MAIL, number policy at RCPT, headers, extraction,
    quotas and durable acceptance at DATA."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        wakeup: Wakeup,
        clock: Clock,
        extraction: ExtractionPool,
    ) -> None:
        self._store = store
        self._settings = settings.smtp
        self._extraction = extraction
        self._wakeup = wakeup
        self._clock = clock
        self._hostname = socket.getfqdn()
        self.admission = AdmissionPolicy(settings.smtp, settings.policy, settings.limits)
        self._verifier = SenderVerifier(settings.smtp)
        self._receipts = receipt_composer(settings)

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
        user = session.auth_data if session.authenticated else None
        # aiosmtpd records the null reverse-path as "<>".
        mail_from = "" if address == "<>" else address
        verdict = self.admission.admit(
            _peer(session), user if isinstance(user, User) else None, mail_from
        )
        if isinstance(verdict, Refusal):
            log_event(
                log,
                "smtp.sender_refused",
                logging.WARNING,
                peer=_peer(session),
                user=getattr(user, "name", "-"),
                sender=address,
                reply=verdict.smtp_reply,
            )
            return verdict.smtp_reply
        assert isinstance(envelope, FaxEnvelope)
        envelope.admission = verdict
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        assert isinstance(envelope, FaxEnvelope) and envelope.admission is not None
        limit = self._settings.max_recipients
        if len(envelope.rcpt_tos) >= limit:
            return f"452 4.5.3 Too many recipients: at most {limit} per message"
        verdict = self.admission.recipient(address, envelope.admission)
        if isinstance(verdict, Refusal):
            log_event(
                log,
                "smtp.rcpt_refused",
                peer=_peer(session),
                rcpt=address,
                reply=verdict.smtp_reply,
                rule=verdict.rule or "-",
            )
            return verdict.smtp_reply
        if verdict.subaddress:
            # FAX.PLUS dials numbers only: an RFC 3192 sub-address cannot be passed on.
            log_event(
                log,
                "smtp.subaddress_ignored",
                peer=_peer(session),
                rcpt=address,
                number=verdict.number,
                subaddress=verdict.subaddress,
            )
        envelope.rcpt_tos.append(address)
        return recipient_ok(verdict)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, FaxEnvelope) and envelope.admission is not None
        admission = envelope.admission
        raw: bytes = envelope.original_content or b""
        # The mail is stored with a Received header in front: a second copy. Dropping the
        # envelope's references (aiosmtpd discards the envelope after DATA anyway) and `raw`
        # once that copy exists keeps one copy of a 25 MB mail alive during the commit, not two.
        envelope.content = envelope.original_content = None
        refusal = await self._check_sender_headers(session, envelope, admission, raw)
        if refusal is not None:
            log_event(log, "smtp.refused", peer=_peer(session), reply=refusal.smtp_reply)
            return refusal.smtp_reply
        extraction = await self._extract(raw, envelope)
        if isinstance(extraction, str):
            log_event(log, "smtp.refused", peer=_peer(session), reply=extraction)
            return extraction
        if extraction.refusal is not None:
            log_event(log, "smtp.refused", peer=_peer(session), reply=extraction.refusal.smtp_reply)
            return extraction.refusal.smtp_reply
        numbers: list[str] = []
        for address in envelope.rcpt_tos:
            verdict = self.admission.recipient(address, admission)
            if isinstance(verdict, FaxRecipient) and verdict.number not in numbers:
                numbers.append(verdict.number)
        now = self._clock()
        charges = quota_charges(
            admission.sender_key, len(numbers), extraction.pages, admission.quotas, now
        )
        too_big = never_fits(charges)
        if too_big is not None:
            reply = f"552 5.3.4 The mail alone exceeds the quota: {too_big.describe()}"
            log_event(log, "smtp.refused", peer=_peer(session), reply=reply)
            return reply
        message_id = new_id(now)
        # Sorted, so a mail's jobs (same millisecond) list in recipient order wherever ids sort.
        jobs = list(zip(sorted(new_id(now) for _ in numbers), numbers, strict=True))
        accepted = self._accepted(message_id, now, session, envelope, extraction, raw, charges)
        del raw
        accepted = with_acceptance_receipt(self._receipts, accepted, jobs)
        try:
            await self._store.accept(accepted, jobs)
        except QuotaExceeded as exc:
            log_event(
                log,
                "smtp.quota_exceeded",
                logging.WARNING,
                peer=_peer(session),
                sender=admission.sender_key,
                reply=exc.smtp_reply,
            )
            return exc.smtp_reply
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
                admitted_by=admission.record,
            )
        self._wakeup.set()
        MAILS_ACCEPTED.inc()
        return f"250 2.0.0 Ok: queued as {message_id}"

    async def _extract(self, raw: bytes, envelope: FaxEnvelope) -> Extraction | str:
        """The mail's extraction, or the reply refusing it (too complex, or no large-mail slot
        for a mail that is small as mailed but large once decoded)."""
        try:
            try:
                return await self._extraction.extract(raw)
            except NeedsLargeSlot:
                # It waits for a large-mail slot like a mail over 1 MB: such mails too are
                # decoded only a few at a time.
                assert envelope.take_large_slot is not None
                busy = await envelope.take_large_slot()
                if busy is not None:
                    return busy
                return await self._extraction.extract(raw, large=True)
        except ExtractionTooComplex:
            return TOO_COMPLEX

    async def _check_sender_headers(
        self, session: Session, envelope: FaxEnvelope, admission: Admission, raw: bytes
    ) -> Refusal | None:
        """Before the (costly) extraction: the From header, and for relays verify_sender."""
        headers = original_headers(raw)
        refusal = self.admission.check_from_header(admission, headers.get_all("From") or [])
        if refusal is not None or admission.user is not None or not self._verifier.enabled:
            return refusal
        mail_from = "" if envelope.mail_from == "<>" else str(envelope.mail_from or "")
        return await self._verifier.verify(
            headers, raw, mail_from, session.host_name or "", _peer(session)
        )

    def _accepted(
        self,
        message_id: str,
        now: float,
        session: Session,
        envelope: FaxEnvelope,
        extraction: Extraction,
        raw: bytes,
        charges: tuple[QuotaCharge, ...],
    ) -> AcceptedMessage:
        assert envelope.admission is not None
        # The client's own name goes through the one sanitiser of header values (EHLO with a
        # control character is refused; this holds whatever reaches here regardless).
        helo = header_safe(session.host_name or "") or "unknown"
        received = (
            f"Received: from {helo} ({_peer(session)})\r\n"
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
            admitted_by=envelope.admission.record,
            quota_charges=charges,
        )

    async def handle_exception(self, error: Exception) -> str:
        # Never a 5xx and never the exception's text: the client retries, nothing leaks.
        log.error("smtp.internal_error", exc_info=error)
        return TEMPORARY_FAILURE


def _peer(session: Session) -> str:
    return peer_address(session.peer)
