"""The simulator's outcome rules: the destination's last four digits choose the fax result."""

from __future__ import annotations

import pytest

from mailfax.sandbox.state import Outcome, outcome_for


@pytest.mark.parametrize(
    ("destination", "outcome"),
    [
        ("+15551230000", Outcome("success", "OK", 6)),
        ("+15551230013", Outcome("failed_user_busy", "User busy", 0)),
        ("+15551230014", Outcome("failed_no_answer", "No answer", 0)),
        ("+15551230015", Outcome("failed_unallocated_number", "Unallocated number", 0)),
        ("+15551230016", Outcome("partially_sent", "Partially sent", 3)),
        ("+15551230017", Outcome("success", "OK", 6)),
        ("+15550013999", Outcome("success", "OK", 6)),  # only the last four digits count
    ],
)
def test_the_last_four_digits_choose_the_result(destination: str, outcome: Outcome) -> None:
    assert outcome_for(destination, 6) == outcome


def test_a_partial_fax_sends_half_the_pages_rounded_down() -> None:
    assert outcome_for("+15551230016", 7).pages_sent == 3
    assert outcome_for("+15551230016", 1).pages_sent == 0
