"""Fax documents as PDF: preflight and repair, images and Office files to PDF."""

from __future__ import annotations

import io
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
    pdf.save(out)
    return out.getvalue()


class ConversionError(Exception):
    """A file could not be turned into PDF; the message completes "The file 'x' ..."."""


def image_to_pdf(data: bytes, max_pages: int) -> bytes:
    """JPEG, PNG or TIFF (every frame) as PDF pages, losslessly where the format allows."""
    if not data:
        raise ConversionError("is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            frames = int(getattr(image, "n_frames", 1))
    except Exception as exc:  # Pillow raises many types for unreadable images
        raise ConversionError("is damaged and cannot be read") from exc
    if width * height > MAX_IMAGE_PIXELS:
        raise ConversionError(f"is too large ({width}x{height} pixels)")
    if frames > max_pages:
        raise ConversionError(f"has {frames} pages, more than the {max_pages} allowed")
    try:
        return bytes(img2pdf.convert(data, layout_fun=_LAYOUT, rotation=img2pdf.Rotation.ifvalid))
    except img2pdf.AlphaChannelError:
        pass  # transparency has no lossless PDF form: flattened onto white below
    except Exception as exc:  # img2pdf and Pillow raise many types for damaged images
        raise ConversionError("is damaged and cannot be read") from exc
    try:
        return bytes(img2pdf.convert(_flattened_frames(data), layout_fun=_LAYOUT))
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


def office_to_pdf(data: bytes, name: str, soffice: str, timeout: float) -> bytes:
    """Convert an Office document with LibreOffice (headless, own profile, bounded time)."""
    suffix = Path(name).suffix.lower() or ".bin"
    with tempfile.TemporaryDirectory(prefix="mailfax-convert-") as work:
        source = Path(work) / f"document{suffix}"
        source.write_bytes(data)
        command = [
            soffice,
            "--headless",
            "--norestore",
            "--nolockcheck",
            # A private profile: concurrent conversions must not share LibreOffice's lock.
            f"-env:UserInstallation={(Path(work) / 'profile').as_uri()}",
            "--convert-to",
            "pdf",
            "--outdir",
            work,
            str(source),
        ]
        try:
            # The command is fixed; only the file path (ours) varies.
            subprocess.run(  # noqa: S603
                command, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as exc:
            raise ConversionError(f"could not be converted to PDF within {timeout:g}s") from exc
        except OSError as exc:
            raise ConversionError("could not be converted: LibreOffice did not start") from exc
        result = source.with_suffix(".pdf")
        if not result.is_file():
            raise ConversionError("could not be converted to PDF by LibreOffice")
        return result.read_bytes()
