"""Pure: the simulator's variants, each a reading of FAX.PLUS that its documentation allows.

The default simulator is one reading of the published API; where the docs and the SDK leave a
behaviour open, a variant makes the simulator behave the other allowed way, so that mailfax's
guarantees are tested against each and never rest on what only the simulator promises."""

from __future__ import annotations

from collections.abc import Iterable

ALL = "all"

# Name -> the documentation's words that allow it (shown by `mailfax simulator --help`).
VARIANTS: dict[str, str] = {
    "no-comment": (
        "fax records start with an empty comment: the SDK's Fax.comment is a string the "
        "account can edit (PUT /faxes/{id}); nothing says the send's comment.text is kept there"
    ),
    "upload-names": (
        "a fax record's file_name is the name the first document was uploaded under; the docs' "
        'examples show a generated one ("fax-to-1334304xxxx"), which is the default'
    ),
    "distinct-ids": (
        "the send's ids, the fax record's id and the webhook's data.id are three values: the SDK "
        'calls data.id a "Fax session ID ... might be different from the one returned by the '
        'listFaxes handle ... Both IDs can be used with the API getFile handle"; nothing says '
        "GET /faxes/{id} knows any id but the record's"
    ),
    "provider-retries": (
        "FAX.PLUS redials a busy or unanswered number itself, by options.retry or, when a send "
        "has none, by the account's settings.send_fax.retry (SDK AccountSettingsSendFax); "
        'concepts/webhook: "if hook.id != data.id the fax is being retried"; each attempt is '
        "its own record in listFaxes (WebhookCallbackData.id: the session id covers retries)"
    ),
    "oldest-first": (
        "GET /faxes lists oldest first when sort_by/order are not given: the SDK (3.0.5) "
        "documents sort_by (date, from, to, comment, pages) and order (asc, desc) but no default"
    ),
    "formatted-numbers": (
        "numbers in webhooks and fax records formatted as in the docs' examples (\"+1 "
        "334-304-xxxx\"), and the webhook's number keys named from_number/to_number as in the "
        "SDK's WebhookCallbackData (the docs' example says from/to)"
    ),
    "converter": (
        "FAX.PLUS converts by the uploaded file's name and MIME type (upload-a-file: give the "
        "real name, extension and type); a name other than .pdf/.tif/.tiff, a type that does not "
        "match it or an unreadable document ends failed_office_converter_issue or "
        "failed_mimetype_not_supported (FaxStatus)"
    ),
    "credit": (
        "the account has a page credit (credit_pages); once it is spent, sends end "
        "insufficient_credit (FaxStatus) instead of being refused"
    ),
    "slow-outbox": (
        "outbox entries pass through the SDK's OutboxStatus converting and sending (each for "
        "seconds) before they leave the outbox and become fax records"
    ),
}


def parse_variants(names: Iterable[str]) -> frozenset[str]:
    """The variants named (`all` = every one); ValueError naming an unknown one."""
    chosen: set[str] = set()
    for raw in names:
        for name in (part.strip() for part in raw.split(",")):
            if name == ALL:
                chosen.update(VARIANTS)
            elif name in VARIANTS:
                chosen.add(name)
            elif name:
                known = ", ".join([*VARIANTS, ALL])
                raise ValueError(f"unknown simulator variant {name!r} (known: {known})")
    return frozenset(chosen)
