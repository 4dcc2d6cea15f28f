"""Pure quota arithmetic: which counters a mail charges, in which window, and when it resets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

HOUR = 3600.0
DAY = 86400.0
# Counters of windows older than this are deleted (the longest window is a day).
KEEP_COUNTERS = 2 * DAY

EVERYONE = "*"


@dataclass(frozen=True)
class QuotaLimits:
    """Limits in force for one sender; 0 = no limit."""

    faxes_per_hour: int
    pages_per_day: int
    global_faxes_per_hour: int
    global_pages_per_day: int


@dataclass(frozen=True)
class QuotaCharge:
    """One counter a mail adds to: (counter, key, window_start) is the store's row."""

    counter: str  # "faxes-per-hour" | "pages-per-day"
    key: str  # "user:alice", "sender:bob@example.com", or EVERYONE
    window_start: float
    window: float
    amount: int
    limit: int

    @property
    def resets_at(self) -> float:
        return self.window_start + self.window

    def describe(self) -> str:
        unit = "faxes per hour" if self.counter == "faxes-per-hour" else "pages per day"
        whose = "for all senders" if self.key == EVERYONE else "for this sender"
        return f"at most {self.limit} {unit} {whose}"


class QuotaExceeded(Exception):
    """Accepting the mail would go over `charge`'s limit; nothing was written."""

    def __init__(self, charge: QuotaCharge) -> None:
        super().__init__(charge.describe())
        self.charge = charge

    @property
    def smtp_reply(self) -> str:
        retry = datetime.fromtimestamp(self.charge.resets_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return f"450 4.7.1 Quota exceeded: {self.charge.describe()}; try again after {retry} UTC"


def window_start(now: float, window: float) -> float:
    """Fixed windows aligned to UTC: the hour, the day."""
    return now - now % window


def quota_charges(
    sender_key: str, faxes: int, pages: int, limits: QuotaLimits, now: float
) -> tuple[QuotaCharge, ...]:
    """The counters one mail of `faxes` faxes of `pages` pages each would add to."""
    total_pages = faxes * pages
    wanted = (
        ("faxes-per-hour", sender_key, HOUR, faxes, limits.faxes_per_hour),
        ("pages-per-day", sender_key, DAY, total_pages, limits.pages_per_day),
        ("faxes-per-hour", EVERYONE, HOUR, faxes, limits.global_faxes_per_hour),
        ("pages-per-day", EVERYONE, DAY, total_pages, limits.global_pages_per_day),
    )
    return tuple(
        QuotaCharge(counter, key, window_start(now, window), window, amount, limit)
        for counter, key, window, amount, limit in wanted
        if limit > 0
    )


def never_fits(charges: tuple[QuotaCharge, ...]) -> QuotaCharge | None:
    """A charge larger than its whole limit: retrying cannot help, so it is a 5xx."""
    return next((charge for charge in charges if charge.amount > charge.limit), None)
