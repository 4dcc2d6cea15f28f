"""What a receipt says, field by field: a fax's state and headline, times, durations, costs,
the mail's comment and parts, and each receipt kind's title, headline and tone."""

from __future__ import annotations

import dataclasses
import time

import pytest

from mailfax.jobs import Job, JobState
from mailfax.mail.model import PartReport
from mailfax.receipts.fields import (
    MAX_COMMENT_CHARS,
    Attachments,
    ConfirmationReport,
    FaxOutcome,
    fax_fields,
    mail_fields,
    outcome_of,
    plural,
    receipt_fields,
    span,
)
from mailfax.store import MessageRecord

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
PARTS = (
    PartReport("invoice.pdf", "application/pdf", 1000, 3, "faxed", "PDF"),
    PartReport("scan.jpg", "image/jpeg", 500, 1, "converted", "JPEG image"),
    PartReport("logo.png", "image/png", 10, None, "ignored", "not a PDF document"),
    PartReport("empty.pdf", "application/pdf", 10, None, "faxed", "PDF"),
)
MESSAGE = MessageRecord(
    "m1", NOW, "alice@example.com", "<a@example.com>", "Invoice", "", "hi", PARTS, b""
)
S = JobState


def job(state: JobState = S.SUBMITTED, **changes: object) -> Job:
    base = Job("j1", "m1", "+17185554567", state, 1, NOW, NOW, fax_id="f1")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("the_job", "outcome", "state", "headline"),
    [
        (job(S.QUEUED), None, "queued", "is queued and will be sent shortly."),
        (
            job(S.QUEUED, fax_status="failed_no_answer"),
            None,
            "waiting to dial again",
            "is waiting to be dialled again.",
        ),
        (job(S.UPLOADING), None, "sending", "is being sent; mailfax is waiting for the result."),
        (job(S.SUBMITTED), None, "sending", "is being sent; mailfax is waiting for the result."),
        (
            job(S.DELIVERED),
            FaxOutcome(True, "success", "f1", 4),
            "delivered",
            "was delivered: 4 of 4 pages sent.",
        ),
        (
            job(S.FAILED),
            FaxOutcome(False, "partially_sent", "f1", 1),
            "partly delivered",
            "was only partly delivered: 1 of 4 pages sent.",
        ),
        (
            job(S.DELIVERED),
            FaxOutcome(True, "success", "f1", None),
            "delivered",
            "was delivered: 4 of 4 pages sent.",
        ),
        (
            job(S.FAILED),
            FaxOutcome(False, "failed", "f1", 0),
            "failed",
            "was not delivered: no reason given.",
        ),
        (
            job(S.FAILED),
            FaxOutcome(False, "failed_no_answer", "f1", None),
            "failed",
            "was not delivered: no answer.",
        ),
        (
            job(S.FAILED),
            FaxOutcome(False, "cancelled", None, 0),
            "cancelled",
            "was not sent: cancelled by the fax administrator.",
        ),
        (
            job(S.CANCELLED),
            FaxOutcome(False, "failed", None, 0),
            "cancelled",
            "was not sent: no reason given.",
        ),
    ],
)
def test_a_faxs_state_and_headline(
    the_job: Job, outcome: FaxOutcome | None, state: str, headline: str
) -> None:
    fax = fax_fields(the_job, MESSAGE, outcome)
    assert fax.state == state
    assert fax.headline == f"Your fax to +1 718-555-4567 {headline}"
    assert fax.final is (outcome is not None)
    assert fax.delivered is (state == "delivered")


def test_a_fax_not_yet_final_says_nothing_of_a_result() -> None:
    fax = fax_fields(job(S.QUEUED, fax_status="failed_user_busy", error="busy"), MESSAGE, None)
    assert (fax.status, fax.detail, fax.fax_id) == ("failed_user_busy", "busy", "f1")
    assert (fax.status_code, fax.what_happened, fax.retried, fax.what_to_do) == ("", "", "", "")
    assert (fax.started, fax.duration, fax.cost, fax.pages_sent) == ("", "", "", None)
    assert fax.state == "waiting to dial again"
    fresh = fax_fields(job(S.QUEUED, fax_id=None), MESSAGE, None)
    assert (fresh.status, fresh.detail, fresh.fax_id) == ("", "", "")


