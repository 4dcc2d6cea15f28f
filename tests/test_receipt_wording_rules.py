"""What a receipt says of a result, rule by rule: the result and its reason in a few words
(subject, banner, first line), which pages of a partial fax went, each document sent, not sent
or included, the reason of a cancellation once, no configuration key names, and the host name."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from email.message import EmailMessage

import pytest

from mailfax.config import ConfigError, load_settings
from mailfax.jobs import Job, JobState
from mailfax.mail.model import PartReport
from mailfax.receipts.compose import FaxOutcome, ReceiptComposer
from mailfax.receipts.fields import document_lines, fax_fields, receipt_fields, result_words
from mailfax.receipts.reasons import (
    NOTHING_SENT,
    REASONS,
    UNKNOWN,
    detail_for_sender,
    operator_cancellation,
)
from mailfax.receipts.setup import reporting_host
from mailfax.store import MessageRecord
from tests.gateway import banner, subject, text_part

NOW = 1_800_000_000.0
S = JobState
CONFIG_KEY = re.compile(r"\[[a-z_]+\]")


def part(name: str, pages: int | None, action: str = "faxed", reason: str = "PDF") -> PartReport:
    return PartReport(name, "application/pdf", 100, pages, action, reason)  # type: ignore[arg-type]


# Two documents of 3 and 2 pages (fax pages 1-3 and 4-5), and a logo that is not faxed.
PARTS = (
    part("invoice.pdf", 3),
    part("logo.png", None, "ignored", "PNG image shown in the mail's text"),
    part("scan.jpg", 2, "converted", "JPEG image"),
)
MESSAGE = MessageRecord(
    "m1", NOW, "alice@example.com", "<a@example.com>", "Invoice", "", "hi", PARTS, b""
)


def job(state: JobState = S.FAILED, **changes: object) -> Job:
    base = Job("j1", "m1", "+12125550199", state, 1, NOW, NOW, fax_id="f1")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def failed(status: str, pages: int | None = 0, detail: str = "") -> FaxOutcome:
    return FaxOutcome(False, status, "f1", pages, detail=detail)


def title_and_headline(
    the_job: Job, outcome: FaxOutcome, message: MessageRecord = MESSAGE
) -> tuple[str, str]:
    fax = fax_fields(the_job, message, outcome)
    fields = receipt_fields("final", message, [fax], "gw.example.com")
    assert fields.headline == fax.headline
    return fields.title, fields.headline


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("failed_user_busy", "line busy"),
        ("failed_no_answer", "no answer"),
        ("failed_unallocated_number", "number does not exist"),
        ("failed_invalid_number_format", "number not dialable as written"),
        ("failed_destination_not_supported", "destination not allowed"),
        ("insufficient_credit", "fax account out of credit"),
        ("failed_office_converter_issue", "document could not be converted"),
        ("failed_mimetype_not_supported", "document type not accepted"),
        ("failed_to_send", "fax system too busy"),
        ("failed_normal_temporary_failure", "temporary network problem"),
        ("failed_normal_clearing", "the receiving side hung up"),
        ("failed_render_header_issue", "fax header could not be printed"),
        ("failed_internal_process_error", "FAX.PLUS internal error"),
        ("failed", "no reason given"),
        ("rejected", "FAX.PLUS refused the fax"),
        ("expired", "not sent in time"),
        ("quarantined", "put aside after repeated errors"),
        ("failed_something_new", "unknown result"),
    ],
)
def test_a_failure_says_why_in_its_subject_banner_and_first_line(status: str, words: str) -> None:
    title, headline = title_and_headline(job(), failed(status))
    assert title == f"Fax to +1 212-555-0199 not delivered: {words}"
    assert headline == f"Your fax to +1 212-555-0199 was not delivered: {words}."


def test_every_reason_has_a_few_words_for_the_subject() -> None:
    for status, reason in [*REASONS.items(), ("unknown", UNKNOWN)]:
        assert 0 < len(reason.in_short.split()) <= 7, status
        assert not reason.in_short.endswith("."), status


def test_results_that_sent_nothing_are_known_results() -> None:
    assert NOTHING_SENT.issubset(REASONS)
    assert {"failed", "failed_normal_clearing", "expired", "success"}.isdisjoint(NOTHING_SENT)


def test_no_reason_names_a_configuration_key() -> None:
    for reason in [*REASONS.values(), UNKNOWN]:
        for text in dataclasses.astuple(reason):
            assert not CONFIG_KEY.search(text), text


@pytest.mark.parametrize(
    ("pages_sent", "parts", "title", "pages_line"),
    [
        # The first 4 of 5 pages: invoice.pdf (1-3) and the scan's first page (4).
        (
            4,
            PARTS,
            "partly delivered: pages 1-4 of 5 sent",
            "4 of 5 sent: pages 1-4 went through, page 5 did not",
        ),
        (
            1,
            PARTS,
            "partly delivered: page 1 of 5 sent",
            "1 of 5 sent: page 1 went through, pages 2-5 did not",
        ),
        # A document of unknown length: how many went is known, not which.
        (
            2,
            (part("a.pdf", None), part("b.pdf", 3)),
            "partly delivered: 2 of 3 pages sent",
            "2 of 3 sent",
        ),
        # As many pages as the documents have, yet partial (a cover page counted?): unsure.
        (5, PARTS, "partly delivered: 5 of 5 pages sent", "5 of 5 sent"),
        # More pages than the documents have (a cover page counted): which is unsure.
        (5, (part("a.pdf", 3),), "partly delivered: 5 of 3 pages sent", "5 of 3 sent"),
    ],
)
def test_a_partial_fax_says_how_many_and_which_pages_went(
    pages_sent: int, parts: tuple[PartReport, ...], title: str, pages_line: str
) -> None:
    message = dataclasses.replace(MESSAGE, report=parts)
    outcome = failed("partially_sent", pages_sent)
    subject, headline = title_and_headline(job(), outcome, message)
    assert subject == f"Fax to +1 212-555-0199 {title}"
    assert headline == f"Your fax to +1 212-555-0199 was only {title}."
    assert fax_fields(job(), message, outcome).pages == pages_line


@pytest.mark.parametrize(
    ("the_job", "outcome", "pages_line"),
    [
        # FAX.PLUS's success is every page, even when its record leaves the count out.
        (job(S.DELIVERED), FaxOutcome(True, "success", "f1", None), "5 of 5 sent"),
        (job(), failed("expired", None), "5 pages; how many went through is not known"),
        (job(), failed("failed_no_answer"), "0 of 5 sent"),
        # mailfax records 0 pages for every failure: believed only where no call carried any.
        (job(), failed("failed_normal_clearing"), "5 pages; how many went through is not known"),
        (job(), failed("failed"), "5 pages; how many went through is not known"),
        (job(S.CANCELLED), failed("cancelled"), "0 of 5 sent"),
        (job(S.QUEUED), None, "5 pages"),
    ],
)
def test_the_pages_line(the_job: Job, outcome: FaxOutcome | None, pages_line: str) -> None:
    fax = fax_fields(the_job, MESSAGE, outcome)
    assert fax.pages == pages_line
    assert (fax.result == "") is (outcome is None)  # no result before the result


def test_with_a_cover_page_a_partial_fax_names_no_pages() -> None:
    fax = fax_fields(job(), MESSAGE, failed("partially_sent", 4), cover_page=True)
    assert fax.result == "partly delivered: 4 of 5 pages sent"
    assert (fax.pages, fax.pages_through) == ("4 of 5 sent", None)
    # What is certain stays said: everything went, or nothing did.
    delivered = fax_fields(
        job(S.DELIVERED), MESSAGE, FaxOutcome(True, "success", "f1", 6), cover_page=True
    )
    assert delivered.pages_through == 5
    assert (
        fax_fields(job(), MESSAGE, failed("failed_no_answer"), cover_page=True).pages_through == 0
    )


@pytest.mark.parametrize(
    ("cover_page", "went"), [(False, "pages 1-4 of 5"), (True, "4 of 5 pages")]
)
def test_the_composer_names_no_pages_behind_a_cover_page(cover_page: bool, went: str) -> None:
    # Built here, in the test, and without the argument by default (make mutate sees both).
    composer = (
        ReceiptComposer("mailfax@gw", "gw", "fax.local", cover_page=True)
        if cover_page
        else ReceiptComposer("mailfax@gw", "gw", "fax.local")
    )
    partial = failed("partially_sent", 4)
    receipt = parse(composer.compose(job(), MESSAGE, partial, NOW))
    assert subject(receipt) == f"Fax to +1 212-555-0199 partly delivered: {went} sent"
    group = parse(
        composer.compose_group([job(fax_status="partially_sent", pages_sent=4)], MESSAGE, NOW)
    )
    assert f"1. Your fax to +1 212-555-0199 was only partly delivered: {went} sent." in text_part(
        group
    )


@pytest.mark.parametrize(
    ("through", "lines"),
    [
        (
            None,
            [
                "invoice.pdf: included, 3 pages",
                "logo.png: not faxed (PNG image shown in the mail's text)",
                "scan.jpg: included, 2 pages (converted to PDF)",
            ],
        ),
        (
            5,
            [
                "invoice.pdf: sent, 3 pages",
                "logo.png: not faxed (PNG image shown in the mail's text)",
                "scan.jpg: sent, 2 pages (converted to PDF)",
            ],
        ),
        (
            0,
            [
                "invoice.pdf: not sent, 3 pages",
                "logo.png: not faxed (PNG image shown in the mail's text)",
                "scan.jpg: not sent, 2 pages (converted to PDF)",
            ],
        ),
        (
            2,
            [
                "invoice.pdf: partly sent: pages 1-2 of its 3 went through",
                "logo.png: not faxed (PNG image shown in the mail's text)",
                "scan.jpg: not sent, 2 pages (converted to PDF)",
            ],
        ),
        (
            3,
            [
                "invoice.pdf: sent, 3 pages",
                "logo.png: not faxed (PNG image shown in the mail's text)",
                "scan.jpg: not sent, 2 pages (converted to PDF)",
            ],
        ),
        (
            4,
            [
                "invoice.pdf: sent, 3 pages",
                "logo.png: not faxed (PNG image shown in the mail's text)",
                "scan.jpg: partly sent: page 1 of its 2 went through (converted to PDF)",
            ],
        ),
    ],
)
def test_each_document_is_sent_not_sent_or_included(through: int | None, lines: list[str]) -> None:
    documents = document_lines(MESSAGE, through)
    assert [f"{d.name}: {d.words}" for d in documents] == lines
    assert [d.faxed for d in documents] == [True, False, True]


@pytest.mark.parametrize(
    ("through", "words"),
    [(None, "included, ? pages"), (0, "not sent, ? pages"), (2, "sent, ? pages")],
)
def test_a_document_of_unknown_length_is_sent_only_with_the_whole_fax(
    through: int | None, words: str
) -> None:
    message = dataclasses.replace(MESSAGE, report=(part("odd.pdf", None), part("b.pdf", 2)))
    lines = [d.words for d in document_lines(message, through)]
    assert lines[0] == words
    assert lines[1].startswith(words.partition(",")[0])


@pytest.mark.parametrize(
    ("kind", "outcomes", "first_document"),
    [
        ("final", [FaxOutcome(True, "success", "f1", None)], "sent"),
        ("final", [failed("failed_user_busy")], "not sent"),
        ("final", [failed("expired", None)], "included"),  # FAX.PLUS never said
        ("final", [failed("failed_normal_clearing")], "included"),  # cut short: maybe some
        ("final", [failed("cancelled")], "not sent"),
        ("group", [FaxOutcome(True, "success", "f1", 5)] * 2, "sent"),
        ("group", [FaxOutcome(True, "success", "f1", 5), failed("failed_no_answer")], "included"),
        ("accepted", [None], "included"),
        ("delayed", [None], "included"),
    ],
)
def test_documents_are_said_sent_only_when_the_results_say_so(
    kind: str, outcomes: list[FaxOutcome | None], first_document: str
) -> None:
    faxes = [fax_fields(job(), MESSAGE, outcome) for outcome in outcomes]
    fields = receipt_fields(kind, MESSAGE, faxes, "gw")
    assert fields.documents[0].words.startswith(f"{first_document}, ")


@pytest.mark.parametrize(
    ("the_job", "outcome", "words"),
    [
        (job(S.DELIVERED), FaxOutcome(True, "success", "f1", 5), "delivered"),
        (job(), failed("failed_user_busy"), "not delivered: line busy"),
        (job(), failed("partially_sent", 2), "partly delivered: 2 pages sent"),
        (job(), failed("partially_sent", 0), "not delivered: the call ended early"),
        (
            job(S.CANCELLED),
            failed("cancelled"),
            "not sent: cancelled by the fax administrator",
        ),
        (job(S.CANCELLED), failed("failed"), "not sent: no reason given"),
    ],
)
def test_a_result_in_a_few_words(the_job: Job, outcome: FaxOutcome, words: str) -> None:
    """As the short receipt says it, when the usual one cannot be composed."""
    assert result_words(the_job, outcome) == words


def test_a_group_summary_counts_partial_faxes_apart() -> None:
    outcomes = [FaxOutcome(True, "success", "f1", 5), failed("partially_sent", 2), failed("failed")]
    faxes = [fax_fields(job(), MESSAGE, outcome) for outcome in outcomes]
    fields = receipt_fields("group", MESSAGE, faxes, "gw")
    assert fields.title == "Fax to 3 numbers: 1 delivered, 1 partly, 1 not (5 pages)"


@pytest.mark.parametrize(
    ("status", "detail", "told"),
    [
        ("cancelled", operator_cancellation("wrong clinic"), "wrong clinic"),
        ("cancelled", operator_cancellation(""), ""),
        ("cancelled", "the sender asked", "the sender asked"),
        ("rejected", "HTTP 400: invalid_payload", "HTTP 400: invalid_payload"),
        ("rejected", "Unauthorized (check [faxplus] token)", ""),
        (
            "expired",
            "the fax was not sent within 5 days (HTTP 503)",
            "the fax was not sent within 5 days",
        ),
        (
            "expired",
            "the fax was not sent within 2 days (HTTP 503 (down))",
            "the fax was not sent within 2 days",
        ),
        ("quarantined", "mailfax stopped while handling this fax 3 times", ""),
        ("failed_user_busy", "", ""),
    ],
)
def test_what_of_a_results_detail_the_sender_is_told(status: str, detail: str, told: str) -> None:
    assert detail_for_sender(status, detail) == told


def test_an_operators_cancellation_records_who_and_why() -> None:
    assert operator_cancellation("") == "cancelled by the gateway's administrator"
    assert operator_cancellation("x") == "cancelled by the gateway's administrator: x"


def test_a_cancellation_says_who_in_the_subject_and_why_once() -> None:
    outcome = failed("cancelled", detail=operator_cancellation("sent to the wrong clinic"))
    fax = fax_fields(job(S.CANCELLED), MESSAGE, outcome)
    assert fax.result == "not sent: cancelled by the fax administrator"
    assert fax.detail == "sent to the wrong clinic"
    assert "wrong clinic" not in fax.what_happened + fax.headline
    assert (fax.status, fax.faxplus_status) == ("cancelled", "")


@pytest.mark.parametrize(
    ("status", "faxplus_status"),
    [
        ("failed_user_busy", "failed_user_busy"),
        ("rejected", ""),
        ("expired", ""),
        ("success", "success"),
    ],
)
def test_only_faxpluss_own_statuses_are_called_so(status: str, faxplus_status: str) -> None:
    outcome = FaxOutcome(status == "success", status, "f1", 0)
    assert fax_fields(job(), MESSAGE, outcome).faxplus_status == faxplus_status


def parse(receipt: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(receipt.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


COMPOSER = ReceiptComposer("mailfax@gw.example.com", "gw.example.com", "fax.local")
EVERY_RECEIPT = {
    "delivered": lambda: COMPOSER.compose(
        job(S.DELIVERED), MESSAGE, FaxOutcome(True, "success", "f1", 5), NOW
    ),
    "partial": lambda: COMPOSER.compose(job(), MESSAGE, failed("partially_sent", 4), NOW),
    "busy": lambda: COMPOSER.compose(job(), MESSAGE, failed("failed_user_busy"), NOW),
    "rejected": lambda: COMPOSER.compose(
        job(), MESSAGE, failed("rejected", detail="Unauthorized (check [faxplus] token)"), NOW
    ),
    "expired": lambda: COMPOSER.compose(
        job(),
        MESSAGE,
        failed("expired", None, "the fax was not sent within 5 days ([queue] max_lifetime)"),
        NOW,
    ),
    "cancelled": lambda: COMPOSER.compose(
        job(S.CANCELLED),
        MESSAGE,
        failed("cancelled", detail=operator_cancellation("duplicate")),
        NOW,
    ),
    "accepted": lambda: COMPOSER.compose_accepted(MESSAGE, [("j1", "+12125550199")], NOW),
    "delayed": lambda: COMPOSER.compose_delayed(
        job(S.QUEUED, fax_status="failed_user_busy", error="HTTP 401 (check [faxplus] token)"),
        MESSAGE,
        NOW,
    ),
    "group": lambda: COMPOSER.compose_group(
        [
            job(S.DELIVERED, fax_status="success", pages_sent=5),
            job(fax_status="failed_no_answer", pages_sent=0),
        ],
        MESSAGE,
        NOW,
    ),
}


@pytest.mark.parametrize("kind", sorted(EVERY_RECEIPT))
def test_no_receipt_names_a_configuration_key_or_says_faxed(kind: str) -> None:
    receipt = parse(EVERY_RECEIPT[kind]())
    for body in ("plain", "html"):
        found = receipt.get_body((body,))
        assert found is not None
        text = str(found.get_content())
        assert not CONFIG_KEY.search(text), text
        assert ": faxed" not in text and "localhost" not in text
    assert not CONFIG_KEY.search(str(receipt["Subject"]))


TO = "+1 212-555-0199"
# kind -> (Subject, the text's first line, the first document's line)
SAID = {
    "delivered": (
        f"Fax delivered to {TO} (5 pages)",
        f"Your fax to {TO} was delivered: 5 of 5 pages sent.",
        "invoice.pdf: sent, 3 pages",
    ),
    "partial": (
        f"Fax to {TO} partly delivered: pages 1-4 of 5 sent",
        f"Your fax to {TO} was only partly delivered: pages 1-4 of 5 sent.",
        "invoice.pdf: sent, 3 pages",
    ),
    "busy": (
        f"Fax to {TO} not delivered: line busy",
        f"Your fax to {TO} was not delivered: line busy.",
        "invoice.pdf: not sent, 3 pages",
    ),
    "rejected": (
        f"Fax to {TO} not delivered: FAX.PLUS refused the fax",
        f"Your fax to {TO} was not delivered: FAX.PLUS refused the fax.",
        "invoice.pdf: not sent, 3 pages",
    ),
    "expired": (
        f"Fax to {TO} not delivered: not sent in time",
        f"Your fax to {TO} was not delivered: not sent in time.",
        "invoice.pdf: included, 3 pages",
    ),
    "cancelled": (
        f"Fax to {TO} not sent: cancelled by the fax administrator",
        f"Your fax to {TO} was not sent: cancelled by the fax administrator.",
        "invoice.pdf: not sent, 3 pages",
    ),
    "accepted": (
        f"Fax to {TO} accepted (5 pages)",
        f"mailfax has accepted your fax to {TO} and queued it for sending.",
        "invoice.pdf: included, 3 pages",
    ),
    "delayed": (
        f"Fax to {TO} delayed: not sent yet (5 pages)",
        f"Your fax to {TO} has not been sent after 0 seconds; mailfax is still trying.",
        "invoice.pdf: included, 3 pages",
    ),
    "group": (
        "Fax to 2 numbers: 1 delivered, 1 not (5 pages)",
        "Your fax was delivered to 1 of 2 numbers.",
        "invoice.pdf: included, 3 pages",
    ),
}


@pytest.mark.parametrize("kind", sorted(EVERY_RECEIPT))
def test_every_receipt_kind_read_back(kind: str) -> None:
    receipt = parse(EVERY_RECEIPT[kind]())
    title, first_line, document = SAID[kind]
    assert subject(receipt) == title
    text = text_part(receipt)
    assert text.split("\n")[0] == first_line
    assert f"  - {document}\n" in text
    assert banner(receipt) == first_line


@pytest.mark.parametrize(
    ("outcome", "block"),
    [
        (
            failed("cancelled", detail=operator_cancellation("duplicate")),
            "Reason given:\n  duplicate\n",
        ),
        (failed("rejected", detail="HTTP 400: bad file"), "FAX.PLUS said:\n  HTTP 400: bad file\n"),
        (failed("failed", detail="Line dropped"), "FAX.PLUS said:\n  Line dropped\n"),
        (
            failed("expired", None, "the fax was not sent within 5 days (HTTP 503: down)"),
            "Details:\n  the fax was not sent within 5 days\n",
        ),
        (failed("rejected", detail="Unauthorized (check [faxplus] token)"), ""),
        (failed("quarantined", detail="mailfax stopped while handling this fax 3 times"), ""),
    ],
)
def test_a_results_detail_under_whose_words_it_is(outcome: FaxOutcome, block: str) -> None:
    the_job = job(S.CANCELLED if outcome.status == "cancelled" else S.FAILED)
    text = text_part(parse(COMPOSER.compose(the_job, MESSAGE, outcome, NOW)))
    told = text.partition("Did mailfax try again?")[0].partition("What happened:\n")[2]
    assert told.partition("\n")[2] == block


@pytest.mark.parametrize(
    ("hostname", "sender", "fqdn", "host"),
    [
        ("fax.example.com", "receipts@example.org", "gw1.internal", "fax.example.com"),
        ("", "receipts@example.org", "gw1.internal", "example.org"),
        ("", "", "gw1.internal", "gw1.internal"),
        ("", "", "localhost", "fax.local"),
        ("", "", "localhost.localdomain", "fax.local"),
        ("", "", "", "fax.local"),
    ],
)
def test_the_host_receipts_name(hostname: str, sender: str, fqdn: str, host: str) -> None:
    env = {"MAILFAX_RECEIPTS_HOSTNAME": hostname, "MAILFAX_RECEIPTS_FROM": sender}
    assert reporting_host(load_settings(environ=env), fqdn) == host


@pytest.mark.parametrize("hostname", ["localhost", "fax example", "fax@example.com"])
def test_a_hostname_that_names_nobody_is_refused(hostname: str) -> None:
    with pytest.raises(ConfigError, match=r"\[receipts\] hostname = .* Fix: "):
        load_settings(environ={"MAILFAX_RECEIPTS_HOSTNAME": hostname})
