"""Fax documents as PDF: preflight and repair, images to PDF."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import img2pdf
import pikepdf
from PIL import Image, ImageSequence

from mailfax.typeset import A4

# img2pdf logs why it declines an image; extraction reports the outcome itself.
logging.getLogger("img2pdf").setLevel(logging.ERROR)

# A 600 dpi A4 scan has 35 million pixels; beyond this an image is a decompression bomb.
MAX_IMAGE_PIXELS = 60_000_000


@dataclass(frozen=True)
class PdfCheck:
    """The preflight verdict: the pages and the PDF to fax, or the reason it cannot be faxed."""

    pages: int
    problem: str | None = None
    # The PDF as qpdf rewrote it when it had to recover a damaged file; None = use the original.
    repaired: bytes | None = None


def check_pdf(data: bytes) -> PdfCheck:
    """Open the PDF in memory (qpdf repairs what it can) and report pages or what is wrong."""
    if not data:
        return PdfCheck(0, "is empty")
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            if pdf.is_encrypted:
                return PdfCheck(0, "is encrypted; send it without a password or restrictions")
            pages = len(pdf.pages)
            # Junk before the %PDF- header is legal for readers but not for every fax
            # converter: such a file is rewritten like a damaged one.
            needs_rewrite = pdf.get_warnings() or not data.startswith(b"%PDF-")
            repaired = _rewritten(pdf) if needs_rewrite and pages else None
    except pikepdf.PasswordError:
        return PdfCheck(0, "is password-protected; send it without a password")
    except (pikepdf.PdfError, ValueError, RuntimeError, OverflowError, RecursionError):
        return PdfCheck(0, "is damaged and cannot be read")
    if pages == 0:
        return PdfCheck(0, "has no pages")
    return PdfCheck(pages, repaired=repaired)


def _rewritten(pdf: pikepdf.Pdf) -> bytes:
    out = io.BytesIO()
    # Streams are copied as they are, never decoded: by default qpdf decodes and recompresses
    # every Flate stream, and a page of [/FlateDecode /FlateDecode] over 5 GiB of zeros (12 KB
    # as mailed) took a worker 50-95 s. compress_streams decodes them too (to see whether they
    # are compressed already): off, a stream the sender left uncompressed stays so.
    pdf.save(out, stream_decode_level=pikepdf.StreamDecodeLevel.none, compress_streams=False)
    return out.getvalue()


class ConversionError(Exception):
    """A file could not be turned into PDF; the message completes "The file 'x' ..."."""


# Bits Pillow keeps per pixel in each mode ("1" is a byte per pixel once decoded).
_MODE_BITS = {"1": 8, "L": 8, "P": 8, "LA": 16, "PA": 16, "La": 16, "RGB": 24, "YCbCr": 24}


@dataclass(frozen=True)
class ImageSize:
    """What decoding an image will take, read from its header (no pixel decoded)."""

    width: int  # of its largest frame
    height: int
    frames: int
    largest_frame_bytes: int
    total_bytes: int


def image_size(data: bytes, max_pages: int) -> ImageSize:
    """Frame dimensions x depth from the header of each frame; raises ConversionError for an
    unreadable image, or one of more pages than a fax may have (their headers are not read)."""
    if not data:
        raise ConversionError("is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            frames = int(getattr(image, "n_frames", 1))
            if frames > max_pages:
                raise ConversionError(f"has {frames} pages, more than the {max_pages} allowed")
            sizes = []
            for frame in range(frames):
                image.seek(frame)
                bits = _MODE_BITS.get(image.mode, 32)  # I;16, I, F, RGBA, CMYK: 16-32 bits
                sizes.append((image.size, image.size[0] * image.size[1] * bits // 8))
    except (ConversionError, MemoryError):
        raise
    except Exception as exc:  # Pillow raises many types for unreadable images
        raise ConversionError("is damaged and cannot be read") from exc
    (width, height), largest = max(sizes, key=lambda size: size[1])
    return ImageSize(width, height, frames, largest, sum(size[1] for size in sizes))


class ImageTooLarge(ConversionError):
    """The image would need more memory to decode than allowed."""


def check_image_budget(size: ImageSize, frame_bytes: int, total_bytes: int) -> None:
    """Refuse, before decoding, an image that would need more memory than allowed."""
    if size.width * size.height > MAX_IMAGE_PIXELS:
        raise ImageTooLarge(f"is too large ({size.width}x{size.height} pixels)")
    if frame_bytes and size.largest_frame_bytes > frame_bytes:
        raise ImageTooLarge(
            f"is too large to fax: {size.width}x{size.height} pixels need "
            f"{_megabytes(size.largest_frame_bytes)} to decode, more than the "
            f"{_megabytes(frame_bytes)} allowed; scan at 300 dpi or less"
        )
    if total_bytes and size.total_bytes > total_bytes:
        raise ImageTooLarge(
            f"is too large to fax: its {size.frames} pages need {_megabytes(size.total_bytes)} "
            f"to decode, more than the {_megabytes(total_bytes)} allowed; scan at 300 dpi or "
            "less, or send a PDF"
        )


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.0f} MB"


def image_to_pdf(data: bytes) -> bytes:
    """JPEG, PNG or TIFF (every frame) as PDF pages, losslessly where the format allows (its
    size checked with image_size and check_image_budget first)."""
    try:
        return bytes(img2pdf.convert(data, layout_fun=_LAYOUT, rotation=img2pdf.Rotation.ifvalid))
    except img2pdf.AlphaChannelError:
        pass  # transparency has no lossless PDF form: flattened onto white below
    except MemoryError:
        raise  # over the worker's memory budget: the mail is refused as too complex
    except Exception as exc:  # img2pdf and Pillow raise many types for damaged images
        raise ConversionError("is damaged and cannot be read") from exc
    try:
        return bytes(img2pdf.convert(_flattened_frames(data), layout_fun=_LAYOUT))
    except MemoryError:
        raise
    except Exception as exc:
        raise ConversionError("is damaged and cannot be read") from exc


# Pages are A4; an image larger than the page is shrunk into it, a smaller one keeps its size.
_LAYOUT = img2pdf.get_layout_fun(pagesize=A4, fit=img2pdf.FitMode.shrink, auto_orient=True)


def _flattened_frames(data: bytes) -> list[bytes]:
    frames: list[bytes] = []
    with Image.open(io.BytesIO(data)) as image:
        for frame in ImageSequence.Iterator(image):
            rgba = frame.convert("RGBA")
            white = Image.new("RGB", rgba.size, "white")
            white.paste(rgba, mask=rgba.getchannel("A"))
            out = io.BytesIO()
            white.save(out, format="PNG")
            frames.append(out.getvalue())
    return frames
