"""What extraction produces (documents, part reports) and the options it obeys.

Kept apart from the extraction code so that the gateway process, which only stores and reads
these, does not import the PDF and image libraries the extraction workers use."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mailfax.policy import Refusal

if TYPE_CHECKING:  # the extraction workers need no configuration code (nor its imports)
    from mailfax.config import Settings

Action = Literal["faxed", "converted", "ignored", "unreadable"]
BodyOnly = Literal["reject", "render"]


@dataclass(frozen=True)
class Document:
    """One file to fax, in message order; `data` is always PDF (images are converted)."""

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

    @property
    def is_faxed(self) -> bool:
        """Whether this part goes out in the fax (as it is, or converted to PDF)."""
        return self.action in ("faxed", "converted")


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
    sender_name: str = ""
    sender_address: str = ""  # the From header's (the envelope sender is the SMTP dialogue's)

    @property
    def pages(self) -> int:
        return sum(doc.pages for doc in self.documents)


@dataclass(frozen=True)
class ExtractionOptions:
    """The settings extraction obeys; built from `Settings` so SMTP and `inspect` agree."""

    max_pages: int = 200
    body_only: BodyOnly = "reject"
    max_comment_chars: int = 2000
    # LibreOffice's soffice executable; None = Office documents are reported, not converted.
    soffice: str | None = None
    convert_timeout: float = 120.0


def extraction_options(settings: Settings) -> ExtractionOptions:
    """The options of a configured gateway (looks LibreOffice up on PATH when office = auto)."""
    soffice = shutil.which("soffice") if settings.convert.office == "auto" else None
    body_only: BodyOnly = "render" if settings.smtp.body_only == "render" else "reject"
    return ExtractionOptions(
        max_pages=settings.smtp.max_pages,
        body_only=body_only,
        max_comment_chars=settings.faxplus.max_comment_chars,
        soffice=soffice,
        convert_timeout=settings.convert.timeout,
    )
