"""Plain text typeset as A4 PDF pages, written directly: no PDF library loaded for a text page."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

A4 = (595, 842)  # points

_FONT_SIZE = 11
_LEADING = 14
_MARGIN = 56
_LINES_PER_PAGE = (A4[1] - 2 * _MARGIN) // _LEADING
_CHARS_PER_LINE = 90  # Helvetica 11 pt on A4 between the margins
# Objects 1-3; each page adds a page object and its content stream.
_CATALOG, _PAGES, _FONT = 1, 2, 3


def text_pdf(lines: Sequence[str]) -> bytes:
    """A one-page A4 PDF showing `lines` (test pages, confirmation reports)."""
    return _typeset([list(lines)])


def body_pdf(text: str) -> bytes:
    """The mail's text typeset on as many A4 pages as it needs (wrapped, blank lines kept)."""
    lines: list[str] = []
    for paragraph in text.replace("\r\n", "\n").split("\n"):
        wrapped = textwrap.wrap(paragraph.expandtabs(4), _CHARS_PER_LINE, replace_whitespace=False)
        lines.extend(wrapped or [""])
    pages = [lines[i : i + _LINES_PER_PAGE] for i in range(0, len(lines), _LINES_PER_PAGE)]
    return _typeset(pages or [[]])


def _content(lines: Sequence[str]) -> bytes:
    commands = [b"BT", b"/F1 %d Tf" % _FONT_SIZE, b"%d TL" % _LEADING]
    commands.append(b"%d %d Td" % (_MARGIN, A4[1] - _MARGIN))
    for line in lines:
        # The standard fonts cover Windows-1252; other characters print as "?".
        encoded = line.encode("cp1252", "replace")
        escaped = encoded.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        commands.append(b"(" + escaped + b") Tj T*")
    commands.append(b"ET")
    return b"\n".join(commands)


def _typeset(pages: Sequence[Sequence[str]]) -> bytes:
    page_ids = [_FONT + 1 + 2 * n for n in range(len(pages))]
    kids = b" ".join(b"%d 0 R" % page for page in page_ids)
    objects = [
        b"<< /Type /Catalog /Pages %d 0 R >>" % _PAGES,
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for page, lines in zip(page_ids, pages, strict=True):
        objects.append(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 %d 0 R"
            b" >> >> /Contents %d 0 R >>" % (_PAGES, *A4, _FONT, page + 1)
        )
        content = _content(lines)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        _CATALOG,
        xref,
    )
    return bytes(out)
