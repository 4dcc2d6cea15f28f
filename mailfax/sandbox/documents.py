"""Fax documents: page counting of uploads, the transmitted PDF and the confirmation report."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from contextlib import ExitStack

import pikepdf
from pikepdf import ContentStreamInstruction, Dictionary, Name, Operator, String

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
# PasswordError is not a PdfError; both mean "cannot be converted".
_UNREADABLE_PDF = (pikepdf.PdfError, pikepdf.PasswordError)
_TIFF_IFD_ENTRY_SIZE = 12
_LETTER_MEDIA_BOX = (0, 0, 612, 792)


def count_pages(content: bytes) -> int:
    """Pages in a PDF or TIFF upload; 0 when it cannot be read (conversion fails later)."""
    try:
        if content[:4] in _TIFF_MAGIC:
            return _count_tiff_pages(content)
        with pikepdf.open(io.BytesIO(content)) as pdf:
            return len(pdf.pages)
    except (*_UNREADABLE_PDF, struct.error):
        return 0


def _count_tiff_pages(content: bytes) -> int:
    # One page per image file directory (IFD) in the chain starting at offset 4.
    byte_order = "<" if content[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(byte_order + "I", content, 4)
    pages = 0
    seen: set[int] = set()
    while offset and offset not in seen and offset + 2 <= len(content):
        seen.add(offset)
        (entries,) = struct.unpack_from(byte_order + "H", content, offset)
        next_pointer = offset + 2 + entries * _TIFF_IFD_ENTRY_SIZE
        if next_pointer + 4 > len(content):
            break
        pages += 1
        (offset,) = struct.unpack_from(byte_order + "I", content, next_pointer)
    return pages


def media_type(content: bytes) -> str:
    return "image/tiff" if content[:4] in _TIFF_MAGIC else "application/pdf"


def fax_document(contents: Sequence[bytes]) -> bytes:
    """The uploaded PDFs as one document; the first upload verbatim if none of them opens."""
    merged = pikepdf.new()
    with ExitStack() as open_sources:
        for content in contents:
            try:
                source = open_sources.enter_context(pikepdf.open(io.BytesIO(content)))
            except _UNREADABLE_PDF:
                continue
            merged.pages.extend(source.pages)
        if not merged.pages:
            return contents[0]
        # Copied pages read their streams from the sources, so save while those are open; the
        # streams as they are (qpdf's default decodes and recompresses each: a page of nested
        # Flate over 5 GiB of zeros took a minute).
        output = io.BytesIO()
        merged.save(
            output, stream_decode_level=pikepdf.StreamDecodeLevel.none, compress_streams=False
        )
    return output.getvalue()


def confirmation_report(title: str, lines: Sequence[str]) -> bytes:
    """A one-page Helvetica PDF listing `lines` under `title`."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        Dictionary(
            Type=Name.Font,
            Subtype=Name.Type1,
            BaseFont=Name.Helvetica,
            Encoding=Name.WinAnsiEncoding,
        )
    )
    instructions = [
        ContentStreamInstruction([], Operator("BT")),
        ContentStreamInstruction([Name.F1, 16], Operator("Tf")),
        ContentStreamInstruction([72, 720], Operator("Td")),
        ContentStreamInstruction([20], Operator("TL")),
        ContentStreamInstruction([String(title)], Operator("Tj")),
        ContentStreamInstruction([Name.F1, 11], Operator("Tf")),
        # The ' operator moves to the next line (by TL) and shows its string.
        *(ContentStreamInstruction([String(line)], Operator("'")) for line in lines),
        ContentStreamInstruction([], Operator("ET")),
    ]
    page = Dictionary(
        Type=Name.Page,
        MediaBox=list(_LETTER_MEDIA_BOX),
        Resources=Dictionary(Font=Dictionary(F1=font)),
        Contents=pdf.make_stream(pikepdf.unparse_content_stream(instructions)),
    )
    pdf.pages.append(pikepdf.Page(page))
    output = io.BytesIO()
    pdf.save(output)
    return output.getvalue()
