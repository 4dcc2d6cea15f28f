"""PDF and mail builders shared by the tests."""

from __future__ import annotations

import io
import os
from email.message import EmailMessage

import pikepdf

from mailfax.typeset import text_pdf


def pdf_with_pages(pages: int, label: str = "page") -> bytes:
    pdf = pikepdf.new()
    for number in range(pages):
        page = pikepdf.open(io.BytesIO(text_pdf([f"{label} {number + 1}"])))
        pdf.pages.extend(page.pages)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def encrypted_pdf() -> bytes:
    pdf = pikepdf.open(io.BytesIO(text_pdf(["secret"])))
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(user="pw", owner="owner"))
    return out.getvalue()


def fax_mail(
    to: str = "+17185554567@fax.local",
    body: str = "Please find the invoice attached.",
    attachments: list[tuple[str, bytes, str]] | None = None,
    sender: str = "alice@example.com",
    subject: str = "Invoice 42",
    message_id: str = "<invoice-42@example.com>",
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    for name, data, mime in (
        attachments
        if attachments is not None
        else [("invoice.pdf", pdf_with_pages(2), "application/pdf")]
    ):
        maintype, subtype = mime.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


def large_pdf(size: int) -> bytes:
    """A one-page PDF of about `size` bytes (an unreferenced incompressible stream pads it)."""
    pdf = pikepdf.open(io.BytesIO(pdf_with_pages(1)))
    pdf.Root.Padding = pdf.make_stream(os.urandom(size))
    out = io.BytesIO()
    pdf.save(out, compress_streams=False)
    return out.getvalue()
