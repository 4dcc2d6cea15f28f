"""Pure table: every FAX.PLUS fax status in plain words, and what the sender can do about it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    what_happened: str
    what_to_do: str


_BAD_FILE = Reason(
    "FAX.PLUS could not convert the document for faxing.",
    "Check that the PDF opens, is not password-protected, and send it again.",
)
_RETRY_LATER = Reason(
    "The fax network reported a temporary problem.",
    "Send the fax again later; if it keeps failing, contact your fax administrator.",
)

REASONS: dict[str, Reason] = {
    "success": Reason("The receiving fax machine confirmed every page.", "Nothing."),
    "partially_sent": Reason(
        "The call ended before every page was sent.",
        "Check with the recipient which pages arrived, and send the rest again.",
    ),
    "partially_received": Reason(
        "The call ended before every page was transferred.",
        "Check with the recipient which pages arrived, and send the rest again.",
    ),
    "insufficient_credit": Reason(
        "The fax account has run out of credit.",
        "Ask your fax administrator to top up the FAX.PLUS account, then send again.",
    ),
    "failed": Reason("The fax could not be delivered.", "Check the number and send it again."),
    "failed_internal_process_error": Reason(
        "FAX.PLUS had an internal error while sending.", "Send the fax again later."
    ),
    "failed_user_busy": Reason(
        "The receiving line was busy every time it was called.",
        "Send the fax again later, or ask the recipient to free the line.",
    ),
    "failed_no_answer": Reason(
        "Nobody answered: the receiving fax machine did not pick up.",
        "Check that the number is a fax line and that the machine is on, then send again.",
    ),
    "failed_unallocated_number": Reason(
        "The number does not exist (it is not allocated to any line).",
        "Check the number, including country and area code.",
    ),
    "failed_office_converter_issue": _BAD_FILE,
    "failed_separate_file_pages_issue": _BAD_FILE,
    "failed_render_header_issue": Reason(
        "FAX.PLUS could not print the fax header on the pages.", "Send the fax again later."
    ),
    "failed_invalid_number_format": Reason(
        "The number is not written in a form the fax network accepts.",
        "Write the number with its country code, e.g. +15551234567@fax.local.",
    ),
    "failed_mimetype_not_supported": Reason(
        "FAX.PLUS does not accept this kind of document.", "Send the document as a PDF."
    ),
    "failed_destination_not_supported": Reason(
        "This destination cannot be faxed from this account (a special-service number, "
        "or a country the plan does not cover).",
        "Check the number, or ask your fax administrator which destinations are allowed.",
    ),
    "failed_image_preparation": _BAD_FILE,
    "failed_to_send": Reason(
        "The fax system was too busy to send the fax.", "Send the fax again later."
    ),
    "failed_normal_temporary_failure": _RETRY_LATER,
    "failed_unknown_converter_issue": _BAD_FILE,
    "failed_normal_clearing": Reason(
        "The receiving side hung up before the fax was complete.",
        "Check that the number is a fax line (not a phone), then send again.",
    ),
    "failed_convert_to_tiff_issue": _BAD_FILE,
    "failed_fs_49": _RETRY_LATER,
    "failed_fs_2": _RETRY_LATER,
}

# mailfax's own outcomes, beside FAX.PLUS's statuses.
REASONS["rejected"] = Reason(
    "FAX.PLUS refused to take the fax.",
    "Contact your fax administrator and quote the job id below.",
)
REASONS["expired"] = Reason(
    "The fax could not be sent in time: FAX.PLUS was unreachable or gave no result.",
    "Send the fax again; if this keeps happening, contact your fax administrator.",
)
REASONS["quarantined"] = Reason(
    "mailfax failed repeatedly while handling this fax and put it aside.",
    "Contact your fax administrator and quote the job id below; do not resend blindly.",
)

UNKNOWN = Reason(
    "FAX.PLUS reported a result mailfax does not know.",
    "Contact your fax administrator with the fax id below.",
)


def reason_for(status: str) -> Reason:
    """The plain-language reason for a FAX.PLUS status (never raises)."""
    return REASONS.get(status, UNKNOWN)
