"""What extraction reports for every kind of part, row by row: names, types, sizes, pages,
what was done and why, and which problems refuse the mail."""

from __future__ import annotations

import base64
import io
import re
import struct
from pathlib import Path

import pytest
from PIL import Image

from mailfax.mail.extract import conversion_name, extract_documents
from mailfax.mail.identify import Kind
from mailfax.mail.model import (
    Extraction,
    ExtractionOptions,
    NeedsLargeSlot,
    PartReport,
    Unfaxable,
)
from mailfax.policy import Refusal
from tests.fakes import FakeConverter
from tests.pdfs import pdf_with_pages
from tests.test_extract import fake_soffice, image_bytes

PDF = pdf_with_pages(1)
HEAD = b"From: a@example.com\nSubject: s\nMIME-Version: 1.0\n"
TEXT = b"Content-Type: text/plain\n\nhello"
OTHER = "not a document mailfax faxes; send PDF, JPEG, PNG or TIFF"
ATTACHED_MAIL = "an attached mail: its text is not faxed, its documents are listed after it"


def multipart(*parts: bytes, subtype: bytes = b"mixed", boundary: bytes = b"B") -> bytes:
    out = b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\n\n'
    for part in parts:
        out += b"--" + boundary + b"\n" + part + b"\n"
    return out + b"--" + boundary + b"--\n"


def attachment(name: str, data: bytes, media: str = "application/pdf") -> bytes:
    return (
        f'Content-Type: {media}\nContent-Disposition: attachment; filename="{name}"\n'
        "Content-Transfer-Encoding: base64\n\n"
    ).encode() + base64.encodebytes(data)


def winmail(blob: bytes) -> bytes:
    return attachment("winmail.dat", blob, "application/ms-tnef")


def picture(data: bytes, headers: bytes = b"") -> bytes:
    """A PNG part without a name or disposition, as mail programs put pictures in the text."""
    return (
        b"Content-Type: image/png\n"
        + headers
        + b"Content-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(data)
    )


def nested(levels: int, inner: bytes) -> bytes:
    for level in range(levels):
        inner = multipart(inner, boundary=b"N%d" % level)
    return inner


# --- structure ---------------------------------------------------------------------------


def test_thirty_levels_of_nesting_are_read() -> None:
    result = extract_documents(HEAD + multipart(nested(29, TEXT), attachment("a.pdf", PDF)))
    assert result.comment == "hello"
    assert [p.action for p in result.parts] == ["faxed"]


def deeper_than_the_parser_goes(kind: str) -> bytes:
    """A thousand levels: more than the stdlib parser's recursion reaches."""
    if kind == "multipart":
        return HEAD + nested(1000, TEXT)
    return HEAD + b"Content-Type: message/rfc822\n\n" * 1000 + b"\nhi\n"


@pytest.mark.parametrize("kind", ["multipart", "rfc822"])
def test_a_thousand_levels_of_nesting_refuse_the_mail_and_nothing_of_it_is_kept(kind: str) -> None:
    # Not even its headers: a mail that broke the parser is not quoted anywhere.
    assert extract_documents(deeper_than_the_parser_goes(kind)) == Extraction(
        documents=(),
        parts=(),
        comment="",
        subject="",
        message_id="",
        auto_submitted="",
        refusal=Refusal(
            554,
            "5.6.0",
            "The message's parts are nested too deeply to read (more than 30 levels of parts "
            "or attached mails); send the documents attached to one ordinary mail.",
        ),
    )


def test_deeper_nesting_is_reported_not_followed() -> None:
    result = extract_documents(HEAD + multipart(nested(30, TEXT), attachment("a.pdf", PDF)))
    assert result.comment == ""
    assert result.parts[0] == PartReport(
        "part-1", "text/plain", 0, None, "unreadable", "nested too deeply"
    )


