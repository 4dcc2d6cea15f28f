"""Office documents for the conversion tests, made by LibreOffice itself from text, CSV and a
flat presentation (no Office library needed)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

SOFFICE = shutil.which("soffice")

TEXT = "Contract clause one\nClause two\n"
CSV = "item,amount\nwidgets,42\n"
_SLIDE = (
    '<draw:page draw:name="{name}"><draw:frame svg:x="2cm" svg:y="2cm" svg:width="20cm" '
    'svg:height="3cm"><draw:text-box><text:p>{name}</text:p></draw:text-box></draw:frame>'
    "</draw:page>"
)
SLIDES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" office:version="1.2" '
    'office:mimetype="application/vnd.oasis.opendocument.presentation">'
    "<office:body><office:presentation>"
    + _SLIDE.format(name="Slide one")
    + _SLIDE.format(name="Slide two")
    + "</office:presentation></office:body></office:document>\n"
)
# Each format, the source it is made from, and the pages its PDF has.
FORMATS: dict[str, tuple[str, int]] = {
    "docx": ("contract.txt", 1),
    "doc": ("contract.txt", 1),
    "odt": ("contract.txt", 1),
    "rtf": ("contract.txt", 1),
    "xlsx": ("sheet.csv", 1),
    "xls": ("sheet.csv", 1),
    "ods": ("sheet.csv", 1),
    "pptx": ("slides.fodp", 2),
}


@cache
def office_documents() -> dict[str, bytes]:
    """{"terms.docx": bytes, ...} for every format of FORMATS."""
    assert SOFFICE is not None, "tests that make Office documents are marked soffice"
    with tempfile.TemporaryDirectory(prefix="mailfax-office-") as work:
        folder = Path(work)
        (folder / "contract.txt").write_text(TEXT)
        (folder / "sheet.csv").write_text(CSV)
        (folder / "slides.fodp").write_text(SLIDES)
        made = {}
        for suffix, (source, _) in FORMATS.items():
            subprocess.run(
                [
                    SOFFICE,
                    "--headless",
                    f"-env:UserInstallation={(folder / 'profile').as_uri()}",
                    "--convert-to",
                    suffix,
                    "--outdir",
                    str(folder / suffix),
                    str(folder / source),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            [result] = (folder / suffix).iterdir()
            made[f"terms.{suffix}"] = result.read_bytes()
        return made
