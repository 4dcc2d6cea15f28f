"""Pure address and number reading: fax recipient addresses to E.164, refusals as SMTP replies."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberFormat, ValidationResult, shortnumberinfo

from mailfax.number_patterns import country_starts


@dataclass(frozen=True)
class Refusal:
    """Why mail is not taken: becomes the SMTP reply (and `mailfax inspect` output)."""

    code: int
    enhanced: str
    text: str
    # For operators only (logs, `mailfax inspect`): the setting behind the refusal. Senders
    # never see configuration keys.
    rule: str = ""

    @property
    def smtp_reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


RELAY_DENIED = Refusal(550, "5.7.1", "Relaying denied")
NUMBER_CHECKS = ("valid", "possible")
# The number the replies show as an example: the fictional range the simulator documents.
EXAMPLE_NUMBER = "+12125550199"


@dataclass(frozen=True)
class FaxRecipient:
    """A recipient address read: the number dialled, and an RFC 3192 T.33 sub-address that
    was written but is not dialled (FAX.PLUS has no sub-addresses)."""

    number: str
    subaddress: str = ""


# Visual separators people type inside numbers: 1-212-555-0199, (212) 555.0199.
_SEPARATORS = re.compile(r"[\s\-.()/]")
# RFC 3192 minimal fax addresses: FAX=+12125550199, /FAX=+12125550199/T33S=6789/.
_RFC3192 = re.compile(r"/?FAX=(?P<number>[^/]*)(?:/T33S=(?P<sub>[^/]*))?/?", re.IGNORECASE)


def read_recipient(
    address: str, domain: str, default_region: str, number_check: str
) -> FaxRecipient | Refusal:
    """How `<local part>@<domain>`, as written in RCPT TO, is read: the number to fax, or
    why it is refused."""
    local, at, addr_domain = address.strip().rpartition("@")
    if not at or addr_domain.lower().rstrip(".") != domain.lower():
        return RELAY_DENIED
    written = _unquoted(local)
    subaddress = ""
    form = _RFC3192.fullmatch(written)
    if form is not None:
        written, subaddress = form["number"], form["sub"] or ""
    number = _read_number(written, default_region, number_check)
    if number is None:
        return Refusal(
            550,
            "5.1.1",
            f"<{address}> is not a fax number: write the number as the local part, "
            f"e.g. {EXAMPLE_NUMBER}@{domain}",
        )
    if isinstance(number, Refusal):
        return number
    return FaxRecipient(number, subaddress)


def recipient_ok(recipient: FaxRecipient) -> str:
    """The RCPT TO reply accepting the recipient: it names the number that will be dialled."""
    return f"250 2.1.5 Recipient ok: fax to {recipient.number}"


def _unquoted(local: str) -> str:
    """The text of an RFC 5321 quoted-string local part ("(212) 555-0199"), else as is."""
    if local[:1] == local[-1:] == '"':
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def read_number(written: str, default_region: str, number_check: str) -> str | Refusal | None:
    """E.164 form of a written fax number; a 550 5.1.1 saying what is wrong with it and how
    to write it; or None when the text is no phone number at all.

    A number with "+" or "00" is read as international; any other in `default_region` only
    (its trunk prefix included). The digits are never read as another country's number:
    that is only suggested."""
    digits = _SEPARATORS.sub("", written)
    if digits.startswith("00"):
        # The ITU international prefix, common outside North America.
        digits = "+" + digits[2:]
    if not re.fullmatch(r"\+?[0-9]{3,17}", digits):
        return None
    region = default_region.upper()
    parsed = _parse(digits, region)
    if isinstance(parsed, str):
        return _refused(written, parsed)
    e164 = _e164(parsed)
    # Short codes and emergency numbers are numbers too: [policy] refused_types decides them,
    # with a reply that says what they are.
    if shortnumberinfo.is_valid_short_number(parsed):
        return e164
    problem = _problem(parsed, valid_only=number_check != "possible")
    if problem is None:
        return e164
    if problem == MISSING_AREA_CODE:
        # An example of the number's own country: what a whole number there looks like.
        country = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        example = phonenumbers.example_number(country)
        shown = _e164(example) if example is not None else EXAMPLE_NUMBER
        return _refused(written, f"{problem}; write it with its area code, e.g. {shown}")
    if digits.startswith("+"):
        return _refused(written, problem)  # written as it is meant: only the sender knows more
    reading = phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL)
    problem = f"read as a {region} number ({reading}) {problem}"
    # Only suggested, and only a number that is valid, never merely possible.
    suggestion = _parse("+" + digits, None)
    if not isinstance(suggestion, str) and _problem(suggestion, valid_only=True) is None:
        return _refused(written, f"{problem}; did you mean +{digits}?")
    fix = f"write the number with its country code, e.g. {FOREIGN_EXAMPLE}"
    return _refused(written, f"{problem}; {fix}")


# Numbers repeat, and phonenumbers parses in pure Python. (Cached here, not by decorating
# read_number, whose body mutation testing could then not reach.)
_read_number = functools.lru_cache(maxsize=4096)(read_number)

MISSING_AREA_CODE = "is missing its area code"
# A number of another country than the default region, as the replies show one.
FOREIGN_EXAMPLE = "+4930123456"

_PARSE_PROBLEMS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "does not start with a country code",
    phonenumbers.NumberParseException.TOO_LONG: "has too many digits",
}


def _parse(digits: str, region: str | None) -> phonenumbers.PhoneNumber | str:
    """The parsed number, or what keeps libphonenumber from reading it (a phrase)."""
    try:
        return phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException as exc:
        return _PARSE_PROBLEMS.get(exc.error_type, "has too few digits")


def _e164(parsed: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def _problem(parsed: phonenumbers.PhoneNumber, valid_only: bool) -> str | None:
    """What keeps the number from being dialled as written (a phrase), or None; a possible
    number that libphonenumber does not know to be valid passes unless `valid_only`."""
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    country = f"+{parsed.country_code}"
    if reason == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        return MISSING_AREA_CODE
    if reason == ValidationResult.INVALID_COUNTRY_CODE:
        return f"does not start with a country code ({country} is none)"
    if reason == ValidationResult.TOO_SHORT:
        return f"has too few digits for a {country} number"
    if reason in (ValidationResult.TOO_LONG, ValidationResult.INVALID_LENGTH):
        return f"has a number of digits no {country} number has"
    if not valid_only or phonenumbers.is_valid_number(parsed):
        return None
    national = phonenumbers.national_significant_number(parsed)
    if parsed.country_code == 1 and national[:3] not in country_starts(1, 3):
        return f"cannot be dialled: {country} {national[:3]} is not an area code in use"
    return f"is not a {country} number in use"


def _refused(written: str, problem: str) -> Refusal:
    return Refusal(550, "5.1.1", f"The fax number {written} {problem}")


def format_for_humans(e164: str) -> str:
    """+17185554567 -> +1 718-555-4567 (international format)."""
    parsed = _parse(e164, None)
    if isinstance(parsed, str):
        return e164
    return phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL)