def test_a_final_fax_says_what_happened_and_what_to_do() -> None:
    outcome = FaxOutcome(False, "failed_unallocated_number", "f9", 0, detail="no such line")
    fax = fax_fields(job(S.FAILED, attempts=2), MESSAGE, outcome)
    assert fax.status_code == "5.1.1"
    assert fax.what_happened == "The number does not exist (it is not allocated to any line)."
    assert fax.retried == "mailfax did not try again: the same number would fail the same way."
    assert fax.what_to_do == "Check the number, including country and area code."
    assert (fax.detail, fax.fax_id, fax.attempts) == ("no such line", "f9", 2)
    assert (fax.number, fax.number_e164, fax.job_id) == ("+1 718-555-4567", "+17185554567", "j1")


@pytest.mark.parametrize(("redials", "retried"), [(0, "1 time"), (2, "3 times")])
def test_a_redialled_fax_counts_its_calls(redials: int, retried: str) -> None:
    outcome = FaxOutcome(False, "failed_user_busy", "f1", 0)
    fax = fax_fields(job(S.FAILED, redials=redials), MESSAGE, outcome)
    assert fax.retried == f"mailfax dialled {retried} in all before giving up."


def test_pages_submitted_count_faxed_and_converted_parts() -> None:
    # 3 (PDF) + 1 (converted image); the ignored logo and a PDF of unknown pages add nothing.
    assert fax_fields(job(), MESSAGE, None).pages_submitted == 4
    assert mail_fields(MESSAGE).pages_submitted == 4


@pytest.mark.parametrize(
    ("start_time", "duration", "cost", "shown"),
    [
        (
            "2026-11-26 10:00:00",
            95,
            3,
            ("2026-11-26 10:00:00 UTC", "1 min 35 s", "3 FAX.PLUS credits"),
        ),
        ("", 59.6, 1, ("", "1 min 0 s", "1 FAX.PLUS credit")),
        ("", 59.4, 0.5, ("", "59 s", "0.5 FAX.PLUS credits")),
        ("", 0, 0, ("", "0 s", "0 FAX.PLUS credits")),
        ("yesterday", None, None, ("yesterday", "", "")),
    ],
)
def test_start_time_duration_and_cost_as_shown(
    start_time: str, duration: float | None, cost: float | None, shown: tuple[str, str, str]
) -> None:
    outcome = FaxOutcome(True, "success", "f1", 4, start_time, duration=duration, cost=cost)
    fax = fax_fields(job(S.DELIVERED), MESSAGE, outcome)
    assert (fax.started, fax.duration, fax.cost) == shown


def test_the_outcome_a_final_job_recorded() -> None:
    recorded = job(
        S.FAILED,
        fax_status="failed_no_answer",
        pages_sent=0,
        fax_start_time="2026-11-26 10:00:00",
        error="no answer",
        fax_duration=12.5,
        fax_cost=1.0,
    )
    assert outcome_of(recorded) == FaxOutcome(
        False, "failed_no_answer", "f1", 0, "2026-11-26 10:00:00", "no answer", 12.5, 1.0
    )
    assert outcome_of(job(S.DELIVERED)) == FaxOutcome(True, "", "f1", None, "", "", None, None)


