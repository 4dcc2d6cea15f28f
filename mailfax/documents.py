"""PDF preflight: does a document open, is it unencrypted, how many pages does it have."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pikepdf


@dataclass(frozen=True)
class PdfCheck:
    """The preflight verdict: pages when faxable, otherwise the reason it is not."""

    pages: int
    problem: str | None = None


def check_pdf(data: bytes) -> PdfCheck:
    """Open the PDF (no I/O beyond memory) and report its page count or what is wrong."""
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            if pdf.is_encrypted:
                return PdfCheck(0, "is encrypted; send it without a password or restrictions")
            pages = len(pdf.pages)
    except pikepdf.PasswordError:
        return PdfCheck(0, "is password-protected; send it without a password")
    except (pikepdf.PdfError, ValueError, RuntimeError):
        return PdfCheck(0, "is damaged and cannot be read")
    if pages == 0:
        return PdfCheck(0, "has no pages")
    return PdfCheck(pages)


def text_pdf(lines: list[str]) -> bytes:
    """A one-page A4 PDF showing `lines` in Helvetica (test pages, confirmation reports)."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    commands = ["BT", "/F1 14 Tf", "18 TL", "56 780 Td"]
    for line in lines:
        escaped = line.encode("latin-1", "replace").decode("latin-1")
        escaped = escaped.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        commands.append(f"({escaped}) Tj T*")
    commands.append("ET")
    stream = pikepdf.Stream(pdf, "\n".join(commands).encode("latin-1"))
    page = pikepdf.Page(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Page,
            MediaBox=[0, 0, 595, 842],
            Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
            Contents=stream,
        )
    )
    pdf.pages.append(page)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()
