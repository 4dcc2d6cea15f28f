"""Quota arithmetic: which counters a mail charges, their windows, and what a sender is told."""

from __future__ import annotations

import pytest

from mailfax.quotas import (
    DAY,
    EVERYONE,
    HOUR,
    QuotaCharge,
    QuotaExceeded,
    QuotaLimits,
    never_fits,
    quota_charges,
    window_start,
)

NOW = 1_700_000_123.0  # 2023-11-14 22:15:23 UTC
ALL_LIMITS = QuotaLimits(
    faxes_per_hour=5, pages_per_day=40, global_faxes_per_hour=100, global_pages_per_day=1000
)


def test_a_mail_charges_every_limited_counter() -> None:
    # Two faxes (recipients) of three pages each.
    charges = quota_charges("user:alice", 2, 3, ALL_LIMITS, NOW)
    assert [(c.counter, c.key, c.amount, c.limit, c.window) for c in charges] == [
        ("faxes-per-hour", "user:alice", 2, 5, HOUR),
        ("pages-per-day", "user:alice", 6, 40, DAY),
        ("faxes-per-hour", EVERYONE, 2, 100, HOUR),
        ("pages-per-day", EVERYONE, 6, 1000, DAY),
    ]


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_of_zero_is_no_limit(limit: int) -> None:
    limits = QuotaLimits(limit, limit, limit, limit)
    assert quota_charges("user:alice", 1, 1, limits, NOW) == ()


def test_a_limit_of_one_is_a_limit() -> None:
    (charge,) = quota_charges("user:alice", 1, 1, QuotaLimits(1, 0, 0, 0), NOW)
    assert (charge.counter, charge.limit) == ("faxes-per-hour", 1)


def test_windows_are_the_utc_hour_and_day() -> None:
    assert window_start(NOW, HOUR) == 1_700_002_800.0 - HOUR  # 22:00:00
    assert window_start(NOW, DAY) == 1_699_920_000.0  # 2023-11-14 00:00:00
    hourly = quota_charges("user:alice", 1, 1, ALL_LIMITS, NOW)[0]
    assert hourly.resets_at == 1_700_002_800.0  # 23:00:00


@pytest.mark.parametrize(
    ("counter", "key", "described"),
    [
        ("faxes-per-hour", "user:alice", "at most 5 faxes per hour for this sender"),
        ("pages-per-day", "sender:bob@example.com", "at most 5 pages per day for this sender"),
        ("faxes-per-hour", EVERYONE, "at most 5 faxes per hour for all senders"),
        ("pages-per-day", EVERYONE, "at most 5 pages per day for all senders"),
    ],
)
def test_every_counter_describes_itself(counter: str, key: str, described: str) -> None:
    charge = QuotaCharge(counter, key, window_start(NOW, DAY), DAY, 1, 5)
    assert charge.describe() == described
    assert str(QuotaExceeded(charge)) == described


def test_an_exceeded_quota_is_a_temporary_refusal_saying_when_to_retry() -> None:
    daily = quota_charges("user:alice", 1, 1, ALL_LIMITS, NOW)[1]
    exceeded = QuotaExceeded(daily)
    assert exceeded.charge is daily
    assert exceeded.smtp_reply == (
        "450 4.7.1 Quota exceeded: at most 40 pages per day for this sender; "
        "try again after 2023-11-15 00:00:00 UTC"
    )


def test_a_mail_larger_than_a_whole_quota_never_fits() -> None:
    # 3 faxes of 20 pages: 60 pages can never fit a 40-page day, retrying cannot help.
    charges = quota_charges("user:alice", 3, 20, ALL_LIMITS, NOW)
    too_big = never_fits(charges)
    assert too_big is charges[1]
    assert (too_big.counter, too_big.amount) == ("pages-per-day", 60)


def test_a_mail_exactly_as_large_as_a_quota_fits_an_empty_window() -> None:
    assert never_fits(quota_charges("user:alice", 5, 8, ALL_LIMITS, NOW)) is None
    assert never_fits(()) is None
