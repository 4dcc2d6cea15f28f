"""Pure: what becomes of one dial, and how the numbers and ids of its records look."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

# Destination suffix -> FAX.PLUS status, so callers can provoke every outcome on demand.
_STATUS_BY_SUFFIX = {
    "0013": "failed_user_busy",
    "0014": "failed_no_answer",
    "0015": "failed_unallocated_number",
    "0016": "partially_sent",
}
# Where FAX.PLUS redials (provider-retries), a number ending so does not answer the first time
# the account dials it and answers afterwards: a redial, FAX.PLUS's own or the gateway's, gets
# through, so a fax redialled by both layers is faxed twice.
_ANSWERS_REDIAL_SUFFIX = "0014"
_DESCRIPTIONS = {
    "success": "OK",
    "partially_sent": "Partially sent",
    "failed_user_busy": "User busy",
    "failed_no_answer": "No answer",
    "failed_unallocated_number": "Unallocated number",
    "failed_office_converter_issue": "Office converter issue",
    "failed_mimetype_not_supported": "Mimetype not supported",
    "insufficient_credit": "Insufficient credit",
}
# The statuses FAX.PLUS redials (concepts/fax: busy or no answer -> retry later).
REDIALLED = frozenset({"failed_user_busy", "failed_no_answer"})
# Upload name extension -> the MIME types a document of that kind is declared as.
_FAX_FORMATS = {
    "pdf": frozenset({"application/pdf"}),
    "tif": frozenset({"image/tiff"}),
    "tiff": frozenset({"image/tiff"}),
}
# concepts/fax lists these as converted by FAX.PLUS; the simulator has no converter for them.
_OFFICE_FORMATS = frozenset(
    {"doc", "docx", "txt", "rtf", "jpg", "jpeg", "png", "xls", "xlsx", "odt", "html"}
)
_NANP_DIGITS = 11  # "1" + area code + 7 digits


def new_fax_id() -> str:
    # Fax (CDR) and webhook ids are 24 hex digits in every published example.
    return secrets.token_hex(12)


@dataclass(frozen=True)
class Outcome:
    status: str
    description: str
    pages_sent: int

    @classmethod
    def failed(cls, status: str) -> Outcome:
        return cls(status, _DESCRIPTIONS[status], 0)


def outcome_for(destination: str, pages: int, *, redial_answered: bool = False) -> Outcome:
    """The deterministic result of faxing `pages` pages to `destination`."""
    suffix = destination[-4:]
    if redial_answered and suffix == _ANSWERS_REDIAL_SUFFIX:
        status = "success"
    else:
        status = _STATUS_BY_SUFFIX.get(suffix, "success")
    if status == "success":
        pages_sent = pages
    elif status == "partially_sent":
        pages_sent = pages // 2
    else:
        pages_sent = 0
    return Outcome(status, _DESCRIPTIONS[status], pages_sent)


@dataclass(frozen=True)
class Document:
    """What the converter looks at in one uploaded file."""

    file_name: str
    media_type: str  # as the upload declared it; "" when it declared none
    pages: int


def conversion_failure(documents: Sequence[Document]) -> str | None:
    """The status a send of these documents ends with when FAX.PLUS cannot convert them."""
    for document in documents:
        extension = (
            document.file_name.rpartition(".")[2].lower() if "." in document.file_name else ""
        )
        if extension not in _FAX_FORMATS:
            if extension in _OFFICE_FORMATS:
                return "failed_office_converter_issue"
            return "failed_mimetype_not_supported"
        if document.media_type and document.media_type not in _FAX_FORMATS[extension]:
            return "failed_mimetype_not_supported"
        if document.pages == 0:
            return "failed_office_converter_issue"
    return None


def display_number(number: str) -> str:
    """A number the way the docs' examples print it: "+13343041234" -> "+1 334-304-1234"."""
    digits = number.lstrip("+")
    if not digits.isdigit():
        return number  # "no_number"
    if len(digits) == _NANP_DIGITS and digits.startswith("1"):
        return f"+1 {digits[1:4]}-{digits[4:7]}-{digits[7:]}"
    return f"+{digits[:2]} {digits[2:]}"
