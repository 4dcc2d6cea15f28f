"""Receipt composition (pure): RFC 3464 structure, threading, loop safety, reasons."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from faxplus.models.fax_status import FaxStatus

from mailfax.jobs import Job, JobState
from mailfax.mail.extract import PartReport
from mailfax.receipts.compose import FaxOutcome, ReceiptComposer, wants_receipt
from mailfax.receipts.deliver import MaildirSender
from mailfax.receipts.reasons import REASONS, UNKNOWN, reason_for
from mailfax.store import MessageRecord

RAW = (
    b"From: Alice <alice@example.com>\r\nTo: 15551234567@fax.local\r\nSubject: Invoice 42\r\n"
    b"Message-ID: <inv42@example.com>\r\nReferences: <earlier@example.com>\r\n\r\nbody\r\n"
)


def message(mail_from: str = "alice@example.com", auto_submitted: str = "") -> MessageRecord:
    report = (
        PartReport("invoice.pdf", "application/pdf", 1000, 3, "faxed", "PDF"),
        PartReport("logo.png", "image/png", 10, None, "ignored", "not a PDF document"),
    )
    return MessageRecord(
        "m1", 0.0, mail_from, "<inv42@example.com>", "Invoice 42", auto_submitted, "hi", report, RAW
    )


JOB = Job("j1", "m1", "+15551234567", JobState.SUBMITTED, 1, 0.0, 0.0, fax_id="f1")
COMPOSER = ReceiptComposer("mailfax@gw.example.com", "gw.example.com", "fax.local")


def parse(receipt: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(receipt.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_delivered_receipt() -> None:
    outcome = FaxOutcome(True, "success", "f1", 3, "2026-11-26 10:00:00")
    receipt = parse(COMPOSER.compose(JOB, message(), outcome, now=0.0))
    assert receipt["Subject"] == "Fax delivered to +1 555-123-4567 (3 pages)"
    assert receipt["To"] == "alice@example.com"
    assert receipt["From"] == "mailfax@gw.example.com"
    assert receipt["Auto-Submitted"] == "auto-replied"
    assert receipt["In-Reply-To"] == "<inv42@example.com>"
    assert receipt["References"] == "<earlier@example.com> <inv42@example.com>"
    assert receipt.get_content_type() == "multipart/report"
    assert receipt.get_param("report-type") == "delivery-status"
    parts = list(receipt.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    text = parts[0].get_content()
    assert "Your fax to +1 555-123-4567 was delivered." in text
    assert "Pages:    3 of 3 sent" in text
    assert "Fax id:   f1" in text
    assert "invoice.pdf: faxed, 3 pages" in text
    assert "logo.png: not faxed (not a PDF document)" in text
    status = parts[1].as_string()
    assert "Action: delivered" in status and "Status: 2.0.0" in status
    assert "Final-Recipient: rfc822; +15551234567@fax.local" in status
    assert "Diagnostic-Code: x-faxplus; success" in status
    assert "Subject: Invoice 42" in parts[2].get_payload()
    # Never the original attachments.
    assert "application/pdf" not in receipt.as_string().split("text/rfc822-headers")[0]


def test_failed_receipt_says_why_and_what_to_do() -> None:
    outcome = FaxOutcome(False, "failed_user_busy", "f1", 0)
    receipt = parse(COMPOSER.compose(JOB, message(), outcome, now=0.0))
    assert receipt["Subject"] == "Fax to +1 555-123-4567 failed (3 pages)"
    text = next(receipt.iter_parts()).get_content()
    assert "The receiving line was busy" in text
    assert "What you can do:" in text
    status = list(receipt.iter_parts())[1].as_string()
    assert "Action: failed" in status and "Diagnostic-Code: x-faxplus; failed_user_busy" in status


def test_api_refusal_text_is_shown() -> None:
    outcome = FaxOutcome(False, "rejected", None, 0, detail="HTTP 400: invalid_payload")
    text = next(
        parse(COMPOSER.compose(JOB, message(), outcome, now=0.0)).iter_parts()
    ).get_content()
    assert "FAX.PLUS refused to take the fax." in text and "HTTP 400: invalid_payload" in text


@pytest.mark.parametrize(
    ("mail_from", "auto", "wanted"),
    [("a@b.c", "", True), ("a@b.c", "no", True), ("", "", False), ("a@b.c", "auto-replied", False)],
)
def test_no_receipts_to_null_senders_or_automatic_mail(
    mail_from: str, auto: str, wanted: bool
) -> None:
    assert wants_receipt(message(mail_from, auto)) is wanted


def test_every_faxplus_status_has_a_reason() -> None:
    statuses = {re.sub(r"[(),\s\"]", "", str(s.value)) for s in FaxStatus}
    assert statuses, "the SDK lists the statuses"
    missing = sorted(s for s in statuses if s not in REASONS)
    assert missing == []
    assert all(reason_for(s) is not UNKNOWN for s in statuses)
    assert reason_for("something_new") is UNKNOWN


async def test_maildir_delivery_is_atomic_and_idempotent(tmp_path: Path) -> None:
    sender = MaildirSender(tmp_path / "receipts")
    await sender.send("r1", "alice@example.com", b"Subject: x\r\n\r\nbody\r\n")
    await sender.send(
        "r1", "alice@example.com", b"Subject: x\r\n\r\nbody\r\n"
    )  # a retry after a crash
    files = list((tmp_path / "receipts" / "new").iterdir())
    assert len(files) == 1 and files[0].read_bytes().startswith(b"Subject: x")
    assert list((tmp_path / "receipts" / "tmp").iterdir()) == []


def test_converted_images_count_as_faxed() -> None:
    report = (
        PartReport("scan.jpg", "image/jpeg", 50_000, 1, "converted", "image converted to PDF"),
        PartReport("a.pdf", "application/pdf", 1000, 2, "faxed", "PDF"),
    )
    record = MessageRecord("m1", 0.0, "a@b.c", "", "s", "", "", report, RAW)
    receipt = parse(COMPOSER.compose(JOB, record, FaxOutcome(True, "success", "f1", 3), now=0.0))
    assert receipt["Subject"] == "Fax delivered to +1 555-123-4567 (3 pages)"
    text = next(receipt.iter_parts()).get_content()
    assert "scan.jpg: converted to PDF and faxed, 1 page" in text