def test_attached_mails_and_reports() -> None:
    forwarded = b'Content-Type: message/rfc822\nContent-Disposition: attachment; filename="fwd.eml"'
    forwarded += b"\n\nSubject: inner\nContent-Type: text/plain\n\ninner text"
    global_mail = b"Content-Type: message/global\n\nSubject: x\n" + multipart(
        b"Content-Type: text/plain\n\nnot the comment", attachment("in.pdf", PDF), boundary=b"I"
    )
    status = (
        b'Content-Type: message/delivery-status\nContent-Disposition: inline; filename="s.txt"\n\n'
        b"Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; a@b\nAction: failed\n"
    )
    unnamed = status.replace(b'Content-Disposition: inline; filename="s.txt"\n', b"")
    result = extract_documents(HEAD + multipart(TEXT, forwarded, global_mail, status, unnamed))
    rows = [(p.name, p.content_type, p.action, p.reason) for p in result.parts]
    assert rows == [
        ("fwd.eml", "message/rfc822", "ignored", ATTACHED_MAIL),
        ("attached-mail-2.eml", "message/rfc822", "ignored", ATTACHED_MAIL),
        ("in.pdf", "application/pdf", "faxed", "PDF"),
        ("s.txt", "message/delivery-status", "ignored", OTHER),
        ("part-5", "message/delivery-status", "ignored", OTHER),
    ]
    # Sizes are the attached mails' and reports' whole text.
    assert [p.size > len("Subject: x\n") for p in result.parts] == [True] * 5
    assert result.comment == "hello"  # the attached mails' text is not the fax comment


def test_a_mail_attached_as_a_file_is_opened() -> None:
    inner = b"Subject: inner\nContent-Type: multipart/mixed; boundary=I\n\n--I\n"
    inner += b"Content-Type: text/plain\n\nnot the comment\n--I\n"
    inner += attachment("in.pdf", PDF) + b"\n--I--\n"
    result = extract_documents(
        HEAD + multipart(TEXT, attachment("old.eml", inner, "application/octet-stream"))
    )
    assert [(p.name, p.content_type, p.size, p.action, p.reason) for p in result.parts] == [
        ("old.eml", "application/octet-stream", len(inner), "ignored", ATTACHED_MAIL),
        ("in.pdf", "application/pdf", len(PDF), "faxed", "PDF"),
    ]
    assert result.comment == "hello"


def test_a_multipart_without_its_boundary_is_reported_an_empty_one_is_not() -> None:
    broken = b'Content-Type: multipart/mixed; boundary="Q"\n\nno boundary here\n'
    empty = b'Content-Type: multipart/mixed; boundary="Q"\n\n  \n'
    result = extract_documents(HEAD + multipart(TEXT, attachment("a.pdf", PDF), broken, empty))
    assert [(p.name, p.content_type, p.action, p.reason) for p in result.parts[1:]] == [
        (
            "part-2",
            "multipart/mixed",
            "unreadable",
            "its multipart structure is broken (no boundary found)",
        )
    ]
    assert result.parts[1].size >= len("no boundary here")


def test_parts_without_or_with_an_unreadable_content_type() -> None:
    bare = b'Content-Disposition: attachment; filename="notes"\n\nsome notes'
    garbled = b'Content-Type: garbage\nContent-Disposition: attachment; filename="x.pdf"\n\n'
    result = extract_documents(HEAD + multipart(TEXT, bare, garbled + PDF))
    assert [(p.name, p.content_type, p.action) for p in result.parts] == [
        ("notes", "text/plain", "ignored"),  # no Content-Type: text/plain (RFC 2045)
        ("x.pdf", "application/octet-stream", "faxed"),  # the name and bytes decide
    ]


# --- Outlook's winmail.dat ---------------------------------------------------------------


def tnef_object(level: int, ident: int, data: bytes) -> bytes:
    checksum = struct.pack("<H", sum(data) & 0xFFFF)
    return struct.pack("<BII", level, ident, len(data)) + data + checksum


def tnef(files: list[tuple[str | None, bytes]], body: str = "") -> bytes:
    """A winmail.dat holding `files` (name, data) and a plain-text body."""
    out = b'x\x9f>"\x01\x00' + tnef_object(1, 0x00089006, struct.pack("<I", 0x00010000))
    if body:
        out += tnef_object(1, 0x0002800C, body.encode())
    for name, data in files:
        out += tnef_object(2, 0x00069002, b"\x01\x00" + bytes(12))  # a new attachment
        if name is not None:
            out += tnef_object(2, 0x00018010, name.encode() + b"\x00")
        out += tnef_object(2, 0x0006800F, data)
    return out


