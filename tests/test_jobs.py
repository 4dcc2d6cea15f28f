"""The job state machine: every allowed and every forbidden transition."""

from __future__ import annotations

import itertools
import random

import pytest

from mailfax.jobs import (
    ALLOWED,
    TERMINAL,
    JobState,
    TransitionError,
    account_problem,
    check_transition,
    new_id,
    retry_delay,
    should_redial,
)

S = JobState
EXPECTED_ALLOWED = {
    (S.QUEUED, S.UPLOADING),
    (S.QUEUED, S.FAILED),
    (S.QUEUED, S.CANCELLED),
    (S.UPLOADING, S.SUBMITTING),
    (S.UPLOADING, S.QUEUED),
    (S.UPLOADING, S.FAILED),
    (S.UPLOADING, S.CANCELLED),
    (S.SUBMITTING, S.SUBMITTED),
    (S.SUBMITTING, S.UNKNOWN),
    (S.SUBMITTING, S.QUEUED),
    (S.SUBMITTING, S.FAILED),
    (S.UNKNOWN, S.SUBMITTED),
    (S.UNKNOWN, S.QUEUED),
    (S.UNKNOWN, S.FAILED),
    (S.SUBMITTED, S.DELIVERED),
    (S.SUBMITTED, S.FAILED),
    (S.SUBMITTED, S.QUEUED),
    (S.SUBMITTED, S.CANCELLED),
}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(JobState, JobState)))
def test_transition_table(old: JobState, new: JobState) -> None:
    if (old, new) in EXPECTED_ALLOWED:
        check_transition(old, new)
    else:
        with pytest.raises(TransitionError):
            check_transition(old, new)


def test_a_refused_transition_names_both_states() -> None:
    with pytest.raises(TransitionError, match=r"^job cannot move from delivered to queued$"):
        check_transition(S.DELIVERED, S.QUEUED)


# The redials mailfax makes itself count against [faxplus] retries.
@pytest.mark.parametrize(
    ("redials", "retries", "redial"), [(0, 2, True), (1, 2, True), (3, 2, False), (0, 0, False)]
)
def test_redials_count_against_the_retries(redials: int, retries: int, redial: bool) -> None:
    assert should_redial("failed_user_busy", redials, retries) is redial


def test_terminal_states_are_final() -> None:
    assert all(not ALLOWED[state] for state in TERMINAL)


def test_a_send_in_flight_never_goes_straight_back_to_sending() -> None:
    # An ambiguous send must be reconciled first (UNKNOWN), never resent from SUBMITTING.
    assert S.UPLOADING not in ALLOWED[S.SUBMITTING]
    assert S.SUBMITTING not in ALLOWED[S.UNKNOWN]


def test_retry_delay_grows_with_age_and_is_clamped() -> None:
    rng = random.Random(1)
    assert 24 <= retry_delay(0, 30, 3600, rng) <= 36
    assert 480 <= retry_delay(600, 30, 3600, rng) <= 720
    assert retry_delay(10 * 86400, 30, 3600, rng) <= 3600 * 1.2


def test_retry_delay_is_the_clamped_age_times_the_drawn_jitter() -> None:
    assert retry_delay(600, 30, 3600, random.Random(7)) == 600 * random.Random(7).uniform(0.8, 1.2)
    low, high = FixedDraw(0.0), FixedDraw(1.0)  # the ends of the jitter band
    assert retry_delay(0, 30, 3600, low) == pytest.approx(24)
    assert retry_delay(10 * 86400, 30, 3600, high) == pytest.approx(4320)


class FixedDraw(random.Random):
    """A generator whose every draw is the same fraction of the way through its range."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


def test_ids_are_time_ordered_and_unique() -> None:
    # 11 hex digits of milliseconds, then 10 random hex digits.
    assert new_id(1.5)[:11] == f"{1500:011x}"
    assert all(len(new_id(1_700_000_000.0)) == 21 for _ in range(10))
    ids = [new_id(1_700_000_000 + i) for i in range(100)]
    assert ids == sorted(ids)
    assert len(set(new_id(1.0) for _ in range(1000))) == 1000


@pytest.mark.parametrize(
    ("status", "redial"),
    [
        ("failed_user_busy", True),
        ("failed_no_answer", True),
        # FAX.PLUS's docs call these transient: the system was busy, a network problem.
        ("failed_to_send", True),
        ("failed_normal_temporary_failure", True),
        ("failed_normal_clearing", True),
        ("failed_unallocated_number", False),
        ("failed_invalid_number_format", False),
        ("insufficient_credit", False),
        ("success", False),
    ],
)
def test_which_results_mailfax_dials_again(status: str, redial: bool) -> None:
    assert should_redial(status, redials=0, retries=2) is redial
    assert should_redial(status, redials=2, retries=2) is False  # retries used up


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        ("insufficient_credit", "insufficient_credit"),
        ("failed_office_converter_issue", "converter"),
        ("failed_mimetype_not_supported", "converter"),
        ("failed_user_busy", ""),
        ("failed_unallocated_number", ""),
        ("success", ""),
    ],
)
def test_which_results_are_the_operators_problem(status: str, problem: str) -> None:
    assert account_problem(status) == problem
