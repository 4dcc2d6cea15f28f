"""The simulator's outcome rules: the destination's last four digits choose the fax result,
the documents' names and types whether FAX.PLUS could convert them."""

from __future__ import annotations

import pytest

from mailfax.sandbox.dialling import (
    Document,
    Outcome,
    conversion_failure,
    display_number,
    new_fax_id,
    outcome_for,
)


@pytest.mark.parametrize(
    ("destination", "outcome"),
    [
        ("+17185550000", Outcome("success", "OK", 6)),
        ("+17185550013", Outcome("failed_user_busy", "User busy", 0)),
        ("+17185550014", Outcome("failed_no_answer", "No answer", 0)),
        ("+17185550015", Outcome("failed_unallocated_number", "Unallocated number", 0)),
        ("+17185550016", Outcome("partially_sent", "Partially sent", 3)),
        ("+17185550017", Outcome("success", "OK", 6)),
        ("+15550013999", Outcome("success", "OK", 6)),  # only the last four digits count
    ],
)
def test_the_last_four_digits_choose_the_result(destination: str, outcome: Outcome) -> None:
    assert outcome_for(destination, 6) == outcome


def test_a_partial_fax_sends_half_the_pages_rounded_down() -> None:
    assert outcome_for("+17185550016", 7).pages_sent == 3
    assert outcome_for("+17185550016", 1).pages_sent == 0


def test_a_number_that_does_not_answer_answers_a_redial() -> None:
    assert outcome_for("+17185550014", 6, redial_answered=True) == Outcome("success", "OK", 6)
    # Only the unanswered number: a busy one stays busy.
    busy = outcome_for("+17185550013", 6, redial_answered=True)
    assert busy == Outcome("failed_user_busy", "User busy", 0)


def test_a_failed_outcome_sends_nothing() -> None:
    assert Outcome.failed("insufficient_credit") == Outcome(
        "insufficient_credit", "Insufficient credit", 0
    )


@pytest.mark.parametrize(
    ("documents", "status"),
    [
        ([Document("a.pdf", "application/pdf", 2)], None),
        ([Document("a.PDF", "", 2)], None),  # no declared type: the name decides
        ([Document("scan.tif", "image/tiff", 1), Document("scan.tiff", "image/tiff", 3)], None),
        ([Document("a.pdf", "image/tiff", 2)], "failed_mimetype_not_supported"),
        ([Document("a.docx", "", 2)], "failed_office_converter_issue"),
        ([Document("a.jpg", "image/jpeg", 1)], "failed_office_converter_issue"),
        ([Document("a.zip", "application/zip", 1)], "failed_mimetype_not_supported"),
        ([Document("noextension", "", 1)], "failed_mimetype_not_supported"),
        # a name without a dot has no extension, even a name that reads like one
        ([Document("pdf", "application/pdf", 1)], "failed_mimetype_not_supported"),
        ([Document("docx", "", 1)], "failed_mimetype_not_supported"),
        # only the text after the last dot is the extension
        ([Document("report.v2.pdf", "application/pdf", 1)], None),
        ([Document("report.pdf.docx", "", 1)], "failed_office_converter_issue"),
        ([Document("empty.pdf", "application/pdf", 0)], "failed_office_converter_issue"),
        (
            [Document("a.pdf", "application/pdf", 1), Document("b.zip", "", 1)],
            "failed_mimetype_not_supported",
        ),
    ],
)
def test_what_the_simulated_converter_refuses(
    documents: list[Document], status: str | None
) -> None:
    assert conversion_failure(documents) == status


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("+13343041234", "+1 334-304-1234"),
        ("13343041234", "+1 334-304-1234"),
        ("+4930123456", "+49 30123456"),
        ("+23343041234", "+23 343041234"),  # eleven digits, not starting with 1
        ("+1334304123", "+13 34304123"),  # starting with 1, but ten digits
        ("no_number", "no_number"),
    ],
)
def test_numbers_as_the_api_prints_them(number: str, shown: str) -> None:
    assert display_number(number) == shown


def test_fax_ids_are_24_hex_digits() -> None:
    fax_id = new_fax_id()
    assert len(fax_id) == 24 and int(fax_id, 16) >= 0