def test_winmail_dat_is_unpacked_and_its_files_handled_like_attachments() -> None:
    small_photo = image_bytes("JPEG", size=(16, 16))
    blob = tnef(
        [("scan.pdf", PDF), (None, b"zzz"), ("notes.txt", b"hi"), ("p.jpg", small_photo)],
        body="Outlook's text",
    )
    refused = extract_documents(HEAD + multipart(winmail(blob))).refusal
    assert refused is not None and refused.text.startswith("part-3 is not a document")
    rest = ExtractionOptions(unfaxable="fax-the-rest")
    result = extract_documents(HEAD + multipart(winmail(blob)), rest)
    assert [p.left_out for p in result.parts] == [False, False, True, True, False]
    rows = [(p.name, p.content_type, p.size, p.pages, p.action, p.reason) for p in result.parts]
    assert rows == [
        (
            "winmail.dat",
            "application/ms-tnef",
            len(blob),
            None,
            "ignored",
            "Outlook winmail.dat, unpacked: scan.pdf, unnamed, notes.txt, p.jpg",
        ),
        ("scan.pdf", "application/pdf", len(PDF), 1, "faxed", "PDF"),
        ("part-3", "application/octet-stream", 3, None, "ignored", OTHER),
        (
            "notes.txt",
            "application/octet-stream",
            2,
            None,
            "ignored",
            "text attachments are not faxed; the mail's own text is the fax comment",
        ),
        # however small, a picture inside winmail.dat is a document, never a logo
        ("p.jpg", "image/jpeg", len(small_photo), 1, "converted", "JPEG image converted to PDF"),
    ]
    assert [d.name for d in result.documents] == ["scan.pdf", "p.jpg"]
    # The mail has no text of its own: Outlook's text is the comment.
    assert result.comment == "Outlook's text"


def test_unnamed_files_in_winmail_dat_are_named_by_kind() -> None:
    blob = tnef([(None, PDF), (None, b"zzz")])
    result = extract_documents(HEAD + multipart(TEXT, winmail(blob)))
    assert [p.name for p in result.parts] == ["winmail.dat", "document-2.pdf", "part-3"]


def test_the_mails_own_text_wins_over_winmail_dats() -> None:
    blob = tnef([("scan.pdf", PDF)], body="Outlook's text")
    mail = HEAD + multipart(TEXT, winmail(blob))
    assert extract_documents(mail).comment == "hello"


def test_an_empty_winmail_dat() -> None:
    blob = tnef([])
    result = extract_documents(HEAD + multipart(TEXT, winmail(blob)))
    assert result.parts[0].reason == "Outlook winmail.dat, unpacked: no files"


def test_winmail_dat_inside_winmail_dat_is_followed_thirty_levels_deep() -> None:
    inside = tnef([("deep.pdf", PDF)])
    blob = tnef([("inner.dat", inside)])
    shallow = HEAD + multipart(nested(28, winmail(blob)))
    assert [p.action for p in extract_documents(shallow).parts] == ["ignored", "ignored", "faxed"]
    deep = HEAD + multipart(nested(29, winmail(blob)))
    too_deep = ("inner.dat", "application/octet-stream", len(inside), "unreadable")
    inner = extract_documents(deep).parts[1]
    assert (inner.name, inner.content_type, inner.size, inner.action) == too_deep
    assert inner.reason == "nested too deeply"


# --- inline pictures ---------------------------------------------------------------------


def test_pictures_in_the_text_are_counted_as_text() -> None:
    """A mail of text and two pictures in it is typeset when [smtp] body_only = render."""
    logo = image_bytes("PNG", size=(8, 8))
    mail = HEAD + multipart(
        TEXT,
        picture(logo),
        picture(logo),
    )
    result = extract_documents(mail, ExtractionOptions(body_only="render"))
    assert result.refusal is None
    assert [(p.name, p.action, p.reason) for p in result.parts[:2]] == [
        ("image-1.png", "ignored", "PNG image shown in the mail's text"),
        ("image-2.png", "ignored", "PNG image shown in the mail's text"),
    ]
    [typeset] = result.documents
    assert typeset.name == "mail-text.pdf" and typeset.data.startswith(b"%PDF-")
    assert result.parts[2] == PartReport(
        "mail-text.pdf", "text/plain", len("hello"), typeset.pages, "converted", RENDERED
    )
    assert typeset.pages == 1


