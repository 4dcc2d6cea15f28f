"""Number normalisation and recipient policy (pure)."""

from __future__ import annotations

import pytest

from mailfax.policy import Refusal, format_for_humans, normalise_number, parse_fax_recipient


@pytest.mark.parametrize(
    ("local", "region", "expected"),
    [
        ("+17185554567", "US", "+17185554567"),
        ("17185554567", "US", "+17185554567"),
        ("0017185554567", "US", "+17185554567"),
        ("1-718-555-4567", "US", "+17185554567"),
        ("(718) 555.4567", "US", "+17185554567"),
        ("7185554567", "US", "+17185554567"),
        ("030123456", "DE", "+4930123456"),
        ("+4930123456", "US", "+4930123456"),
        ("442079460000", "US", "+442079460000"),
    ],
)
def test_written_numbers_become_e164(local: str, region: str, expected: str) -> None:
    assert normalise_number(local, region) == expected


@pytest.mark.parametrize(
    "local", ["abc", "1", "12345", "+1", "17185554567x", "", "+99912345678901234567"]
)
def test_impossible_numbers_are_refused(local: str) -> None:
    assert normalise_number(local, "US") is None


def test_recipient_domain_is_case_insensitive() -> None:
    assert parse_fax_recipient("17185554567@FAX.Local", "fax.local", "US") == "+17185554567"


def test_other_domain_is_relaying() -> None:
    verdict = parse_fax_recipient("17185554567@example.com", "fax.local", "US")
    assert verdict == Refusal(550, "5.7.1", "Relaying denied")


def test_bad_number_reply_names_the_address() -> None:
    verdict = parse_fax_recipient("sales@fax.local", "fax.local", "US")
    assert isinstance(verdict, Refusal)
    assert verdict.smtp_reply.startswith("550 5.1.1 <sales@fax.local>")


def test_human_format() -> None:
    assert format_for_humans("+17185554567") == "+1 718-555-4567"