def test_only_a_report_that_was_fetched_is_mentioned() -> None:
    outcome = FaxOutcome(True, "success", "f1", 4)
    fetched = Attachments({"f1": ConfirmationReport("f1", b"%PDF-")})
    missing = Attachments({"f1": ConfirmationReport("f1", None, "not ready")})
    other = Attachments({"f2": ConfirmationReport("f2", b"%PDF-")})
    assert fax_fields(job(), MESSAGE, outcome, fetched).report_attached
    assert fax_fields(job(), MESSAGE, outcome, fetched).report_problem == ""
    assert fax_fields(job(), MESSAGE, outcome, missing).report_problem == "not ready"
    assert not fax_fields(job(), MESSAGE, outcome, missing).report_attached
    assert not fax_fields(job(), MESSAGE, outcome, other).report_attached


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 seconds"),
        (0.4, "0 seconds"),
        (1, "1 second"),
        (45, "45 seconds"),
        (60, "1 minute"),
        (61, "1 minute 1 second"),
        (3599, "59 minutes 59 seconds"),
        (3600, "1 hour"),
        (5400, "1 hour 30 minutes"),
        (3661, "1 hour 1 minute"),  # the two largest units only
        (86400, "1 day"),
        (2 * 86400 + 3 * 3600 + 7, "2 days 3 hours"),
    ],
)
def test_spans_of_time_in_words(seconds: float, words: str) -> None:
    assert span(seconds) == words


@pytest.mark.parametrize(
    ("count", "words"), [(None, "? pages"), (0, "0 pages"), (1, "1 page"), (2, "2 pages")]
)
def test_plural(count: int | None, words: str) -> None:
    assert plural(count, "page") == words


@pytest.mark.parametrize(
    ("comment", "shown"),
    [
        ("  Please   fax\n\tthis  ", "Please fax this"),
        ("x" * MAX_COMMENT_CHARS, "x" * MAX_COMMENT_CHARS),
        ("x" * (MAX_COMMENT_CHARS + 1), "x" * (MAX_COMMENT_CHARS - 3) + "..."),
    ],
)
def test_the_mails_comment_is_one_line_cut_at_300_characters(comment: str, shown: str) -> None:
    assert mail_fields(dataclasses.replace(MESSAGE, comment=comment)).comment == shown


def test_times_are_utc_whatever_the_gateways_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert mail_fields(MESSAGE).received == "2027-01-15 08:00:00 UTC"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_mails_fields() -> None:
    mail = mail_fields(MESSAGE)
    assert (mail.queue_id, mail.sender, mail.subject) == ("m1", "alice@example.com", "Invoice")
    assert mail.received == "2027-01-15 08:00:00 UTC"
    assert mail.parts == PARTS
    assert mail.faxed_parts == (PARTS[0], PARTS[1], PARTS[3])
    assert mail.ignored_parts == (PARTS[2],)


DELIVERED = FaxOutcome(True, "success", "f1", 4)
FAILED = FaxOutcome(False, "failed", "f2", 0)


