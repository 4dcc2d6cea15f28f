"""Pure receipt composition: an RFC 3464 delivery report a person can read at a glance."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from mailfax.jobs import Job
from mailfax.mail.extract import original_headers
from mailfax.policy import format_for_humans
from mailfax.receipts.reasons import reason_for
from mailfax.store.base import MessageRecord


@dataclass(frozen=True)
class FaxOutcome:
    """How a job ended, as far as the receipt is concerned."""

    delivered: bool
    status: str  # a FAX.PLUS status, or mailfax's own e.g. "rejected"
    fax_id: str | None
    pages_sent: int | None
    start_time: str = ""
    detail: str = ""  # FAX.PLUS's error text when the API refused the fax


def wants_receipt(message: MessageRecord) -> bool:
    """RFC 3834/5321: never answer a null sender or automatically submitted mail."""
    return bool(message.mail_from) and message.auto_submitted in ("", "no")


def pages_submitted(message: MessageRecord) -> int:
    return sum(part.pages or 0 for part in message.report if part.is_faxed)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class ReceiptComposer:
    """Builds receipts From one configured address, reported by one host."""

    def __init__(self, from_address: str, reporting_host: str, fax_domain: str) -> None:
        self._from = from_address
        self._host = reporting_host
        self._domain = fax_domain

    def compose(
        self, job: Job, message: MessageRecord, outcome: FaxOutcome, now: float | None = None
    ) -> EmailMessage:
        now = time.time() if now is None else now
        number = format_for_humans(job.number)
        pages = pages_submitted(message)
        if outcome.delivered:
            subject = f"Fax delivered to {number} ({pages} page{'s' if pages != 1 else ''})"
        else:
            subject = f"Fax to {number} failed ({pages} page{'s' if pages != 1 else ''})"
        receipt = EmailMessage()
        receipt["From"] = self._from
        receipt["To"] = message.mail_from
        receipt["Subject"] = subject
        receipt["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
        receipt["Message-ID"] = make_msgid("receipt", domain=self._host)
        receipt["Auto-Submitted"] = "auto-replied"
        if message.header_message_id:
            headers = original_headers(message.raw)
            references = " ".join(
                [*str(headers.get("References", "")).split(), message.header_message_id]
            )
            receipt["In-Reply-To"] = message.header_message_id
            receipt["References"] = references
        receipt["X-Mailfax-Job"] = job.id
        receipt.set_content(self._text(job, message, outcome, number))
        receipt.make_mixed()
        # multipart/report (RFC 3464): human part, delivery-status, original headers.
        receipt.set_type("multipart/report")
        receipt.set_param("report-type", "delivery-status")
        receipt.attach(self._delivery_status(job, message, outcome))
        receipt.attach(self._headers_part(message))
        return receipt

    def _text(self, job: Job, message: MessageRecord, outcome: FaxOutcome, number: str) -> str:
        reason = reason_for(outcome.status)
        if outcome.delivered:
            headline = f"Your fax to {number} was delivered."
        else:
            headline = f"Your fax to {number} was not delivered. {reason.what_happened}"
        sent = "?" if outcome.pages_sent is None else str(outcome.pages_sent)
        submitted = pages_submitted(message)
        result = "delivered" if outcome.delivered else "failed"
        lines = [
            headline,
            "",
            f"  Number:   {number} ({job.number})",
            f"  Result:   {result} (FAX.PLUS status: {outcome.status})",
            f"  Pages:    {sent} of {submitted} sent",
            f"  Fax id:   {outcome.fax_id or '-'}",
        ]
        if outcome.start_time:
            lines.append(f"  Started:  {outcome.start_time} UTC")
        lines += [
            f"  Subject:  {message.subject or '(no subject)'}",
            f"  Received: {_when(message.received_at)}",
            f"  Attempts: {job.attempts}",
            f"  Job:      {job.id}",
        ]
        if not outcome.delivered:
            lines += ["", "What happened:", f"  {outcome.detail or reason.what_happened}"]
            lines += ["What you can do:", f"  {reason.what_to_do}"]
        lines += ["", "Documents in your mail:"]
        for part in message.report:
            if part.is_faxed:
                how = "faxed" if part.action == "faxed" else "converted to PDF and faxed"
                lines.append(
                    f"  - {part.name}: {how}, {part.pages} page{'s' if part.pages != 1 else ''}"
                )
            else:
                lines.append(f"  - {part.name}: not faxed ({part.reason})")
        lines += ["", "-- ", "mailfax email-to-fax gateway"]
        return "\n".join(lines) + "\n"

    def _delivery_status(
        self, job: Job, message: MessageRecord, outcome: FaxOutcome
    ) -> EmailMessage:
        per_message = EmailMessage()
        per_message["Reporting-MTA"] = f"dns; {self._host}"
        per_message["X-Mailfax-Queue-ID"] = message.id
        per_message["Arrival-Date"] = format_datetime(
            datetime.fromtimestamp(message.received_at, UTC)
        )
        per_recipient = EmailMessage()
        per_recipient["Final-Recipient"] = f"rfc822; {job.number}@{self._domain}"
        per_recipient["Action"] = "delivered" if outcome.delivered else "failed"
        per_recipient["Status"] = "2.0.0" if outcome.delivered else "5.0.0"
        per_recipient["Diagnostic-Code"] = f"x-faxplus; {outcome.status}"
        part = EmailMessage()
        part.set_type("message/delivery-status")
        part.set_payload([per_message, per_recipient])
        return part

    @staticmethod
    def _headers_part(message: MessageRecord) -> EmailMessage:
        part = EmailMessage()
        part.set_type("text/rfc822-headers")
        head = message.raw.replace(b"\r\n", b"\n").partition(b"\n\n")[0]
        part.set_payload(head.decode("ascii", errors="replace") + "\n")
        return part
