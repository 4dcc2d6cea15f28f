"""Sender rules: address patterns, DMARC-style alignment, and reading Authentication-Results."""

from __future__ import annotations

import pytest

from mailfax.sender_policy import (
    MethodResult,
    SenderPatterns,
    aligned,
    authentication_results_verdict,
    domain_of,
    parse_authentication_results,
)


def test_domain_of_an_address_ignores_case_and_a_trailing_dot() -> None:
    assert domain_of("Alice@Mail.Example.COM.") == "mail.example.com"
    assert domain_of('"a@b"@example.com') == "example.com"


def test_patterns_keep_every_address_and_domain() -> None:
    patterns = SenderPatterns.parse(["@Example.COM.", "alice@other.org", "@third.example"])
    assert patterns.domains == {"example.com", "third.example"}
    assert patterns.addresses == {"alice@other.org"}
    assert patterns.allows("bob@example.com")
    assert patterns
    assert SenderPatterns.parse(["alice@other.org"])
    assert SenderPatterns.parse(["@other.org"])
    assert not SenderPatterns.parse([])


@pytest.mark.parametrize("pattern", ["@.example.com", "@example", "@exa mple.com"])
def test_a_bad_domain_pattern_is_named_with_an_example(pattern: str) -> None:
    with pytest.raises(ValueError) as raised:
        SenderPatterns.parse([pattern])
    assert str(raised.value) == f"{pattern!r} is not @domain (e.g. @example.com)"


@pytest.mark.parametrize(
    ("domain", "other", "verdict"),
    [
        ("example.com", "example.com", True),
        ("Example.COM.", "example.com", True),
        ("example.com", "example.com.", True),
        ("a.example.com", "example.com", True),  # a subdomain either way round
        ("example.com", "a.example.com", True),
        ("com", "com", False),
        ("com", "example.com", False),
        ("badexample.com", "example.com", False),
        ("example.com.evil", "example.com", False),
    ],
)
def test_alignment(domain: str, other: str, verdict: bool) -> None:
    assert aligned(domain, other) is verdict


def test_comments_quotes_and_versions_are_read_past() -> None:
    server, results = parse_authentication_results(
        '(relay)mx.example.net 1; dkim/1=pass(good signature) header.d="example.com" '
        "header.b=AbC+dE= reason=ok; none; ; spf=fail smtp.mailfrom=bounce@example.com"
    )
    assert server == "mx.example.net"
    assert results == [
        MethodResult("dkim", "pass", {"header.d": "example.com", "header.b": "AbC+dE="}),
        MethodResult("spf", "fail", {"smtp.mailfrom": "bounce@example.com"}),
    ]


def test_a_header_without_authserv_id() -> None:
    assert parse_authentication_results("; dmarc=pass") == (
        "",
        [MethodResult("dmarc", "pass", {})],
    )


@pytest.mark.parametrize(
    ("results", "verdict"),
    [
        ("spf=fail smtp.mailfrom=a@example.com; dkim=pass header.d=example.com", None),
        ("dkim=fail header.d=example.com; spf=pass smtp.mailfrom=a@mail.example.com", None),
        ("dkim=pass", "neither DKIM nor SPF passed aligned with example.com"),
        ("spf=pass", "neither DKIM nor SPF passed aligned with example.com"),
        (
            "spf=pass smtp.mailfrom=bounce@other.org",
            "neither DKIM nor SPF passed aligned with example.com",
        ),
        (
            "dkim=pass header.d=other.org; spf=pass smtp.mailfrom=a@other.org",
            "neither DKIM nor SPF passed aligned with example.com",
        ),
        ("dmarc=none; dkim=pass header.d=example.com", "DMARC none for example.com"),
        ("arc=pass; dmarc=pass", None),
    ],
)
def test_authentication_verdicts(results: str, verdict: str | None) -> None:
    header = f"mx.example.net; {results}"
    assert authentication_results_verdict([header], "mx.example.net", "example.com") == verdict


def test_missing_or_foreign_headers_say_whose_header_is_wanted() -> None:
    assert authentication_results_verdict([], "MX.example.net", "example.com") == (
        "the mail has no Authentication-Results header from MX.example.net"
    )
    assert (
        authentication_results_verdict(
            ["other.example; dmarc=pass"], "MX.example.net", "example.com"
        )
        == "the topmost Authentication-Results header is not from MX.example.net"
    )
    # The authserv-id is compared without regard to case.
    assert (
        authentication_results_verdict(["mx.EXAMPLE.net; dmarc=pass"], "MX.example.net", "x")
        is None
    )
