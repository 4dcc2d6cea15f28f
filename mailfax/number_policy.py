"""Pure number policy: which E.164 numbers may be faxed (countries, prefixes, number types)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType, shortnumberinfo

from mailfax.number_patterns import range_starts
from mailfax.policy import Refusal

_TYPE_NAMES = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate",
    PhoneNumberType.SHARED_COST: "shared-cost",
    PhoneNumberType.TOLL_FREE: "toll-free",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.MOBILE: "mobile",
}


# The same types as the metadata's PhoneNumberDesc fields, for the prefix rules of invalid numbers.
_TYPE_FIELDS = {
    "premium-rate": "premium_rate",
    "shared-cost": "shared_cost",
    "toll-free": "toll_free",
    "voip": "voip",
    "personal": "personal_number",
    "pager": "pager",
    "uan": "uan",
    "voicemail": "voicemail",
    "mobile": "mobile",
}
# How many leading digits of the national number a prefix rule looks at.
PREFIX_DIGITS = 3


# Fax numbers repeat (a scanner faxes the same few); a lookup costs ~0.2 ms of the event loop.
@functools.lru_cache(maxsize=4096)
def number_kinds(e164: str) -> frozenset[str]:
    """What phonenumbers knows this number to be: its type, and "emergency" / "short-code"."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return frozenset()
    kinds = set()
    kind = _TYPE_NAMES.get(phonenumbers.number_type(parsed))
    if kind:
        kinds.add(kind)
    national = phonenumbers.national_significant_number(parsed)
    regions = phonenumbers.region_codes_for_country_code(parsed.country_code or 0)
    # Written as +49112, "112@fax.local" with default_region DE is still the emergency line.
    if any(
        shortnumberinfo.connects_to_emergency_number(national, region)
        for region in regions
        if region != phonenumbers.UNKNOWN_REGION
    ):
        kinds.add("emergency")
    if shortnumberinfo.is_valid_short_number(parsed):
        kinds.add("short-code")
    return frozenset(kinds)


@functools.lru_cache(maxsize=4096)
def prefix_kinds(e164: str) -> frozenset[str]:
    """For a number libphonenumber finds invalid (a digit more or less), the types whose
    ranges its first PREFIX_DIGITS national digits begin: "+49 900 1234 5670" (one digit too
    many) starts like a premium-rate number. Empty for valid numbers: their type is known."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return frozenset()
    if phonenumbers.is_valid_number(parsed):
        return frozenset()
    national = phonenumbers.national_significant_number(parsed)
    start = national[:PREFIX_DIGITS]
    rules = _prefix_rules(parsed.country_code or 0)
    return frozenset(kind for kind, starts in rules.items() if start in starts)


@functools.lru_cache(maxsize=256)
def _prefix_rules(country_code: int) -> dict[str, frozenset[str]]:
    """Per type, the leading digits of its ranges in the metadata of the country code's
    regions, less those that also begin a fixed-line or mobile number (an invalid number
    starting like one of those could be an ordinary number mistyped)."""
    metadata = [
        found
        for region in phonenumbers.region_codes_for_country_code(country_code)
        if (found := PhoneMetadata.metadata_for_region(region)) is not None
    ]

    def starts(field: str) -> set[str]:
        return {p for md in metadata for p in range_starts(getattr(md, field, None), PREFIX_DIGITS)}

    ordinary = starts("fixed_line") | starts("mobile")
    rules = {kind: starts(field) for kind, field in _TYPE_FIELDS.items()}
    return {
        kind: frozenset(found if kind == "mobile" else found - ordinary)
        for kind, found in rules.items()
        if found
    }


@functools.lru_cache(maxsize=4096)
def country_of(e164: str) -> str:
    """ISO 3166 code of the number's country ("" if unknown); invalid numbers (+1 555 0199, let
    through by number_check = "possible") fall back to the country code's main region."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ""
    region = phonenumbers.region_code_for_number(parsed)
    if not region:
        region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    return "" if region == phonenumbers.UNKNOWN_REGION else str(region)


def normalise_prefix(text: str) -> str | None:
    """ "+44 9" -> "+449"; None when it is not "+" and digits."""
    prefix = "".join(text.split()).replace("-", "")
    return prefix if len(prefix) > 1 and prefix[0] == "+" and prefix[1:].isdigit() else None


@dataclass(frozen=True)
class NumberPolicy:
    """The rules a fax number must pass; `source` names where they come from in a refusal's
    rule (for operators)."""

    allowed_countries: frozenset[str] = frozenset()
    allowed_prefixes: tuple[str, ...] = ()
    blocked_prefixes: tuple[str, ...] = ()
    refused_types: frozenset[str] = frozenset()
    source: str = "[policy]"

    @classmethod
    def from_lists(
        cls, rules: Mapping[str, Sequence[str]], source: str = "[policy]"
    ) -> NumberPolicy:
        """From the [policy] keys (or a user's overrides of them)."""
        return cls(
            allowed_countries=frozenset(c.upper() for c in rules.get("allowed_countries", ())),
            allowed_prefixes=_prefixes(rules.get("allowed_prefixes", ())),
            blocked_prefixes=_prefixes(rules.get("blocked_prefixes", ())),
            refused_types=frozenset(rules.get("refused_types", ())),
            source=source,
        )

    def refusal(self, e164: str) -> Refusal | None:
        """Why a fax to `e164` is refused (550 5.7.1 naming the number, and the rule for
        operators), or None."""
        for prefix in self.blocked_prefixes:
            if e164.startswith(prefix):
                return self._refuse(e164, f"{prefix} is a blocked prefix", "blocked_prefixes")
        if self.allowed_prefixes and not e164.startswith(self.allowed_prefixes):
            return self._refuse(e164, "it has none of the allowed prefixes", "allowed_prefixes")
        if self.allowed_countries:
            country = country_of(e164)
            if country not in self.allowed_countries:
                where = f"{country} is" if country else "its country is"
                return self._refuse(e164, f"{where} not an allowed country", "allowed_countries")
        if not self.refused_types:
            return None
        refused = sorted(number_kinds(e164) & self.refused_types)
        if refused:
            article = "an" if refused[0][0] in "aeiou" else "a"
            return self._refuse(e164, f"it is {article} {refused[0]} number", "refused_types")
        refused = sorted(prefix_kinds(e164) & self.refused_types)
        if refused:
            why = f"it is not a valid number and starts like a {refused[0]} number"
            return self._refuse(e164, why, "refused_types")
        return None

    def _refuse(self, e164: str, why: str, key: str) -> Refusal:
        rule = f"[policy] {key}" if self.source == "[policy]" else f"{key} of {self.source}"
        # The sender reads what is wrong with the number; the rule is for the operator.
        return Refusal(550, "5.7.1", f"Fax to {e164} refused: {why}", rule=rule)


def _prefixes(texts: Sequence[str]) -> tuple[str, ...]:
    return tuple(p for p in (normalise_prefix(t) for t in texts) if p)
