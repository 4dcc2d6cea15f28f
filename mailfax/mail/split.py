"""The stdlib parser's message tree for well-formed mail, built by splitting at boundaries in C.

The email package's feed parser reads a message line by line in Python: for a fax mail, most
lines are the attachment's base64, and that loop was half of an extraction worker's time. A
well-formed mail's structure can be found with string searches instead: headers end at the first
empty line, a multipart's parts lie between its boundary lines. `split_message` builds exactly
the tree the feed parser would (the same header objects, payloads, preamble and epilogue), using
the stdlib parser for every header block, and returns None for anything it is not sure of
(defects, unusual line breaks, embedded messages, digests); the caller then runs the stdlib
parser. A test compares both on every corpus mail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message
from email.parser import Parser

from mailfax.mail.headers import MAIL_POLICY

# Line breaks the feed parser honours besides CRLF and LF (str.splitlines): left to it.
_UNUSUAL_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
# A header block as the feed parser's headerRE reads it, line by line ("From " lines excluded:
# the parser treats them specially).
_HEADER_BLOCK = re.compile(r"(?:(?:[\041-\071\073-\176]*:|[\t ])[^\n]*\n)*")
_END_OF_HEADERS = re.compile(r"\n\r?\n")
_HEADER_PARSER = Parser(policy=MAIL_POLICY)


def split_message(raw: bytes) -> Message | None:
    """The tree `BytesParser(policy=MAIL_POLICY).parsebytes(raw)` gives, or None."""
    # Searches in C over the bytes: a regular expression took longer than the parse it saves.
    if raw.count(b"\r") != raw.count(b"\r\n") or any(b in raw for b in _UNUSUAL_BREAKS):
        return None
    return _message(raw.decode("ascii", "surrogateescape"), inner=False)  # as BytesParser does


def _message(text: str, inner: bool) -> Message | None:
    """One message or part; `inner`: a part of a multipart, whose last line break belongs to
    the boundary after it."""
    if text.startswith(("\n", "\r\n")):
        head, body = "", text[1 if text[0] == "\n" else 2 :]
    else:
        end = _END_OF_HEADERS.search(text)
        if end is None:
            return None
        head, body = text[: end.start() + 1], text[end.end() :]
    if _HEADER_BLOCK.fullmatch(head) is None:
        return None
    message = _HEADER_PARSER.parsestr(head + "\n", headersonly=True)
    if message.defects:
        return None
    maintype = message.get_content_maintype()
    if maintype == "message":
        return None
    if maintype == "multipart":
        return _multipart(message, body, inner)
    if inner:
        body = _without_last_break(body)
    message.set_payload(body)
    return message


def _multipart(message: Message, body: str, inner: bool) -> Message | None:
    boundary = message.get_boundary()
    encoding = str(message.get("content-transfer-encoding", "8bit")).lower()
    if not boundary or encoding not in ("7bit", "8bit", "binary"):
        return None
    if message.get_content_type() == "multipart/digest":  # its parts default to message/rfc822
        return None
    lines = _boundary_lines(body, "--" + boundary)
    first = next(lines, None)
    if first is None or first.group("end"):
        return None
    parts: list[Message | str] = []
    previous = first
    for line in lines:
        part = _message(body[previous.end() : line.start()], inner=True)
        if part is None:  # also an empty part: two boundary lines in a row
            return None
        parts.append(part)
        previous = line
        if line.group("end"):
            break
    else:
        return None  # no closing boundary
    if first.start():
        message.preamble = _without_last_break(body[: first.start()])
    epilogue = body[previous.end() :]
    # Inside a multipart the last line break is the next boundary's; an empty one is None.
    if inner:
        message.epilogue = _without_last_break(epilogue) if epilogue else None
    else:
        message.epilogue = epilogue
    message.set_payload(parts)
    return message


def _boundary_lines(body: str, separator: str) -> Iterator[re.Match[str]]:
    """The lines of `body` that the feed parser's boundary pattern matches, in order."""
    line = re.compile(re.escape(separator) + r"(?P<end>--)?[ \t]*(?:\r?\n|\Z)")
    marker = "\n" + separator
    # Line starts beginning with the separator; find() returns -1 (so 0 here) when none is left.
    start: int | None = 0 if body.startswith(separator) else body.find(marker) + 1 or None
    while start is not None:
        found = line.match(body, start)
        if found:
            yield found
        start = body.find(marker, start) + 1 or None


def _without_last_break(text: str) -> str:
    # Not a regular expression anchored at the end: that one tries every position of a 100 KB body.
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
