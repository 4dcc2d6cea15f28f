"""Reading a fax recipient address: the number as written, or the refusal saying how to write it
(pure)."""

from __future__ import annotations

import pytest

from mailfax.policy import (
    FaxRecipient,
    Refusal,
    format_for_humans,
    read_number,
    read_recipient,
    recipient_ok,
)


@pytest.mark.parametrize(
    ("local", "region", "expected"),
    [
        ("+12125550199", "US", "+12125550199"),
        ("12125550199", "US", "+12125550199"),  # the US trunk prefix 1
        ("2125550199", "US", "+12125550199"),
        ("0012125550199", "US", "+12125550199"),  # 00, the ITU international prefix
        ("01112125550199", "US", "+12125550199"),  # 011, the US one
        ("1-212-555-0199", "US", "+12125550199"),
        ("(212)555-0199", "US", "+12125550199"),
        ("(212) 555-0199", "US", "+12125550199"),
        ("212.555.0199", "US", "+12125550199"),
        ("+1 (212) 555-0199", "US", "+12125550199"),
        ("030123456", "DE", "+4930123456"),  # the German trunk prefix 0
        ("+4930 123456", "US", "+4930123456"),
        ("+44 20 7946 0000", "US", "+442079460000"),
    ],
)
def test_numbers_dialable_as_written_become_e164(local: str, region: str, expected: str) -> None:
    assert read_number(local, region, "valid") == expected


NO_AREA_CODE = "is missing its area code; write it with its area code"
REFUSED = [
    # Observed in issue 16: seven digits are a local number, and no area code is guessed.
    ("555-0199", "US", "valid", f"{NO_AREA_CODE}, e.g. +12015550123"),
    ("1234567", "US", "valid", f"{NO_AREA_CODE}, e.g. +12015550123"),
    ("+15550199", "US", "valid", f"{NO_AREA_CODE}, e.g. +12015550123"),
    ("+15550199", "US", "possible", f"{NO_AREA_CODE}, e.g. +12015550123"),
    (
        "123456",
        "DE",
        "valid",
        "read as a DE number (+49 123456) is not a +49 number in use; write the number with its "
        "country code, e.g. +4930123456",
    ),
    # The example is of the number's own country.
    ("+49 301", "US", "valid", f"{NO_AREA_CODE}, e.g. +4930123456"),
    # A Berlin number typed without +: read in the US only, and the + form suggested.
    (
        "4930123456",
        "US",
        "valid",
        "read as a US number (+1 493-012-3456) cannot be dialled: +1 493 is not an area code "
        "in use; did you mean +4930123456?",
    ),
    (
        "442079460000",
        "US",
        "valid",
        "read as a US number (+1 442079460000) has a number of digits no +1 number has; "
        "did you mean +442079460000?",
    ),
    # No valid + form: told to write the country code. A possible but invalid one is no
    # suggestion either (+14930123456 is the very reading refused).
    (
        "14930123456",
        "US",
        "valid",
        "read as a US number (+1 493-012-3456) cannot be dialled: +1 493 is not an area code "
        "in use; write the number with its country code, e.g. +4930123456",
    ),
    (
        "9995550199",
        "US",
        "valid",
        "read as a US number (+1 999-555-0199) cannot be dialled: +1 999 is not an area code "
        "in use; write the number with its country code, e.g. +4930123456",
    ),
    ("+14930123456", "US", "valid", "cannot be dialled: +1 493 is not an area code in use"),
    ("0015551234567", "US", "valid", "cannot be dialled: +1 555 is not an area code in use"),
    ("+1 212 055 0199", "US", "valid", "is not a +1 number in use"),
    ("+1212", "US", "valid", "has too few digits for a +1 number"),
    ("+999123456", "US", "valid", "does not start with a country code"),
    ("+493", "US", "valid", "has too few digits"),
]


@pytest.mark.parametrize(("local", "region", "check", "problem"), REFUSED)
def test_numbers_not_dialable_as_written_are_refused_saying_why(
    local: str, region: str, check: str, problem: str
) -> None:
    refusal = read_number(local, region, check)
    assert isinstance(refusal, Refusal)
    assert (refusal.code, refusal.enhanced) == (550, "5.1.1")
    assert refusal.text == f"The fax number {local} {problem}"
    assert "[" not in refusal.text and not refusal.rule  # no configuration key for senders


def test_short_codes_are_left_to_the_number_rules() -> None:
    # An emergency number or short code is dialable as written: refused_types decides (and
    # says what it is) rather than a reply that it has too few digits.
    assert read_number("112", "DE", "valid") == "+49112"
    assert read_number("911", "US", "valid") == "+1911"


def test_possible_lets_numbers_of_unused_ranges_through_but_never_reads_another_country() -> None:
    assert read_number("+14930123456", "US", "possible") == "+14930123456"
    # Still the US reading: the digits are not taken for the German number they also spell.
    assert read_number("4930123456", "US", "possible") == "+14930123456"


@pytest.mark.parametrize(
    "local", ["abc", "1", "12", "+1", "12125550199x", "", "+99912345678901234567", "1-800-FAX"]
)
def test_text_that_is_no_number_is_none(local: str) -> None:
    assert read_number(local, "US", "valid") is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("12125550199@FAX.Local", FaxRecipient("+12125550199")),
        ('"(212) 555-0199"@fax.local', FaxRecipient("+12125550199")),
        ('"+1 (212) 555-0199"@fax.local', FaxRecipient("+12125550199")),
        ('"212\\.555\\.0199"@fax.local', FaxRecipient("+12125550199")),  # quoted-pairs
        # RFC 3192 minimal fax addresses; FAX= in any case; a T33S sub-address kept apart.
        ("FAX=+12125550199@fax.local", FaxRecipient("+12125550199")),
        ("/FAX=+12125550199/@fax.local", FaxRecipient("+12125550199")),
        ("fax=+12125550199@fax.local", FaxRecipient("+12125550199")),
        ("/Fax=+12125550199/T33S=6789/@fax.local", FaxRecipient("+12125550199", "6789")),
        ("FAX=+12125550199/t33s=1@fax.local", FaxRecipient("+12125550199", "1")),
    ],
)
def test_recipient_addresses_as_written(address: str, expected: FaxRecipient) -> None:
    assert read_recipient(address, "fax.local", "US", "valid") == expected


def test_an_rfc_3192_number_is_read_like_any_other() -> None:
    refusal = read_recipient("FAX=5550199@fax.local", "fax.local", "US", "valid")
    assert isinstance(refusal, Refusal) and "5550199 is missing its area code" in refusal.text


def test_number_check_reaches_the_reading() -> None:
    address = "+14930123456@fax.local"
    assert isinstance(read_recipient(address, "fax.local", "US", "valid"), Refusal)
    assert read_recipient(address, "fax.local", "US", "possible") == FaxRecipient("+14930123456")


def test_other_domain_is_relaying() -> None:
    verdict = read_recipient("12125550199@example.com", "fax.local", "US", "valid")
    assert verdict == Refusal(550, "5.7.1", "Relaying denied")


def test_bad_number_reply_names_the_address() -> None:
    verdict = read_recipient("sales@fax.local", "fax.local", "US", "valid")
    assert isinstance(verdict, Refusal)
    assert verdict.smtp_reply.startswith("550 5.1.1 <sales@fax.local>")


def test_the_acceptance_names_the_number_dialled() -> None:
    accepted = recipient_ok(FaxRecipient("+12125550199", "6789"))
    assert accepted == "250 2.1.5 Recipient ok: fax to +12125550199"


def test_human_format() -> None:
    assert format_for_humans("+17185554567") == "+1 718-555-4567"
