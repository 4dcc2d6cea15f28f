"""The email policies mailfax parses and composes with, and the one sanitiser of header values."""

from __future__ import annotations

import re
import unicodedata
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import HeaderParser
from typing import Any

# Headers longer than this are parsed each time rather than kept (a cache must stay small).
_MAX_CACHED_VALUE = 998
_MAX_CACHED = 4096


class ReusedHeaders(HeaderRegistry):
    """The standard header classes, each made once, and each (name, value) parsed once.

    The standard registry makes a new class for every header it hands out, and the standard
    policy parses a header again every time it is read: the parser reads a part's Content-Type
    four or five times, so header parsing was a third of extracting a mail. Parsed headers are
    immutable, so one object can serve every reader."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}
        self._parsed: dict[tuple[str, str], Any] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(key)
        return made

    def __call__(self, name: str, value: str) -> Any:
        if len(value) > _MAX_CACHED_VALUE:
            return self[name](name, value)
        key = (name, value)
        header = self._parsed.get(key)
        if header is None:
            if len(self._parsed) >= _MAX_CACHED:
                self._parsed.clear()
            header = self._parsed[key] = self[name](name, value)
        return header


MAIL_POLICY = policy.default.clone(header_factory=ReusedHeaders())

# RFC 5322 3.6.4 msg-id, as printable ASCII without white space: "<left@right>".
_MSG_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")


def header_safe(text: str) -> str:
    """`text` fit for one header line: control characters (CR, LF, NUL, ESC...) and every
    kind of line or paragraph break become spaces, runs of white space one space.

    Every value mailfax writes into a header passes through here (GeneratedHeaders applies
    it to each header set on a message it composes); folding and RFC 2047 encoding of
    non-ASCII text are then the email policy's, when the message is serialised."""
    if text.isascii() and text.isprintable():
        return text.strip()
    spaced = "".join(" " if unicodedata.category(char) == "Cc" else char for char in text)
    return " ".join(spaced.split())


def message_ids(text: str) -> list[str]:
    """The well-formed msg-ids in a Message-ID, In-Reply-To or References value, in order;
    anything else (an encoded-word, a stray header line, non-ASCII) is left out."""
    return _MSG_ID.findall(text or "")


def message_id_token(text: str) -> str:
    """A Message-ID value that is exactly one well-formed msg-id, else ""."""
    found = message_ids(text)
    return found[0] if len(found) == 1 and found[0] == text.strip() else ""


class GeneratedHeaders(policy.EmailPolicy):
    """The policy of messages mailfax composes (receipts): MAIL_POLICY, with every header value
    set on the message made header_safe first, so no value can break a header's line or add
    one (the standard policy raises ValueError instead)."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if isinstance(value, str):
            value = header_safe(value)
        return super().header_store_parse(name, value)


# 7-bit: non-ASCII text goes as quoted-printable or base64, so any smarthost takes the receipt.
GENERATED_POLICY = GeneratedHeaders(header_factory=ReusedHeaders(), cte_type="7bit")
# The same for a message that must be written with UTF-8 headers (RFC 6532): one to an
# internationalised address, which RFC 2047 cannot encode (it goes out with SMTPUTF8).
GENERATED_UTF8_POLICY = GENERATED_POLICY.clone(utf8=True)


# The empty line that ends the header section (bare LF line ends included).
_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")


def original_headers(raw: bytes) -> EmailMessage:
    """The mail's header section, parsed: UTF-8 read as UTF-8 (RFC 6532), other 8-bit bytes
    kept as surrogate escapes (parse.repair_8bit reads them)."""
    # Only the header section is handed to the parser: given the whole mail, it would read the
    # body too, line by line (a third of a second for 25 MB, on the event loop).
    end = _END_OF_HEADERS.search(raw)
    head = (raw[: end.end()] if end else raw).decode("utf-8", "surrogateescape")
    parsed = HeaderParser(policy=MAIL_POLICY).parsestr(head)
    assert isinstance(parsed, EmailMessage)
    return parsed
