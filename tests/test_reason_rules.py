"""What a receipt tells the sender for every fax result: the enhanced status code, the sentence
saying what happened, and whether mailfax tried again."""

from __future__ import annotations

import pytest

from mailfax.jobs import REDIAL_STATUSES
from mailfax.receipts.reasons import REASONS, UNKNOWN, reason_for

REDIALLED = "mailfax dialled again later, as often as the gateway allows."
BAD_FILE = "FAX.PLUS could not convert the document for faxing."
TEMPORARY = "The fax network reported a temporary problem."

# status -> (RFC 3463 code, what happened)
EVERY_RESULT = {
    "success": ("2.0.0", "The receiving fax machine confirmed every page."),
    "partially_sent": ("5.4.0", "The call ended before every page was sent."),
    "partially_received": ("5.4.0", "The call ended before every page was sent."),
    "insufficient_credit": ("5.7.0", "The fax account has run out of credit."),
    "failed": ("5.0.0", "The fax could not be delivered."),
    "failed_internal_process_error": ("5.3.0", "FAX.PLUS had an internal error while sending."),
    "failed_user_busy": ("5.4.0", "The receiving line was busy every time it was called."),
    "failed_no_answer": (
        "5.4.1",
        "Nobody answered: the receiving fax machine did not pick up.",
    ),
    "failed_unallocated_number": (
        "5.1.1",
        "The number does not exist (it is not allocated to any line).",
    ),
    "failed_office_converter_issue": ("5.6.0", BAD_FILE),
    "failed_separate_file_pages_issue": ("5.6.0", BAD_FILE),
    "failed_render_header_issue": (
        "5.3.0",
        "FAX.PLUS could not print the fax header on the pages.",
    ),
    "failed_invalid_number_format": (
        "5.1.1",
        "The number is not written in a form the fax network accepts.",
    ),
    "failed_mimetype_not_supported": ("5.6.1", "FAX.PLUS does not accept this kind of document."),
    "failed_destination_not_supported": (
        "5.7.1",
        "This destination cannot be faxed from this account (a special-service number, "
        "or a country the plan does not cover).",
    ),
    "failed_image_preparation": ("5.6.0", BAD_FILE),
    "failed_to_send": ("5.3.0", "The fax system was too busy to send the fax."),
    "failed_normal_temporary_failure": ("5.4.0", TEMPORARY),
    "failed_unknown_converter_issue": ("5.6.0", BAD_FILE),
    "failed_normal_clearing": ("5.4.0", "The receiving side hung up before the fax was complete."),
    "failed_convert_to_tiff_issue": ("5.6.0", BAD_FILE),
    "failed_fs_49": ("5.4.0", TEMPORARY),
    "failed_fs_2": ("5.4.0", TEMPORARY),
    # mailfax's own outcomes
    "rejected": ("5.0.0", "FAX.PLUS refused to take the fax."),
    "expired": (
        "5.4.7",
        "The fax could not be sent in time: FAX.PLUS was unreachable or gave no result.",
    ),
    "quarantined": (
        "5.3.0",
        "mailfax failed repeatedly while handling this fax and put it aside.",
    ),
    "cancelled": ("5.0.0", "The gateway's administrator cancelled the fax before it was sent."),
}


@pytest.mark.parametrize(("status", "expected"), sorted(EVERY_RESULT.items()))
def test_every_result_has_its_code_and_sentence(status: str, expected: tuple[str, str]) -> None:
    reason = reason_for(status)
    assert (reason.status_code, reason.what_happened) == expected


def test_the_table_has_no_result_beyond_these() -> None:
    assert set(REASONS) == set(EVERY_RESULT)


@pytest.mark.parametrize("status", ["failed_user_busy", "failed_no_answer"])
def test_busy_and_unanswered_faxes_were_redialled(status: str) -> None:
    assert reason_for(status).retried == REDIALLED


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        ("failed_unallocated_number", "the same number would fail the same way"),
        ("failed_mimetype_not_supported", "the same document would fail the same way"),
        ("partially_sent", "so that the pages that arrived are not faxed twice"),
        ("failed", "mailfax does not resend after this result on its own."),
        ("expired", "mailfax kept trying until the fax's time limit ran out."),
    ],
)
def test_other_results_say_why_there_was_no_retry(status: str, retried: str) -> None:
    assert retried in reason_for(status).retried


def test_an_unknown_status_is_reported_as_unknown_not_as_an_error() -> None:
    reason = reason_for("failed_something_new")
    assert reason is UNKNOWN
    assert reason.status_code == "5.0.0"
    assert reason.what_to_do == "Contact your fax administrator with the fax id below."


@pytest.mark.parametrize(
    "status", ["failed_to_send", "failed_normal_temporary_failure", "failed_normal_clearing"]
)
def test_results_mailfax_redials_say_so(status: str) -> None:
    """The statuses FAX.PLUS calls transient are redialled (jobs.REDIAL_STATUSES): their
    reason must not say mailfax did not try again."""
    assert status in REDIAL_STATUSES
    assert reason_for(status).retried == reason_for("failed_user_busy").retried
