"""Pure table: every FAX.PLUS fax status in plain words: what happened, whether mailfax
retried, what the sender can do, the RFC 3463 status code the receipt reports, and the reason in
a few words for the receipt's subject. Senders read these: no configuration key names."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    what_happened: str
    retried: str  # whether mailfax tried again, and why (not)
    what_to_do: str
    status_code: str  # RFC 3463 enhanced status code for the delivery-status part
    in_short: str  # a few words for the subject: "Fax to ... not delivered: line busy"


_NO_RESEND = "mailfax does not resend after this result on its own."
_SAME_NUMBER = "mailfax did not try again: the same number would fail the same way."
_SAME_FILE = "mailfax did not try again: the same document would fail the same way."

_BAD_FILE = Reason(
    "FAX.PLUS could not convert the document for faxing.",
    _SAME_FILE,
    "Check that the PDF opens, is not password-protected, and send it again.",
    "5.6.0",
    "document could not be converted",
)
_RETRY_LATER = Reason(
    "The fax network reported a temporary problem.",
    _NO_RESEND,
    "Send the fax again later; if it keeps failing, contact your fax administrator.",
    "5.4.0",
    "temporary network problem",
)
_PARTIAL = Reason(
    "The call ended before every page was sent.",
    "mailfax did not send it again, so that the pages that arrived are not faxed twice.",
    "Send the pages that did not go through again; the recipient can confirm which arrived.",
    "5.4.0",
    "the call ended early",
)
_REDIALLED = "mailfax dialled again later, as often as the gateway allows."

REASONS: dict[str, Reason] = {
    "success": Reason(
        "The receiving fax machine confirmed every page.",
        "No retry was needed.",
        "Nothing.",
        "2.0.0",
        "delivered",
    ),
    "partially_sent": _PARTIAL,
    "partially_received": _PARTIAL,
    "insufficient_credit": Reason(
        "The fax account has run out of credit.",
        "mailfax did not try again: it would fail the same way until the account has credit.",
        "Ask your fax administrator to top up the FAX.PLUS account, then send again.",
        "5.7.0",
        "fax account out of credit",
    ),
    "failed": Reason(
        "The fax could not be delivered.",
        _NO_RESEND,
        "Check the number and send it again.",
        "5.0.0",
        "no reason given",
    ),
    "failed_internal_process_error": Reason(
        "FAX.PLUS had an internal error while sending.",
        _NO_RESEND,
        "Send the fax again later.",
        "5.3.0",
        "FAX.PLUS internal error",
    ),
    "failed_user_busy": Reason(
        "The receiving line was busy every time it was called.",
        _REDIALLED,
        "Send the fax again later, or ask the recipient to free the line.",
        "5.4.0",
        "line busy",
    ),
    "failed_no_answer": Reason(
        "Nobody answered: the receiving fax machine did not pick up.",
        _REDIALLED,
        "Check that the number is a fax line and that the machine is on, then send again.",
        "5.4.1",
        "no answer",
    ),
    "failed_unallocated_number": Reason(
        "The number does not exist (it is not allocated to any line).",
        _SAME_NUMBER,
        "Check the number, including country and area code.",
        "5.1.1",
        "number does not exist",
    ),
    "failed_office_converter_issue": _BAD_FILE,
    "failed_separate_file_pages_issue": _BAD_FILE,
    "failed_render_header_issue": Reason(
        "FAX.PLUS could not print the fax header on the pages.",
        _NO_RESEND,
        "Send the fax again later.",
        "5.3.0",
        "fax header could not be printed",
    ),
    "failed_invalid_number_format": Reason(
        "The number is not written in a form the fax network accepts.",
        _SAME_NUMBER,
        "Write the number with its country code, e.g. +17185554567@fax.local.",
        "5.1.1",
        "number not dialable as written",
    ),
    "failed_mimetype_not_supported": Reason(
        "FAX.PLUS does not accept this kind of document.",
        _SAME_FILE,
        "Send the document as a PDF.",
        "5.6.1",
        "document type not accepted",
    ),
    "failed_destination_not_supported": Reason(
        "This destination cannot be faxed from this account (a special-service number, "
        "or a country the plan does not cover).",
        _SAME_NUMBER,
        "Check the number, or ask your fax administrator which destinations are allowed.",
        "5.7.1",
        "destination not allowed",
    ),
    "failed_image_preparation": _BAD_FILE,
    "failed_to_send": Reason(
        "The fax system was too busy to send the fax.",
        _REDIALLED,
        "Send the fax again later.",
        "5.3.0",
        "fax system too busy",
    ),
    "failed_normal_temporary_failure": dataclasses.replace(_RETRY_LATER, retried=_REDIALLED),
    "failed_unknown_converter_issue": _BAD_FILE,
    "failed_normal_clearing": Reason(
        "The receiving side hung up before the fax was complete.",
        _REDIALLED,
        "Check that the number is a fax line (not a phone), then send again.",
        "5.4.0",
        "the receiving side hung up",
    ),
    "failed_convert_to_tiff_issue": _BAD_FILE,
    "failed_fs_49": _RETRY_LATER,
    "failed_fs_2": _RETRY_LATER,
}

# mailfax's own outcomes, beside FAX.PLUS's statuses.
MAILFAX_REASONS: dict[str, Reason] = {
    "rejected": Reason(
        "FAX.PLUS refused to take the fax.",
        "mailfax did not try again: FAX.PLUS refused the request itself.",
        "Contact your fax administrator and quote the job id below.",
        "5.0.0",
        "FAX.PLUS refused the fax",
    ),
    "expired": Reason(
        "The fax could not be sent in time: FAX.PLUS was unreachable or gave no result.",
        "mailfax kept trying until the fax's time limit ran out.",
        "Send the fax again; if this keeps happening, contact your fax administrator.",
        "5.4.7",
        "not sent in time",
    ),
    "quarantined": Reason(
        "mailfax failed repeatedly while handling this fax and put it aside.",
        "mailfax stopped trying, so that this fax cannot stop the gateway again.",
        "Contact your fax administrator and quote the job id below; do not resend blindly.",
        "5.3.0",
        "put aside after repeated errors",
    ),
    "cancelled": Reason(
        "The gateway's administrator cancelled the fax before it was sent.",
        "mailfax did not try again: the fax was cancelled.",
        "Ask your fax administrator why; send the fax again if it is still needed.",
        "5.0.0",
        "cancelled by the fax administrator",
    ),
}
REASONS.update(MAILFAX_REASONS)

# Results after which no page can have reached the recipient: the call never connected, or the
# fax never left FAX.PLUS or mailfax. After the others (a call cut short, a failure FAX.PLUS does
# not explain) some pages may have gone, whatever page count was recorded.
NOTHING_SENT = frozenset(
    {
        "insufficient_credit",
        "failed_user_busy",
        "failed_no_answer",
        "failed_unallocated_number",
        "failed_invalid_number_format",
        "failed_destination_not_supported",
        "failed_to_send",
        "failed_mimetype_not_supported",
        "failed_office_converter_issue",
        "failed_separate_file_pages_issue",
        "failed_render_header_issue",
        "failed_image_preparation",
        "failed_unknown_converter_issue",
        "failed_convert_to_tiff_issue",
        "rejected",
        "cancelled",
    }
)

UNKNOWN = Reason(
    "FAX.PLUS reported a result mailfax does not know.",
    _NO_RESEND,
    "Contact your fax administrator with the fax id below.",
    "5.0.0",
    "unknown result",
)


def reason_for(status: str) -> Reason:
    """The plain-language reason for a FAX.PLUS status (never raises)."""
    return REASONS.get(status, UNKNOWN)


# An operator's cancellation (`mailfax jobs cancel`) records who cancelled, then ": " and the
# reason they gave: the receipt says who in its subject and the reason once, in its body.
CANCELLED_BY_OPERATOR = "cancelled by the gateway's administrator"
# mailfax's own notes for the operator (how often a worker died): the receipt's sentences
# already say what they mean to the sender.
_DETAIL_NOT_FOR_SENDERS = frozenset({"quarantined"})
_CONFIG_KEY = re.compile(r"\[[a-z_]+\]")


def operator_cancellation(reason: str) -> str:
    """The detail an operator's cancellation records: who cancelled, and why when given."""
    return f"{CANCELLED_BY_OPERATOR}: {reason}" if reason else CANCELLED_BY_OPERATOR


def detail_for_sender(status: str, detail: str) -> str:
    """What of a result's detail the sender is told: the canceller's reason, FAX.PLUS's words;
    never mailfax's notes for the operator, nor a text naming a configuration key."""
    if status == "cancelled":
        return detail.removeprefix(CANCELLED_BY_OPERATOR).removeprefix(": ")
    if status == "expired":
        # "the fax was not sent within 5 days (<the last error>)": the error is the operator's.
        return detail.partition(" (")[0]
    if status in _DETAIL_NOT_FOR_SENDERS or _CONFIG_KEY.search(detail):
        return ""
    return detail