RENDERED = "no document attached: the mail's text typeset as the fax ([smtp] body_only)"


@pytest.mark.parametrize(("size", "action"), [(9_999, "ignored"), (10_000, "converted")])
def test_pictures_in_the_text_are_those_under_10_000_bytes(size: int, action: str) -> None:
    small = image_bytes("PNG", size=(60, 60))
    padded = small + bytes(size - len(small))  # trailing bytes a PNG reader ignores
    result = extract_documents(HEAD + multipart(TEXT, picture(padded)))
    assert [(p.size, p.action) for p in result.parts] == [(size, action)]


def big_png() -> bytes:
    picture = image_bytes("PNG", size=(1500, 1500))
    assert len(picture) >= 10_000
    return picture


def test_a_big_picture_inside_multipart_related_or_referenced_by_cid_is_inline() -> None:
    big = big_png()
    related = multipart(
        b"Content-Type: text/html\n\n<p>hi</p>",
        picture(big, b"Content-ID: <unshown@x>\n"),
        subtype=b"related",
        boundary=b"R",
    )
    # Referenced (percent-encoded, any case) from the HTML of a multipart/mixed.
    referenced = multipart(
        b'Content-Type: text/html\n\n<img src="cid:%3CLogo@X%3E">',
        picture(big, b"Content-ID: <logo@x>\n"),
        boundary=b"C",
    )
    for body, inline in [(related, True), (referenced, True), (picture(big), False)]:
        result = extract_documents(HEAD + body)
        actions = [p.action for p in result.parts]
        assert actions == (["ignored"] if inline else ["converted"]), body[:40]


def test_a_cid_that_the_html_does_not_show_does_not_make_a_picture_inline() -> None:
    mail = HEAD + multipart(
        b'Content-Type: text/html\n\n<img src="cid:other@x">',
        picture(big_png(), b"Content-ID: <logo@x>\n"),
    )
    assert [p.action for p in extract_documents(mail).parts] == ["converted"]


# --- problems ----------------------------------------------------------------------------


def corrupt_base64(name: str, data: bytes, media: str) -> bytes:
    encoded = base64.encodebytes(data)
    return (
        (
            f'Content-Type: {media}\nContent-Disposition: attachment; filename="{name}"\n'
            "Content-Transfer-Encoding: base64\n\n"
        ).encode()
        + encoded[:101]
        + b"!*"
        + encoded[101:]
    )


def test_an_unreadable_attached_picture_refuses_a_mail_with_other_documents() -> None:
    mail = HEAD + multipart(
        TEXT, attachment("a.pdf", PDF), corrupt_base64("p.png", big_png(), "image/png")
    )
    result = extract_documents(mail)
    assert result.refusal == Refusal(
        550,
        "5.6.0",
        "The file 'p.png' cannot be read: its base64 encoding is corrupt. Nothing was faxed.",
    )
    assert result.documents == ()
    assert result.parts[1] == PartReport(
        "p.png", "image/png", result.parts[1].size, None, "unreadable",
        "its base64 encoding is corrupt",
    )  # fmt: skip


def test_an_unreadable_picture_in_the_text_refuses_nothing() -> None:
    logo = picture(image_bytes("PNG", size=(300, 300)))[:160] + b"!*\n"
    result = extract_documents(HEAD + multipart(TEXT, attachment("a.pdf", PDF), logo))
    assert result.refusal is None
    assert [p.action for p in result.parts] == ["faxed", "unreadable"]


@pytest.mark.parametrize("with_libreoffice", [False, True])
def test_an_unreadable_office_document_refuses_the_mail_either_way(
    tmp_path: Path, with_libreoffice: bool
) -> None:
    soffice = fake_soffice(tmp_path, "convert") if with_libreoffice else None
    docx = corrupt_base64("c.docx", b"PK\x03\x04" + bytes(300), "application/octet-stream")
    result = extract_documents(
        HEAD + multipart(TEXT, attachment("a.pdf", PDF), docx), ExtractionOptions(soffice=soffice)
    )
    assert result.refusal is not None and "'c.docx' cannot be read" in result.refusal.text