@pytest.mark.parametrize(
    ("kind", "outcomes", "title", "headline", "tone"),
    [
        (
            "accepted",
            [None],
            "Fax to +1 718-555-4567 accepted (4 pages)",
            "mailfax has accepted your fax to +1 718-555-4567 and queued it for sending.",
            "waiting",
        ),
        (
            "accepted",
            [None, None],
            "Fax to 2 numbers accepted (4 pages)",
            "mailfax has accepted your fax to 2 numbers and queued it for sending.",
            "waiting",
        ),
        (
            "delayed",
            [None],
            "Fax to +1 718-555-4567 delayed: not sent yet (4 pages)",
            "Your fax to +1 718-555-4567 has not been sent after 1 hour 30 minutes; "
            "mailfax is still trying.",
            "waiting",
        ),
        (
            "final",
            [DELIVERED],
            "Fax delivered to +1 718-555-4567 (4 pages)",
            "Your fax to +1 718-555-4567 was delivered: 4 of 4 pages sent.",
            "good",
        ),
        (
            "final",
            [FAILED],
            "Fax to +1 718-555-4567 not delivered: no reason given",
            "Your fax to +1 718-555-4567 was not delivered: no reason given.",
            "bad",
        ),
        (
            "group",
            [DELIVERED, DELIVERED],
            "Fax delivered to 2 numbers (4 pages)",
            "Your fax was delivered to all 2 numbers.",
            "good",
        ),
        (
            "group",
            [DELIVERED, FAILED, FAILED],
            "Fax to 3 numbers: 1 delivered, 2 not (4 pages)",
            "Your fax was delivered to 1 of 3 numbers.",
            "bad",
        ),
        (
            "group",
            [DELIVERED, None],
            "Fax to 2 numbers: 1 delivered, 1 not (4 pages)",
            "Your fax was delivered to 1 of 2 numbers.",
            "waiting",
        ),
    ],
)
def test_each_kind_of_receipt_has_its_title_headline_and_tone(
    kind: str, outcomes: list[FaxOutcome | None], title: str, headline: str, tone: str
) -> None:
    faxes = [fax_fields(job(), MESSAGE, o) for o in outcomes]
    fields = receipt_fields(kind, MESSAGE, faxes, "gw.example.com", waited=5400.0)
    assert (fields.title, fields.headline, fields.tone) == (title, headline, tone)
    assert fields.kind == kind and fields.gateway == "gw.example.com"
    assert fields.faxes == tuple(faxes)
    assert fields.fax == (faxes[0] if kind in ("delayed", "final") else None)
    assert fields.delay == ("1 hour 30 minutes" if kind == "delayed" else "")
    assert fields.mail == mail_fields(MESSAGE)


def test_a_cancelled_fax_has_its_own_title() -> None:
    fax = fax_fields(job(S.CANCELLED), MESSAGE, FaxOutcome(False, "cancelled", None, 0))
    fields = receipt_fields("final", MESSAGE, [fax], "gw")
    assert fields.title == "Fax to +1 718-555-4567 not sent: cancelled by the fax administrator"


def test_when_mailfax_gives_up_and_whether_a_thumbnail_is_attached() -> None:
    fax = fax_fields(job(), MESSAGE, None)
    fields = receipt_fields("accepted", MESSAGE, [fax], "gw", gives_up=NOW + 86400)
    assert fields.gives_up == "2027-01-16 08:00:00 UTC"
    assert not fields.thumbnail_attached
    assert receipt_fields("accepted", MESSAGE, [fax], "gw").gives_up == ""
    assert receipt_fields("final", MESSAGE, [fax], "gw", True).thumbnail_attached
    assert receipt_fields("delayed", MESSAGE, [fax], "gw").delay == "0 seconds"
    variables = fields.variables()
    assert variables["kind"] == "accepted" and variables["mail"] == fields.mail


def left_out(*names: str) -> MessageRecord:
    report = PARTS + tuple(
        PartReport(name, "application/zip", 10, None, "ignored", "an archive", left_out=True)
        for name in names
    )
    return dataclasses.replace(MESSAGE, report=report)


@pytest.mark.parametrize(
    ("names", "outcome", "title", "headline", "tone"),
    [
        (
            ["a.zip"],
            DELIVERED,
            "Fax delivered to +1 718-555-4567 (4 pages), without a.zip",
            "a.zip could not be faxed and was left out of this fax. "
            "Your fax to +1 718-555-4567 was delivered: 4 of 4 pages sent.",
            "partial",
        ),
        (
            ["a.zip", "b.zip", "c.zip"],
            FAILED,
            "Fax to +1 718-555-4567 not delivered: no reason given, without a.zip, b.zip and c.zip",
            "a.zip, b.zip and c.zip could not be faxed and were left out of this fax. "
            "Your fax to +1 718-555-4567 was not delivered: no reason given.",
            "bad",
        ),
    ],
)
def test_a_fax_sent_without_some_attachments_says_so(
    names: list[str], outcome: FaxOutcome, title: str, headline: str, tone: str
) -> None:
    message = left_out(*names)
    fields = receipt_fields("final", message, [fax_fields(job(), message, outcome)], "gw")
    assert (fields.title, fields.headline, fields.tone) == (title, headline, tone)
