"""Pure sender policy: whose addresses a sender may use, and what Authentication-Results prove."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email


# Senders repeat from mail to mail; email-validator takes ~0.1 ms of the event loop per address.
@functools.lru_cache(maxsize=4096)
def normalise_address(text: str) -> str | None:
    """The address as mailfax compares it (checked by email-validator, case-folded), or None."""
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    return checked.normalized.casefold()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].casefold().rstrip(".")


@dataclass(frozen=True)
class SenderPatterns:
    """Addresses and `@domain` patterns; an address matches one exactly or by its domain."""

    addresses: frozenset[str]
    domains: frozenset[str]

    @classmethod
    def parse(cls, patterns: Iterable[str]) -> SenderPatterns:
        """Raises ValueError naming the first pattern that is neither an address nor @domain."""
        addresses: set[str] = set()
        domains: set[str] = set()
        for pattern in patterns:
            if pattern.startswith("@"):
                domain = pattern[1:].casefold().rstrip(".")
                if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", domain):
                    raise ValueError(f"{pattern!r} is not @domain (e.g. @example.com)")
                domains.add(domain)
                continue
            address = normalise_address(pattern)
            if address is None:
                raise ValueError(f"{pattern!r} is not an e-mail address or @domain")
            addresses.add(address)
        return cls(frozenset(addresses), frozenset(domains))

    def __bool__(self) -> bool:
        return bool(self.addresses or self.domains)

    def allows(self, address: str) -> bool:
        normalised = normalise_address(address)
        if normalised is None:
            return False
        return normalised in self.addresses or domain_of(normalised) in self.domains


def aligned(domain: str, other: str) -> bool:
    """DMARC relaxed alignment, approximated without the public suffix list: the same domain,
    or one a subdomain of the other, never matching on a bare top-level domain."""
    a, b = domain.casefold().rstrip("."), other.casefold().rstrip(".")
    if a == b:
        return "." in a
    shorter, longer = sorted((a, b), key=len)
    return "." in shorter and longer.endswith("." + shorter)


@dataclass(frozen=True)
class MethodResult:
    """One method's verdict in an Authentication-Results header (RFC 8601)."""

    method: str
    result: str
    properties: dict[str, str]


_COMMENT = re.compile(r"\([^()]*\)")


def parse_authentication_results(value: str) -> tuple[str, list[MethodResult]]:
    """(authserv-id, results) of one header value; comments and quoting are removed."""
    text = " ".join(value.split())
    while _COMMENT.search(text):
        text = _COMMENT.sub(" ", text)
    text = text.replace('"', "")
    head, *clauses = text.split(";")
    authserv_id = head.strip().split(" ")[0].casefold() if head.strip() else ""
    results: list[MethodResult] = []
    for clause in clauses:
        tokens = clause.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].partition("=")
        properties = {}
        for token in tokens[1:]:
            key, eq, prop = token.partition("=")
            if eq and "." in key:
                properties[key.casefold()] = prop
        results.append(MethodResult(method.casefold().split("/")[0], result.casefold(), properties))
    return authserv_id, results


def authentication_results_verdict(
    headers: Sequence[str], authserv_id: str, from_domain: str
) -> str | None:
    """None when the topmost Authentication-Results header, written by our own authserv-id,
    shows a DMARC pass, or an aligned DKIM or SPF pass; otherwise why not.

    Only the topmost header counts: the relay in front adds its own on top, and anything
    further down came with the mail, possibly forged by the sender."""
    if not headers:
        return f"the mail has no Authentication-Results header from {authserv_id}"
    server, results = parse_authentication_results(headers[0])
    if server != authserv_id.casefold():
        return f"the topmost Authentication-Results header is not from {authserv_id}"
    dmarc = [r.result for r in results if r.method == "dmarc"]
    if dmarc:
        # A present DMARC verdict is decisive: a fail must not fall back to DKIM alone.
        return None if "pass" in dmarc else f"DMARC {dmarc[0]} for {from_domain}"
    for r in results:
        if r.result != "pass":
            continue
        if r.method == "dkim" and aligned(r.properties.get("header.d", ""), from_domain):
            return None
        mailfrom = r.properties.get("smtp.mailfrom", "")
        if r.method == "spf" and aligned(domain_of(mailfrom), from_domain):
            return None
    return f"neither DKIM nor SPF passed aligned with {from_domain}"
