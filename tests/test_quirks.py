"""Every quirk the real-mail corpus taught, in mails the tests build: through extraction, and some
through the live SMTP listener, so a clone without ../shared/corpus still catches a regression."""

from __future__ import annotations

import asyncio
import base64
import quopri
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailfax.app import Gateway
from mailfax.mail.extract import extract_documents
from tests.conftest import eventually
from tests.corpus_expectations import Expected, Faxed
from tests.gateway import faxed_documents, start_gateway
from tests.pdfs import fax_mail, pdf_with_pages
from tests.test_extract import image_bytes
from tests.verdicts import check_extraction, check_through_listener

PDF1 = pdf_with_pages(1)
PDF2 = pdf_with_pages(2)


def b64(data: bytes) -> str:
    return base64.encodebytes(data).decode()


def tnef(files: list[tuple[str, bytes]], body: str = "") -> bytes:
    """A winmail.dat as Outlook writes it: message attributes, then each attachment's
    rendering, title and data (level u8, id u16, type u16, length u32, data, checksum u16)."""

    def attribute(level: int, name: int, kind: int, data: bytes) -> bytes:
        header = struct.pack("<BHHI", level, name, kind, len(data))
        return header + data + struct.pack("<H", sum(data) & 0xFFFF)

    blob = struct.pack("<IH", 0x223E9F78, 1)
    blob += attribute(1, 0x9006, 0x0008, struct.pack("<I", 0x10000))  # TNEF version
    blob += attribute(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))  # OEM code page
    blob += attribute(1, 0x8008, 0x0007, b"IPM.Microsoft Mail.Note\x00")
    if body:
        blob += attribute(1, 0x800C, 0x0002, body.encode("cp1252"))
    for name, data in files:
        blob += attribute(2, 0x9002, 0x0006, bytes(14))  # starts an attachment
        blob += attribute(2, 0x8010, 0x0001, name.encode("cp1252") + b"\x00")
        blob += attribute(2, 0x800F, 0x0006, data)
    return blob


