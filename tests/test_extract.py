"""Finding the documents and the comment in a mail (pure; no servers)."""

from __future__ import annotations

import base64
import io
import os
import re
import stat
import struct
import sys
import zlib
from email.message import EmailMessage
from pathlib import Path

import pikepdf
import pypdfium2
import pytest
from PIL import Image

from mailfax.config import ConfigError, load_settings
from mailfax.documents import PdfCheck, check_pdf
from mailfax.mail.extract import extract_documents
from mailfax.mail.model import LARGE_DECODED_BYTES, ExtractionOptions, extraction_options
from mailfax.mail.parse import decode_text, sanitise_filename
from mailfax.typeset import body_pdf
from tests.pdfs import encrypted_pdf, fax_mail, pdf_with_pages


def image_bytes(image_format: str, size: tuple[int, int] = (200, 100), frames: int = 1) -> bytes:
    images = [Image.new("RGB", size, (40 * i, 90, 200)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format=image_format, save_all=frames > 1, append_images=images[1:])
    return out.getvalue()


def png_rgba_16bit() -> bytes:
    """A 16-bit RGBA PNG (as Apple screenshots can be): img2pdf refuses its alpha channel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 2, 16, 6, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\xff\x00\x00\x00\x00\x80\x00" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def names_and_pages(raw: bytes, options: ExtractionOptions | None = None) -> list[tuple[str, int]]:
    result = extract_documents(raw, options)
    assert result.refusal is None, result.refusal
    return [(d.name, d.pages) for d in result.documents]


# --- PDFs ------------------------------------------------------------------------------


def test_pdf_attachment_is_found_with_its_pages() -> None:
    result = extract_documents(fax_mail().as_bytes())
    assert result.refusal is None
    assert [(d.name, d.pages) for d in result.documents] == [("invoice.pdf", 2)]
    assert result.comment == "Please find the invoice attached."
    assert result.subject == "Invoice 42"
    assert result.message_id == "<invoice-42@example.com>"
    [part] = result.parts
    assert (part.name, part.pages, part.action) == ("invoice.pdf", 2, "faxed")


def test_pdfs_are_found_by_type_name_or_content_in_message_order() -> None:
    mail = fax_mail(
        attachments=[
            ("a.pdf", pdf_with_pages(1), "application/pdf"),
            ("b.PDF", pdf_with_pages(2), "application/octet-stream"),
            ("scan.bin", pdf_with_pages(3), "application/octet-stream"),
            ("c", pdf_with_pages(1), "application/x-pdf"),
        ]
    )
    result = extract_documents(mail.as_bytes())
    assert [(d.name, d.pages) for d in result.documents] == [
        ("a.pdf", 1),
        ("b.PDF", 2),
        ("scan.bin", 3),
        ("c", 1),
    ]
    assert result.pages == 7


def test_encrypted_pdf_is_refused_by_name() -> None:
    mail = fax_mail(attachments=[("locked.pdf", encrypted_pdf(), "application/pdf")])
    result = extract_documents(mail.as_bytes())
    assert result.refusal is not None
    assert result.refusal.code == 550
    assert "'locked.pdf'" in result.refusal.text
    assert "password" in result.refusal.text


def test_damaged_pdf_is_refused_by_name_even_beside_a_good_one() -> None:
    mail = fax_mail(
        attachments=[
            ("good.pdf", pdf_with_pages(1), "application/pdf"),
            ("broken.pdf", b"%PDF-1.4 garbage", "application/pdf"),
        ]
    )
    result = extract_documents(mail.as_bytes())
    assert result.refusal is not None
    assert "'broken.pdf' is damaged" in result.refusal.text
    assert result.documents == ()


def test_repairable_pdf_is_repaired_and_faxed() -> None:
    damaged = re.sub(rb"startxref\s+\d+", b"startxref\n999999", pdf_with_pages(2))
    result = extract_documents(
        fax_mail(attachments=[("x.pdf", damaged, "application/pdf")]).as_bytes()
    )
    [document] = result.documents
    assert document.pages == 2 and document.data != damaged
    with pikepdf.open(io.BytesIO(document.data)) as pdf:
        assert not pdf.get_warnings()
    assert "repaired" in result.parts[0].reason


def test_too_many_pages_are_refused() -> None:
    mail = fax_mail(attachments=[("big.pdf", pdf_with_pages(3), "application/pdf")])
    result = extract_documents(mail.as_bytes(), ExtractionOptions(max_pages=2))
    assert result.refusal is not None
    assert result.refusal.smtp_reply.startswith("552 5.3.4 Too many pages: the documents have 3")


# --- images ----------------------------------------------------------------------------


def test_attached_images_are_converted_to_pdf_pages() -> None:
    mail = fax_mail(
        attachments=[
            ("photo.jpg", image_bytes("JPEG"), "image/jpeg"),
            ("scan.tif", image_bytes("TIFF", frames=3), "image/tiff"),
            ("shot.png", image_bytes("PNG"), "application/octet-stream"),
            ("alpha.png", png_rgba_16bit(), "image/png"),
        ]
    )
    result = extract_documents(mail.as_bytes())
    assert [(d.name, d.pages) for d in result.documents] == [
        ("photo.jpg", 1),
        ("scan.tif", 3),
        ("shot.png", 1),
        ("alpha.png", 1),
    ]
    assert all(d.data.startswith(b"%PDF-") for d in result.documents)
    assert [p.action for p in result.parts] == ["converted"] * 4
    assert result.parts[0].reason == "JPEG image converted to PDF"


def test_inline_images_are_part_of_the_text_and_not_faxed() -> None:
    big = image_bytes("PNG", size=(1500, 1500))
    assert len(big) >= 10_000
    mail = EmailMessage()
    mail.set_content("Hello")
    html = EmailMessage()
    html.set_content('<p>Hello <img src="cid:logo@x"></p>', subtype="html")
    # Referenced from the HTML but sent as a plain attachment, as some clients do.
    html.add_attachment(big, maintype="image", subtype="png", cid="<logo@x>", filename="logo.png")
    mail.make_alternative()
    mail.attach(html)
    mail.add_attachment(image_bytes("PNG", size=(8, 8)), maintype="image", subtype="png")
    mail.add_attachment(pdf_with_pages(1), maintype="application", subtype="pdf", filename="a.pdf")
    signature = EmailMessage()
    signature.set_content(image_bytes("GIF"), maintype="image", subtype="gif", disposition="inline")
    mail.attach(signature)
    result = extract_documents(mail.as_bytes())
    assert [(d.name, d.pages) for d in result.documents] == [("image-2.png", 1), ("a.pdf", 1)]
    actions = [(p.name, p.action) for p in result.parts]
    assert actions == [
        ("logo.png", "ignored"),  # cid-referenced from the HTML
        ("image-2.png", "converted"),  # small but an attachment: faxed
        ("a.pdf", "faxed"),
        ("part-4", "ignored"),  # GIF is not faxed
    ]


def test_damaged_image_is_refused_by_name() -> None:
    damaged = ("scan.png", b"\x89PNG\r\n\x1a\nxx", "image/png")
    alone = extract_documents(fax_mail(attachments=[damaged]).as_bytes())
    assert alone.refusal is not None
    assert alone.refusal.text == "The image 'scan.png' is damaged and cannot be read."
    assert alone.parts[0].reason == "the PNG image is damaged and cannot be read"
    beside_a_pdf = fax_mail(attachments=[("a.pdf", pdf_with_pages(1), "application/pdf"), damaged])
    result = extract_documents(beside_a_pdf.as_bytes())
    assert result.refusal is not None
    assert result.refusal.text == (
        "The image 'scan.png' is damaged and cannot be read. Nothing was faxed."
    )


# --- structure -------------------------------------------------------------------------


def test_forwarded_mail_documents_are_faxed() -> None:
    inner = fax_mail(body="original text")
    outer = fax_mail(body="see the forward", attachments=[])
    outer.add_attachment(inner, filename="fwd.eml")
    as_file = fax_mail(body="forwarded as a file", attachments=[])
    as_file.add_attachment(
        inner.as_bytes(), maintype="application", subtype="octet-stream", filename="old.eml"
    )
    for mail in (outer, as_file):
        result = extract_documents(mail.as_bytes())
        assert [(d.name, d.pages) for d in result.documents] == [("invoice.pdf", 2)]
        assert "original text" not in result.comment
        assert result.parts[0].content_type in ("message/rfc822", "application/octet-stream")


def test_unquoted_boundary_with_equals_sign_falls_back_to_compat32() -> None:
    pdf = base64.encodebytes(pdf_with_pages(1)).decode()
    raw = (
        "From: a@example.com\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=----=_NextPart_000_0001\r\n\r\n"
        "------=_NextPart_000_0001\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
        "------=_NextPart_000_0001\r\nContent-Type: application/pdf; name=scan.pdf\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n------=_NextPart_000_0001--\r\n"
    ).encode()
    assert names_and_pages(raw) == [("scan.pdf", 1)]


def test_content_type_missing_its_semicolon_is_repaired() -> None:
    pdf = base64.encodebytes(pdf_with_pages(2)).decode()
    raw = (
        'From: a@example.com\nContent-Type: multipart/mixed\n\tboundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nHi\n--b\nContent-Type: application/pdf\n"
        f"Content-Disposition: attachment; filename=x.pdf\nContent-Transfer-Encoding: base64\n\n"
        f"{pdf}\n--b--\n"
    ).encode()
    assert names_and_pages(raw) == [("x.pdf", 2)]


def test_unreadable_parts_are_reported_and_the_rest_still_works() -> None:
    zip_part = (
        "--b\r\nContent-Type: application/zip; name=a.zip\r\n"
        "Content-Transfer-Encoding: base9000\r\n\r\nPGh0bWw+Cg==\r\n"
    )
    pdf = base64.encodebytes(pdf_with_pages(1)).decode()
    raw = (
        'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        f"{zip_part}--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64"
        f"\r\n\r\n{pdf}\r\n--b--\r\n"
    ).encode()
    result = extract_documents(raw, ExtractionOptions(unfaxable="fax-the-rest"))
    assert [(d.name, d.pages) for d in result.documents] == [("document-2.pdf", 1)]
    assert (result.parts[0].action, result.parts[0].reason, result.parts[0].left_out) == (
        "unreadable",
        "its transfer encoding 'base9000' is unknown",
        True,
    )


def test_a_pdf_with_corrupt_base64_is_refused_by_name() -> None:
    encoded = base64.encodebytes(pdf_with_pages(1)).decode()
    raw = (
        'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64"
        f"\r\n\r\n{encoded[:101]}!*{encoded[101:]}\r\n--b--\r\n"
    ).encode()
    result = extract_documents(raw)
    assert result.refusal is not None
    assert result.refusal.text == "The file 'x.pdf' cannot be read: its base64 encoding is corrupt."


def test_winmail_dat_that_is_not_tnef_is_reported_not_raised() -> None:
    # An attachment-level object before any attachment began: tnefparse cannot place it.
    blob = b'x\x9f>"\x01\x00' + b"\x02\x01\x80\x00\x00\xff\xff\x00\x00abc" * 3
    mail = fax_mail(attachments=[("winmail.dat", blob, "application/ms-tnef")])
    result = extract_documents(mail.as_bytes())
    assert result.refusal is not None
    assert result.parts[0].action == "unreadable"
    assert result.parts[0].reason.startswith("Outlook winmail.dat: it is damaged")


# --- names, headers, charsets ------------------------------------------------------------


def test_filenames_are_decoded_and_sanitised() -> None:
    traversal = "..%2F..%2Fetc%2Fgr%C3%BC%C3%9Fe%E2%80%AE.pdf"  # ../../etc/grüße<RLO>.pdf
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@example.com>\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: application/pdf; name==?utf-8?B?UmVjaG51bmcucGRm?=\r\n\r\n%PDF-\r\n"
        b"--b\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=UTF-8''" + traversal.encode() + b"\r\n\r\n"
        b"%PDF-\r\n--b--\r\n"
    )
    result = extract_documents(raw)
    assert [p.name for p in result.parts] == ["Rechnung.pdf", "grüße.pdf"]
    assert result.sender_name == "Jürgen Müller"


def test_sanitise_filename() -> None:
    assert sanitise_filename("../../etc/passwd", "x") == "passwd"
    assert sanitise_filename("C:\\Users\\bob\\scan.pdf", "x") == "scan.pdf"
    assert sanitise_filename("a\x00b\r\n.pdf", "x") == "ab.pdf"
    assert sanitise_filename("invoice\u202efdp.exe", "x") == "invoicefdp.exe"
    assert sanitise_filename("", "fallback.pdf") == "fallback.pdf"
    assert sanitise_filename("..", "fallback.pdf") == "fallback.pdf"


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        ("Grüße".encode("latin-1"), "x-unknown-9", "Grüße"),
        ("你好".encode(), "gb2312", "你好"),  # the label lies: the bytes are UTF-8
        ("스티해".encode("cp949"), "ks_c_5601-1987", "스티해"),
        ("Привет".encode("mac_cyrillic"), "x-mac-cyrillic", "Привет"),
        ("Det här".encode() + " är".encode("latin-1"), "utf-8", "Det här är"),
        ("すみません".encode("iso-2022-jp"), "iso-2022-jp", "すみません"),
    ],
)
def test_text_survives_unknown_and_lying_charsets(data: bytes, charset: str, text: str) -> None:
    assert decode_text(data, charset) == text


# --- the comment and body-only mail --------------------------------------------------------


def test_html_only_body_becomes_readable_text() -> None:
    mail = EmailMessage()
    mail["From"] = "a@example.com"
    mail.set_content(
        "<html><head><style>p{}</style></head><body><p>Hello&nbsp;<b>Bob</b></p>"
        "<ul><li>one</li><li>two</li></ul><script>x()</script></body></html>",
        subtype="html",
    )
    mail.add_attachment(pdf_with_pages(1), maintype="application", subtype="pdf", filename="x.pdf")
    assert extract_documents(mail.as_bytes()).comment == "Hello Bob\n\n- one\n- two"


def test_plain_body_preferred_over_html() -> None:
    mail = EmailMessage()
    mail.set_content("plain words")
    mail.add_alternative("<p>html words</p>", subtype="html")
    mail.add_attachment(pdf_with_pages(1), maintype="application", subtype="pdf", filename="x.pdf")
    assert extract_documents(mail.as_bytes()).comment == "plain words"


def test_iphone_body_split_around_a_picture_is_joined() -> None:
    mail = EmailMessage()
    mail.make_mixed()
    for text in ("First part,", None, "second part.\n\nSent from my iPhone"):
        piece = EmailMessage()
        if text is None:
            picture = image_bytes("JPEG", size=(900, 900))
            piece.set_content(picture, maintype="image", subtype="jpeg", disposition="inline")
        else:
            piece.set_content(text)
        mail.attach(piece)
    result = extract_documents(mail.as_bytes())
    assert result.comment == "First part,\n\nsecond part.\n\nSent from my iPhone"
    assert [d.pages for d in result.documents] == [1]


def test_comment_is_limited() -> None:
    options = ExtractionOptions(max_comment_chars=2000)
    result = extract_documents(fax_mail(body="x" * 5000).as_bytes(), options)
    assert len(result.comment) == 2000


def test_body_only_mail_is_refused_by_default() -> None:
    result = extract_documents(fax_mail(attachments=[]).as_bytes())
    assert result.refusal is not None
    assert result.refusal.smtp_reply == (
        "550 5.6.0 No document to fax: the message has only a text body. Attach a PDF."
    )


def test_no_faxable_document_names_what_was_found() -> None:
    mail = fax_mail(attachments=[("notes.zip", b"PK\x03\x04", "application/zip")])
    result = extract_documents(mail.as_bytes(), ExtractionOptions(body_only="render"))
    assert result.refusal is not None
    assert result.refusal.text == "notes.zip is an archive: attach the documents themselves."


def test_body_only_mail_is_typeset_when_configured() -> None:
    body = "\n".join(f"line {n} with words that fill the page" for n in range(80))
    result = extract_documents(
        fax_mail(body=body, attachments=[]).as_bytes(), ExtractionOptions(body_only="render")
    )
    [document] = result.documents
    assert (document.name, document.pages) == ("mail-text.pdf", 2)
    assert result.parts[0].action == "converted"
    assert result.comment.startswith("line 0")


def test_typeset_pdf_is_clean_and_shows_the_text() -> None:
    """The typesetter writes PDF by hand: qpdf must find nothing to repair, and a renderer
    must read back the text, parentheses and backslashes included."""
    pdf = body_pdf("Invoice (March) \\ paid: 100 \u20ac\n\nnext paragraph")
    assert check_pdf(pdf) == PdfCheck(1)
    document = pypdfium2.PdfDocument(pdf)
    text = document[0].get_textpage().get_text_range()
    assert "Invoice (March) \\ paid: 100 \u20ac" in text
    assert "next paragraph" in text
    document.close()


# --- Office documents and options -----------------------------------------------------------


def fake_soffice(tmp_path: Path, behaviour: str) -> str:
    """An executable standing in for LibreOffice: writes <outdir>/<stem>.pdf, or misbehaves
    (hang: never ends; fail: writes nothing; junk: writes a file that is not a PDF)."""
    script = tmp_path / "soffice"
    (tmp_path / "made.pdf").write_bytes(pdf_with_pages(2))
    script.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, shutil, sys, time\n"
        "args = sys.argv[1:]\n"
        f"if {behaviour!r} == 'hang':\n"
        "    time.sleep(30)\n"
        "out = pathlib.Path(args[args.index('--outdir') + 1])\n"
        "source = pathlib.Path(args[-1])\n"
        f"if {behaviour!r} == 'convert':\n"
        f"    shutil.copy({str(tmp_path / 'made.pdf')!r}, out / (source.stem + '.pdf'))\n"
        f"if {behaviour!r} == 'junk':\n"
        "    (out / (source.stem + '.pdf')).write_bytes(b'not a PDF at all')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


DOCX = ("contract.docx", b"PK\x03\x04 word/document.xml", "application/octet-stream")


def test_office_documents_are_ignored_without_libreoffice() -> None:
    result = extract_documents(fax_mail(attachments=[DOCX]).as_bytes())
    assert result.refusal is not None
    assert (result.parts[0].action, result.parts[0].reason) == (
        "ignored",
        "Office documents need LibreOffice, which is off or not installed; send a PDF",
    )


def test_office_documents_are_converted_with_libreoffice(tmp_path: Path) -> None:
    options = ExtractionOptions(soffice=fake_soffice(tmp_path, "convert"))
    assert names_and_pages(fax_mail(attachments=[DOCX]).as_bytes(), options) == [
        ("contract.docx", 2)
    ]


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("hang", "the mail's documents took longer than 0.5 seconds to convert"),
        ("fail", "it is damaged, or not a format LibreOffice can read"),
    ],
)
def test_failed_office_conversion_is_refused_by_name(
    tmp_path: Path, behaviour: str, reason: str
) -> None:
    options = ExtractionOptions(soffice=fake_soffice(tmp_path, behaviour), convert_timeout=0.5)
    result = extract_documents(fax_mail(attachments=[DOCX]).as_bytes(), options)
    assert result.refusal is not None
    assert result.refusal.text == f"contract.docx could not be converted: {reason}."


def test_options_come_from_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    soffice = fake_soffice(tmp_path, "convert")
    monkeypatch.setenv("PATH", str(tmp_path))
    env = {
        "MAILFAX_SMTP_MAX_PAGES": "7",
        "MAILFAX_SMTP_BODY_ONLY": "render",
        "MAILFAX_FAXPLUS_MAX_COMMENT_CHARS": "99",
        "MAILFAX_CONVERT_TIMEOUT": "5",
        "MAILFAX_LIMITS_EXTRACTION_CPU_SECONDS": "12",
        "MAILFAX_LIMITS_EXTRACTION_MEMORY": "500MB",
        "MAILFAX_LIMITS_IMAGE_FRAME_MEMORY": "100MB",
        "MAILFAX_LIMITS_IMAGE_TOTAL_MEMORY": "2GB",
    }
    options = extraction_options(load_settings(environ=env))
    assert options == ExtractionOptions(
        7,
        "render",
        99,
        soffice,
        5.0,
        image_frame_bytes=100_000_000,
        image_total_bytes=2_000_000_000,
        large_decoded_bytes=LARGE_DECODED_BYTES,
        cpu_seconds=12.0,
        memory_bytes=500_000_000,
        convert_parallel=os.cpu_count() or 1,
        convert_dir="mailfax-data",
    )
    off = extraction_options(load_settings(environ={**env, "MAILFAX_CONVERT_OFFICE": "off"}))
    assert off.soffice is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SMTP_BODY_ONLY", "print", "[smtp] body_only = 'print': unknown choice"),
        ("SMTP_MAX_PAGES", "0", "[smtp] max_pages = 0: must be at least 1"),
        ("FAXPLUS_COVER_PAGE", "sometimes", "[faxplus] cover_page = 'sometimes'"),
        ("CONVERT_OFFICE", "on", "[convert] office = 'on': unknown choice"),
    ],
)
def test_invalid_extraction_settings_name_key_and_fix(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(environ={f"MAILFAX_{key}": value})
    assert str(error.value).startswith(message)
    assert "Fix:" in str(error.value)


def test_leading_junk_before_the_pdf_header_is_rewritten_away() -> None:
    mail = fax_mail(attachments=[("x.pdf", b"junk\r\n" + pdf_with_pages(2), "application/pdf")])
    [document] = extract_documents(mail.as_bytes()).documents
    assert document.data.startswith(b"%PDF-") and document.pages == 2
