"""Pure reading of libphonenumber's range patterns: the digits the numbers of a range start with."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc

with warnings.catch_warnings():
    # The stdlib's own regular-expression parser: deprecated as a public name since 3.11, and
    # still the only way to read libphonenumber's patterns as data.
    warnings.simplefilter("ignore", DeprecationWarning)
    import sre_constants
    import sre_parse

# Every range of a region's metadata that holds numbers one can dial.
RANGE_FIELDS = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)


def range_starts(desc: PhoneNumberDesc | None, length: int) -> set[str]:
    """The `length`-digit strings that the national numbers of the range start with."""
    pattern = desc.national_number_pattern if desc is not None else None
    if not pattern:
        return set()
    try:
        found = _extend({""}, sre_parse.parse(pattern), length)
    except ValueError:  # a construct this reader does not know: no starts from it
        return set()
    return {start for start in found if len(start) == length}


@functools.lru_cache(maxsize=256)
def country_starts(country_code: int, length: int) -> frozenset[str]:
    """The `length`-digit starts of every dialable range of the country code's regions: for
    +1, the area codes in use."""
    return frozenset(
        start
        for region in phonenumbers.region_codes_for_country_code(country_code)
        if (metadata := PhoneMetadata.metadata_for_region(region)) is not None
        for field in RANGE_FIELDS
        for start in range_starts(getattr(metadata, field, None), length)
    )


def _extend(starts: set[str], items: Any, length: int) -> set[str]:
    """The beginnings (up to `length` digits) after matching the parsed `items`."""
    for op, arg in items:
        starts = _step(starts, op, arg, length)
    return starts


def _step(starts: set[str], op: Any, arg: Any, length: int) -> set[str]:
    if op is sre_constants.SUBPATTERN:
        return _extend(starts, arg[-1], length)
    if op is sre_constants.BRANCH:
        return set().union(*(_extend(starts, branch, length) for branch in arg[1]))
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
        low, high, repeated = arg
        found: set[str] = set()
        # Past `length` more repeats, every beginning is complete.
        for count in range(min(high, low + length) + 1):
            if count >= low:
                found |= starts
            starts = _extend(starts, repeated, length)
        return found
    if op is sre_constants.LITERAL:
        digits = {chr(arg)}
    elif op is sre_constants.IN:
        digits = _class_digits(arg)
    else:
        raise ValueError(f"unexpected pattern element {op}")
    return {s if len(s) >= length else s + d for s in starts for d in digits}


def _class_digits(items: Any) -> set[str]:
    """The digits a character class ([0-35], \\d, [^9]) admits."""
    negated = False
    admitted: set[str] = set()
    for op, arg in items:
        if op is sre_constants.NEGATE:
            negated = True
        elif op is sre_constants.LITERAL:
            admitted.add(chr(arg))
        elif op is sre_constants.RANGE:
            admitted.update(chr(code) for code in range(arg[0], arg[1] + 1))
        elif op is sre_constants.CATEGORY and arg is sre_constants.CATEGORY_DIGIT:
            admitted.update("0123456789")
        else:
            raise ValueError(f"unexpected class element {op}")
    return {digit for digit in "0123456789" if (digit in admitted) != negated}
