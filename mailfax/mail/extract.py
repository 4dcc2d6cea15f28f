"""Pure message extraction: the faxable documents, the fax comment and a report of every part."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Literal

from mailfax.documents import check_pdf
from mailfax.mail.html import html_to_text
from mailfax.policy import Refusal

MAX_COMMENT_CHARS = 2000

Action = Literal["faxed", "ignored", "unreadable"]


@dataclass(frozen=True)
class Document:
    """One file to fax, in message order."""

    name: str
    data: bytes
    pages: int


@dataclass(frozen=True)
class PartReport:
    """What extraction did with one MIME part (shown in receipts and `mailfax inspect`)."""

    name: str
    content_type: str
    size: int
    pages: int | None
    action: Action
    reason: str


@dataclass(frozen=True)
class Extraction:
    """Everything the gateway needs from a message, or the refusal that answers it."""

    documents: tuple[Document, ...]
    parts: tuple[PartReport, ...]
    comment: str
    subject: str
    message_id: str
    auto_submitted: str
    refusal: Refusal | None

    @property
    def pages(self) -> int:
        return sum(doc.pages for doc in self.documents)


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")


def sanitise_filename(name: str | None, fallback: str) -> str:
    """Keep the last path component, drop control characters, bound the length."""
    if not name:
        return fallback
    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE_NAME.sub("", base).strip().strip(".") or fallback
    return base[:150]


def _is_pdf(content_type: str, name: str | None, data: bytes) -> bool:
    if content_type in ("application/pdf", "application/x-pdf"):
        return True
    if name and name.lower().endswith(".pdf"):
        return True
    # The PDF spec allows the header anywhere in the first 1024 bytes.
    return b"%PDF-" in data[:1024]


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def decode_text(part: Message) -> str:
    """A text part's content, surviving unknown or lying charsets."""
    data = _payload_bytes(part)
    charset = part.get_content_charset() or "us-ascii"
    for candidate in (charset, "utf-8"):
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment" or part.get_filename() is not None


def _header(message: Message, name: str) -> str:
    try:
        return str(message.get(name, "") or "").strip()
    except (ValueError, IndexError, TypeError):  # malformed encoded words
        return ""


def extract_documents(raw: bytes, max_comment_chars: int = MAX_COMMENT_CHARS) -> Extraction:
    """Parse a raw RFC 5322 message and decide what would be faxed."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    documents: list[Document] = []
    reports: list[PartReport] = []
    plain_bodies: list[str] = []
    html_bodies: list[str] = []
    refusal: Refusal | None = None

    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        raw_name = part.get_filename()
        data = _payload_bytes(part)
        if not _is_attachment(part) and content_type in ("text/plain", "text/html"):
            (plain_bodies if content_type == "text/plain" else html_bodies).append(
                decode_text(part)
            )
            continue
        if _is_pdf(content_type, raw_name, data):
            name = sanitise_filename(raw_name, f"document-{len(documents) + 1}.pdf")
            check = check_pdf(data)
            if check.problem is not None:
                reports.append(
                    PartReport(name, content_type, len(data), None, "unreadable", check.problem)
                )
                refusal = refusal or Refusal(550, "5.6.0", f"The PDF {name!r} {check.problem}.")
                continue
            documents.append(Document(name, data, check.pages))
            reports.append(PartReport(name, content_type, len(data), check.pages, "faxed", "PDF"))
            continue
        name = sanitise_filename(raw_name, content_type)
        reports.append(
            PartReport(name, content_type, len(data), None, "ignored", "not a PDF document")
        )

    if refusal is None and not documents:
        refusal = Refusal(550, "5.6.0", _nothing_faxable(reports))

    comment = "\n\n".join(b.strip() for b in plain_bodies if b.strip())
    if not comment:
        comment = "\n\n".join(html_to_text(h) for h in html_bodies).strip()
    return Extraction(
        documents=tuple(documents) if refusal is None else (),
        parts=tuple(reports),
        comment=comment[:max_comment_chars].strip(),
        subject=_header(message, "Subject"),
        message_id=_header(message, "Message-ID"),
        auto_submitted=_header(message, "Auto-Submitted").lower(),
        refusal=refusal,
    )


def _nothing_faxable(reports: list[PartReport]) -> str:
    if not reports:
        return "No document to fax: the message has only a text body. Attach a PDF."
    found = ", ".join(f"{r.name} ({r.content_type})" for r in reports[:5])
    more = f" and {len(reports) - 5} more" if len(reports) > 5 else ""
    return f"No document to fax: attach a PDF. Found only {found}{more}."


def original_headers(raw: bytes) -> EmailMessage:
    """The message's header block, for receipts (text/rfc822-headers)."""
    head, _, _ = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    return BytesParser(policy=policy.default).parsebytes(head + b"\n\n", headersonly=True)
