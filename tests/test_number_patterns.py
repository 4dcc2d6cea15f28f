"""What libphonenumber's range patterns start with, read as data (pure)."""

from __future__ import annotations

import pytest
from phonenumbers import PhoneNumberDesc

from mailfax.number_patterns import country_starts, range_starts


def digits(*ranges: str) -> set[str]:
    """ "20-23" -> {"20", "21", "22", "23"}."""
    found = set()
    for text in ranges:
        low, _, high = text.partition("-")
        found |= {str(n) for n in range(int(low), int(high or low) + 1)}
    return found


@pytest.mark.parametrize(
    ("pattern", "starts"),
    [
        ("2[0-35]\\d{3}", digits("20-23", "25")),
        ("(?:2[0-35]|9\\d)\\d{3}", digits("20-23", "25", "90-99")),
        ("[^0-7]8?\\d", digits("80-89", "90-99")),  # the optional 8: 8, then any digit
        ("[1-3]", set()),  # numbers shorter than the start looked at
        ("1(?:2|34)", {"12", "13"}),
        ("1(2|34)", {"12", "13"}),  # a capturing group
        ("5{2,}", {"55"}),
        ("7\\d*?", digits("70-79")),
        ("(?:4|5)?6\\d", digits("46", "56", "60-69")),
        ("[13579]0", {"10", "30", "50", "70", "90"}),
        ("a\\b", set()),  # constructs the reader does not know: no starts rather than wrong ones
        ("[a-c]1", set()),
        ("[\\w]1", set()),
        ("", set()),
    ],
)
def test_range_starts(pattern: str, starts: set[str]) -> None:
    assert range_starts(PhoneNumberDesc(national_number_pattern=pattern), 2) == starts


def test_no_range_starts_nothing() -> None:
    assert range_starts(None, 3) == set()


def test_the_area_codes_in_use_under_plus_1() -> None:
    country_starts.cache_clear()  # derived from the metadata in this test
    area_codes = country_starts(1, 3)
    assert {"212", "646", "718", "800", "416"} <= area_codes  # NYC, toll-free, Toronto
    assert not {"493", "555", "999", "111"} & area_codes
