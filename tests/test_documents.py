"""The documents as meant, through the real SMTP listener: containers are never faxed as the
PDF inside them, Office files are converted by a real LibreOffice, and an attachment that
cannot be faxed refuses the mail, or is left out and said so in the receipt."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailfax.app import Gateway
from tests.conftest import eventually
from tests.gateway import (
    faxed_documents,
    gateway_env,
    receipts_in,
    smtp_transaction,
    start_gateway,
    text_part,
)
from tests.office import FORMATS, office_documents
from tests.pdfs import fax_mail, pdf_with_pages

TO = ["17185554567@fax.local"]
PDF = pdf_with_pages(2)


def zipped(*names: str, method: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for name in names:
            archive.writestr(name, PDF)
    return out.getvalue()


def tarred(name: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        member = tarfile.TarInfo(name)
        member.size = len(PDF)
        archive.addfile(member, io.BytesIO(PDF))
    return out.getvalue()


def mail_holding_a_pdf() -> bytes:
    """A whole mail whose PDF part is unencoded: "%PDF-" shows within its first KB."""
    return (
        b"From: bob@example.com\r\nSubject: the scan\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/pdf; name=scan.pdf\r\nContent-Transfer-Encoding: binary\r\n"
        b"\r\n" + PDF
    )


ARCHIVE = "is an archive: attach the documents themselves"
NOT_A_DOCUMENT = "is not a document this gateway faxes: send PDF, JPEG, PNG or TIFF"
# (file name, None = no name: the bytes alone tell; its bytes; the refusal after the name)
CONTAINERS = [
    ("invoice.zip", zipped("invoice.pdf"), ARCHIVE),
    ("invoice.zip", zipped("invoice.pdf", method=zipfile.ZIP_DEFLATED), ARCHIVE),
    ("two.zip", zipped("a.pdf", "b.pdf"), ARCHIVE),
    (None, zipped("invoice.pdf"), ARCHIVE),
    ("invoice.pdf", zipped("invoice.pdf"), ARCHIVE),  # a ZIP named as a PDF is still a ZIP
    ("scans.rar", b"Rar!\x1a\x07\x00" + PDF, ARCHIVE),
    ("scans.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + PDF, ARCHIVE),
    ("invoice.pdf.gz", gzip.compress(PDF), ARCHIVE),
    (None, tarred("invoice.pdf"), ARCHIVE),
    # A self-extracting ZIP (a program, then the ZIP) and a whole mail, unnamed.
    (None, b"MZ" + bytes(60) + zipped("invoice.pdf"), NOT_A_DOCUMENT),
    (None, mail_holding_a_pdf(), NOT_A_DOCUMENT),
]


def with_attachment(name: str | None, data: bytes, beside_a_pdf: bool) -> EmailMessage:
    mail = fax_mail(attachments=[("invoice.pdf", PDF, "application/pdf")] if beside_a_pdf else [])
    mail.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return mail


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    running = await start_gateway(tmp_path)
    yield running
    await running.stop()


async def test_containers_are_never_faxed_as_the_pdf_inside_them(gateway: Gateway) -> None:
    assert gateway.endpoints is not None and gateway.simulator is not None
    for beside_a_pdf in (False, True):
        for name, data, why in CONTAINERS:
            mail = with_attachment(name, data, beside_a_pdf)
            code, text = (await smtp_transaction(gateway.endpoints, mail, TO)).final
            shown = name or f"part-{2 if beside_a_pdf else 1}"
            rest = " Nothing was faxed." if beside_a_pdf else ""
            assert (code, text) == (550, f"5.6.0 {shown} {why}.{rest}"), (name, beside_a_pdf)
    assert gateway.simulator.ledger() == []


@pytest.mark.soffice
async def test_every_office_format_and_a_text_file_is_converted_and_faxed(
    gateway: Gateway,
) -> None:
    assert gateway.endpoints is not None and gateway.simulator is not None
    documents = office_documents()
    attachments = [(name, data, "application/octet-stream") for name, data in documents.items()]
    attachments.append(("notes.txt", b"Call me about clause two.\n", "application/octet-stream"))
    outcome = await smtp_transaction(gateway.endpoints, fax_mail(attachments=attachments), TO)
    assert outcome.final[0] == 250, outcome.final
    simulator = gateway.simulator

    async def sent() -> list[tuple[str, int]] | None:
        ledger = simulator.ledger()
        return faxed_documents(ledger[0]) if ledger else None

    expected = [(f"terms.{suffix}", pages) for suffix, (_, pages) in FORMATS.items()]
    assert await eventually(sent, what="the converted fax") == [*expected, ("notes.txt", 1)]


# A file that cannot be faxed beside a PDF: one LibreOffice fails on, and one never converted.
DAMAGED_DOCX = ("terms.docx", b"PK\x03\x04 not really a document", "application/octet-stream")
RAR = ("scans.rar", b"Rar!\x1a\x07\x00 archived scans", "application/octet-stream")
UNFAXABLE = [
    pytest.param(
        DAMAGED_DOCX,
        "terms.docx could not be converted: it is damaged, or not a format LibreOffice can read",
        marks=pytest.mark.soffice,
        id="docx-libreoffice-cannot-read",
    ),
    pytest.param(RAR, f"scans.rar {ARCHIVE}", id="archive"),
]


@pytest.mark.parametrize(("unfaxable", "reason"), UNFAXABLE)
async def test_a_mail_with_an_unfaxable_attachment_is_refused_whole_by_default(
    gateway: Gateway, unfaxable: tuple[str, bytes, str], reason: str
) -> None:
    assert gateway.endpoints is not None and gateway.simulator is not None
    mail = fax_mail(attachments=[("invoice.pdf", PDF, "application/pdf"), unfaxable])
    outcome = await smtp_transaction(gateway.endpoints, mail, TO)
    assert outcome.final == (550, f"5.6.0 {reason}. Nothing was faxed.")
    assert gateway.simulator.ledger() == []


@pytest.mark.parametrize(("unfaxable", "reason"), UNFAXABLE)
async def test_fax_the_rest_faxes_the_pdf_and_the_receipt_says_what_was_left_out(
    tmp_path: Path, unfaxable: tuple[str, bytes, str], reason: str
) -> None:
    gateway = await start_gateway(tmp_path, gateway_env(tmp_path, smtp_unfaxable="fax-the-rest"))
    try:
        assert gateway.endpoints is not None
        mail = fax_mail(attachments=[("invoice.pdf", PDF, "application/pdf"), unfaxable])
        outcome = await smtp_transaction(gateway.endpoints, mail, TO)
        assert outcome.final[0] == 250, outcome.final

        async def receipt() -> EmailMessage | None:
            found = receipts_in(tmp_path)
            return found[0] if found else None

        final = await eventually(receipt, what="the receipt")
    finally:
        await gateway.stop()
    name = unfaxable[0]
    assert final["Subject"] == f"Fax delivered to +1 718-555-4567 (2 pages), without {name}"
    first_line = text_part(final).splitlines()[0]
    assert first_line == (
        f"{name} could not be faxed and was left out of this fax. "
        "Your fax to +1 718-555-4567 was delivered: 2 of 2 pages sent."
    )
    html = final.get_body(preferencelist=("html",))
    assert html is not None
    # The banner is amber (as a fax still waiting), not the green of a complete delivery.
    assert "background-color:#b45309;color:#ffffff" in str(html.get_content())
    assert "#15803d" not in str(html.get_content())
