"""A receipt on the wire: its header fields, MIME layout, delivery-status blocks and the
original header block, for every kind of receipt."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
import time
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime

import pytest

from mailfax.jobs import Job, JobState
from mailfax.mail.model import PartReport
from mailfax.receipts.compose import FaxOutcome, ReceiptComposer
from mailfax.receipts.fields import Attachments, ConfirmationReport
from mailfax.receipts.templates import ReceiptTemplates
from mailfax.store import MessageRecord

NOW = 1_800_000_000.0  # Fri, 15 Jan 2027 08:00:00 +0000
RAW = (
    b"From: Alice <alice@example.com>\r\nSubject: Invoice 42\r\n"
    b"Message-ID: <inv42@example.com>\r\n\r\nbody\r\n\r\nmore body\r\n"
)
MESSAGE = MessageRecord(
    "m1",
    NOW - 3600,
    "alice@example.com",
    "<inv42@example.com>",
    "Invoice",
    "",
    "hi",
    (PartReport("a.pdf", "application/pdf", 10, 2, "faxed", "PDF"),),
    RAW,
)
JOB = Job("j1", "m1", "+17185554567", JobState.DELIVERED, 1, NOW - 3600, 0.0, fax_id="f1")
DELIVERED = FaxOutcome(True, "success", "f1", 2)
COMPOSER = ReceiptComposer(
    "mailfax@gw.example.com", "gw.example.com", "fax.local", max_lifetime=86400.0
)
ATTACHED = Attachments({"f1": ConfirmationReport("f1", b"%PDF-report")}, b"\x89PNG thumbnail")


def parse(receipt: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(receipt.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def plain_text(receipt: EmailMessage) -> str:
    body = receipt.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def blocks(receipt: EmailMessage) -> list[Message]:
    """The delivery-status part's blocks: per message, then one per recipient."""
    status = list(parse(receipt).iter_parts())[1]
    payload = status.get_payload()
    assert isinstance(payload, list)
    return [block for block in payload if isinstance(block, Message)]


