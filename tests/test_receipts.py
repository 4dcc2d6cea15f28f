"""Receipt composition (pure): every kind parsed back with the stdlib, its RFC 3464 structure,
threading, attachments, key sentences, escaping, loop safety, reasons and templates."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from email.message import EmailMessage, Message, MIMEPart
from pathlib import Path

import pytest
from faxplus.models.fax_status import FaxStatus

from mailfax.config import ConfigError, load_settings, without_password
from mailfax.jobs import Job, JobState
from mailfax.mail.model import PartReport
from mailfax.receipts.compose import FaxOutcome, ReceiptComposer
from mailfax.receipts.deliver import MaildirSender
from mailfax.receipts.fields import Attachments, ConfirmationReport
from mailfax.receipts.policy import ReceiptPolicy, wants_receipt, why_no_receipt
from mailfax.receipts.reasons import MAILFAX_REASONS, REASONS, UNKNOWN, reason_for
from mailfax.receipts.setup import receipt_templates
from mailfax.receipts.templates import ENTRY_POINTS, ReceiptTemplates, builtin_templates
from mailfax.sender_policy import SenderPatterns
from mailfax.store import MessageRecord
from tests.gateway import text_part

RAW = (
    b"From: Alice <alice@example.com>\r\nTo: 17185554567@fax.local\r\nSubject: Invoice 42\r\n"
    b"Message-ID: <inv42@example.com>\r\nReferences: <earlier@example.com>\r\n\r\nbody\r\n"
)
REPORT = (
    PartReport("invoice.pdf", "application/pdf", 1000, 3, "faxed", "PDF"),
    PartReport("logo.png", "image/png", 10, None, "ignored", "not a PDF document"),
)
NOW = 1_800_000_000.0
PDF = b"%PDF-1.4 confirmation report"
PNG = b"\x89PNG\r\n\x1a\nthumbnail"

# The FAX.PLUS statuses of the API reference (faxplus-api.md, section 5).
REFERENCE_STATUSES = [
    "success",
    "partially_sent",
    "partially_received",
    "insufficient_credit",
    "failed",
    "failed_internal_process_error",
    "failed_user_busy",
    "failed_no_answer",
    "failed_unallocated_number",
    "failed_office_converter_issue",
    "failed_separate_file_pages_issue",
    "failed_render_header_issue",
    "failed_invalid_number_format",
    "failed_mimetype_not_supported",
    "failed_destination_not_supported",
    "failed_image_preparation",
    "failed_to_send",
    "failed_normal_temporary_failure",
    "failed_unknown_converter_issue",
    "failed_normal_clearing",
    "failed_convert_to_tiff_issue",
    "failed_fs_49",
    "failed_fs_2",
]


def message(
    mail_from: str = "alice@example.com",
    auto_submitted: str = "",
    raw: bytes = RAW,
    report: tuple[PartReport, ...] = REPORT,
    subject: str = "Invoice 42",
    comment: str = "hi",
    admitted_by: str = "",
) -> MessageRecord:
    return MessageRecord(
        "m1",
        NOW - 120,
        mail_from,
        "<inv42@example.com>",
        subject,
        auto_submitted,
        comment,
        report,
        raw,
        admitted_by=admitted_by,
    )


JOB = Job("j1", "m1", "+17185554567", JobState.SUBMITTED, 1, NOW - 120, 0.0, fax_id="f1")
COMPOSER = ReceiptComposer("mailfax@gw.example.com", "gw.example.com", "fax.local")
DELIVERED = FaxOutcome(True, "success", "f1", 3, "2026-11-26 10:00:00", duration=95, cost=3)


def parse(receipt: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(receipt.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def final_job(job_id: str, number: str, state: JobState, status: str, pages: int) -> Job:
    return dataclasses.replace(
        JOB,
        id=job_id,
        number=number,
        state=state,
        fax_id=f"fax-{job_id}",
        fax_status=status,
        pages_sent=pages,
    )


@dataclasses.dataclass
class Report:
    """A parsed receipt: its parts as RFC 3464 lays them out."""

    receipt: EmailMessage
    human: MIMEPart  # multipart/alternative, or multipart/mixed around it
    per_message: Message
    per_recipient: list[Message]
    headers: str

    @property
    def text(self) -> str:
        return text_part(self.receipt)

    @property
    def html(self) -> str:
        body = self.receipt.get_body(preferencelist=("html",))
        assert body is not None
        return str(body.get_content())

    @property
    def attachments(self) -> list[tuple[str, str | None]]:
        return [
            (part.get_content_type(), part.get_filename()) for part in self.human.iter_attachments()
        ]


def report_of(receipt: EmailMessage) -> Report:
    """Parse the receipt back and check what every receipt has, whatever its kind."""
    parsed = parse(receipt)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "delivery-status"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["In-Reply-To"] == "<inv42@example.com>"
    assert parsed["References"] == "<earlier@example.com> <inv42@example.com>"
    assert parsed["To"] == "alice@example.com" and parsed["From"] == "mailfax@gw.example.com"
    human, status, headers = parsed.iter_parts()
    assert human.get_content_type() in ("multipart/alternative", "multipart/mixed")
    alternative = next(human.iter_parts()) if human.get_content_subtype() == "mixed" else human
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert status.get_content_type() == "message/delivery-status"
    payload = status.get_payload()
    assert isinstance(payload, list)
    blocks = [block for block in payload if isinstance(block, Message)]
    assert blocks[0]["Reporting-MTA"] == "dns; gw.example.com"
    assert headers.get_content_type() == "text/rfc822-headers"
    # Never the original attachments: only the report and the thumbnail may be attached.
    for part in human.iter_attachments():
        assert part.get_filename() in ("first-page.png",) or str(part.get_filename()).startswith(
            "fax-report-"
        )
    return Report(parsed, human, blocks[0], blocks[1:], str(headers.get_payload()))


def test_delivered_receipt() -> None:
    report = report_of(COMPOSER.compose(JOB, message(), DELIVERED, now=NOW))
    assert report.receipt["Subject"] == "Fax delivered to +1 718-555-4567 (3 pages)"
    assert report.receipt["X-Mailfax-Receipt"] == "final"
    assert report.receipt["X-Mailfax-Job"] == "j1"
    assert report.human.get_content_type() == "multipart/alternative"  # nothing attached
    [recipient] = report.per_recipient
    assert recipient["Final-Recipient"] == "rfc822; +17185554567@fax.local"
    assert recipient["Action"] == "delivered" and recipient["Status"] == "2.0.0"
    assert recipient["Diagnostic-Code"] == "x-faxplus; success"
    assert recipient["X-Mailfax-Fax-ID"] == "f1"
    text = report.text
    assert text.startswith("Your fax to +1 718-555-4567 was delivered: 3 of 3 pages sent.\n")
    for line in (
        "Number:   +1 718-555-4567 (E.164: +17185554567)",
        "Result:   delivered (FAX.PLUS status: success)",
        "Pages:    3 of 3 sent",
        "Fax id:   f1",
        "Started:  2026-11-26 10:00:00 UTC",
        "Duration: 1 min 35 s",
        "Cost:     3 FAX.PLUS credits",
        "Attempts: 1",
        "Subject:  Invoice 42",
        "invoice.pdf: sent, 3 pages",
        "logo.png: not faxed (not a PDF document)",
    ):
        assert line in text, line
    assert "What happened" not in text and "confirmation report" not in text
    assert "Subject: Invoice 42" in report.headers
    assert "Your fax to +1 718-555-4567 was delivered" in report.html


def test_failed_receipt_says_why_whether_retried_and_what_to_do() -> None:
    job = dataclasses.replace(JOB, attempts=3, redials=2)
    outcome = FaxOutcome(False, "failed_user_busy", "f1", 0)
    report = report_of(COMPOSER.compose(job, message(), outcome, now=NOW))
    assert report.receipt["Subject"] == "Fax to +1 718-555-4567 not delivered: line busy"
    text = report.text
    assert text.startswith("Your fax to +1 718-555-4567 was not delivered: line busy.\n")
    assert "Result:   failed (FAX.PLUS status: failed_user_busy)" in text
    assert "Pages:    0 of 3 sent\n" in text and "invoice.pdf: not sent, 3 pages" in text
    assert "What happened:\n  The receiving line was busy every time it was called." in text
    assert "Did mailfax try again?\n  mailfax dialled 3 times in all before giving up." in text
    assert "What you can do:\n  Send the fax again later" in text
    [recipient] = report.per_recipient
    assert recipient["Action"] == "failed" and recipient["Status"] == "5.4.0"
    assert recipient["Diagnostic-Code"] == "x-faxplus; failed_user_busy"


def test_partly_delivered_fax_says_how_many_pages_went() -> None:
    outcome = FaxOutcome(False, "partially_sent", "f1", 2)
    report = report_of(COMPOSER.compose(JOB, message(), outcome, now=NOW))
    assert (
        report.receipt["Subject"] == "Fax to +1 718-555-4567 partly delivered: pages 1-2 of 3 sent"
    )
    text = report.text
    assert "Your fax to +1 718-555-4567 was only partly delivered: pages 1-2 of 3 sent." in text
    assert "Pages:    2 of 3 sent: pages 1-2 went through, page 3 did not" in text
    assert "invoice.pdf: partly sent: pages 1-2 of its 3 went through" in text
    assert "so that the pages that arrived are not faxed twice" in text


def test_api_refusal_text_is_shown() -> None:
    outcome = FaxOutcome(False, "rejected", None, 0, detail="HTTP 400: invalid_payload")
    text = report_of(COMPOSER.compose(JOB, message(), outcome, now=NOW)).text
    assert "FAX.PLUS refused to take the fax." in text
    assert "FAX.PLUS said:\n  HTTP 400: invalid_payload" in text


def test_cancelled_fax() -> None:
    job = dataclasses.replace(JOB, state=JobState.CANCELLED)
    detail = "cancelled by the gateway's administrator: wrong clinic"
    outcome = FaxOutcome(False, "cancelled", None, 0, detail=detail)
    report = report_of(COMPOSER.compose(job, message(), outcome, now=NOW))
    assert " ".join(str(report.receipt["Subject"]).split()) == (
        "Fax to +1 718-555-4567 not sent: cancelled by the fax administrator"
    )
    text = report.text
    assert "Reason given:\n  wrong clinic\n" in text and text.count("wrong clinic") == 1
    assert "Result:   cancelled\n" in text and "FAX.PLUS status" not in text
    assert report.per_recipient[0]["Action"] == "failed"


def test_report_and_thumbnail_are_attached() -> None:
    attachments = Attachments({"f1": ConfirmationReport("f1", PDF)}, PNG)
    report = report_of(COMPOSER.compose(JOB, message(), DELIVERED, NOW, attachments))
    assert report.human.get_content_type() == "multipart/mixed"
    assert report.attachments == [
        ("application/pdf", "fax-report-f1.pdf"),
        ("image/png", "first-page.png"),
    ]
    pdf = next(report.human.iter_attachments()).get_content()
    assert pdf == PDF
    assert "FAX.PLUS's confirmation report for fax f1 is attached." in report.text
    assert "A picture of the first faxed page is attached." in report.text


def test_a_report_that_could_not_be_fetched_is_explained() -> None:
    missing = Attachments({"f1": ConfirmationReport("f1", None, "FAX.PLUS did not provide it")})
    report = report_of(COMPOSER.compose(JOB, message(), DELIVERED, NOW, missing))
    assert report.attachments == []
    assert "confirmation report is not attached: FAX.PLUS did not provide it." in report.text
    assert "The fax id above identifies the fax at FAX.PLUS." in report.text


def test_accepted_notice() -> None:
    jobs = [("j1", "+17185554567"), ("j2", "+442079460000")]
    report = report_of(COMPOSER.compose_accepted(message(), jobs, now=NOW))
    assert report.receipt["Subject"] == "Fax to 2 numbers accepted (3 pages)"
    assert report.receipt["X-Mailfax-Receipt"] == "accepted"
    assert report.receipt["X-Mailfax-Job"] is None
    assert [r["Final-Recipient"] for r in report.per_recipient] == [
        "rfc822; +17185554567@fax.local",
        "rfc822; +442079460000@fax.local",
    ]
    for recipient in report.per_recipient:
        assert recipient["Action"] == "delayed" and recipient["Status"] == "4.0.0"
        assert recipient["Will-Retry-Until"] == "Wed, 20 Jan 2027 07:58:00 +0000"
        assert recipient["Diagnostic-Code"] is None
    text = report.text
    assert text.startswith("mailfax has accepted your fax to 2 numbers and queued it")
    assert "To:       +44 20 7946 0000 (E.164: +442079460000), job j2" in text
    assert "mailfax keeps trying until 2027-01-20 07:58:00 UTC" in text


def test_delay_notice() -> None:
    job = dataclasses.replace(JOB, state=JobState.QUEUED, fax_status="failed_user_busy")
    report = report_of(COMPOSER.compose_delayed(job, message(), now=job.created_at + 4 * 3600))
    assert report.receipt["Subject"] == "Fax to +1 718-555-4567 delayed: not sent yet (3 pages)"
    [recipient] = report.per_recipient
    assert recipient["Action"] == "delayed" and recipient["Status"] == "4.4.7"
    assert recipient["Diagnostic-Code"] == "x-faxplus; failed_user_busy"
    assert recipient["Will-Retry-Until"]
    text = report.text
    assert "Your fax to +1 718-555-4567 has not been sent after 4 hours" in text
    assert "Now:      waiting to dial again (last FAX.PLUS status: failed_user_busy)" in text


def test_group_summary() -> None:
    jobs = [
        final_job("j1", "+17185554567", JobState.DELIVERED, "success", 3),
        final_job("j2", "+16465550015", JobState.FAILED, "failed_unallocated_number", 0),
    ]
    attachments = Attachments({"fax-j1": ConfirmationReport("fax-j1", PDF)})
    report = report_of(COMPOSER.compose_group(jobs, message(), NOW, attachments))
    assert report.receipt["Subject"] == "Fax to 2 numbers: 1 delivered, 1 not (3 pages)"
    assert report.receipt["X-Mailfax-Receipt"] == "group"
    assert [(r["Action"], r["Status"]) for r in report.per_recipient] == [
        ("delivered", "2.0.0"),
        ("failed", "5.1.1"),
    ]
    assert report.attachments == [("application/pdf", "fax-report-fax-j1.pdf")]
    text = report.text
    assert text.startswith("Your fax was delivered to 1 of 2 numbers.")
    assert "1. Your fax to +1 718-555-4567 was delivered: 3 of 3 pages sent." in text
    assert "2. Your fax to +1 646-555-0015 was not delivered: number does not exist." in text
    # The two faxes went differently: the documents are listed as included, not as sent.
    assert "invoice.pdf: included, 3 pages" in text
    assert "What happened:\n  The number does not exist" in text


SENDER_TEXT = '<script>alert("x")</script> & <b onmouseover="steal()">'


def test_html_is_small_and_escapes_what_the_sender_wrote() -> None:
    report_parts = (
        PartReport('<img src=x onerror="alert(1)">.pdf', "application/pdf", 9, 1, "faxed", "PDF"),
        PartReport("</li><script>x</script>.doc", "application/msword", 9, None, "ignored", "no"),
    )
    hostile = message(report=report_parts, subject=SENDER_TEXT, comment=SENDER_TEXT * 3)
    composed = [
        COMPOSER.compose(JOB, hostile, DELIVERED, now=NOW),
        COMPOSER.compose_accepted(hostile, [("j1", "+17185554567")], now=NOW),
        COMPOSER.compose_delayed(JOB, hostile, now=NOW),
        COMPOSER.compose_group(
            [final_job("j1", "+17185554567", JobState.FAILED, "failed", 0)], hostile, NOW
        ),
    ]
    for receipt in composed:
        assert len(receipt.as_bytes()) < 100_000
        html = report_of(receipt).html
        assert len(html.encode()) < 100_000
        for markup in ("<script", "<img", "<b ", 'onmouseover="', 'onerror="', "</li><"):
            assert markup not in html, (markup, receipt["X-Mailfax-Receipt"])
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b" in html
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;.pdf" in html
        # The text part shows the same words as they were written.
        assert '<img src=x onerror="alert(1)">.pdf' in report_of(receipt).text


def test_a_subject_cannot_inject_headers() -> None:
    hostile = message(subject="Invoice\r\nBcc: victim@example.com")
    receipt = COMPOSER.compose(JOB, hostile, DELIVERED, now=NOW)
    assert receipt["Bcc"] is None and "Bcc" not in str(receipt["Subject"])


@pytest.mark.parametrize(
    ("mail_from", "auto", "extra_header", "admitted_by", "why"),
    [
        ("a@b.c", "", b"", "", ""),
        ("a@b.c", "no", b"", "user:alice", ""),
        ("", "", b"", "", "null sender"),
        ("a@b.c", "auto-replied", b"", "", "Auto-Submitted: auto-replied"),
        ("a@b.c", "Auto-Generated; owner-email=x@y.z", b"", "", "Auto-Submitted: auto-generated"),
        ("a@b.c", "", b"Precedence: bulk\r\n", "", "Precedence: bulk"),
        ("a@b.c", "", b"Precedence: JUNK\r\n", "", "Precedence: junk"),
        ("a@b.c", "", b"Precedence: list\r\n", "", "Precedence: list"),
        ("a@b.c", "", b"Precedence: first-class\r\n", "", ""),
        ("a@b.c", "", b"", "open:192.0.2.1", "not verified"),
    ],
)
def test_no_receipts_for_loops_or_abuse(
    mail_from: str, auto: str, extra_header: bytes, admitted_by: str, why: str
) -> None:
    record = message(mail_from, auto, raw=extra_header + RAW, admitted_by=admitted_by)
    assert wants_receipt(record) is (why == "")
    assert why in why_no_receipt(record)


def test_success_receipts_can_be_opted_out_of() -> None:
    policy = ReceiptPolicy(
        notify="all", no_success_receipts=SenderPatterns.parse(["@quiet.example", "bob@x.org"])
    )
    quiet, other = message("scanner@QUIET.example"), message("alice@example.com")
    assert not policy.wants_final(quiet, delivered=True)
    assert policy.wants_final(quiet, delivered=False)  # failures always
    assert not policy.wants_accepted(quiet) and policy.wants_delay_notice(quiet)
    assert policy.wants_final(other, delivered=True) and policy.wants_accepted(other)
    assert not ReceiptPolicy().wants_accepted(other)  # notify = "final"


def test_users_can_opt_out_of_success_receipts() -> None:
    policy = ReceiptPolicy(notify="all", quiet_users=lambda: frozenset({"carol"}))
    carol = message("carol@example.com", admitted_by="user:carol")
    relayed = message("carol@example.com", admitted_by="relay:127.0.0.1")
    assert not policy.wants_final(carol, delivered=True) and not policy.wants_accepted(carol)
    assert policy.wants_final(carol, delivered=False)
    # The setting is the user's: the same address relayed by a trusted MTA is not opted out.
    assert policy.wants_final(relayed, delivered=True)


def test_every_faxplus_status_has_a_reason() -> None:
    sdk = {re.sub(r"[(),\s\"]", "", str(s.value)) for s in FaxStatus}
    assert sdk == set(REFERENCE_STATUSES), "the SDK and the reference list the same statuses"
    missing = sorted(s for s in [*REFERENCE_STATUSES, *MAILFAX_REASONS] if s not in REASONS)
    assert missing == []
    for status in [*REFERENCE_STATUSES, *MAILFAX_REASONS]:
        reason = reason_for(status)
        assert reason is not UNKNOWN
        assert reason.what_happened and reason.retried and reason.what_to_do, status
        assert re.fullmatch(r"[25]\.\d\.\d", reason.status_code), status
        assert reason.status_code.startswith("2") is (status == "success")
    assert reason_for("something_new") is UNKNOWN


def test_builtin_templates_cover_every_kind() -> None:
    assert set(ENTRY_POINTS) <= set(builtin_templates())


def test_templates_replace_the_builtin_texts(tmp_path: Path) -> None:
    overrides = {
        "subject.txt": "Fax an {{ faxes[0].number }}: {{ faxes[0].state }}",
        "_footer.txt": "\n-- \nIhr Fax-Gateway\n",
        "final.txt": "Ihr Fax an {{ fax.number }} wurde zugestellt ({{ fax.pages_sent }} Seiten).\n"
        "{% include '_footer.txt' %}",
    }
    composer = ReceiptComposer(
        "mailfax@gw.example.com", "gw.example.com", "fax.local", ReceiptTemplates(overrides)
    )
    report = report_of(composer.compose(JOB, message(), DELIVERED, now=NOW))
    assert report.receipt["Subject"] == "Fax an +1 718-555-4567: delivered"
    assert (
        report.text
        == "Ihr Fax an +1 718-555-4567 wurde zugestellt (3 Seiten).\n\n-- \nIhr Fax-Gateway\n"
    )
    assert "was delivered" in report.html  # not replaced: the built-in HTML


def test_a_broken_template_falls_back_to_the_builtin_one() -> None:
    problems: list[tuple[str, str]] = []
    overrides = {
        "final.txt": "{{ fax.numbr }}",  # a misspelt field: an error at rendering
        "final.html": "{% if %}",  # a syntax error: reported at once
        "finale.txt": "x",  # no such template
    }
    templates = ReceiptTemplates(overrides, lambda name, problem: problems.append((name, problem)))
    assert [name for name, _ in problems] == ["final.html", "finale.txt"]
    composer = ReceiptComposer("mailfax@gw.example.com", "gw.example.com", "fax.local", templates)
    report = report_of(composer.compose(JOB, message(), DELIVERED, now=NOW))
    assert "Your fax to +1 718-555-4567 was delivered" in report.text
    assert "Your fax to +1 718-555-4567 was delivered" in report.html
    assert [name for name, _ in problems[2:]] == ["final.txt", "final.html"]
    assert "numbr" in problems[2][1]


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
    receipt = COMPOSER.compose(
        JOB, message(report=report), FaxOutcome(True, "success", "f1", 3), now=NOW
    )
    parsed = report_of(receipt)
    assert parsed.receipt["Subject"] == "Fax delivered to +1 718-555-4567 (3 pages)"
    assert "scan.jpg: sent, 1 page (converted to PDF)" in parsed.text


def test_a_broken_template_file_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "final.txt").write_text("{% for %}")
    (tmp_path / "notes.md").write_text("not a template: ignored")
    templates = receipt_templates(str(tmp_path))
    composer = ReceiptComposer("mailfax@gw.example.com", "gw.example.com", "fax.local", templates)
    assert "was delivered" in report_of(composer.compose(JOB, message(), DELIVERED, NOW)).text
    broken = [r for r in caplog.records if r.getMessage() == "receipt.template_broken"]
    assert [getattr(r, "template", None) for r in broken] == ["final.txt", "final.txt"]


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("SMARTHOST", "http://u:hunter2@mail.example.com", "not smtp://"),
        ("SMARTHOST_STARTTLS", "sometimes", "unknown choice"),
        ("NOTIFY", "never", "unknown choice"),
        ("DELAY_WARNING", "0", "must be > 0"),
        ("NO_SUCCESS_RECEIPTS", "not-an-address", "not an e-mail address"),
        ("TEMPLATES_DIR", "/nonexistent/templates", "not a directory"),
    ],
)
def test_receipt_settings_are_checked(key: str, value: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint) as caught:
        load_settings(environ={f"MAILFAX_RECEIPTS_{key}": value})
    assert "hunter2" not in str(caught.value)


def test_receipt_settings_defaults_and_password_stays_hidden() -> None:
    settings = load_settings(
        environ={"MAILFAX_RECEIPTS_SMARTHOST": "smtp://fax:hunter2@mail.example.com:587"}
    )
    receipts = settings.receipts
    assert (receipts.notify, receipts.group, receipts.delay_warning) == ("final", False, 14400)
    assert (receipts.attach_report, receipts.attach_thumbnail) == (True, False)
    assert receipts.smarthost_starttls == "auto" and receipts.no_success_receipts == ()
    assert "hunter2" not in repr(settings)
    assert without_password(receipts.smarthost) == "smtp://fax:***@mail.example.com:587"
