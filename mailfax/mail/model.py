"""What extraction produces (documents, part reports) and the options it obeys.

Kept apart from the extraction code so that the gateway process, which only stores and reads
these, does not import the PDF and image libraries the extraction workers use."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mailfax.policy import Refusal

if TYPE_CHECKING:  # the extraction workers need no configuration code (nor its imports)
    from mailfax.config import Settings

Action = Literal["faxed", "converted", "ignored", "unreadable"]
BodyOnly = Literal["reject", "render"]
Unfaxable = Literal["refuse", "fax-the-rest"]


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
    # An attachment the sender chose that is not in the fax ([smtp] unfaxable = fax-the-rest).
    left_out: bool = False

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
    convert_memory_bytes: int = 2_000_000_000
    convert_parallel: int = 1
    # Where conversions keep their slot locks and profile template ("" = a private temp dir).
    convert_dir: str = ""
    unfaxable: Unfaxable = "refuse"
    # A mail with a document to convert raises NeedsConversion instead (the SMTP gateway then
    # extracts it in its conversion lane).
    defer_conversion: bool = False
    # Decoded bytes one image frame may need, and all frames of one image together; known from
    # the image's header before it is decoded (0 = no limit).
    image_frame_bytes: int = 200_000_000
    image_total_bytes: int = 1_000_000_000
    # An image needing more than this decoded is extracted only with a large-mail slot held
    # (NeedsLargeSlot otherwise); 0 = never ask.
    large_decoded_bytes: int = 0
    # What one extraction worker may use per mail: CPU seconds and bytes of data memory
    # (0 = no limit). Only the workers enforce them (as resource limits).
    cpu_seconds: float = 0.0
    memory_bytes: int = 0


class NeedsLargeSlot(Exception):
    """The mail is small but decodes large: extract it again with a large-mail slot held."""


class NeedsConversion(Exception):
    """The mail has a document to convert: extract it again where conversions may run."""


# Images decoding to more than this take a large-mail slot, as mails over 1 MB do.
LARGE_DECODED_BYTES = 50_000_000


def extraction_options(settings: Settings) -> ExtractionOptions:
    """The options of a configured gateway (looks LibreOffice up on PATH when office = auto)."""
    from mailfax.config import parse_size  # the workers unpickle options without config code

    soffice = shutil.which("soffice") if settings.convert.office == "auto" else None
    body_only: BodyOnly = "render" if settings.smtp.body_only == "render" else "reject"
    unfaxable: Unfaxable = "fax-the-rest" if settings.smtp.unfaxable == "fax-the-rest" else "refuse"
    return ExtractionOptions(
        max_pages=settings.smtp.max_pages,
        body_only=body_only,
        max_comment_chars=settings.faxplus.max_comment_chars,
        soffice=soffice,
        convert_timeout=settings.convert.timeout,
        convert_memory_bytes=parse_size(settings.convert.memory),
        convert_parallel=settings.convert.max_parallel or os.cpu_count() or 1,
        convert_dir=str(settings.state_path),
        unfaxable=unfaxable,
        image_frame_bytes=parse_size(settings.limits.image_frame_memory),
        image_total_bytes=parse_size(settings.limits.image_total_memory),
        large_decoded_bytes=LARGE_DECODED_BYTES,
        cpu_seconds=settings.limits.extraction_cpu_seconds,
        memory_bytes=parse_size(settings.limits.extraction_memory),
    )
