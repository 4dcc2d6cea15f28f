"""The email policy mailfax parses and composes with (the standard one, reusing parsed headers)."""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesParser
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


def original_headers(raw: bytes) -> EmailMessage:
    """The message's header block, for receipts (text/rfc822-headers)."""
    head, _, _ = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    return BytesParser(policy=MAIL_POLICY).parsebytes(head + b"\n\n", headersonly=True)