@pytest.mark.parametrize(
    ("behaviour", "reason", "refusal"),
    [
        (
            "fail",
            "could not be converted to PDF: it is damaged, or not a format LibreOffice can read",
            "c.docx could not be converted: it is damaged, or not a format LibreOffice can read.",
        ),
        (
            "junk",
            "LibreOffice made an unreadable PDF",
            "c.docx could not be converted: the result was not a valid PDF.",
        ),
    ],
)
def test_an_office_document_libreoffice_cannot_convert(
    tmp_path: Path, behaviour: str, reason: str, refusal: str
) -> None:
    docx = attachment("c.docx", b"PK\x03\x04 word/document.xml", "application/octet-stream")
    options = ExtractionOptions(soffice=fake_soffice(tmp_path, behaviour))
    result = extract_documents(HEAD + multipart(TEXT, docx), options)
    assert result.parts[0].action == "unreadable"
    assert result.parts[0].reason.startswith(reason)
    assert result.refusal is not None and result.refusal.code == 550
    assert result.refusal.enhanced == "5.6.0" and result.refusal.text.startswith(refusal)


# --- the comment -------------------------------------------------------------------------


def comment_of(*parts: bytes) -> str:
    return extract_documents(HEAD + multipart(*parts, attachment("a.pdf", PDF))).comment


def test_an_empty_plain_alternative_gives_way_to_the_html() -> None:
    alternative = multipart(
        b"Content-Type: text/plain\n\n  \n",
        b"Content-Type: text/html\n\n<p>Hi there</p>",
        subtype=b"alternative",
        boundary=b"A",
    )
    assert comment_of(alternative) == "Hi there"


def test_plain_text_is_taken_as_written_not_as_html() -> None:
    assert comment_of(b"Content-Type: text/plain\n\n5 &lt; 6 <b>bold</b>") == (
        "5 &lt; 6 <b>bold</b>"
    )


def test_crlf_line_ends_become_newlines() -> None:
    raw = HEAD + multipart(b"Content-Type: text/plain\n\nline one\nline two")
    result = extract_documents(raw.replace(b"\n", b"\r\n"))
    assert result.comment == "line one\nline two"


def test_the_texts_charset_is_obeyed() -> None:
    koi8 = "Привет".encode("koi8-r")
    assert comment_of(b"Content-Type: text/plain; charset=koi8-r\n\n" + koi8) == "Привет"


def test_a_text_part_sent_as_an_attachment_is_not_the_comment() -> None:
    attached = b"Content-Type: text/plain\nContent-Disposition: attachment\n\nattached words"
    result = extract_documents(HEAD + multipart(TEXT, attached, attachment("a.pdf", PDF)))
    assert result.comment == "hello"
    assert [(p.content_type, p.action) for p in result.parts] == [
        ("text/plain", "ignored"),
        ("application/pdf", "faxed"),
    ]


def test_only_the_html_shows_pictures_by_cid() -> None:
    mentioned = b"Content-Type: text/plain\n\nthe logo is cid:logo@x"
    mail = HEAD + multipart(mentioned, picture(big_png(), b"Content-ID: <logo@x>\n"))
    assert [p.action for p in extract_documents(mail).parts] == ["converted"]
    utf16 = '<img src="cid:logo@x">'.encode("utf-16")
    html = b"Content-Type: text/html; charset=utf-16\n\n" + utf16
    mail = HEAD + multipart(html, picture(big_png(), b"Content-ID: <logo@x>\n"))
    assert [p.action for p in extract_documents(mail).parts] == ["ignored"]


def test_the_headers_extraction_reads() -> None:
    head = (
        b"From: Alice Example <alice@example.com>\nSubject: Invoice\nMessage-ID: <m@x>\n"
        b"Auto-Submitted: Auto-Replied\nMIME-Version: 1.0\n"
    )
    result = extract_documents(head + multipart(TEXT, attachment("a.pdf", PDF)))
    assert (
        result.sender_name,
        result.sender_address,
        result.subject,
        result.message_id,
        result.auto_submitted,
    ) == ("Alice Example", "alice@example.com", "Invoice", "<m@x>", "auto-replied")


