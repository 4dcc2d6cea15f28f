"""RFC 5321 paths of MAIL FROM and RCPT TO, read as written (pure)."""

from __future__ import annotations

import pytest

from mailfax.smtp.paths import read_path, write_path


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
        # An escaped quote does not close the string; the quote after it does.
        ('<"a\\""@b> X', ('"a\\""@b', "X")),
        # A source route is ignored (RFC 5321 4.1.1.3), up to its own colon only.
        ("<@relay.example,@b.example:12125550199@fax.local>", ("12125550199@fax.local", "")),
        ('<@relay.example:"x:y"@fax.local>', ('"x:y"@fax.local', "")),
        ("  <a@b>   SIZE=3  BODY=8BITMIME ", ("a@b", "SIZE=3  BODY=8BITMIME")),
        # aiosmtpd's leniencies: a bare mailbox, a path without its ">".
        ("a@b SIZE=3", ("a@b", "SIZE=3")),
        ('"a b"@c SIZE=3', ('"a b"@c', "SIZE=3")),
        ("<a@b>junk", ("a@b", "junk")),  # for aiosmtpd to refuse as a parameter
        ("<a@b", ("a@b", "")),
        ("<postmaster>", ("postmaster", "")),
    ],
)
def test_paths_are_read_as_written(arg: str, read: tuple[str, str]) -> None:
    assert read_path(arg) == read


@pytest.mark.parametrize("arg", ["<a\rb@c>", "<a@b>\x00", "<@relay.example>", "<a\x7f@b>"])
def test_unreadable_paths(arg: str) -> None:
    assert read_path(arg) is None


@pytest.mark.parametrize(
    ("address", "path"),
    [
        ("12125550199@fax.local", "<12125550199@fax.local>"),
        ("+1.212.555.0199@fax.local", "<+1.212.555.0199@fax.local>"),  # a dot-string as is
        ("/FAX=+12125550199/T33S=1/@fax.local", "</FAX=+12125550199/T33S=1/@fax.local>"),
        # Anything else is quoted, so that the reader keeps it as typed.
        ("(212) 555-0199@fax.local", '<"(212) 555-0199"@fax.local>'),
        ("(212)555-0199@fax.local", '<"(212)555-0199"@fax.local>'),
        ("a..b@c", '<"a..b"@c>'),
        (".a@c", '<".a"@c>'),
        ('say "hi"\\x@c', '<"say \\"hi\\"\\\\x"@c>'),
        ('"already quoted"@c', '<"already quoted"@c>'),
        ('"a@b"@c', '<"a@b"@c>'),  # the domain follows the last "@"
        ('""@c', '<""@c>'),
        ('"@c', '<"\\""@c>'),  # a lone quote is no quoted string
        ("postmaster", "<postmaster>"),
    ],
)
def test_paths_are_written_so_they_read_back_as_typed(address: str, path: str) -> None:
    assert write_path(address) == path
    mailbox, _ = read_path(path) or ("", "")
    local = mailbox.rpartition("@")[0]
    if local.startswith('"') and not address.startswith('"'):
        # The quoted string holds the local part as typed (quoted-pairs undone).
        assert local[1:-1].replace('\\"', '"').replace("\\\\", "\\") == address.rpartition("@")[0]
