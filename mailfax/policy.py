"""Pure address and number policy: fax recipient addresses to E.164, refusals as SMTP replies."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers


@dataclass(frozen=True)
class Refusal:
    """Why mail is not taken: becomes the SMTP reply (and `mailfax inspect` output)."""

    code: int
    enhanced: str
    text: str

    @property
    def smtp_reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


RELAY_DENIED = Refusal(550, "5.7.1", "Relaying denied")

# Visual separators people type inside numbers: 1-718-555-4567, (555) 123.4567.
_SEPARATORS = re.compile(r"[\s\-.()/]")


def parse_fax_recipient(address: str, domain: str, default_region: str) -> str | Refusal:
    """Turn `<number>@<domain>` into an E.164 number, or say why it is refused."""
    local, at, addr_domain = address.strip().rpartition("@")
    if not at or addr_domain.lower().rstrip(".") != domain.lower():
        return RELAY_DENIED
    number = normalise_number(local, default_region)
    if number is None:
        return Refusal(
            550,
            "5.1.1",
            f"<{address}> is not a fax number: write the number as the local part, "
            f"e.g. +17185554567@{domain}",
        )
    return number


@functools.lru_cache(maxsize=4096)  # numbers repeat; phonenumbers parses in pure Python
def normalise_number(text: str, default_region: str) -> str | None:
    """E.164 form of a written fax number, or None when it cannot be a phone number."""
    digits = _SEPARATORS.sub("", text)
    if digits.startswith("00"):
        # The ITU international prefix, common outside North America.
        digits = "+" + digits[2:]
    if not re.fullmatch(r"\+?[0-9]{3,17}", digits):
        return None
    candidates = [digits] if digits.startswith("+") else [digits, "+" + digits]
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, default_region.upper())
        except phonenumbers.NumberParseException:
            continue
        # is_possible, not is_valid: validity data lags real allocations and
        # rejects the reserved 555 test range; FAX.PLUS reports unallocated numbers.
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


def format_for_humans(e164: str) -> str:
    """+17185554567 -> +1 718-555-4567 (international format)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