# --- refusals ----------------------------------------------------------------------------


def test_as_many_pages_as_allowed_are_taken() -> None:
    mail = HEAD + multipart(TEXT, attachment("a.pdf", pdf_with_pages(2)))
    assert extract_documents(mail, ExtractionOptions(max_pages=2)).refusal is None
    refusal = extract_documents(mail, ExtractionOptions(max_pages=1)).refusal
    assert refusal == Refusal(
        552,
        "5.3.4",
        "Too many pages: the documents have 2 pages, this gateway faxes at most 1 per message.",
    )


def test_documents_past_the_page_limit_are_listed_not_read() -> None:
    # Reading stops once the pages read are over the limit: the fourth PDF is not opened.
    pdfs = [attachment(f"{n}.pdf", PDF) for n in range(1, 5)]
    result = extract_documents(HEAD + multipart(*pdfs), ExtractionOptions(max_pages=2))
    assert [(p.name, p.pages, p.action, p.reason) for p in result.parts] == [
        ("1.pdf", 1, "faxed", "PDF"),
        ("2.pdf", 1, "faxed", "PDF"),
        ("3.pdf", 1, "faxed", "PDF"),
        ("4.pdf", None, "ignored", "not read: the page limit is exceeded"),
    ]
    assert result.refusal == Refusal(
        552,
        "5.3.4",
        "Too many pages: the documents have 3 pages, this gateway faxes at most 2 per message.",
    )


def tiff(pages: int, size: tuple[int, int]) -> bytes:
    """A multi-page TIFF, compressed (its pixels still decode to width x height x 3 bytes)."""
    frames = [Image.new("RGB", size, (40 * i, 90, 200)) for i in range(pages)]
    out = io.BytesIO()
    frames[0].save(out, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw")
    return out.getvalue()


BIG_PNG = attachment("scan.png", image_bytes("PNG", (2000, 1000)), "image/png")  # 6 MB decoded
BIG_TIFF = attachment("scan.tif", tiff(3, (1000, 1000)), "image/tiff")  # 3 x 3 MB decoded


# Limits on the memory decoding one image takes: one frame, all frames ([limits] image_*).
@pytest.mark.parametrize(
    ("part", "frame_bytes", "total_bytes", "why"),
    [
        (BIG_PNG, 6_000_000, 0, None),
        (
            BIG_PNG,
            5_000_000,
            0,
            "The image 'scan.png' is too large to fax: 2000x1000 pixels need 6 MB to decode, "
            "more than the 5 MB allowed; scan at 300 dpi or less.",
        ),
        (BIG_TIFF, 0, 9_000_000, None),
        (
            BIG_TIFF,
            0,
            8_000_000,
            "The image 'scan.tif' is too large to fax: its 3 pages need 9 MB to decode, more "
            "than the 8 MB allowed; scan at 300 dpi or less, or send a PDF.",
        ),
    ],
    ids=["frame-at-limit", "frame-over-limit", "pages-at-limit", "pages-over-limit"],
)
def test_an_image_too_large_to_decode_refuses_the_mail_naming_it(
    part: bytes, frame_bytes: int, total_bytes: int, why: str | None
) -> None:
    options = ExtractionOptions(image_frame_bytes=frame_bytes, image_total_bytes=total_bytes)
    result = extract_documents(HEAD + multipart(part), options)
    [report] = result.parts
    if why is None:
        assert result.refusal is None and report.action == "converted"
    else:
        assert result.refusal == Refusal(552, "5.3.4", why)
        assert report.action == "unreadable"


def test_an_image_decoding_larger_than_a_large_mail_asks_for_a_large_mail_slot() -> None:
    mail = HEAD + multipart(BIG_PNG)
    assert extract_documents(mail, ExtractionOptions(large_decoded_bytes=6_000_000)).refusal is None
    with pytest.raises(NeedsLargeSlot):
        extract_documents(mail, ExtractionOptions(large_decoded_bytes=5_999_999))


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        ((), "No document to fax: the message is empty. Attach a PDF."),
        ((TEXT,), "No document to fax: the message has only a text body. Attach a PDF."),
        (
            tuple(attachment(f"{n}.ics", b"BEGIN:VCALENDAR", "text/calendar") for n in range(5)),
            "No document to fax: attach a PDF. Found only 0.ics (text/calendar), "
            "1.ics (text/calendar), 2.ics (text/calendar), 3.ics (text/calendar), "
            "4.ics (text/calendar).",
        ),
        (
            tuple(attachment(f"{n}.ics", b"BEGIN:VCALENDAR", "text/calendar") for n in range(6)),
            "No document to fax: attach a PDF. Found only 0.ics (text/calendar), "
            "1.ics (text/calendar), 2.ics (text/calendar), 3.ics (text/calendar), "
            "4.ics (text/calendar) and 1 more.",
        ),
        (
            tuple(attachment(f"{n}.zip", b"PK\x03\x04", "application/zip") for n in range(2)),
            "0.zip is an archive: attach the documents themselves "
            "(1 more attachment cannot be faxed).",
        ),
        (
            tuple(attachment(f"{n}.zip", b"PK\x03\x04", "application/zip") for n in range(3)),
            "0.zip is an archive: attach the documents themselves "
            "(2 more attachments cannot be faxed).",
        ),
    ],
)
def test_a_mail_without_a_document_is_told_what_was_found(
    parts: tuple[bytes, ...], text: str
) -> None:
    raw = HEAD + (multipart(*parts) if parts else b"Content-Type: text/plain\n\n")
    assert extract_documents(raw).refusal == Refusal(550, "5.6.0", text)


