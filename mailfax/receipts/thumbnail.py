"""Renders the first faxed page as a small PNG for receipts ([receipts] attach_thumbnail)."""

from __future__ import annotations

import io

# Wide enough to recognise the page, small enough to keep a receipt light (~20-60 KB).
THUMBNAIL_WIDTH = 320


class ThumbnailError(Exception):
    """The page could not be rendered (the receipt goes without a thumbnail)."""


def first_page_png(pdf: bytes, width: int = THUMBNAIL_WIDTH) -> bytes:
    """CPU-bound: callers on the event loop run it in a thread."""
    # Imported on first use: PDFium and PIL are ~7 MiB that a gateway whose receipts carry no
    # thumbnail never needs.
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(pdf)
    except pypdfium2.PdfiumError as exc:
        raise ThumbnailError(f"cannot open the PDF: {exc}") from exc
    try:
        if len(document) == 0:
            raise ThumbnailError("the PDF has no pages")
        page = document[0]
        page_width, _ = page.get_size()
        image = page.render(scale=width / page_width).to_pil()
        output = io.BytesIO()
        image.save(output, format="PNG", optimize=True)
        return output.getvalue()
    finally:
        document.close()
