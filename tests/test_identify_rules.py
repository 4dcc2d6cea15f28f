"""What a part is: its bytes win over its declared type, which wins over its file name."""

from __future__ import annotations

import pytest

from mailfax.mail.identify import extension, identify, kind_by_type

PDF = b"%PDF-1.7\n"
ZIP = b"PK\x03\x04rest"
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest"
PLAIN = b"just some words"


@pytest.mark.parametrize(
    ("declared", "name", "data", "kind"),
    [
        # the bytes decide, whatever the type and name say
        ("application/octet-stream", "scan.bin", PDF, "pdf"),
        ("image/png", "photo.png", b"\xff\xd8\xff\xe0", "jpeg"),
        ("text/plain", None, b"GIF89a...", "image"),
        # a PDF header at the very first byte wins even over a declared container
        ("application/zip", "docs.zip", PDF, "pdf"),
        ("application/ms-tnef", "winmail.dat", PDF, "pdf"),
        # a container's signature wins over a PDF header near its start
        ("application/ms-tnef", "winmail.dat", b'x\x9f>"\x01\x00' + bytes(40) + PDF, "tnef"),
        ("application/zip", "docs.zip", ZIP + PDF, "archive"),
        # a ZIP is an office document when its name says so (.docx, .xlsx, .odt are ZIPs)
        ("application/octet-stream", "letter.docx", ZIP, "office"),
        ("application/zip", "letter.zip", ZIP, "archive"),
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            None,
            ZIP,
            "archive",
        ),
        # OLE containers: Office 97 documents and Outlook items, told apart by name then type
        ("application/octet-stream", "old.doc", OLE, "office"),
        ("application/octet-stream", "mail.msg", OLE, "outlook-item"),
        ("application/msword", None, OLE, "office"),
        ("application/octet-stream", "thing.bin", OLE, "other"),
        ("application/octet-stream", "note.txt", OLE, "other"),
        # unknown bytes: the declared type, then the name
        ("application/pdf", "x.bin", PLAIN, "pdf"),
        ("image/heic", None, PLAIN, "image"),
        ("application/vnd.oasis.opendocument.text", None, PLAIN, "office"),
        (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            None,
            PLAIN,
            "office",
        ),
        ("message/delivery-status", None, PLAIN, "other"),
        ("message/rfc822", None, PLAIN, "message"),
        ("text/html", None, PLAIN, "text"),
        ("application/x-whatever", "scan.pdf", PLAIN, "other"),
        ("application/octet-stream", "scan.PDF", PLAIN, "pdf"),
        ("application/octet-stream", "budget.xlsx", PLAIN, "office"),
        (None, "notes.txt", PLAIN, "text"),
        (None, "no-extension", PLAIN, "other"),
        (None, None, PLAIN, "other"),
    ],
)
def test_what_a_part_is(declared: str | None, name: str | None, data: bytes, kind: str) -> None:
    assert identify(declared, name, data) == kind


@pytest.mark.parametrize(
    ("declared", "kind"),
    [
        (None, None),
        ("application/octet-stream", None),
        ("binary/octet-stream", None),
        ("image/x-png", "png"),
        ("image/webp", "image"),
        ("application/vnd.oasis.opendocument.spreadsheet", "office"),
        ("message/disposition-notification", "other"),
        ("text/csv", "text"),
        ("video/mp4", "other"),
    ],
)
def test_declared_types(declared: str | None, kind: str | None) -> None:
    assert kind_by_type(declared) == kind


def test_a_pdf_header_counts_anywhere_in_the_first_1024_bytes() -> None:
    assert identify(None, None, b" " * 1019 + b"%PDF-") == "pdf"
    assert identify(None, None, b" " * 1020 + b"%PDF-") == "other"


TAR_HEADER = b"invoice.pdf".ljust(257, b"\0") + b"ustar\x0000" + bytes(250)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        # junk a reader skips: still the PDF
        (b"\r\n\r\n" + PDF, "pdf"),
        (b"garbage from a scanner " + PDF, "pdf"),
        (b"\n" + PDF, "pdf"),
        # the first PDF header decides, not one the PDF embeds after a ZIP entry of its own
        (b"garbage from a scanner " + PDF + ZIP + PDF, "pdf"),
        # a file inside a container: the container
        (b"MZ\x90\x00" + bytes(60) + ZIP[:4] + b"invoice.pdf" + PDF, "other"),
        (TAR_HEADER + PDF, "archive"),
        (b"From: bob@example.com\r\nSubject: scan\r\n\r\n" + PDF, "other"),
        (b"Content-Type: application/pdf\r\n\r\n" + PDF, "other"),
        (b"From bob@example.com Mon Dec  7 10:00:00 2026\n" + PDF, "other"),
    ],
)
def test_a_pdf_header_inside_a_container_does_not_make_it_a_pdf(data: bytes, kind: str) -> None:
    assert identify("application/octet-stream", None, data) == kind


@pytest.mark.parametrize(
    ("declared", "name", "kind"),
    [
        ("text/x-vcard", None, "contact"),
        ("application/octet-stream", "alice.vcf", "contact"),
        ("application/pgp-keys", "OpenPGP_0x1234.asc", "signature"),
    ],
)
def test_what_mail_programs_attach_by_themselves(
    declared: str, name: str | None, kind: str
) -> None:
    assert identify(declared, name, PLAIN) == kind


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("report.final.PDF", "pdf"),
        ("archive.tar.gz", "gz"),
        ("scan.pdf ", "pdf"),
        ("README", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_the_extension_is_the_last_dotted_part(name: str | None, suffix: str) -> None:
    assert extension(name) == suffix
