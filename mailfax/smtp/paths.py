"""Pure RFC 5321 MAIL FROM and RCPT TO paths: read with the mailbox as written, and written."""

from __future__ import annotations

import re


def read_path(arg: str) -> tuple[str, str] | None:
    """The mailbox of a MAIL or RCPT argument exactly as the client wrote it, and the
    parameters after it; None when it cannot be read.

    RFC 5321 4.1.2: a path has no comments, so "(212)" in "<(212)555-0199@fax.local>" is part
    of the local part (RFC 5322's header parser would drop it), and a quoted string keeps its
    quotes for the reader of the local part. A source route ("<@a,@b:x@y>") is ignored
    (RFC 5321 4.1.1.3). As aiosmtpd did, a mailbox without angle brackets is read up to the
    first space, and "<>" (the null path) is returned as "<>"."""
    text = arg.strip()
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        return None
    if not text.startswith("<"):
        end = _end_of(text, 0, " ")
        return text[:end], text[end:].strip()
    # Without its ">" the path runs to the end, as aiosmtpd read it.
    end = _end_of(text, 1, ">")
    mailbox, rest = text[1:end], text[end + 1 :]
    if mailbox.startswith("@"):
        _route, colon, mailbox = mailbox.partition(":")
        if not colon:
            return None
    return (mailbox or "<>"), rest.strip()


def _end_of(text: str, start: int, stop: str) -> int:
    """Where `stop` first occurs in `text` from `start` outside a quoted string (with its
    backslash escapes); len(text) when it does not."""
    quoted = False
    index = start
    while index < len(text):
        char = text[index]
        if quoted and char == "\\":
            index += 1
        elif char == '"':
            quoted = not quoted
        elif char == stop and not quoted:
            return index
        index += 1
    return len(text)


# RFC 5321 4.1.2 Dot-string: atoms of atext joined by single dots.
_DOT_STRING = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def write_path(address: str) -> str:
    """The RFC 5321 path of `address` for MAIL or RCPT: "<...>", the local part quoted when it
    is no dot-string ("(212) 555-0199" becomes a quoted string, which read_path keeps)."""
    local, at, domain = address.rpartition("@")
    already_quoted = len(local) >= 2 and local[0] == local[-1] == '"'
    if not at or already_quoted or _DOT_STRING.fullmatch(local):
        return f"<{address}>"
    quoted = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'<"{quoted}"@{domain}>'
