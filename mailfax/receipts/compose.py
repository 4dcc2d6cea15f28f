"""Pure receipt composition: RFC 3464 delivery reports a person can read at a glance."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from mailfax.jobs import Job, JobState
from mailfax.mail.headers import GENERATED_POLICY, message_id_token, message_ids, original_headers
from mailfax.mail.parse import decode_text
from mailfax.policy import format_for_humans
from mailfax.receipts.fields import (
    NO_ATTACHMENTS,
    Attachments,
    FaxFields,
    FaxOutcome,
    ReceiptFields,
    fax_fields,
    outcome_of,
    receipt_fields,
)
from mailfax.receipts.policy import ReceiptPolicy
from mailfax.receipts.templates import ReceiptTemplates
from mailfax.store import MessageRecord

__all__ = ["FaxOutcome", "ReceiptComposer"]

MAX_SUBJECT_CHARS = 200
THUMBNAIL_NAME = "first-page.png"
# Status codes of the notices sent before a result (RFC 3463): not delivered yet, no failure
# (accepted), and delivery taking longer than it should (delayed, as MTAs' delay warnings).
ACCEPTED_STATUS = "4.0.0"
DELAYED_STATUS = "4.4.7"


def report_name(fax_id: str) -> str:
    return f"fax-report-{fax_id}.pdf"


class ReceiptComposer:
    """Builds every kind of receipt From one configured address, reported by one host."""

    def __init__(
        self,
        from_address: str,
        reporting_host: str,
        fax_domain: str,
        templates: ReceiptTemplates | None = None,
        policy: ReceiptPolicy | None = None,
        max_lifetime: float = 5 * 86400.0,
        cover_page: bool = False,
    ) -> None:
        self._from = from_address
        self._host = reporting_host
        self._domain = fax_domain
        self._templates = templates or ReceiptTemplates()
        self.policy = policy or ReceiptPolicy()
        self._max_lifetime = max_lifetime
        # FAX.PLUS puts a cover page first: its page counts then say less of the documents'.
        self._cover_page = cover_page

    def compose(
        self,
        job: Job,
        message: MessageRecord,
        outcome: FaxOutcome,
        now: float | None = None,
        attachments: Attachments = NO_ATTACHMENTS,
    ) -> EmailMessage:
        """The receipt telling one recipient's result."""
        fax = fax_fields(job, message, outcome, attachments, self._cover_page)
        fields = receipt_fields(
            "final", message, [fax], self._host, attachments.thumbnail is not None
        )
        return self._receipt(fields, message, now, attachments, job.id)

    def compose_group(
        self,
        jobs: Sequence[Job],
        message: MessageRecord,
        now: float | None = None,
        attachments: Attachments = NO_ATTACHMENTS,
    ) -> EmailMessage:
        """One summary of a mail whose jobs are all final ([receipts] group = true)."""
        faxes = [
            fax_fields(job, message, outcome_of(job), attachments, self._cover_page) for job in jobs
        ]
        fields = receipt_fields(
            "group", message, faxes, self._host, attachments.thumbnail is not None
        )
        return self._receipt(fields, message, now, attachments, None)

    def compose_accepted(
        self, message: MessageRecord, jobs: Sequence[tuple[str, str]], now: float | None = None
    ) -> EmailMessage:
        """The "accepted, queued" notice for a mail and its (job id, number) pairs."""
        queued = [
            Job(job_id, message.id, number, JobState.QUEUED, 0, message.received_at, 0.0)
            for job_id, number in jobs
        ]
        faxes = [fax_fields(job, message, None) for job in queued]
        gives_up = message.received_at + self._max_lifetime
        fields = receipt_fields("accepted", message, faxes, self._host, gives_up=gives_up)
        return self._receipt(fields, message, now, NO_ATTACHMENTS, None, gives_up)

    def compose_delayed(
        self, job: Job, message: MessageRecord, now: float | None = None
    ) -> EmailMessage:
        """The notice that a fax is still not final after [receipts] delay_warning."""
        now = time.time() if now is None else now
        gives_up = job.created_at + self._max_lifetime
        fields = receipt_fields(
            "delayed",
            message,
            [fax_fields(job, message, None)],
            self._host,
            waited=now - job.created_at,
            gives_up=gives_up,
        )
        return self._receipt(fields, message, now, NO_ATTACHMENTS, job.id, gives_up)

    def _receipt(
        self,
        fields: ReceiptFields,
        message: MessageRecord,
        now: float | None,
        attachments: Attachments,
        job_id: str | None,
        gives_up: float | None = None,
    ) -> EmailMessage:
        subject = " ".join(self._templates.render("subject.txt", fields).split())
        receipt = self._envelope(
            fields.kind, subject[:MAX_SUBJECT_CHARS] or fields.title, message, now, job_id
        )
        # In-Reply-To and References only ever hold well-formed msg-ids: a Message-ID stored
        # before they were checked, or junk in References, is left out.
        replied_to = message_id_token(message.header_message_id)
        if replied_to:
            headers = original_headers(message.raw)
            references = message_ids(str(headers.get("References", "")))
            receipt["In-Reply-To"] = replied_to
            receipt["References"] = " ".join([*references, replied_to])
        receipt.add_header("Content-Type", "multipart/report", report_type="delivery-status")
        receipt.attach(self._human_part(fields, attachments))
        receipt.attach(self._delivery_status(fields, message, gives_up))
        receipt.attach(self._headers_part(message))
        return receipt

    def compose_minimal(
        self,
        kind: str,
        message: MessageRecord,
        results: Sequence[tuple[str, str, str]],
        now: float | None = None,
    ) -> EmailMessage:
        """A short plain-text receipt made of nothing the sender wrote, for when the full one
        cannot be composed: (job id, number, result in a few words) per fax."""
        lines = [
            f"Fax to {format_for_humans(number)}: {result} (job {job_id})."
            for job_id, number, result in results
        ]
        subject = lines[0].partition(" (job")[0] if len(results) == 1 else "Your faxes"
        job_id = results[0][0] if kind in ("final", "delayed") and results else None
        receipt = self._envelope(kind, subject, message, now, job_id)
        receipt.set_content(
            f"mailfax could not compose its usual receipt for your mail {message.id}, received "
            f"{format_datetime(datetime.fromtimestamp(message.received_at, UTC))}; "
            "this short one says how it went.\n\n"
            + "\n".join(lines)
            + "\n\nThe gateway's operator has been told.\n"
        )
        return receipt

    def _envelope(
        self, kind: str, subject: str, message: MessageRecord, now: float | None, job_id: str | None
    ) -> EmailMessage:
        """A receipt's headers: from the gateway, to the mail's envelope sender."""
        now = time.time() if now is None else now
        receipt = EmailMessage(policy=GENERATED_POLICY)
        receipt["From"] = self._from
        receipt["To"] = message.mail_from
        receipt["Subject"] = subject
        receipt["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
        receipt["Message-ID"] = make_msgid("receipt", domain=self._host)
        # RFC 3834: an automatic reply, which nothing automatic should answer.
        receipt["Auto-Submitted"] = "auto-replied"
        receipt["X-Mailfax-Receipt"] = kind
        receipt["X-Mailfax-Queue-ID"] = message.id
        if job_id is not None:
            receipt["X-Mailfax-Job"] = job_id
        receipt["MIME-Version"] = "1.0"
        return receipt

    def _human_part(self, fields: ReceiptFields, attachments: Attachments) -> EmailMessage:
        """Plain text and HTML as alternatives; any attachments beside them (multipart/mixed)."""
        part = EmailMessage(policy=GENERATED_POLICY)
        part.set_content(self._templates.render(f"{fields.kind}.txt", fields))
        part.add_alternative(self._templates.render(f"{fields.kind}.html", fields), subtype="html")
        files = [
            (report.pdf, "application", "pdf", report_name(report.fax_id))
            for fax in fields.faxes
            if fax.report_attached
            and (report := attachments.reports.get(fax.fax_id)) is not None
            and report.pdf is not None
        ]
        if fields.thumbnail_attached and attachments.thumbnail is not None:
            files.append((attachments.thumbnail, "image", "png", THUMBNAIL_NAME))
        for data, maintype, subtype, name in files:
            part.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        return part

    def _delivery_status(
        self, fields: ReceiptFields, message: MessageRecord, gives_up: float | None
    ) -> EmailMessage:
        per_message = EmailMessage(policy=GENERATED_POLICY)
        per_message["Reporting-MTA"] = f"dns; {self._host}"
        per_message["X-Mailfax-Queue-ID"] = message.id
        per_message["Arrival-Date"] = format_datetime(
            datetime.fromtimestamp(message.received_at, UTC)
        )
        per_recipient = [self._per_recipient(fields.kind, fax, gives_up) for fax in fields.faxes]
        part = EmailMessage(policy=GENERATED_POLICY)
        part.set_type("message/delivery-status")
        part.set_payload([per_message, *per_recipient])
        return part

    def _per_recipient(self, kind: str, fax: FaxFields, gives_up: float | None) -> EmailMessage:
        block = EmailMessage(policy=GENERATED_POLICY)
        block["Final-Recipient"] = f"rfc822; {fax.number_e164}@{self._domain}"
        if fax.final:
            block["Action"] = "delivered" if fax.delivered else "failed"
            block["Status"] = fax.status_code
        else:
            block["Action"] = "delayed"
            block["Status"] = DELAYED_STATUS if kind == "delayed" else ACCEPTED_STATUS
        # Whose result it is: FAX.PLUS's status, or mailfax's own (rejected, expired, ...).
        if fax.faxplus_status:
            block["Diagnostic-Code"] = f"x-faxplus; {fax.faxplus_status}"
        elif fax.status:
            block["Diagnostic-Code"] = f"x-mailfax; {fax.status}"
        if gives_up is not None and not fax.final:
            block["Will-Retry-Until"] = format_datetime(datetime.fromtimestamp(gives_up, UTC))
        if fax.fax_id:
            block["X-Mailfax-Fax-ID"] = fax.fax_id
        return block

    @staticmethod
    def _headers_part(message: MessageRecord) -> EmailMessage:
        """The mail's header block as received: text/rfc822-headers (RFC 6522) when it is
        ASCII, else message/global-headers (RFC 6533) in UTF-8 (8-bit bytes that are not
        UTF-8 read as the mail's parser reads them), quoted-printable so it passes 7-bit."""
        head = message.raw.replace(b"\r\n", b"\n").partition(b"\n\n")[0] + b"\n"
        part = EmailMessage(policy=GENERATED_POLICY)
        if head.isascii():
            part.set_content(head.decode("ascii"), subtype="rfc822-headers")
        else:
            text = decode_text(head, "utf-8")
            part.set_content(
                text.encode("utf-8"),
                maintype="message",
                subtype="global-headers",
                cte="quoted-printable",
            )
        del part["MIME-Version"]  # set_content's; a part needs none
        return part
