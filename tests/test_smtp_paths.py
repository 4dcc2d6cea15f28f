"""RFC 5321 paths of MAIL FROM and RCPT TO, read as written (pure)."""

from __future__ import annotations

import pytest

from mailfax.smtp.paths import read_path


@pytest.mark.parametrize(
    ("arg", "read"),
    [
        ("<alice@example.com>", ("alice@example.com", "")),
        ("<>", ("<>", "")),
        # A path has no comments: what RFC 5322 would drop is part of the local part.
        ("<(212)555-0199@fax.local>", ("(212)555-0199@fax.local", "")),
        ("<212.555.0199@fax.local>", ("212.555.0199@fax.local", "")),
        ('<"(212) 555-0199"@fax.local>', ('"(212) 555-0199"@fax.local', "")),
        (
            '<"+1 (212) 555-0199"@fax.local> NOTIFY=NEVER',
            ('"+1 (212) 555-0199"@fax.local', "NOTIFY=NEVER"),
        ),
        # Inside quotes, ">" and an escaped quote are text.
        ('<"a>b"@fax.local>', ('"a>b"@fax.local', "")),
        ('<"a\\"b"@fax.local> SIZE=10', ('"a\\"b"@fax.local', "SIZE=10")),
        ("<FAX=+12125550199@fax.local>", ("FAX=+12125550199@fax.local", "")),
        ("</FAX=+12125550199/T33S=1/@fax.local>", ("/FAX=+12125550199/T33S=1/@fax.local", "")),
        # A source route is ignored (RFC 5321 4.1.1.3).
        ("<@relay.example,@b.example:12125550199@fax.local>", ("12125550199@fax.local", "")),
        ("  <a@b>   SIZE=3  BODY=8BITMIME ", ("a@b", "SIZE=3  BODY=8BITMIME")),
        # aiosmtpd's leniencies: a bare mailbox, a path without its ">".
        ("a@b SIZE=3", ("a@b", "SIZE=3")),
        ("<a@b", ("a@b", "")),
        ("<postmaster>", ("postmaster", "")),
    ],
)
def test_paths_are_read_as_written(arg: str, read: tuple[str, str]) -> None:
    assert read_path(arg) == read


@pytest.mark.parametrize("arg", ["<a\rb@c>", "<a@b>\x00", "<@relay.example>", "<a\x7f@b>"])
def test_unreadable_paths(arg: str) -> None:
    assert read_path(arg) is None