def test_a_final_receipts_header_fields() -> None:
    receipt = parse(COMPOSER.compose(JOB, MESSAGE, DELIVERED, now=NOW))
    assert receipt.keys() == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Auto-Submitted",
        "X-Mailfax-Receipt",
        "X-Mailfax-Queue-ID",
        "X-Mailfax-Job",
        "MIME-Version",
        "In-Reply-To",
        "References",
        "Content-Type",
    ]
    assert receipt["Date"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    assert re.fullmatch(r"<[\d.]+\.receipt@gw\.example\.com>", receipt["Message-ID"])
    assert receipt["Auto-Submitted"] == "auto-replied"
    # The original had no References: the thread is the original alone.
    assert receipt["In-Reply-To"] == receipt["References"] == "<inv42@example.com>"
    assert (receipt["X-Mailfax-Queue-ID"], receipt["X-Mailfax-Job"]) == ("m1", "j1")
    assert receipt["MIME-Version"] == "1.0"


def test_a_receipt_for_a_mail_without_message_id_starts_no_thread() -> None:
    anonymous = dataclasses.replace(MESSAGE, header_message_id="")
    receipt = parse(COMPOSER.compose(JOB, anonymous, DELIVERED, now=NOW))
    assert receipt["In-Reply-To"] is None and receipt["References"] is None


def test_the_mime_layout_on_the_wire() -> None:
    wire = COMPOSER.compose(JOB, MESSAGE, DELIVERED, NOW, ATTACHED).as_bytes()
    assert re.findall(rb"(?m)^Content-Type: ([^;\r\n]+)", wire) == [
        b"multipart/report",
        b"multipart/mixed",
        b"multipart/alternative",
        b"text/plain",
        b"text/html",
        b"application/pdf",
        b"image/png",
        b"message/delivery-status",
        b"text/rfc822-headers",
    ]
    assert b'report-type="delivery-status"' in wire


def test_the_original_header_block_is_returned_as_it_came() -> None:
    headers = list(parse(COMPOSER.compose(JOB, MESSAGE, DELIVERED, now=NOW)).iter_parts())[2]
    assert headers.get_payload() == (
        "From: Alice <alice@example.com>\nSubject: Invoice 42\nMessage-ID: <inv42@example.com>\n"
    )


# UTF-8 as it came, and a Latin-1 byte from a client that sent its legacy charset unlabelled.
EIGHT_BIT_RAW = (
    b"From: J\xc3\xbcrgen <j@example.com>\r\nSubject: Caf\xe9 au lait\r\n"
    b"Message-ID: <inv42@example.com>\r\n\r\nbody\r\n"
)


def test_an_8bit_header_block_is_returned_as_utf8_global_headers_in_7bit() -> None:
    mail = dataclasses.replace(MESSAGE, raw=EIGHT_BIT_RAW, subject="Café au lait")
    receipt = COMPOSER.compose(JOB, mail, DELIVERED, now=NOW)
    wire = receipt.as_bytes()
    assert wire.isascii()  # any smarthost takes it, 8BITMIME or not
    assert re.findall(rb"(?m)^Content-Type: ([^;\r\n]+)", wire)[-1] == b"message/global-headers"
    headers = list(receipt.iter_parts())[2]
    assert headers["Content-Transfer-Encoding"] == "quoted-printable"
    assert headers["MIME-Version"] is None  # only the receipt itself has one
    payload = headers.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert payload.decode("utf-8") == (
        "From: Jürgen <j@example.com>\nSubject: Café au lait\nMessage-ID: <inv42@example.com>\n"
    )


def test_what_the_sender_and_fax_plus_wrote_never_puts_a_control_character_in_a_header() -> None:
    # A subject template that quotes the sender's subject, which carries a terminal escape.
    templates = ReceiptTemplates({"subject.txt": "Re: {{ mail.subject }}"})
    composer = ReceiptComposer("mailfax@gw", "gw.example.com", "fax.local", templates)
    mail = dataclasses.replace(MESSAGE, subject="Invoice\x1b[2J 42")
    # A status text from FAX.PLUS with a line break in it.
    outcome = FaxOutcome(False, "failed\r\nX-Injected: yes", "f1", 0)
    receipt = parse(composer.compose(JOB, mail, outcome, now=NOW))
    assert receipt["Subject"] == "Re: Invoice [2J 42"
    (block,) = recipient_blocks(composer.compose(JOB, mail, outcome, now=NOW))
    assert ("Diagnostic-Code", "x-faxplus; failed X-Injected: yes") in block
    assert "X-Injected" not in dict(block)


def test_the_per_message_block() -> None:
    per_message = blocks(COMPOSER.compose(JOB, MESSAGE, DELIVERED, now=NOW))[0]
    assert per_message.items() == [
        ("Reporting-MTA", "dns; gw.example.com"),
        ("X-Mailfax-Queue-ID", "m1"),
        ("Arrival-Date", "Fri, 15 Jan 2027 07:00:00 +0000"),
    ]


def recipient_blocks(receipt: EmailMessage) -> list[list[tuple[str, str]]]:
    return [block.items() for block in blocks(receipt)[1:]]


def test_a_delivered_faxs_block() -> None:
    assert recipient_blocks(COMPOSER.compose(JOB, MESSAGE, DELIVERED, now=NOW)) == [
        [
            ("Final-Recipient", "rfc822; +17185554567@fax.local"),
            ("Action", "delivered"),
            ("Status", "2.0.0"),
            ("Diagnostic-Code", "x-faxplus; success"),
            ("X-Mailfax-Fax-ID", "f1"),
        ]
    ]


def test_a_fax_refused_before_it_had_an_id() -> None:
    refused = FaxOutcome(False, "rejected", None, 0)
    assert recipient_blocks(COMPOSER.compose(JOB, MESSAGE, refused, now=NOW)) == [
        [
            ("Final-Recipient", "rfc822; +17185554567@fax.local"),
            ("Action", "failed"),
            ("Status", "5.0.0"),
            ("Diagnostic-Code", "x-mailfax; rejected"),
        ]
    ]


def test_an_accepted_notice_gives_each_recipient_a_deadline() -> None:
    notice = COMPOSER.compose_accepted(MESSAGE, [("j1", "+17185554567")], now=NOW)
    assert parse(notice)["Date"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    assert parse(notice)["X-Mailfax-Job"] is None
    # received an hour ago, given up a day after that
    assert recipient_blocks(notice) == [
        [
            ("Final-Recipient", "rfc822; +17185554567@fax.local"),
            ("Action", "delayed"),
            ("Status", "4.0.0"),
            ("Will-Retry-Until", "Sat, 16 Jan 2027 07:00:00 +0000"),
        ]
    ]


def test_a_delay_notice() -> None:
    waiting = dataclasses.replace(JOB, state=JobState.QUEUED, fax_status="failed_user_busy")
    notice = COMPOSER.compose_delayed(waiting, MESSAGE, now=NOW)
    assert parse(notice)["Date"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    assert parse(notice)["X-Mailfax-Job"] == "j1"
    assert "has not been sent after 1 hour; mailfax is still trying" in plain_text(parse(notice))
    # created an hour ago, given up a day after that
    assert recipient_blocks(notice) == [
        [
            ("Final-Recipient", "rfc822; +17185554567@fax.local"),
            ("Action", "delayed"),
            ("Status", "4.4.7"),
            ("Diagnostic-Code", "x-faxplus; failed_user_busy"),
            ("Will-Retry-Until", "Sat, 16 Jan 2027 07:00:00 +0000"),
            ("X-Mailfax-Fax-ID", "f1"),
        ]
    ]


def test_a_group_summary_attaches_the_thumbnail_and_reports() -> None:
    jobs = [
        dataclasses.replace(JOB, fax_status="success", pages_sent=2),
        dataclasses.replace(
            JOB, id="j2", number="+16465550015", state=JobState.FAILED, fax_id="f2",
            fax_status="failed_unallocated_number", pages_sent=0,
        ),
    ]  # fmt: skip
    summary = COMPOSER.compose_group(jobs, MESSAGE, NOW, ATTACHED)
    parsed = parse(summary)
    assert parsed["Date"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    assert parsed["X-Mailfax-Job"] is None
    assert "gw.example.com" in plain_text(parsed)
    human = next(parsed.iter_parts())
    assert [(p.get_content_type(), p.get_filename()) for p in human.iter_attachments()] == [
        ("application/pdf", "fax-report-f1.pdf"),
        ("image/png", "first-page.png"),
    ]
    assert [block[2] for block in recipient_blocks(summary)] == [
        ("Status", "2.0.0"),
        ("Status", "5.1.1"),
    ]


def test_no_thumbnail_without_one() -> None:
    reports_only = Attachments(ATTACHED.reports)
    human = next(parse(COMPOSER.compose_group([JOB], MESSAGE, NOW, reports_only)).iter_parts())
    assert [p.get_filename() for p in human.iter_attachments()] == ["fax-report-f1.pdf"]
    final = next(parse(COMPOSER.compose(JOB, MESSAGE, DELIVERED, NOW, reports_only)).iter_parts())
    assert [p.get_filename() for p in final.iter_attachments()] == ["fax-report-f1.pdf"]


@pytest.mark.parametrize("kind", ["final", "accepted", "delayed", "group"])
def test_every_receipt_names_the_gateway_and_who_it_reports(kind: str) -> None:
    composer = ReceiptComposer("mailfax@gw", "gw.example.com", "fax.example.org")
    receipt = {
        "final": lambda: composer.compose(JOB, MESSAGE, DELIVERED, NOW),
        "accepted": lambda: composer.compose_accepted(MESSAGE, [("j1", "+17185554567")], NOW),
        "delayed": lambda: composer.compose_delayed(JOB, MESSAGE, NOW),
        "group": lambda: composer.compose_group([JOB], MESSAGE, NOW),
    }[kind]()
    text = plain_text(parse(receipt))
    assert "\n-- \nmailfax email-to-fax gateway at gw.example.com\n" in text
    assert recipient_blocks(receipt)[0][0] == (
        "Final-Recipient",
        "rfc822; +17185554567@fax.example.org",
    )
    if kind == "delayed":
        assert "mailfax keeps trying until 2027-01-20 07:00:00 UTC" in " ".join(text.split())


@pytest.mark.parametrize("kind", ["final", "accepted", "delayed", "group"])
def test_without_a_time_given_a_receipt_is_dated_now(kind: str) -> None:
    before = time.time()
    receipt = {
        "final": lambda: COMPOSER.compose(JOB, MESSAGE, DELIVERED),
        "accepted": lambda: COMPOSER.compose_accepted(MESSAGE, [("j1", "+17185554567")]),
        "delayed": lambda: COMPOSER.compose_delayed(JOB, MESSAGE),
        "group": lambda: COMPOSER.compose_group([JOB], MESSAGE),
    }[kind]()
    dated = parsedate_to_datetime(parse(receipt)["Date"]).timestamp()
    assert before - 1 <= dated <= time.time() + 1


def test_templates_see_the_queued_fax_of_an_accepted_notice() -> None:
    templates = ReceiptTemplates(
        {"accepted.txt": "{% for fax in faxes %}{{ fax.state }} {{ fax.attempts }}{% endfor %}"}
    )
    composer = ReceiptComposer("mailfax@gw", "gw", "fax.local", templates)
    notice = parse(composer.compose_accepted(MESSAGE, [("j1", "+17185554567")], now=NOW))
    assert plain_text(notice) == "queued 0\n"
    assert composer.policy is not None
    # The default lifetime: five days after the mail arrived.
    deadline = recipient_blocks(composer.compose_accepted(MESSAGE, [("j1", "+1555")], now=NOW))
    assert deadline[0][3] == ("Will-Retry-Until", "Wed, 20 Jan 2027 07:00:00 +0000")


def test_the_short_receipt_when_the_usual_one_cannot_be_composed() -> None:
    short = parse(
        COMPOSER.compose_minimal("final", MESSAGE, [("j1", "+17185554567", "delivered")], NOW)
    )
    assert short["Subject"] == "Fax to +1 718-555-4567: delivered"
    assert (short["X-Mailfax-Receipt"], short["X-Mailfax-Job"]) == ("final", "j1")
    assert short["Date"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    assert short.get_content_type() == "text/plain"
    assert plain_text(short) == (
        "mailfax could not compose its usual receipt for your mail m1, received "
        "Fri, 15 Jan 2027 07:00:00 +0000; this short one says how it went.\n\n"
        "Fax to +1 718-555-4567: delivered (job j1).\n\n"
        "The gateway's operator has been told.\n"
    )


@pytest.mark.parametrize(
    ("kind", "job_header"),
    [("final", "j1"), ("delayed", "j1"), ("accepted", None), ("group", None)],
)
def test_a_short_receipt_about_several_faxes(kind: str, job_header: str | None) -> None:
    results = [("j1", "+17185554567", "delivered"), ("j2", "+4930123456", "not delivered")]
    short = parse(COMPOSER.compose_minimal(kind, MESSAGE, results, NOW))
    assert short["Subject"] == "Your faxes"
    assert short["X-Mailfax-Job"] == job_header
    assert (
        "how it went.\n\nFax to +1 718-555-4567: delivered (job j1).\n"
        "Fax to +49 30 123456: not delivered (job j2).\n\nThe gateway's"
    ) in plain_text(short)