def outlook_with_winmail(blob: bytes) -> bytes:
    mail = fax_mail(body="Please see the attached.", attachments=[])
    mail.add_attachment(blob, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return mail.as_bytes()


def raw_mail(content_type: str, body: str, newline: str = "\r\n", headers: str = "") -> bytes:
    """A mail written out by hand (for what EmailMessage would not produce)."""
    head = "From: Alice <alice@example.com>\nSubject: Quirk\nMIME-Version: 1.0\n" + headers
    text = head + f"Content-Type: {content_type}\n\n" + body
    return text.replace("\r\n", "\n").replace("\n", newline).encode("utf-8", "surrogateescape")


def pdf_part(name: str, data: bytes = PDF1, content_type: str = "application/pdf") -> str:
    return (
        f'Content-Type: {content_type}; name="{name}"\n'
        f'Content-Disposition: attachment; filename="{name}"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(data)}"
    )


def forwarded(inner: EmailMessage, depth: int = 1) -> bytes:
    for level in range(depth):
        outer = fax_mail(body=f"forward {level}", attachments=[])
        outer.add_attachment(inner, filename="fwd.eml")
        inner = outer
    return inner.as_bytes()


def text_with_charset(text: str, charset: str, encode_as: str | None = None) -> bytes:
    """A PDF mail whose 8bit text part is labelled `charset` (its bytes in `encode_as`)."""
    data = text.encode(encode_as or charset)
    body = (
        (
            f"--b\nContent-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: 8bit\n\n"
        ).encode()
        + data
        + f"\n--b\n{pdf_part('x.pdf')}\n--b--\n".encode()
    )
    head = b'From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n'
    return (head + b"\n" + body).replace(b"\n", b"\r\n")


def iphone_split_body() -> bytes:
    """iPhone Mail: text, an inline photo without Content-ID, more text."""
    mail = EmailMessage()
    mail["From"] = "Bob <bob@example.com>"
    mail.make_mixed()
    for text in ("Here is the form,", None, "signed.\n\nSent from my iPhone"):
        piece = EmailMessage()
        if text is None:
            photo = image_bytes("JPEG", size=(900, 900))  # a photo, not a 10 KB logo
            piece.set_content(photo, maintype="image", subtype="jpeg", disposition="inline")
            piece.set_param("name", "image1.jpeg")
        else:
            piece.set_content(text)
        mail.attach(piece)
    return mail.as_bytes()


def apple_inline_pdf() -> bytes:
    """Apple Mail puts a PDF inline between two text parts of an alternative's plain side."""
    return raw_mail(
        'multipart/mixed; boundary="Apple-Mail=_1"',
        "--Apple-Mail=_1\nContent-Type: text/plain; charset=us-ascii\n\nFirst line\n"
        '--Apple-Mail=_1\nContent-Type: application/pdf; x-unix-mode=0644; name="form.pdf"\n'
        'Content-Disposition: inline; filename="form.pdf"\nContent-Transfer-Encoding: base64\n\n'
        f"{b64(PDF2)}\n--Apple-Mail=_1\nContent-Type: text/plain; charset=us-ascii\n\n"
        "Thanks, Carol\n--Apple-Mail=_1--\n",
    )


def related_with_cid_logo() -> bytes:
    """HTML with an inline cid: logo (multipart/related), and a real PDF attachment."""
    mail = EmailMessage()
    mail["From"] = "Dora <dora@example.com>"
    mail.set_content("Invoice attached.")
    mail.add_alternative('<p>Invoice attached.</p><img src="cid:logo@x">', subtype="html")
    html = mail.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    html.add_related(image_bytes("PNG", size=(40, 20)), "image", "png", cid="<logo@x>")
    mail.add_attachment(PDF2, maintype="application", subtype="pdf", filename="invoice.pdf")
    return mail.as_bytes()


def mhtml_content_location() -> bytes:
    """MHTML: the image comes first and is referenced by Content-Location, not by cid."""
    return raw_mail(
        'multipart/related; boundary="r"; type="text/html"',
        f"--r\nContent-Type: image/png\nContent-Location: image1\n"
        f"Content-Transfer-Encoding: base64\n\n{b64(image_bytes('PNG', size=(30, 30)))}\n"
        '--r\nContent-Type: text/html\n\n<p>Logo: <img src="image1"></p>\n--r--\n',
    )


def scanner_single_part() -> bytes:
    """A copier's scan-to-mail: the whole message is the PDF, no text."""
    return raw_mail(
        'application/pdf; name="Scan_0001.pdf"',
        b64(PDF2),
        headers="Content-Transfer-Encoding: base64\n",
    )


def scanner_tiff() -> bytes:
    """A scanner that sends a multi-page TIFF and an empty text part."""
    tiff = image_bytes("TIFF", size=(300, 400), frames=3)
    return raw_mail(
        'multipart/mixed; boundary="scan"',
        "--scan\nContent-Type: text/plain\n\n\n"
        '--scan\nContent-Type: image/tiff; name="doc00012.tif"\n'
        f'Content-Disposition: attachment; filename="doc00012.tif"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(tiff)}\n--scan--\n",
    )


def scanner_bare_lf_octet_stream() -> bytes:
    """An old MFP: bare LF line ends, the PDF as octet-stream, no text part at all."""
    return raw_mail(
        'multipart/mixed; boundary="----MFP"',
        f"------MFP\n{pdf_part('Scan_2026-12-07.pdf', PDF2, 'application/octet-stream')}\n"
        "------MFP--\n",
        newline="\n",
    )


@dataclass(frozen=True)
class Quirk:
    build: Callable[[], bytes]
    faxed: tuple[tuple[str, int], ...] = ()  # (name, pages) in order; empty = refused 5.6.0
    comment: str = ""  # the fax comment contains this
    reason: str = ""  # a refusal names this

    @property
    def expected(self) -> Expected:
        return Expected(
            faxed=tuple(Faxed(name, pages) for name, pages in self.faxed),
            refusal=None if self.faxed else "5.6.0",
            reason=self.reason,
            comment_contains=self.comment,
        )


QUIRKS: dict[str, Quirk] = {
    # TNEF: Outlook's winmail.dat, files in order, a contact card (not a document) ignored.
    "tnef-several-attachments": Quirk(
        lambda: outlook_with_winmail(
            tnef(
                [
                    ("quote.pdf", PDF2),
                    ("card.vcf", b"BEGIN:VCARD\r\nFN:Alice\r\nEND:VCARD\r\n"),
                    ("photo.jpg", image_bytes("JPEG")),
                    ("terms.pdf", PDF1),
                ]
            )
        ),
        faxed=(("quote.pdf", 2), ("photo.jpg", 1), ("terms.pdf", 1)),
        comment="Please see the attached.",
    ),
    "tnef-body-only": Quirk(lambda: outlook_with_winmail(tnef([], body="Only a body"))),
    "tnef-raw-as-octet-stream": Quirk(
        lambda: fax_mail(
            attachments=[("winmail.dat", tnef([("a.pdf", PDF1)]), "application/octet-stream")]
        ).as_bytes(),
        faxed=(("a.pdf", 1),),
    ),
    # PDFs under a generic type: found by name or by their %PDF- bytes.
    "octet-stream-pdf-by-name": Quirk(
        lambda: fax_mail(attachments=[("report.pdf", PDF2, "application/octet-stream")]).as_bytes(),
        faxed=(("report.pdf", 2),),
    ),
    "octet-stream-pdf-upper-case-name": Quirk(
        lambda: fax_mail(
            attachments=[("SCAN0001.PDF", PDF1, "application/octet-stream")]
        ).as_bytes(),
        faxed=(("SCAN0001.PDF", 1),),
    ),
    "octet-stream-pdf-by-content": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="b"',
            "--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: application/octet-stream\n"
            f"Content-Transfer-Encoding: base64\n\n{b64(PDF1)}\n--b--\n",
        ),
        faxed=(("document-1.pdf", 1),),
    ),
    "octetstream-typo-and-garbage-type": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="b"',
            f"--b\n{pdf_part('a.pdf', PDF1, 'application/octetstream')}\n"
            "--b\nContent-Type: application/pdf name=Invoice_7.pdf\n"
            'Content-Disposition: attachment; filename="Invoice_7.pdf"\n'
            f"Content-Transfer-Encoding: base64\n\n{b64(PDF2)}\n--b--\n",
        ),
        faxed=(("a.pdf", 1), ("Invoice_7.pdf", 2)),
    ),
    # Forwarded mail: the documents inside a message/rfc822 are faxed, its text is not the comment.
    "forwarded-rfc822-with-pdf": Quirk(
        lambda: forwarded(fax_mail(body="inner text")),
        faxed=(("invoice.pdf", 2),),
        comment="forward 0",
    ),
    "forward-of-a-forward": Quirk(
        lambda: forwarded(fax_mail(body="inner text"), depth=2), faxed=(("invoice.pdf", 2),)
    ),
    "forwarded-rfc822-text-only": Quirk(
        lambda: forwarded(fax_mail(body="nothing attached", attachments=[]))
    ),
    "forwarded-with-broken-pdf": Quirk(
        lambda: forwarded(
            fax_mail(
                attachments=[
                    ("broken.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", "application/pdf")
                ]
            )
        ),
        reason="broken.pdf",
    ),
    # Broken and missing boundaries.
    "multipart-without-boundary-parameter": Quirk(
        lambda: raw_mail("multipart/mixed", f"--b\n{pdf_part('a.pdf')}\n--b--\n"),
    ),
    "boundary-never-appears": Quirk(
        lambda: raw_mail('multipart/mixed; boundary="zzz"', f"--b\n{pdf_part('a.pdf')}\n--b--\n"),
    ),
    "missing-final-boundary": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="b"',
            f"--b\nContent-Type: text/plain\n\nSome body\n--b\n{pdf_part('last.pdf', PDF2)}\n",
        ),
        faxed=(("last.pdf", 2),),
        comment="Some body",
    ),
    "unquoted-boundary-with-equals": Quirk(
        lambda: raw_mail(
            "multipart/mixed; boundary=----=_NextPart_000_0001",
            "------=_NextPart_000_0001\nContent-Type: text/plain\n\nOutlook Express\n"
            f"------=_NextPart_000_0001\n{pdf_part('oe.pdf')}\n------=_NextPart_000_0001--\n",
        ),
        faxed=(("oe.pdf", 1),),
        comment="Outlook Express",
    ),
    "nested-boundary-prefix-of-outer": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="ab"',
            '--ab\nContent-Type: multipart/alternative; boundary="a"\n\n'
            "--a\nContent-Type: text/plain\n\nnested text\n--a--\n"
            f"--ab\n{pdf_part('n.pdf')}\n--ab--\n",
        ),
        faxed=(("n.pdf", 1),),
        comment="nested text",
    ),
    "last-delimiter-without-its-closing-dashes": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="b"',
            f"--b\nContent-Type: text/plain\n\nA text section\n--b\n{pdf_part('j.pdf')}\n\n--b\n\n",
        ),
        faxed=(("j.pdf", 1),),
        comment="A text section",
    ),
    "content-type-missing-semicolon": Quirk(
        lambda: raw_mail(
            'multipart/mixed\n\tboundary="b"',
            f"--b\nContent-Type: text/plain\n\nHi\n--b\n{pdf_part('s.pdf', PDF2)}\n--b--\n",
        ),
        faxed=(("s.pdf", 2),),
    ),
    # Line ends.
    "bare-lf-everywhere": Quirk(
        lambda: fax_mail(body="bare LF mail").as_bytes().replace(b"\r\n", b"\n"),
        faxed=(("invoice.pdf", 2),),
        comment="bare LF mail",
    ),
    "mixed-crlf-and-lf": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="b"',
            f"--b\nContent-Type: text/plain\n\nmixed ends\n--b\n{pdf_part('m.pdf')}\n--b--\n",
        ).replace(b"mixed ends\r\n", b"mixed ends\n"),
        faxed=(("m.pdf", 1),),
        comment="mixed ends",
    ),
    # Charsets that Python does not know by that label, or that lie.
    "charset-ks_c_5601-1987": Quirk(
        lambda: text_with_charset("스티해 보고서", "ks_c_5601-1987", "cp949"),
        faxed=(("x.pdf", 1),),
        comment="스티해",
    ),
    "charset-x-mac-cyrillic": Quirk(
        lambda: text_with_charset("Привет", "x-mac-cyrillic", "mac_cyrillic"),
        faxed=(("x.pdf", 1),),
        comment="Привет",
    ),
    "charset-gb2312-label-lies-utf8": Quirk(
        lambda: text_with_charset("你好 传真", "gb2312", "utf-8"),
        faxed=(("x.pdf", 1),),
        comment="你好",
    ),
    "charset-unknown-label": Quirk(
        lambda: text_with_charset("Grüße", "fakescii", "latin-1"),
        faxed=(("x.pdf", 1),),
        comment="Grüße",
    ),
    "charset-iso-2022-jp": Quirk(
        lambda: text_with_charset("すみません", "iso-2022-jp"),
        faxed=(("x.pdf", 1),),
        comment="すみません",
    ),
    "filename-rfc2047-unquoted": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="b"',
            "--b\nContent-Type: application/pdf; name==?utf-8?B?UmVjaG51bmcucGRm?=\n"
            f"Content-Transfer-Encoding: base64\n\n{b64(PDF1)}\n--b--\n",
        ),
        faxed=(("Rechnung.pdf", 1),),
    ),
    "filename-rfc2231-continuations": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="b"',
            "--b\nContent-Type: application/pdf\nContent-Disposition: attachment;\n"
            " filename*0*=utf-8''%E8%AB%8B%E6%B1%82;\n filename*1*=%E6%9B%B8.pdf\n"
            f"Content-Transfer-Encoding: base64\n\n{b64(PDF1)}\n--b--\n",
        ),
        faxed=(("請求書.pdf", 1),),
    ),
    "filename-raw-8bit": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="b"',
            f"--b\n{pdf_part('管理.pdf')}\n--b--\n",
        ),
        faxed=(("管理.pdf", 1),),
    ),
    "quoted-printable-latin1-body": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="b"',
            "--b\nContent-Type: text/plain; charset=iso-8859-1\n"
            "Content-Transfer-Encoding: quoted-printable\n\n"
            + quopri.encodestring("Grüße aus Köln".encode("latin-1")).decode()
            + f"\n--b\n{pdf_part('q.pdf')}\n--b--\n",
        ),
        faxed=(("q.pdf", 1),),
        comment="Grüße aus Köln",
    ),
    # Apple and iPhone: the body split around a picture or a PDF.
    "iphone-split-body-around-a-photo": Quirk(
        iphone_split_body,
        faxed=(("image1.jpeg", 1),),
        comment="Here is the form,\n\nsigned.",
    ),
    "apple-mail-inline-pdf-between-texts": Quirk(
        apple_inline_pdf, faxed=(("form.pdf", 2),), comment="First line\n\nThanks, Carol"
    ),
    # multipart/related: pictures of the HTML are not faxed.
    "related-html-with-cid-logo": Quirk(
        related_with_cid_logo, faxed=(("invoice.pdf", 2),), comment="Invoice attached."
    ),
    "mhtml-content-location-image-only": Quirk(mhtml_content_location, comment="Logo"),
    # Empty multiparts.
    "empty-alternative-beside-a-pdf": Quirk(
        lambda: raw_mail(
            'multipart/mixed; boundary="b"',
            '--b\nContent-Type: multipart/alternative; boundary="empty"\n\n--empty--\n'
            f"--b\n{pdf_part('e.pdf')}\n--b--\n",
        ),
        faxed=(("e.pdf", 1),),
    ),
    "multipart-with-no-parts": Quirk(
        lambda: raw_mail('multipart/mixed; boundary="b"', "--b--\n"),
    ),
    "multipart-with-empty-body": Quirk(lambda: raw_mail('multipart/mixed; boundary="b"', "")),
    # Scanners and copiers.
    "scanner-whole-message-is-the-pdf": Quirk(scanner_single_part, faxed=(("Scan_0001.pdf", 2),)),
    "scanner-multipage-tiff": Quirk(scanner_tiff, faxed=(("doc00012.tif", 3),)),
    "scanner-bare-lf-octet-stream": Quirk(
        scanner_bare_lf_octet_stream, faxed=(("Scan_2026-12-07.pdf", 2),)
    ),
}