def test_a_part_declared_a_pdf_is_checked_as_one() -> None:
    junk = attachment("scan.bin", b"not a pdf at all", "application/pdf")
    result = extract_documents(HEAD + multipart(TEXT, junk))
    assert result.parts[0].action == "unreadable"
    assert result.parts[0].reason.startswith("the PDF ")
    assert result.refusal is not None and result.refusal.text.startswith("The PDF 'scan.bin' ")


def test_damaged_and_repaired_documents_are_reported_as_such() -> None:
    broken_png = attachment("p.png", b"\x89PNG\r\n\x1a\nxx", "image/png")
    result = extract_documents(HEAD + multipart(TEXT, attachment("a.pdf", PDF), broken_png))
    assert (result.parts[1].action, result.parts[1].reason) == (
        "unreadable",
        "the PNG image is damaged and cannot be read",
    )
    damaged = re.sub(rb"startxref\s+\d+", b"startxref\n999999", PDF)
    repaired = extract_documents(HEAD + multipart(TEXT, attachment("r.pdf", damaged)))
    assert (repaired.parts[0].action, repaired.parts[0].reason) == (
        "faxed",
        "PDF, repaired (it was damaged)",
    )


def test_an_office_document_converted_by_libreoffice(tmp_path: Path) -> None:
    docx = attachment("c.docx", b"PK\x03\x04 word/document.xml", "application/octet-stream")
    options = ExtractionOptions(soffice=fake_soffice(tmp_path, "convert"))
    result = extract_documents(HEAD + multipart(TEXT, docx), options)
    [document] = result.documents
    assert document.data.startswith(b"%PDF-") and document.pages == 2
    assert result.parts[0] == PartReport(
        "c.docx",
        "application/octet-stream",
        len(b"PK\x03\x04 word/document.xml"),
        2,
        "converted",
        "converted to PDF by LibreOffice",
    )


# --- what is converted, and attachments that cannot be faxed ----------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "content_type", "converted_as"),
    [
        ("office", "terms.docx", "application/octet-stream", "terms.docx"),
        ("office", "sheet.xls", "application/vnd.ms-excel", "sheet.xls"),
        ("text", "notes.txt", "application/octet-stream", "document.txt"),
        ("text", "part-2", "text/plain", "document.txt"),
        ("text", "page.html", "text/html", None),
        ("text", "data.csv", "text/csv", None),
        ("archive", "a.zip", "application/zip", None),
        ("pdf", "a.pdf", "application/pdf", None),
    ],
)
def test_what_is_converted_and_under_which_name(
    kind: Kind, name: str, content_type: str, converted_as: str | None
) -> None:
    assert conversion_name(kind, name, content_type) == converted_as


