"""What a part really is, from its content first, then its declared type, then its file name."""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal[
    "pdf",
    "jpeg",
    "png",
    "tiff",
    "image",  # an image format that is not faxed (GIF, BMP, HEIC, WebP, ...)
    "tnef",
    "message",
    "outlook-item",
    "office",
    "archive",
    "calendar",
    "contact",
    "signature",
    "text",
    "other",
]

FAXABLE_IMAGES: tuple[Kind, ...] = ("jpeg", "png", "tiff")
# Kinds that hold other files: a PDF inside one is not the part itself (a winmail.dat or a ZIP
# of PDFs has "%PDF-" in its first KB when its first file is stored uncompressed).
CONTAINERS: frozenset[Kind] = frozenset({"tnef", "message", "outlook-item", "office", "archive"})
# Kinds a mail client attaches by itself (signatures, keys, invitations, contact cards): never
# a document the sender meant to fax, so leaving one out is no partial fax.
NOT_DOCUMENTS: frozenset[Kind] = frozenset({"signature", "calendar", "contact"})

# Types that say nothing about the content: the name and the bytes decide.
GENERIC_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/octetstream",
        "application/binary",
        "application/unknown",
        "application/x-unknown",
        "application/download",
        "application/x-download",
        "application/force-download",
        "application/save",
        "binary/octet-stream",
    }
)

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

_MAGIC: tuple[tuple[bytes, Kind], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"GIF87a", "image"),
    (b"GIF89a", "image"),
    (b"BM", "image"),
    (b'x\x9f>"', "tnef"),
    (b"PK\x03\x04", "archive"),  # also .docx/.xlsx: the name refines it
    (b"\x1f\x8b", "archive"),
    (b"Rar!", "archive"),
    (b"7z\xbc\xaf\x27\x1c", "archive"),
)

_TYPES: dict[str, Kind] = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/acrobat": "pdf",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/pjpeg": "jpeg",
    "image/png": "png",
    "image/x-png": "png",
    "image/tiff": "tiff",
    "image/tif": "tiff",
    "image/x-tiff": "tiff",
    "application/ms-tnef": "tnef",
    "application/vnd.ms-tnef": "tnef",
    "message/rfc822": "message",
    "application/vnd.ms-outlook": "outlook-item",
    "text/calendar": "calendar",
    "application/ics": "calendar",
    "application/pkcs7-signature": "signature",
    "application/x-pkcs7-signature": "signature",
    "application/pgp-signature": "signature",
    "application/pgp-keys": "signature",
    "text/vcard": "contact",
    "text/x-vcard": "contact",
    "text/directory": "contact",
    "application/pkcs7-mime": "signature",
    "application/x-pkcs7-mime": "signature",
    "application/msword": "office",
    "application/rtf": "office",
    "text/rtf": "office",
    "application/vnd.ms-excel": "office",
    "application/vnd.ms-powerpoint": "office",
    "application/zip": "archive",
    "application/x-zip-compressed": "archive",
    "application/gzip": "archive",
    "application/x-gzip": "archive",
    "application/x-rar-compressed": "archive",
    "application/x-7z-compressed": "archive",
    "application/x-tar": "archive",
}

_EXTENSIONS: dict[str, Kind] = {
    "pdf": "pdf",
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "jpe": "jpeg",
    "png": "png",
    "tif": "tiff",
    "tiff": "tiff",
    "gif": "image",
    "bmp": "image",
    "heic": "image",
    "webp": "image",
    "tnef": "tnef",
    "eml": "message",
    "msg": "outlook-item",
    "ics": "calendar",
    "vcf": "contact",
    "vcs": "calendar",
    "p7s": "signature",
    "asc": "signature",
    "sig": "signature",
    "zip": "archive",
    "gz": "archive",
    "tgz": "archive",
    "rar": "archive",
    "7z": "archive",
    "tar": "archive",
    "txt": "text",
    "csv": "text",
}
_OFFICE_EXTENSIONS = frozenset(
    {
        *("doc", "docx", "docm", "dot", "dotx", "rtf", "odt", "ott", "wpd", "pages"),
        *("xls", "xlsx", "xlsm", "ods", "ppt", "pptx", "pps", "ppsx", "odp"),
    }
)


def extension(name: str | None) -> str:
    if not name or "." not in name:
        return ""
    return name.rsplit(".", 1)[1].strip().lower()


def kind_by_content(data: bytes) -> Kind | None:
    """The kind the first bytes announce (a PDF's header at the start)."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[257:262] == b"ustar":  # a tar file's first member header
        return "archive"
    return None


def has_late_pdf_header(data: bytes) -> bool:
    """A PDF header after some junk (the PDF spec allows it anywhere in the first 1024 bytes),
    where the junk is not the start of a container that holds the PDF."""
    at = data.find(b"%PDF-", 0, 1024)
    return at > 0 and not is_container_prefix(data[:at])


# What comes before a file stored inside a container: a ZIP entry's local header (also after a
# self-extractor's stub), a tar member's header ("ustar" at 257), a mail's or a MIME part's
# header lines.
_CONTAINER_MARKS = (b"PK\x03\x04", b"ustar", b"Content-Type:", b"Content-Disposition:")
_HEADER_LINE = re.compile(rb"\A(?:From |[!-9;-~]+:[ \t])")


def is_container_prefix(prefix: bytes) -> bool:
    """Whether the bytes before a PDF header show the PDF is stored inside a container."""
    folded = prefix.lower()
    if any(mark.lower() in folded for mark in _CONTAINER_MARKS):
        return True
    return _HEADER_LINE.match(prefix) is not None


def kind_by_type(declared: str | None) -> Kind | None:
    if declared is None or declared in GENERIC_TYPES:
        return None
    if declared in _TYPES:
        return _TYPES[declared]
    if declared.startswith("image/"):
        return "image"
    if declared.startswith(("application/vnd.openxmlformats", "application/vnd.oasis.opendoc")):
        return "office"
    if declared.startswith("message/"):
        return "other"  # delivery and disposition reports: machine-readable, never faxed
    if declared.startswith("text/"):
        return "text"
    return "other"


def kind_by_name(name: str | None) -> Kind | None:
    suffix = extension(name)
    if suffix in _OFFICE_EXTENSIONS:
        return "office"
    return _EXTENSIONS.get(suffix)


def identify(declared: str | None, name: str | None, data: bytes) -> Kind:
    """The part's kind: magic bytes win over the declared type, which wins over the name; a
    PDF header after the first byte only where neither says the part is a container."""
    by_content = kind_by_content(data)
    by_name = kind_by_name(name)
    if by_content == "archive" and by_name == "office":
        return "office"  # .docx, .xlsx, .odt are ZIP files
    if data.startswith(_OLE):
        # Office 97 files and Outlook .msg items share the OLE container.
        if by_name in ("office", "outlook-item"):
            return by_name
        return kind_by_type(declared) or "other"
    if by_content is not None:
        return by_content
    claimed = kind_by_type(declared) or by_name
    if claimed not in CONTAINERS and has_late_pdf_header(data):
        return "pdf"
    return claimed or "other"
