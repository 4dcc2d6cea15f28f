"""Finding the PDFs and the comment in a mail (pure; no servers)."""

from __future__ import annotations

from email.message import EmailMessage

from mailfax.mail.extract import extract_documents, sanitise_filename
from tests.pdfs import encrypted_pdf, fax_mail, pdf_with_pages


def test_pdf_attachment_is_found_with_its_pages() -> None:
    result = extract_documents(fax_mail().as_bytes())
    assert result.refusal is None
    assert [(d.name, d.pages) for d in result.documents] == [("invoice.pdf", 2)]
    assert result.comment == "Please find the invoice attached."
    assert result.subject == "Invoice 42"
    assert result.message_id == "<invoice-42@example.com>"


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


def test_no_pdf_is_refused_naming_what_was_found() -> None:
    mail = fax_mail(attachments=[("photo.png", b"\x89PNG\r\n\x1a\nxx", "image/png")])
    result = extract_documents(mail.as_bytes())
    assert result.refusal is not None
    assert result.refusal.smtp_reply.startswith("550 5.6.0 ")
    assert "photo.png (image/png)" in result.refusal.text
    assert result.documents == ()


def test_body_only_mail_is_refused() -> None:
    result = extract_documents(fax_mail(attachments=[]).as_bytes())
    assert result.refusal is not None
    assert "only a text body" in result.refusal.text


def test_encrypted_pdf_is_refused_by_name() -> None:
    mail = fax_mail(attachments=[("locked.pdf", encrypted_pdf(), "application/pdf")])
    result = extract_documents(mail.as_bytes())
    assert result.refusal is not None
    assert result.refusal.code == 550
    assert "'locked.pdf'" in result.refusal.text
    assert "password" in result.refusal.text


def test_damaged_pdf_is_refused_by_name() -> None:
    mail = fax_mail(attachments=[("broken.pdf", b"%PDF-1.4 garbage", "application/pdf")])
    result = extract_documents(mail.as_bytes())
    assert result.refusal is not None
    assert "'broken.pdf' is damaged" in result.refusal.text


def test_html_only_body_becomes_readable_text() -> None:
    mail = EmailMessage()
    mail["From"] = "a@example.com"
    mail["Subject"] = "x"
    mail.set_content(
        "<html><head><style>p{}</style></head><body><p>Hello&nbsp;<b>Bob</b></p>"
        "<ul><li>one</li><li>two</li></ul><script>x()</script></body></html>",
        subtype="html",
    )
    mail.add_attachment(pdf_with_pages(1), maintype="application", subtype="pdf", filename="x.pdf")
    result = extract_documents(mail.as_bytes())
    assert result.comment == "Hello Bob\n\n- one\n- two"


def test_plain_body_preferred_over_html() -> None:
    mail = EmailMessage()
    mail.set_content("plain words")
    mail.add_alternative("<p>html words</p>", subtype="html")
    mail.add_attachment(pdf_with_pages(1), maintype="application", subtype="pdf", filename="x.pdf")
    assert extract_documents(mail.as_bytes()).comment == "plain words"


def test_comment_is_limited() -> None:
    result = extract_documents(fax_mail(body="x" * 5000).as_bytes(), max_comment_chars=2000)
    assert len(result.comment) == 2000


def test_lying_charset_does_not_crash() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=x-unknown-9\r\n\r\nGr\xfc\xdfe\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    import base64

    raw += base64.encodebytes(pdf_with_pages(1)).replace(b"\n", b"\r\n") + b"--b--\r\n"
    result = extract_documents(raw)
    assert result.refusal is None
    assert result.comment == "Grüße"
    assert result.documents[0].name == "document-1.pdf"


def test_filenames_are_sanitised() -> None:
    assert sanitise_filename("../../etc/passwd", "x") == "passwd"
    assert sanitise_filename("C:\\Users\\bob\\scan.pdf", "x") == "scan.pdf"
    assert sanitise_filename("a\x00b\r\n.pdf", "x") == "ab.pdf"
    assert sanitise_filename("", "fallback.pdf") == "fallback.pdf"
    assert sanitise_filename("..", "fallback.pdf") == "fallback.pdf"