def test_office_and_text_attachments_go_through_the_converter() -> None:
    converter = FakeConverter(pages=2)
    notes = "позвони мне"
    mail = HEAD + multipart(
        TEXT,
        attachment("terms.docx", b"PK\x03\x04 word", "application/octet-stream"),
        # text/plain without a .txt name: converted for its type
        attachment("notes", notes.encode("koi8-r"), "text/plain; charset=koi8-r"),
    )
    result = extract_documents(mail, converter=converter)
    assert converter.converted == ["terms.docx", "document.txt"]
    # An Office file goes as it came; text in its own charset, as UTF-8 with a byte-order mark.
    assert converter.given == [b"PK\x03\x04 word", notes.encode("utf-8-sig")]
    assert [(d.name, d.pages) for d in result.documents] == [("terms.docx", 2), ("notes", 2)]
    assert [p.action for p in result.parts] == ["converted", "converted"]


ZIP_PART = attachment("scans.zip", b"PK\x03\x04", "application/zip")
DOCX_PART = attachment("terms.docx", b"PK\x03\x04 word", "application/octet-stream")


def test_unfaxable_attachments_refuse_the_mail_or_are_left_out() -> None:
    mail = HEAD + multipart(TEXT, attachment("a.pdf", PDF), ZIP_PART, DOCX_PART)
    slow = FakeConverter(problem="it took longer than 120 seconds")
    refused = extract_documents(mail, converter=slow)
    assert refused.refusal == Refusal(
        550,
        "5.6.0",
        "scans.zip is an archive: attach the documents themselves "
        "(1 more attachment cannot be faxed). Nothing was faxed.",
    )
    assert refused.documents == ()
    rest = extract_documents(mail, ExtractionOptions(unfaxable="fax-the-rest"), slow)
    assert rest.refusal is None
    assert [d.name for d in rest.documents] == ["a.pdf"]
    assert [(p.name, p.left_out) for p in rest.parts] == [
        ("a.pdf", False),
        ("scans.zip", True),
        ("terms.docx", True),
    ]
    assert rest.parts[2].reason == "could not be converted to PDF: it took longer than 120 seconds"


def test_with_nothing_left_to_fax_the_mail_is_refused_either_way() -> None:
    choices: tuple[Unfaxable, ...] = ("refuse", "fax-the-rest")
    for unfaxable in choices:
        options = ExtractionOptions(unfaxable=unfaxable)
        result = extract_documents(HEAD + multipart(TEXT, DOCX_PART), options)
        assert result.refusal == Refusal(
            550,
            "5.6.0",
            "terms.docx could not be converted: this gateway does not convert Office "
            "documents; send a PDF.",
        )
    notes = attachment("notes.txt", b"call me", "text/plain")
    assert extract_documents(HEAD + multipart(TEXT, notes)).refusal == Refusal(
        550,
        "5.6.0",
        "notes.txt could not be converted: this gateway does not convert text files; send a PDF.",
    )


def test_what_mail_programs_add_is_never_an_unfaxable_attachment() -> None:
    logo = picture(image_bytes("PNG", size=(20, 20)))
    mail = HEAD + multipart(
        TEXT,
        attachment("a.pdf", PDF),
        logo,
        attachment("smime.p7s", b"0\x82", "application/pkcs7-signature"),
        attachment("invite.ics", b"BEGIN:VCALENDAR", "text/calendar"),
        attachment("alice.vcf", b"BEGIN:VCARD", "text/x-vcard"),
        attachment("ATT00001.txt", b" \r\n", "text/plain"),  # an empty footer part
    )
    result = extract_documents(mail, converter=FakeConverter())
    assert result.refusal is None
    assert [d.name for d in result.documents] == ["a.pdf"]
    assert not any(p.left_out for p in result.parts)
    footer = result.parts[-1]
    assert (footer.name, footer.action, footer.reason) == (
        "ATT00001.txt",
        "ignored",
        "an empty text file",
    )