@pytest.mark.parametrize("name", sorted(QUIRKS))
def test_quirk_through_extraction(name: str) -> None:
    quirk = QUIRKS[name]
    check_extraction(quirk.expected, extract_documents(quirk.build()))


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    running = await start_gateway(tmp_path)
    yield running
    await running.stop()


# The quirks a mail client or scanner sends most, through a real SMTP client and the listener.
THROUGH_SMTP = (
    "tnef-several-attachments",
    "octet-stream-pdf-by-name",
    "forwarded-rfc822-with-pdf",
    "forwarded-rfc822-text-only",
    "iphone-split-body-around-a-photo",
    "charset-ks_c_5601-1987",
    "scanner-whole-message-is-the-pdf",
    "missing-final-boundary",
)


async def test_quirks_through_the_live_smtp_listener(gateway: Gateway) -> None:
    mails = [(name, QUIRKS[name].build(), QUIRKS[name].expected) for name in THROUGH_SMTP]
    await check_through_listener(gateway, mails)


async def test_bare_lf_data_through_the_listener(gateway: Gateway) -> None:
    """A client that sends bare LF lines inside DATA (only the terminator is CRLF.CRLF)."""
    assert gateway.endpoints is not None and gateway.endpoints.smtp is not None
    host, port = gateway.endpoints.smtp
    reader, writer = await asyncio.open_connection(host, port)

    async def reply() -> bytes:
        lines = [await reader.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(await reader.readline())
        return lines[-1]

    try:
        assert (await reply()).startswith(b"220")
        for command, expected in (
            (b"HELO mfp.example\r\n", b"250"),
            (b"MAIL FROM:<scanner@example.com>\r\n", b"250"),
            (b"RCPT TO:<17185554567@fax.local>\r\n", b"250"),
            (b"DATA\r\n", b"354"),
        ):
            writer.write(command)
            assert (await reply()).startswith(expected), command
        writer.write(QUIRKS["scanner-bare-lf-octet-stream"].build() + b"\r\n.\r\n")
        assert (await reply()).startswith(b"250 2.0.0"), "bare-LF mail refused"
        writer.write(b"QUIT\r\n")
        await reply()
    finally:
        writer.close()
    simulator = gateway.simulator
    assert simulator is not None

    async def faxed() -> list[dict[str, Any]] | None:
        return simulator.ledger() or None

    fax = (await eventually(faxed, what="the bare-LF scan faxed"))[0]
    assert faxed_documents(fax) == [("Scan_2026-12-07.pdf", 2)]
